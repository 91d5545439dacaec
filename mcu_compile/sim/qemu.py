"""Runs firmware in QEMU: the board's machine, -icount for deterministic instruction counts,
semihosting for the console protocol and the exit code (outcome.py reads what it printed).
"""
from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from ..target.boards import Board
from ..errors import InputError, ToolchainError
from ..resources import resource_dir
from .outcome import Console, RunResult, classify
from .process import run_process


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
    run = run_process(qemu_command(board, Path(elf), sim), timeout)
    return classify(elf, timeout, run, qemu_console(board, sim))
