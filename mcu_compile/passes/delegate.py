"""Stage 4, delegate: the ops an Ethos-U NPU can run go to Arm's Vela compiler; the
rest stays on the CPU, each with the reason Vela gives.

Vela runs in-process (its C++ core, Regor). Each maximal run of consecutive NPU ops
becomes one partition, compiled to a command stream with separate input/output
regions, so the tensors at the CPU/NPU boundary are read and written in place. In
the Edge program a partition is one ETHOS_U op (TFLite's CUSTOM "ethos-u"): inputs
command stream, read-only data (weights, scales, LUTs), scratch, fast scratch, the
feature maps; the .tflite carries the COP1 stream TFLite Micro's kernel parses, the
firmware embeds the COP2 stream our driver parses (ETHOSU.md section 2).
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..target.boards import Board
from ..errors import McuCompileError
from ..ir.program import Op, Program, Tensor
from .plan import last_uses
from ..ir.tflite_io import write_tflite


class VelaError(McuCompileError):
    pass


@dataclass
class Partition:
    """One NPU job: the ops it replaces and what Vela made of them."""

    index: int
    ops: list[Op]
    inputs: list[str]
    outputs: list[str]
    payload_cop2: bytes = b""
    payload_cop1: bytes = b""
    read_only: bytes = b""
    scratch_bytes: int = 0
    fast_scratch_bytes: int = 0
    npu_cycles: int = 0
    vela_sram_bytes: int = 0  # Vela's own peak SRAM use for the partition
    embedded_io: bool = True  # feature maps inside the scratch, at Vela's offsets
    io_offsets: dict[str, int] = field(default_factory=dict)


@dataclass
class Delegation:
    program: Program  # the Edge program with ETHOS_U ops
    partitions: list[Partition] = field(default_factory=list)
    placement: list[dict] = field(default_factory=list)  # per original op: name, op, target, reason


# ---- Vela in-process ------------------------------------------------------------------
def _vela_ini() -> str:
    import ethosu.vela
    return str(Path(ethosu.vela.__file__).resolve().parent.parent / "config_files" / "Arm" / "vela.ini")


@lru_cache(maxsize=None)
def _system_config(accelerator_config: str, system_config: str, memory_mode: str) -> tuple[str, str]:
    """(Regor accelerator name, system config text) as Vela's own front end builds them."""
    from ethosu.vela import architecture_features
    ini = _vela_ini()
    arch = architecture_features.ArchitectureFeatures(
        vela_config_files=[ini], system_config=system_config, memory_mode=memory_mode,
        accelerator_config=accelerator_config, max_blockdep=3, verbose_config=False, arena_cache_size=None)
    text = (f"[architecture]\nmacs={arch.num_macs_per_cycle}\ncores={arch.ncores}\n"
            f"[vela]\nsystem_config_name={arch.system_config}\nmemory_mode_name={arch.memory_mode}\n"
            + Path(ini).read_text())
    accelerator = "".join(part.capitalize() for part in accelerator_config.split("-")[:-1])
    return accelerator, text


def _options(output_format: str, cop_format: str, separate_io: bool) -> str:
    from ethosu.vela import vela
    return vela.get_compiler_config(
        enable_debug_db=False, verbose_all=False, verbose_high_level_command_stream=False,
        verbose_register_command_stream=False, optimize="Performance", arena_cache_size=None,
        verbose_schedule=False, verbose_allocation=False, verbose_graph=False, verbose_quantization=False,
        verbose_packing=False, verbose_performance=False, show_cpu_operations=False,
        output_format=output_format, disable_chaining=False, disable_fwd=False, disable_cascading=False,
        disable_buffering=False, disable_ifm_reuse=False, cop_format=cop_format,
        separate_io_regions=separate_io, cpu_tensor_alignment=16, tensor_allocator="HillClimb",
        softmax_int16_neg_exp_range=1.0)


def run_vela(board: Board, tflite: bytes, output_format: str = "raw", cop_format: str = "COP2",
             separate_io: bool = True):
    """Compile with Vela for the board's NPU; returns (compiled model, what Vela printed)."""
    from ethosu import regor
    npu = board.npu
    accelerator, system_text = _system_config(npu["vela_accelerator"], npu["vela_system_config"],
                                              npu["vela_memory_mode"])
    with _captured_output() as log:
        try:
            model = regor.compile(accelerator, tflite, "TFLITE", system_text,
                                  options=_options(output_format, cop_format, separate_io))
        except Exception as err:
            raise VelaError(f"Vela could not compile for {npu['vela_accelerator']}: {err}") from err
    return model, log.text


class _captured_output:
    """Vela's C++ core prints to the process's stdout/stderr: collect it instead."""

    def __enter__(self):
        self.file = tempfile.TemporaryFile()
        self.saved = [os.dup(1), os.dup(2)]
        for fd in (1, 2):
            os.dup2(self.file.fileno(), fd)
        self.text = ""
        return self

    def __exit__(self, *exc):
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", "replace")
        self.file.close()
        return False


# ---- which ops go to the NPU ----------------------------------------------------------
_WARNING = re.compile(r"Warning \(supported operators\) operator: (\w+), ofm: '([^']*)'\n"
                      r"Reason: (.*?)\n(.*?)(?=\n\n|\nWarning|\Z)", re.S)


def npu_placement(program: Program, board: Board) -> list[str | None]:
    """Per op: None if Vela puts it on the NPU, else why not (Vela's own words)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    model, log = run_vela(board, write_tflite(program), output_format="tflite", cop_format="COP1",
                          separate_io=False)
    reasons = {ofm: f"{reason.strip()}" + (f" ({rule.strip()})" if rule.strip() else "")
               for _, ofm, reason, rule in _WARNING.findall(log)}
    tfl = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(model.model, 0))
    graph = tfl.subgraphs[0]
    on_cpu = set()
    for op in graph.operators:
        if tfl.operatorCodes[op.opcodeIndex].customCode != b"ethos-u":
            on_cpu.update(graph.tensors[i].name.decode() for i in op.outputs)
    return [None if op.outputs[0] not in on_cpu else
            reasons.get(op.outputs[0], f"Vela keeps {op.kind} on the CPU for {board.npu['vela_accelerator']}")
            for op in program.ops]


def runs_of_npu_ops(reasons: list[str | None]) -> list[list[int]]:
    runs, current = [], []
    for index, reason in enumerate(reasons):
        if reason is None:
            current.append(index)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def boundary(program: Program, indices: list[int]) -> tuple[list[str], list[str]]:
    """Feature maps entering and leaving a run of ops."""
    inside = [program.ops[i] for i in indices]
    produced = {name for op in inside for name in op.outputs}
    later = {name for i, op in enumerate(program.ops) if i > indices[-1] for name in op.inputs}
    inputs = []
    for op in inside:
        for name in op.inputs:
            if name and name not in produced and not program.tensor(name).is_const and name not in inputs:
                inputs.append(name)
    outputs = [n for op in inside for n in op.outputs if n in later or n in program.outputs]
    return inputs, outputs


def subprogram(program: Program, indices: list[int], inputs: list[str], outputs: list[str]) -> Program:
    ops = [program.ops[i] for i in indices]
    names = {n for op in ops for n in op.inputs + op.outputs if n}
    tensors = {n: t for n, t in program.tensors.items() if n in names}
    return Program(tensors, ops, inputs, outputs)


# ---- partitions -------------------------------------------------------------------------
def compile_partition(board: Board, part: Partition, sub: Program) -> None:
    """Vela's streams for one partition: COP2 for our driver, COP1 for TFLite Micro.

    With part.embedded_io the feature maps live inside the scratch (region 1) at the
    offsets Vela chose, so the NPU's memory is exactly Vela's plan; otherwise each sits
    alone in region 3 (input) or 4 (output).
    """
    tflite = write_tflite(sub)
    separate = not part.embedded_io
    model, _ = run_vela(board, tflite, "raw", "COP2", separate_io=separate)
    part.payload_cop2 = bytes(model.command_stream)
    part.read_only = bytes(model.read_only.data)
    part.scratch_bytes = int(model.scratch.size)
    part.fast_scratch_bytes = int(model.scratch_fast.size)
    part.npu_cycles = int(model.perf_report.npuCycles)
    part.vela_sram_bytes = int(model.perf_report.memories["Sram"].peakUsage)
    placed = list(zip(model.inputs, part.inputs, [3] * len(part.inputs))) + \
        list(zip(model.outputs, part.outputs, [4] * len(part.outputs)))
    for vela_tensor, name, region in placed:
        _check_io(vela_tensor, sub.tensor(name), region if separate else 1, part)
        if part.embedded_io:
            part.io_offsets[name] = int(vela_tensor.address)
    part.payload_cop1 = bytes(run_vela(board, tflite, "raw", "COP1", separate_io=separate)[0].command_stream)


def _check_io(vela_tensor, tensor: Tensor, region: int, part: Partition) -> None:
    """The feature maps must be where our plan will put them, whole."""
    fits = (vela_tensor.region == region and vela_tensor.size == tensor.nbytes
            and (part.embedded_io or vela_tensor.address == 0)
            and vela_tensor.address + vela_tensor.size <= max(part.scratch_bytes, vela_tensor.size))
    if not fits:
        raise VelaError(f"Vela placed {tensor.name!r} at region {vela_tensor.region} offset "
                        f"{vela_tensor.address} ({vela_tensor.size} B), not where mcu-compile expects it "
                        f"(region {region}, {tensor.nbytes} B); report this with the model")


def _byte_tensor(program: Program, base: str, data: bytes | None, size: int | None = None) -> str:
    name = program.unique_name(base)
    if data is not None:
        program.add_tensor(Tensor(name, (max(len(data), 1),), "uint8", None,
                                  np.frombuffer(data or b"\0", dtype=np.uint8)))
    else:
        program.add_tensor(Tensor(name, (max(size, 16),), "uint8"))
    return name


def partition_op(program: Program, part: Partition, board: Board) -> Op:
    """The ETHOS_U op that replaces a partition, its constants and scratch added to program."""
    prefix = f"npu{part.index}"
    payload = _byte_tensor(program, f"{prefix}_command_stream", part.payload_cop1)
    read_only = _byte_tensor(program, f"{prefix}_read_only", part.read_only)
    scratch = _byte_tensor(program, f"{prefix}_scratch", None, part.scratch_bytes)
    fast = (_byte_tensor(program, f"{prefix}_fast_scratch", None, part.fast_scratch_bytes)
            if part.fast_scratch_bytes else scratch)
    return Op("ETHOS_U", [payload, read_only, scratch, fast] + part.inputs, list(part.outputs),
              {"partition": part.index, "cop2_payload": part.payload_cop2, "npu_cycles": part.npu_cycles,
               "io_offsets": dict(part.io_offsets),
               "const_section": f".const.{board.npu['const_region']}"},
              target="npu", source=f"NPU partition {part.index}: {len(part.ops)} ops")


def delegate(program: Program, board: Board) -> Delegation:
    """Move what the board's NPU runs into ETHOS_U ops; everything else stays as it is."""
    if not board.npu:
        return Delegation(program, [], [_place(op, "cpu", f"{board.name} has no NPU") for op in program.ops])
    reasons = npu_placement(program, board)
    result = Program(dict(program.tensors), [], list(program.inputs), list(program.outputs),
                     dict(program.metadata))
    partitions, starts = [], {}
    last = last_uses(program)
    for run in runs_of_npu_ops(reasons):
        inputs, outputs = boundary(program, run)
        # Vela may overwrite an input inside its scratch once it is consumed: only inputs
        # nobody reads after the partition may live there
        embedded = all(last.get(n, -1) <= run[-1] for n in inputs)
        if not embedded and (len(inputs) != 1 or len(outputs) != 1):
            why = (f"an NPU partition here would have {len(inputs)} inputs and {len(outputs)} outputs "
                   f"with an input read again later; that needs a copy, so it stays on the CPU")
            for i in run:
                reasons[i] = why
            continue
        part = Partition(len(partitions), [program.ops[i] for i in run], inputs, outputs, embedded_io=embedded)
        try:
            compile_partition(board, part, subprogram(program, run, inputs, outputs))
        except VelaError as err:
            names = ", ".join(f"{op.kind} {op.outputs[0]}" for op in part.ops[:3])
            raise VelaError(f"{err} (NPU partition of {len(part.ops)} ops starting with {names}); "
                            f"compile with npu=False / --no-npu to run them on the CPU") from err
        partitions.append(part)
        starts[run[0]] = part
    in_partition = {id(op) for part in partitions for op in part.ops}
    for index, op in enumerate(program.ops):
        if index in starts:
            result.ops.append(partition_op(result, starts[index], board))
        elif id(op) not in in_partition:
            result.ops.append(op)
    _drop_unused_tensors(result)
    placement = [_place(op, "npu" if id(op) in in_partition else "cpu", reasons[i])
                 for i, op in enumerate(program.ops)]
    return Delegation(result, partitions, placement)


def _place(op: Op, target: str, reason: str | None) -> dict:
    return {"name": op.outputs[0], "op": op.kind, "target": target,
            "reason": "" if target == "npu" else (reason or "")}


def cpu_placement(op: Op, reason: str) -> dict:
    return _place(op, "cpu", reason)


def _drop_unused_tensors(program: Program) -> None:
    used = {n for op in program.ops for n in op.inputs + op.outputs} | set(program.inputs) | set(program.outputs)
    for name in [n for n in program.tensors if n not in used]:
        del program.tensors[name]
