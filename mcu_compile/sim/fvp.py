"""Runs firmware on Arm's Corstone FVPs.

An FVP (Fast Model Fixed Virtual Platform) is a licensed binary from Arm, installed by the
user; it is found in $MCU_COMPILE_FVP_DIR (or its models/*/ subdirectories), then on PATH.
The board file's [fvp] section names the executable and its -C parameters, and
simulators/fvp.toml how the command line is put together. The firmware talks the same
semihosting protocol as under QEMU (outcome.py reads both).

Timing: an FVP's CPU timing is no measurement (ETHOSU.md section 6). A RunResult from an
FVP has timing_measured False, `instructions` empty and `ticks` the raw SysTick counts the
firmware printed, for information only. Instruction counts come from QEMU.
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from ..target.boards import Board, BoardFileError
from ..errors import InputError, ToolchainError
from .outcome import Console, RunResult, classify
from .process import run_process
from .qemu import load_simulator

_END_TAGS = ("MCU-DONE", "MCU-FAULT", "MCU-ERROR")


class FvpNotFoundError(ToolchainError):
    """The board needs an Arm FVP and it is not installed (or not where we look)."""


def locate_fvp(board: Board, sim: dict | None = None) -> Path | None:
    """The board's FVP executable: in $MCU_COMPILE_FVP_DIR (and its models/*/) when that
    is set, then on PATH (each FVP installs in its own directory); None when not found."""
    sim = sim or load_simulator("fvp")
    name = _fvp_section(board)["executable"]
    directory = os.environ.get(sim["dir_env"])
    if directory:
        base = Path(directory).expanduser()
        candidates = [base / name]
        for pattern in sim.get("search_subdirs", []):
            candidates += sorted(base.glob(f"{pattern}/{name}"))
        for c in candidates:
            if c.is_file() and os.access(c, os.X_OK):
                return c.absolute()
    found = shutil.which(name)
    return Path(found) if found else None


def find_fvp(board: Board, sim: dict | None = None) -> Path:
    """locate_fvp, or FvpNotFoundError saying where to get the FVP and how to point us at it."""
    sim = sim or load_simulator("fvp")
    path = locate_fvp(board, sim)
    if path is None:
        raise FvpNotFoundError(_not_found_message(board, sim))
    return path


def fvp_available(board: Board) -> bool:
    return board.fvp is not None and locate_fvp(board) is not None


def fvp_command(board: Board, elf: Path, timeout_s: float, executable: Path | str | None = None,
                sim: dict | None = None) -> list[str]:
    """The FVP command line for elf: the board's executable (`executable`, else where
    locate_fvp finds it, else its bare name), -a elf, the board's [fvp] params with {macs}
    from [npu], --timelimit (whole seconds, at least 1)."""
    sim = sim or load_simulator("fvp")
    section = _fvp_section(board)
    values = {k: str(v) for k, v in (board.npu or {}).items() if isinstance(v, (int, str))}
    try:
        params = [str(p).format(**values) for p in section.get("params", [])]
    except (KeyError, IndexError, ValueError) as e:
        raise BoardFileError(f"board file {board.path}: [fvp] params use {e}, which the board's "
                             f"[npu] does not define (known: {', '.join(sorted(values)) or 'none'})") from None
    settings = [p for p in params if not p.startswith("-")]
    missing = [r for r in sim["required_params"] if not any(s.endswith(r) for s in settings)]
    if missing:
        raise BoardFileError(f"board file {board.path}: [fvp] params must set "
                             f"{', '.join('...' + m for m in missing)} (semihosting carries the "
                             f"firmware's output; see boards/corstone-300.toml)")
    if executable is None:
        executable = locate_fvp(board, sim) or section["executable"]
    fields = {"executable": str(executable), "elf": str(elf),
              "timelimit": str(max(1, math.ceil(timeout_s)))}
    cmd: list[str] = []
    for arg in sim["command"]:
        if arg == "{params}":
            cmd += params
        else:
            cmd.append(arg.format(**fields))
    return cmd


def run_fvp(board: Board, elf: Path, timeout: float = 120.0, kill_grace: float | None = None) -> RunResult:
    """Runs elf on the board's FVP until the firmware exits.

    The FVP stops itself after `timeout` seconds (--timelimit) and is killed if it still
    runs `kill_grace` seconds later (default: simulators/fvp.toml). Lines that are not our
    protocol (the FVP's banner, its Info:/Warning: messages, UART output) are ignored.
    """
    sim = load_simulator("fvp")
    executable = find_fvp(board, sim)
    cmd = fvp_command(board, Path(elf), timeout, executable, sim)
    grace = sim["kill_grace_s"] if kill_grace is None else kill_grace
    run = run_process(cmd, timeout + grace, finished=_is_end_line, linger=sim["linger_s"])
    console = Console("fvp", executable.name, None,   # None: FVP timing is no measurement
                      own_output=True, where=" on the FVP", limit_pattern=sim["limit_pattern"])
    return classify(elf, timeout, run, console)


def _fvp_section(board: Board) -> dict:
    if not board.fvp or "executable" not in board.fvp:
        raise InputError(f"board {board.name} has no [fvp] section with an executable in "
                         f"{board.path}: it cannot run on an FVP")
    return board.fvp


def _not_found_message(board: Board, sim: dict) -> str:
    name = _fvp_section(board)["executable"]
    product = sim.get("products", {}).get(name, name)
    env = sim["dir_env"]
    directory = os.environ.get(env)
    subdirs = ", ".join(sim.get("search_subdirs", []))
    where = (f"not found in {env}={directory} (nor its {subdirs}/) nor on PATH"
             if directory else f"not found on PATH ({env} is not set)")
    return (f"{name} {where}: board {board.name} runs on Arm's {product} FVP, "
            f"{sim['download_hint'].format(product=product)}; "
            f"then put its directory on PATH or set {env} to the directory that holds {name}")


def _is_end_line(line: str) -> bool:
    return any(tag in line for tag in _END_TAGS)

