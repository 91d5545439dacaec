"""Picks the simulator for a board and runs firmware on it: the one entry point of the
simulation layer.

The backends: qemu.py (QEMU with -icount: deterministic instruction counts), fvp.py (Arm's
Corstone FVPs) and cosim.py (the board's QEMU machine with every NPU job run by the
functional model on the host).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..target.boards import Board
from .cosim import run_cosim
from .fvp import fvp_available, run_fvp
from .outcome import RunResult
from .qemu import run_qemu

# npu_sim choices of simulate(): how a board's NPU is simulated.
NPU_SIMS = ("fvp", "model")


def run_firmware(board: Board, elf: Path, timeout: float = 120.0, npu_sim: str | None = None,
                 uses_npu: bool = False) -> RunResult:
    """Runs elf until the firmware exits: firmware that uses the NPU (or any, when npu_sim
    asks for an NPU simulation) on the simulator choose_simulator picks, the others on QEMU."""
    if uses_npu or npu_sim is not None:
        return simulate(board, elf, timeout=timeout, npu_sim=npu_sim)
    return run_qemu(board, elf, timeout=timeout)


def simulate(board: Board, elf: Path, timeout: float = 120.0, npu_sim: str | None = None) -> RunResult:
    """Runs elf on the simulator choose_simulator picks: the FVP (an FvpNotFoundError says
    how to install it when it is missing), QEMU with the NPU co-simulated by the functional
    model (a cosim.CosimResult, with npu_jobs), or QEMU."""
    kind = choose_simulator(board, npu_sim)
    if kind == "fvp":
        return run_fvp(board, elf, timeout=timeout)
    if kind == "cosim":
        return run_cosim(board, elf, timeout=timeout)
    return run_qemu(board, elf, timeout=timeout)


def choose_simulator(board: Board, npu_sim: str | None = None) -> str:
    """The simulator simulate() runs the board's firmware on: "qemu", "fvp" or "cosim"
    (the board's QEMU machine with every NPU job run by the functional model on the host,
    cosim.py).

    npu_sim="fvp" asks for the FVP (any board with an [fvp] section); npu_sim="model" for
    co-simulation (NPU boards whose [simulator] is QEMU; boards without an NPU simply run
    on QEMU). By default, boards with an NPU run on their FVP when it is installed, else in
    co-simulation when their [simulator] is QEMU, else on the FVP (whose absence then
    raises FvpNotFoundError in simulate()); boards whose [simulator] is the FVP run there;
    the others on QEMU.
    """
    if npu_sim is not None and npu_sim not in NPU_SIMS:
        raise InputError(f"unknown NPU simulation '{npu_sim}'; choose one of "
                         f"{', '.join(NPU_SIMS)} (or none: the board's default)")
    needs_npu = board.npu is not None
    on_qemu = board.simulator.get("name") == "qemu"
    if npu_sim == "model":
        if not needs_npu:
            return "qemu"
        if not on_qemu:
            raise InputError(f"npu_sim='model' runs the CPU in QEMU with the NPU modelled on the "
                             f"host, and board {board.name} has no QEMU machine (its [simulator] "
                             f"is {board.simulator.get('name', 'none')}: QEMU models neither its "
                             f"CPU nor its subsystem); run it with npu_sim='fvp'")
        return "cosim"
    if npu_sim is None and needs_npu and on_qemu and not fvp_available(board):
        return "cosim"
    if npu_sim == "fvp" or needs_npu or board.simulator.get("name") == "fvp":
        if board.fvp is None:
            raise InputError(f"board {board.name} has no [fvp] section in {board.path}: "
                             f"it cannot run on an FVP")
        return "fvp"
    return "qemu"


def describe_runner(board: Board) -> str:
    """How the board's firmware runs, for `mcu-compile boards`."""
    name = board.simulator.get("name")
    if name == "qemu":
        machine = f"QEMU {board.simulator.get('machine', '')}".strip()
        return f"{machine} + NPU model" if board.npu else machine
    if board.fvp is not None:
        return "Corstone FVP (install it)"
    if board.flash_loader is not None:
        return f"hardware, {board.console['kind']} console"
    return "hardware"
