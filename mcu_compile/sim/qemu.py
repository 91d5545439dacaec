"""Runs firmware in QEMU: the board's machine, -icount for deterministic instruction counts,
semihosting for the exit code, and the console over semihosting or, for firmware with a
UART console, over QEMU's first UART on a local TCP socket read with the same pyserial code
that talks to a real board (device/session.py). outcome.py reads what it printed.
"""
from __future__ import annotations

import shutil
import socket
import time
import tomllib
from pathlib import Path

from ..target.boards import Board
from ..errors import InputError, ToolchainError
from ..resources import resource_dir
from .outcome import Console, RunResult, classify
from ..device import frames
from ..device.session import DeviceSession, open_link, protocol_lines
from .process import Process, ProcessOutput, run_process


def load_simulator(name: str) -> dict:
    path = resource_dir("simulators") / f"{name}.toml"
    if not path.is_file():
        raise InputError(f"unknown simulator '{name}'; known: "
                         f"{', '.join(p.stem for p in resource_dir('simulators').glob('*.toml'))}")
    return tomllib.loads(path.read_text())


def qemu_command(board: Board, elf: Path, sim: dict, serial: str = "null") -> list[str]:
    if board.simulator.get("name") != sim["name"]:
        raise InputError(f"board {board.name} cannot run in {sim['name']} "
                         f"(its simulator: {board.simulator.get('name', 'none')})")
    values = dict(executable=sim["executable"], machine=board.simulator["machine"],
                  icount_shift=sim["icount_shift"], elf=str(elf), serial=serial)
    return [arg.format(**values) for arg in sim["command"]]


def find_qemu() -> dict:
    """simulators/qemu.toml, once its executable was found on PATH."""
    sim = load_simulator("qemu")
    if shutil.which(sim["executable"]) is None:
        raise ToolchainError(f"{sim['executable']} not found: {sim['install_hint']}")
    return sim


def qemu_console(board: Board, sim: dict, **wording) -> Console:
    """QEMU running the board's firmware, for outcome.classify: with -icount each timer tick
    is a measured number of instructions. wording: Console's where, names_error, lockup_report."""
    return Console("qemu", "QEMU", board.timer.ns_per_tick / 2 ** sim["icount_shift"], **wording)


def run_qemu(board: Board, elf: Path, timeout: float = 120.0) -> RunResult:
    """Runs elf on the board's QEMU machine until the firmware exits."""
    sim = find_qemu()
    if uses_uart_console(board):
        run = run_over_uart(board, Path(elf), sim, timeout)
    else:
        run = run_process(qemu_command(board, Path(elf), sim), timeout)
    return classify(elf, timeout, run, qemu_console(board, sim))


def uses_uart_console(board: Board) -> bool:
    return getattr(board, "console", {}).get("kind") == "uart"


def run_over_uart(board: Board, elf: Path, sim: dict, timeout: float) -> ProcessOutput:
    """QEMU with its first UART on a local TCP server (QEMU starts the CPU once we connect):
    the bundled vectors' frames are read as protocol lines, then QUIT ends the firmware's
    service loop and the semihosting exit ends QEMU with the firmware's exit code."""
    port = free_tcp_port()
    proc = Process(qemu_command(board, elf, sim, serial=f"tcp:127.0.0.1:{port},server=on,wait=on"))
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    timed_out = False
    try:
        link = connect(proc, f"socket://127.0.0.1:{port}", deadline)
        session = DeviceSession(link, timeout=max(0.1, deadline - time.monotonic()))
        try:
            while True:
                frame = session.reader.next_frame(max(0.0, deadline - time.monotonic()))
                lines.append(protocol_lines(frame))
                if frame.kind == frames.READY:
                    session.send(frames.QUIT)
                if frame.kind == frames.DONE:
                    break
        except frames.LinkClosed:
            pass          # the firmware exited (an error or a fault): its exit code says how
        except frames.LinkError:
            timed_out = proc.alive()
        finally:
            link.close()
        if not timed_out and not proc.wait(max(0.0, deadline - time.monotonic())):
            timed_out = True
    finally:
        code = proc.stop()
    return ProcessOutput(None if timed_out else code, "".join(lines) + proc.stdout, proc.stderr, timed_out)


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(proc: Process, url: str, deadline: float):
    """The UART's socket, once QEMU listens on it (it takes a moment to start)."""
    while True:
        try:
            return open_link(url)
        except frames.LinkError:
            if not proc.alive() or time.monotonic() > deadline:
                raise ToolchainError(f"QEMU did not open its UART socket ({url}): "
                                     f"{proc.stderr.strip()[-200:] or 'no message'}") from None
            time.sleep(0.05)
