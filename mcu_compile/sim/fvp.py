"""Runs firmware on Arm's Corstone FVPs and picks the simulator for a board.

An FVP (Fast Model Fixed Virtual Platform) is a licensed binary from Arm, installed by the
user; it is found in $MCU_COMPILE_FVP_DIR (or its models/*/ subdirectories), then on PATH.
The board file's [fvp] section names the executable and its -C parameters, and
simulators/fvp.toml how the command line is put together. The firmware talks the same
semihosting protocol as under QEMU (run.py parses both).

Timing: an FVP's CPU timing is no measurement (ETHOSU.md section 6). A RunResult from an
FVP has timing_measured False, `instructions` empty and `ticks` the raw SysTick counts the
firmware printed, for information only. Instruction counts come from QEMU.
"""
from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

from ..target.boards import Board, BoardFileError
from ..errors import InputError, ToolchainError
from .qemu import (EXIT_OK, FirmwareFault, RunError, RunResult, check_stack, fault_error,
                  hang_error, last_line, load_simulator, parse_output, protocol_lines,
                  run_process, run_qemu)

# npu_sim choices of simulate(): how a board's NPU is simulated.
NPU_SIMS = ("fvp", "model")
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
    proc = run_process(cmd, timeout + grace, finished=_is_end_line, linger=sim["linger_s"])
    stdout, stderr = proc.stdout, proc.stderr
    items = protocol_lines(stdout)
    # the firmware's last words, not the FVP's stop messages that follow them
    firmware_out = "\n".join(f"{tag} {rest}"[:120] for tag, rest in items)
    if proc.timed_out:
        raise hang_error(elf, timeout, firmware_out, f"{executable.name} killed")
    tags = [tag for tag, _ in items]
    if "MCU-FAULT" in tags:
        raise fault_error(elf, stdout)
    if "MCU-ERROR" in tags:
        message = next(rest for tag, rest in items if tag == "MCU-ERROR")
        raise RunError(f"firmware {elf} stopped with an error on the FVP: {message}")
    if "MCU-DONE" not in tags:
        both = stdout + stderr
        if re.search(sim["limit_pattern"], both, re.IGNORECASE):
            raise hang_error(elf, timeout, firmware_out, f"{executable.name} stopped at its --timelimit")
        if "lockup" in both.lower() or "locked up" in both.lower():
            raise FirmwareFault(f"firmware {elf} locked up on the FVP (a fault while handling a "
                                f"fault, usually a stack overflow) after output "
                                f"{last_line(firmware_out)!r}; give it a larger stack")
        raise RunError(f"firmware {elf} did not finish on the FVP ({executable.name} exit code "
                       f"{proc.returncode}): {last_line(stderr or stdout)}")
    if proc.returncode not in (EXIT_OK, None) and not proc.stopped:
        raise RunError(f"{executable.name} exited with code {proc.returncode} after the firmware "
                       f"finished: {last_line(stderr or stdout)}")
    result = parse_output(stdout, EXIT_OK, None)   # FVP timing is no measurement
    result.simulator = "fvp"
    check_stack(elf, result.stack_bytes)
    return result


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


def simulate(board: Board, elf: Path, timeout: float = 120.0, npu_sim: str | None = None) -> RunResult:
    """Runs elf on the simulator choose_simulator picks: the FVP (an FvpNotFoundError says
    how to install it when it is missing), QEMU with the NPU co-simulated by the functional
    model (a cosim.CosimResult, with npu_jobs), or QEMU."""
    kind = choose_simulator(board, npu_sim)
    if kind == "fvp":
        return run_fvp(board, elf, timeout=timeout)
    if kind == "cosim":
        from .cosim import run_cosim
        return run_cosim(board, elf, timeout=timeout)
    return run_qemu(board, elf, timeout=timeout)


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
