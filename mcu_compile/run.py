"""Runs firmware in QEMU and parses its console protocol (see firmware_templates/main.c.j2)."""
from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import elf as elfinfo
from .boards import Board
from .errors import CompileError, InputError, ToolchainError
from .resources import resource_dir

EXIT_OK, EXIT_FAULT = 0, 3   # see main.c.j2 and startup.c


# Configurable Fault Status Register bits (Armv7-M / Armv8-M ARM, B3.2.15).
CFSR_BITS = {0: "instruction access violation", 1: "data access violation",
             4: "stacking error (MPU)", 8: "instruction bus error", 9: "precise data bus error",
             10: "imprecise data bus error", 12: "stacking bus error",
             16: "undefined instruction", 17: "invalid state", 18: "invalid PC on return",
             19: "no coprocessor (FPU/MVE not enabled)", 20: "stack overflow (MSPLIM)",
             24: "unaligned access", 25: "division by zero"}


class RunError(CompileError):
    pass


class FirmwareTimeout(RunError):
    pass


class FirmwareFault(RunError):
    pass


@dataclass
class RunResult:
    outputs: list[list[bytes]]      # per vector, per model output
    instructions: list[int]         # per vector, one inference
    exit_code: int
    stdout: str
    ticks: list[int] = field(default_factory=list)
    timer_overhead_ticks: int = 0   # empty measurement, already subtracted
    stack_bytes: int = 0            # deepest stack use seen by the stack paint


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
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise _hang(elf, timeout, _text(e.stdout)) from None
    stdout, stderr = _text(proc.stdout), _text(proc.stderr)
    if proc.returncode == EXIT_FAULT and "MCU-FAULT" in stdout:
        raise _fault(elf, stdout)
    if "Lockup" in stderr:
        raise FirmwareFault(f"firmware {elf} locked up (a fault while handling a fault, usually a "
                            f"stack overflow) after output {_last_line(stdout)!r}: "
                            f"{_last_line(stderr.split('R00=')[0])}; give it a larger stack")
    if proc.returncode != EXIT_OK or "MCU-DONE" not in stdout:
        raise RunError(f"firmware {elf} exited with code {proc.returncode}: "
                       f"{_last_line(stdout + stderr)}")
    ns_per_insn = 2 ** sim["icount_shift"]
    result = parse_output(stdout, proc.returncode, board.timer.ns_per_tick / ns_per_insn)
    _check_stack(elf, result.stack_bytes)
    return result


def _check_stack(elf: Path, used: int) -> None:
    """The stack paint was used up completely: the stack overflowed into what lies below."""
    size = elfinfo.stack_size(Path(elf))
    if size and used >= size:
        raise FirmwareFault(f"firmware {elf} overflowed its {size} B stack (the whole stack paint "
                            f"was overwritten); give it a larger stack")


def parse_output(stdout: str, exit_code: int, insn_per_tick: float) -> RunResult:
    outputs: dict[int, dict[int, bytes]] = {}
    ticks: dict[int, int] = {}
    result = RunResult([], [], exit_code, stdout)
    for line in stdout.splitlines():
        tag, *args = line.split() or [""]
        if tag == "MCU-OUT":
            outputs.setdefault(int(args[0]), {})[int(args[1])] = bytes.fromhex(args[2] if len(args) > 2 else "")
        elif tag == "MCU-TICKS":
            ticks[int(args[0])] = int(args[1])
        elif tag == "MCU-TIMER":
            result.timer_overhead_ticks = int(args[0])
        elif tag == "MCU-STACK":
            result.stack_bytes = int(args[0])
    result.outputs = [[outs[o] for o in sorted(outs)] for _, outs in sorted(outputs.items())]
    result.ticks = [ticks[v] for v in sorted(ticks)]
    result.instructions = [round(t * insn_per_tick) for t in result.ticks]
    return result


def _hang(elf: Path, timeout: float, stdout: str) -> FirmwareTimeout:
    return FirmwareTimeout(
        f"firmware {elf} hung: no exit within {timeout:g} s (QEMU killed); last "
        f"output: {_last_line(stdout)!r}. Look at the kernel loop of the layer after that output, "
        f"or a stack overflow / lock-up (stack use: the .su files, app.map)")


def _fault(elf: Path, stdout: str) -> FirmwareFault:
    line = next(l for l in stdout.splitlines() if l.startswith("MCU-FAULT"))
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


def _last_line(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip()[:200] if lines else "(none)"
