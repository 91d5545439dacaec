"""What a firmware run printed, read once for every simulator: its console protocol (see
firmware_templates/main.c.j2) as a RunResult, or the error it ended with (hang, fault,
lock-up, firmware error, stack overflow).

classify() is the one reader; a Console says what it needs to know of the simulator that
ran the firmware (QEMU, an FVP, QEMU in co-simulation).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import McuCompileError
from ..target import elf as elfinfo
from .process import ProcessOutput

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


@dataclass(frozen=True)
class Console:
    """What classify() needs to know of the simulator that ran the firmware."""
    simulator: str                   # RunResult.simulator: "qemu" or "fvp"
    process: str                     # the simulator as the messages name it: "QEMU", an FVP's executable
    insn_per_tick: float | None      # instructions per timer tick; None: the timing is no measurement
    # False (QEMU semihosting): stdout is the firmware's console and the exit code the
    # firmware's. True (an FVP): the simulator's own messages are mixed into stdout and its
    # exit code is its own; the firmware's end shows only in its protocol lines.
    own_output: bool = False
    where: str = ""                  # the setting as messages name it: " on the FVP", " under co-simulation"
    names_error: bool = False        # an exit-code error quotes the firmware's MCU-ERROR, not the last line
    lockup_report: bool = True       # a lock-up message quotes QEMU's report of it (its stderr)
    limit_pattern: str | None = None  # the simulator's message when it stops at its own time limit


def classify(elf: Path, timeout: float, run: ProcessOutput, console: Console) -> RunResult:
    """The protocol items of a run that ended (timeout: the run's limit in seconds) as a
    RunResult; a hang, fault, lock-up, firmware error or stack overflow as a RunError."""
    stdout, stderr, code = run.stdout, run.stderr, run.returncode
    items = protocol_lines(stdout)
    tags = {tag for tag, _ in items}
    errors = [rest for tag, rest in items if tag == "MCU-ERROR"]
    # the firmware's last words, not a simulator's messages (e.g. an FVP's stop messages) after them
    said = "\n".join(f"{tag} {rest}"[:120] for tag, rest in items) if console.own_output else stdout
    if run.timed_out:
        raise hang_error(elf, timeout, said, f"{console.process} killed")
    if "MCU-FAULT" in tags and (console.own_output or code == EXIT_FAULT):
        raise fault_error(elf, stdout)
    if not console.own_output:   # QEMU: the exit code tells how the firmware ended
        if "Lockup" in stderr:
            report = f": {last_line(stderr.split('R00=')[0])}" if console.lockup_report else ""
            raise lockup_error(elf, said, report=report)
        if code != EXIT_OK or "MCU-DONE" not in tags:
            what = errors[0] if console.names_error and errors else last_line(stdout + stderr)
            raise RunError(f"firmware {elf} exited with code {code}{console.where}: {what}")
    else:                        # an FVP: the protocol lines tell, its exit code is its own
        if errors:
            raise RunError(f"firmware {elf} stopped with an error{console.where}: {errors[0]}")
        if "MCU-DONE" not in tags:
            both = stdout + stderr
            if console.limit_pattern and re.search(console.limit_pattern, both, re.IGNORECASE):
                raise hang_error(elf, timeout, said, f"{console.process} stopped at its --timelimit")
            if "lockup" in both.lower() or "locked up" in both.lower():
                raise lockup_error(elf, said, where=console.where)
            raise RunError(f"firmware {elf} did not finish{console.where} ({console.process} exit "
                           f"code {code}): {last_line(stderr or stdout)}")
        if code not in (EXIT_OK, None) and not run.stopped:
            raise RunError(f"{console.process} exited with code {code} after the firmware "
                           f"finished: {last_line(stderr or stdout)}")
    result = parse_output(stdout, EXIT_OK, console.insn_per_tick)
    result.simulator = console.simulator
    check_stack(elf, result.stack_bytes)
    return result


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


def hang_error(elf: Path, timeout: float, stdout: str, action: str) -> FirmwareTimeout:
    return FirmwareTimeout(
        f"firmware {elf} hung: no exit within {timeout:g} s ({action}); last "
        f"output: {last_line(stdout)!r}. Look at the kernel loop of the layer after that output, "
        f"or a stack overflow / lock-up (stack use: the .su files, app.map)")


def lockup_error(elf: Path, said: str, where: str = "", report: str = "") -> FirmwareFault:
    """said: the firmware's output; report: the simulator's own report of the lock-up, as ": text"."""
    return FirmwareFault(f"firmware {elf} locked up{where} (a fault while handling a fault, "
                         f"usually a stack overflow) after output {last_line(said)!r}{report}; "
                         f"give it a larger stack")


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


def last_line(text: str) -> str:
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1].strip()[:200] if lines else "(none)"
