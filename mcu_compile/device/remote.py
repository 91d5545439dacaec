"""`mcu-compile run DIR --port PORT`: run a project's inputs on firmware that is already
running (a flashed board, or a QEMU started by someone else with its UART on a socket)
and compare the outputs with the host reference, byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.inputs import to_float_outputs, to_program_inputs
from ..project import CompiledModel, ModelRun
from ..reference import interpreter as reference
from .frames import LinkError
from .session import DeviceSession, open_link


@dataclass
class PortRun:
    run: ModelRun           # outputs beside the host reference's
    ticks: list[int]        # per vector: timer ticks of one inference (core clock cycles on hardware)
    stack_bytes: int        # deepest stack use the firmware saw
    resyncs: int            # times the link had to re-synchronise (lost or damaged frames)


def run_on_port(compiled: CompiledModel, url: str, baud: int | None = None, inputs=None,
                timeout: float = 30.0, log=None) -> PortRun:
    """Sends each input vector (the project's bundled ones by default) over the link,
    reads the outputs, and returns them beside the host reference's. log: called with each
    line of console text the firmware sends."""
    program = compiled.program
    if inputs is None:
        vectors, expected = compiled.vectors(), compiled.expected()
    else:
        vectors = [to_program_inputs(program, v) for v in inputs]
        expected = [reference.run(compiled.reference_program, v) for v in vectors]
    baud = baud or compiled.board.uart.get("baud", 115200)
    link = open_link(url, baud)
    try:
        session = DeviceSession(link, timeout=timeout, text_sink=log)
        ready = session.ping()
        if ready.output_sizes != [program.tensor(t).nbytes for t in program.outputs]:
            raise LinkError(f"the firmware on {url} runs a different model (outputs of {ready.output_sizes} "
                            f"bytes): flash this project's firmware first (`mcu-compile flash`)")
        outputs, ticks, stacks = [], [], []
        for v, vector in enumerate(vectors):
            result = session.run_vector(v, [np.ascontiguousarray(a).tobytes() for a in vector])
            if result.status != 0:
                raise LinkError(f"vector {v}: the model returned status {result.status} on the device")
            outputs.append([np.frombuffer(raw, np.int8).reshape(program.tensor(name).shape)
                            for raw, name in zip(result.outputs, program.outputs)])
            ticks.append(result.ticks)
            stacks.append(result.stack_bytes)
        if ready.exits_on_quit:      # a simulator: let it end, as `run DIR` would
            session.quit()
    finally:
        link.close()
    run = ModelRun(vectors, outputs, expected, [], compiled.project_dir / "app.elf",
                   outputs_float=[to_float_outputs(program, o) for o in outputs])
    return PortRun(run, ticks, max(stacks, default=0), session.resyncs)
