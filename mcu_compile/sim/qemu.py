"""Runs firmware in QEMU and parses its console protocol (see firmware_templates/main.c.j2).

The protocol parser and the process handling here are shared with the FVP runner (fvp.py).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..target import elf as elfinfo
from ..target.boards import Board
from ..errors import McuCompileError, InputError, ToolchainError
from ..resources import resource_dir

EXIT_OK, EXIT_FAULT = 0, 3   # see main.c.j2 and startup.c


# Configurable Fault Status Register bits (Armv7-M / Armv8-M ARM, B3.2.15).
CFSR_BITS = {0: "instruction access violation", 1: "data access violation",
             4: "stacking error (MPU)", 8: "instruction bus error", 9: "precise data bus error",
             10: "imprecise data bus error", 12: "stacking bus error",
             16: "undefined instruction", 17: "invalid state", 18: "invalid PC on return",
             19: "no coprocessor (FPU/MVE not enabled)", 20: "stack overflow (MSPLIM)",
             24: "unaligned access", 25: "division by zero"}


class RunError(McuCompileError):
    pass


class FirmwareTimeout(RunError):
    pass


class FirmwareFault(RunError):
    pass


@dataclass
class RunResult:
    """What one firmware run printed.

    timing_measured tells whether ticks/instructions are a measurement: True under QEMU
    -icount (deterministic instruction counts); False on an FVP, whose timing is no
    measurement: there `instructions` is empty and `ticks` holds the raw timer ticks the
    firmware printed, for information only.
    """
    outputs: list[list[bytes]]      # per vector, per model output
    instructions: list[int]         # per vector, one inference ([] when not measured)
    exit_code: int
    stdout: str
    ticks: list[int] = field(default_factory=list)
    timer_overhead_ticks: int = 0   # empty measurement, already subtracted
    stack_bytes: int = 0            # deepest stack use seen by the stack paint
    simulator: str = "qemu"         # "qemu" or "fvp"
    timing_measured: bool = True


def load_simulator(name: str) -> dict:
    path = resource_dir("simulators") / f"{name}.toml"
    if not path.is_file():
        raise InputError(f"unknown simulator '{name}'; known: "
                         f"{', '.join(p.stem for p in resource_dir('simulators').glob('*.toml'))}")
    return tomllib.loads(path.read_text())


def qemu_command(board: Board, elf: Path, sim: dict) -> list[str]:
    if board.simulator.get("name") != sim["name"]:
        raise InputError(f"board {board.name} cannot run in {sim['name']} "
                         f"(its simulator: {board.simulator.get('name', 'none')})")
    values = dict(executable=sim["executable"], machine=board.simulator["machine"],
                  icount_shift=sim["icount_shift"], elf=str(elf))
    return [arg.format(**values) for arg in sim["command"]]


def run_qemu(board: Board, elf: Path, timeout: float = 120.0) -> RunResult:
    """Runs elf on the board's QEMU machine until the firmware exits."""
    sim = load_simulator("qemu")
    if shutil.which(sim["executable"]) is None:
        raise ToolchainError(f"{sim['executable']} not found: {sim['install_hint']}")
    cmd = qemu_command(board, Path(elf), sim)
    proc = run_process(cmd, timeout)
    stdout, stderr = proc.stdout, proc.stderr
    if proc.timed_out:
        raise hang_error(elf, timeout, stdout, "QEMU killed")
    if proc.returncode == EXIT_FAULT and "MCU-FAULT" in stdout:
        raise fault_error(elf, stdout)
    if "Lockup" in stderr:
        raise FirmwareFault(f"firmware {elf} locked up (a fault while handling a fault, usually a "
                            f"stack overflow) after output {last_line(stdout)!r}: "
                            f"{last_line(stderr.split('R00=')[0])}; give it a larger stack")
    if proc.returncode != EXIT_OK or "MCU-DONE" not in stdout:
        raise RunError(f"firmware {elf} exited with code {proc.returncode}: "
                       f"{last_line(stdout + stderr)}")
    ns_per_insn = 2 ** sim["icount_shift"]
    result = parse_output(stdout, proc.returncode, board.timer.ns_per_tick / ns_per_insn)
    check_stack(elf, result.stack_bytes)
    return result


@dataclass
class ProcessOutput:
    returncode: int | None   # None when killed on timeout
    stdout: str
    stderr: str
    timed_out: bool = False
    stopped: bool = False    # killed by us after `finished` matched and the linger ran out


def run_process(cmd: list[str], timeout: float, finished: Callable[[str], bool] | None = None,
                linger: float = 2.0) -> ProcessOutput:
    """Runs cmd with its output captured, in its own process group.

    On timeout the whole group is killed (a wrapper script cannot leave its children
    running) and the output so far is returned with timed_out set. With `finished`, a
    stdout line for which it returns True gives the process `linger` seconds to exit by
    itself before it is killed (stopped set): for simulators that may not stop on the
    firmware's exit.
    """
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise ToolchainError(f"cannot start {cmd[0]}: {e.strerror or e}; check that it is an "
                             f"executable for this machine") from e
    out: list[bytes] = []
    err: list[bytes] = []
    seen = threading.Event()

    def pump(stream, sink: list[bytes], watch: bool) -> None:
        for line in iter(stream.readline, b""):
            sink.append(line)
            if watch and finished is not None and finished(_text(line)):
                seen.set()
        stream.close()

    pumps = [threading.Thread(target=pump, args=(proc.stdout, out, True), daemon=True),
             threading.Thread(target=pump, args=(proc.stderr, err, False), daemon=True)]
    for t in pumps:
        t.start()
    timed_out = stopped = False
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            if finished is None:
                try:
                    proc.wait(timeout=remaining)
                except subprocess.TimeoutExpired:
                    pass
            elif seen.wait(min(remaining, 0.1)):
                try:
                    proc.wait(timeout=max(0.0, min(linger, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    stopped = True
                    break
    finally:
        _kill_group(proc)
        for t in pumps:
            t.join(timeout=5)
    return ProcessOutput(None if timed_out else proc.returncode,
                         _text(b"".join(out)), _text(b"".join(err)), timed_out, stopped)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kills the process group started for proc if proc still runs, then reaps proc."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # its own session: the group is proc's
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.wait()


def check_stack(elf: Path, used: int) -> None:
    """The stack paint was used up completely: the stack overflowed into what lies below."""
    size = elfinfo.stack_size(Path(elf))
    if size and used >= size:
        raise FirmwareFault(f"firmware {elf} overflowed its {size} B stack (the whole stack paint "
                            f"was overwritten); give it a larger stack")


# A protocol item: its tag may follow other text on the same line (an FVP's UART output
# without a newline, or a simulator message, can precede the firmware's semihosting line).
_ITEM = re.compile(r"MCU-(OUT|TICKS|TIMER|STACK|DONE|ERROR|FAULT)\b(.*)")


def protocol_lines(stdout: str) -> list[tuple[str, str]]:
    """(tag, rest of line) of each protocol item in stdout, in order; other lines are ignored."""
    items = []
    for line in stdout.splitlines():
        m = _ITEM.search(line)
        if m:
            items.append(("MCU-" + m[1], m[2].strip()))
    return items


def parse_output(stdout: str, exit_code: int, insn_per_tick: float | None) -> RunResult:
    """The protocol items in stdout as a RunResult. insn_per_tick None: the run's timing
    is not a measurement (instructions left empty, timing_measured False)."""
    outputs: dict[int, dict[int, bytes]] = {}
    ticks: dict[int, int] = {}
    result = RunResult([], [], exit_code, stdout)
    for tag, rest in protocol_lines(stdout):
        args = rest.split()
        try:
            if tag == "MCU-OUT":
                outputs.setdefault(int(args[0]), {})[int(args[1])] = bytes.fromhex(args[2] if len(args) > 2 else "")
            elif tag == "MCU-TICKS":
                ticks[int(args[0])] = int(args[1])
            elif tag == "MCU-TIMER":
                result.timer_overhead_ticks = int(args[0])
            elif tag == "MCU-STACK":
                result.stack_bytes = int(args[0])
        except (IndexError, ValueError):
            raise RunError(f"garbled firmware output line {tag} {rest[:200]!r}: the console "
                           f"output was cut or mixed with other output") from None
    result.outputs = [[outs[o] for o in sorted(outs)] for _, outs in sorted(outputs.items())]
    result.ticks = [ticks[v] for v in sorted(ticks)]
    if insn_per_tick is None:
        result.timing_measured = False
    else:
        result.instructions = [round(t * insn_per_tick) for t in result.ticks]
    return result


def hang_error(elf: Path, timeout: float, stdout: str, action: str = "QEMU killed") -> FirmwareTimeout:
    return FirmwareTimeout(
        f"firmware {elf} hung: no exit within {timeout:g} s ({action}); last "
        f"output: {last_line(stdout)!r}. Look at the kernel loop of the layer after that output, "
        f"or a stack overflow / lock-up (stack use: the .su files, app.map)")


def fault_error(elf: Path, stdout: str) -> FirmwareFault:
    line = next("MCU-FAULT " + rest for tag, rest in protocol_lines(stdout) if tag == "MCU-FAULT")
    pc = re.search(r"pc=(0x[0-9a-f]+)", line)
    where = ""
    if pc:
        where = f" in {elfinfo.function_at(Path(elf), int(pc[1], 16)) or 'unknown code'}"
    cfsr = re.search(r"cfsr=(0x[0-9a-f]+)", line)
    causes = [n for bit, n in CFSR_BITS.items() if cfsr and int(cfsr[1], 16) >> bit & 1]
    why = f" ({', '.join(causes)})" if causes else ""
    return FirmwareFault(f"firmware {elf} crashed{where}{why}: {line}; "
                         f"`arm-none-eabi-addr2line -e {elf} <pc>` gives the source line")


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def last_line(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip()[:200] if lines else "(none)"
