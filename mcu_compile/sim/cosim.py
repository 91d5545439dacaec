"""Co-simulation: the real firmware in QEMU, each Ethos-U job in a functional model on the host.

QEMU's mps3-an547 is the Corstone-300 subsystem (Cortex-M55, same memory map) without the
NPU. run_cosim() runs the firmware built for an NPU board there and, whenever the driver
(firmware_templates/platform/mcu_npu.c) starts a job, stops the CPU, executes the job's
command stream with the functional model (mcu_compile/ethosu_model/, run_payload) on the
firmware's own memory and lets the CPU continue with the status the job ended with.

Why the gdbstub: QEMU's GDB remote serial protocol (RSP, `-gdb tcp:...`; the client is
gdb_remote.py) is the one interface of a stock QEMU that stops the CPU at an address and
reads and writes guest memory and registers; it needs no QEMU plugin, patch or rebuild, no
extra firmware transport (semihosting stays the console) and no copy of the tensors in the
firmware. While the CPU is stopped QEMU's virtual clock stands still (as long as no timer
is pending: the driver pauses SysTick around its wait point, see cosim_command), so with
-icount the instruction counts are deterministic and independent of the host: an NPU job
costs the CPU only the driver's code around it, as if the NPU took no time.

Protocol between the firmware and the host (mcu_npu.h, "Co-simulation"):
  1. QEMU starts halted (-S). The host breaks at main(), after the start-up code initialised
     .data/.bss, and writes mcu_npu_cosim: enabled = 1 and the CONFIG and ID registers of the
     board's NPU (NPU_REGISTERS[board [npu] vela_accelerator]). The driver then reads those
     instead of the (absent) registers, so mcu_npu_init succeeds and the payload checks
     compare the payload with the NPU of the board file, as on the real board.
  2. The host breaks at mcu_npu_cosim_wait(dev, job), the driver's wait point. There it reads
     the mcu_npu_job (r1), the COP2 payload and the five regions (region_bytes each), runs
     the model, writes back what changed in regions 1-4, writes STATUS (IRQ raised, command
     end) and QREAD into mcu_npu_cosim, steps over the breakpoint and continues.
  3. Without the host nothing of this happens: enabled stays 0 and the driver is the
     hardware driver (on plain QEMU it reports "NPU not found").

Regions that overlap in memory (the planner may put the inputs and outputs inside the
scratch buffer, and regions 1 and 2 are often the same buffer) are handed to the model as
memoryview slices of one buffer, so that what the NPU writes through one region is seen
through the others, as on the hardware; disjoint regions are plain bytearrays.

An error of the model ends the run: QEMU is killed and a CosimError names the job (its
number, the command stream's symbol and address).
"""
from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..target import elf as elfinfo
from ..target.boards import Board
from ..errors import InputError, ToolchainError
from .gdb_remote import GdbRemote, RspError, StopReply
from .outcome import RunError, RunResult, classify, hang_error, last_line
from .process import Process, ProcessOutput
from .qemu import find_qemu, load_simulator, qemu_command, qemu_console

# CONFIG and ID registers of each accelerator: what Vela 5.2 writes into a COP2 payload's
# metadata for it (measured with ethosu.regor for every accelerator Vela knows). The
# co-simulated NPU reports the board's, and the firmware checks its payloads against them.
NPU_REGISTERS: dict[str, tuple[int, int]] = {
    "ethos-u55-32": (0x00001005, 0x10066001),
    "ethos-u55-64": (0x00001006, 0x10066001),
    "ethos-u55-128": (0x00001807, 0x10066001),
    "ethos-u55-256": (0x00003008, 0x10066001),
    "ethos-u85-128": (0x20000117, 0x20007000),
    "ethos-u85-256": (0x20000118, 0x20007000),
    "ethos-u85-512": (0x20001119, 0x20007000),
    "ethos-u85-1024": (0x2000251A, 0x20007000),
    "ethos-u85-2048": (0x2000261B, 0x20007000),
}

# Firmware symbols and layouts (mcu_npu.h; 32-bit little-endian targets).
STATE_SYMBOL, WAIT_SYMBOL = "mcu_npu_cosim", "mcu_npu_cosim_wait"
STATE_BYTES = 28
STATE_ENABLED, STATE_STATUS, STATE_JOB = 0, 12, 20   # enabled, config, id / status, qread / job
JOB_FORMAT = "<II5IIIII5I"                            # mcu_npu_job, 64 bytes
JOB_BYTES = struct.calcsize(JOB_FORMAT)
STATUS_IRQ_RAISED, STATUS_CMD_END = 1 << 1, 1 << 5
PC = 15

NpuModel = Callable[..., None]   # run_payload(payload, regions, accelerator=...)


class CosimError(RunError):
    """The functional NPU model failed on a job (the run was ended, QEMU killed)."""

    def __init__(self, message: str, job: int = 0):
        super().__init__(message)
        self.job = job


@dataclass
class CosimResult(RunResult):
    """A RunResult (CPU timing from QEMU -icount, as run_qemu's) plus the NPU jobs run."""

    npu_jobs: int = 0
    npu_sim: str = "model"
    npu_job_seconds: list[float] = field(default_factory=list)   # host wall time per job


def npu_registers(accelerator: str) -> tuple[int, int]:
    """(CONFIG, ID) of a Vela accelerator name, e.g. "ethos-u55-128"."""
    try:
        return NPU_REGISTERS[accelerator]
    except KeyError:
        raise InputError(f"unknown Ethos-U accelerator '{accelerator}' for co-simulation; "
                         f"known: {', '.join(NPU_REGISTERS)}") from None


# ---------------------------------------------------------------------------- QEMU process


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cosim_command(board: Board, elf: Path, sim: dict, port: int) -> list[str]:
    """run_qemu's command, halted (-S), with the gdbstub on 127.0.0.1:port and -icount
    sleep=off.

    Each debugger stop leaves the vCPU stopped while the VM still runs for a moment, and QEMU
    -icount then warps its virtual clock towards the next timer deadline: by host time with
    sleep=on (the default), at once with sleep=off. The driver pauses SysTick around the
    wait point, so no timer is pending at the stops and the clock stands still; sleep=off
    makes any timer that is pending anyway show up as a deterministic jump, not as noise
    that depends on the host's speed."""
    cmd = qemu_command(board, elf, sim)
    i = cmd.index("-icount") + 1
    if "sleep=" not in cmd[i]:
        cmd[i] += ",sleep=off"
    return cmd + ["-gdb", f"tcp:127.0.0.1:{port}", "-S"]


def start_qemu(board: Board, elf: Path, deadline: float) -> tuple[Process, GdbRemote]:
    """QEMU as run_qemu starts it, halted (-S), with its gdbstub on a free local port."""
    sim = find_qemu()
    for attempt in range(3):
        port = _free_port()
        proc = Process(cosim_command(board, Path(elf), sim, port))
        try:
            return proc, GdbRemote.connect("127.0.0.1", port, deadline, proc.alive)
        except (RspError, TimeoutError) as e:
            code = proc.stop()
            if attempt < 2 and "address already in use" in proc.stderr.lower():
                continue   # another process took the port in between
            raise RspError(f"QEMU's gdbstub did not come up ({e}); QEMU exit code {code}: "
                           f"{last_line(proc.stderr or proc.stdout)}") from None
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------- co-simulation


@dataclass
class _Job:
    index: int
    address: int
    payload: int
    payload_bytes: int
    bases: tuple[int, ...]
    sizes: tuple[int, ...]
    name: str

    def label(self) -> str:
        return f"NPU job {self.index} ({self.name}, job at 0x{self.address:08x})"


def _default_model() -> NpuModel:
    try:
        from .ethosu_model import run_payload
    except ImportError as e:
        raise ToolchainError(f"the functional Ethos-U model is not available "
                             f"(mcu_compile.ethosu_model.run_payload: {e}); run on the board's "
                             f"FVP with npu_sim='fvp'") from None
    return run_payload


def run_cosim(board: Board, elf: Path, timeout: float = 120.0, *, npu_model: NpuModel | None = None,
              accelerator: str | None = None) -> CosimResult:
    """Runs elf in QEMU (the board's [simulator] machine) with every NPU job executed by the
    functional model on the host, until the firmware exits.

    npu_model: run_payload(payload, regions, accelerator=...) (default: ethosu_model's).
    accelerator: the modelled NPU (default: the board's [npu] vela_accelerator); its CONFIG
    and ID are what the firmware checks the payloads against.
    """
    elf = Path(elf)
    if board.npu is None:
        raise InputError(f"board {board.name} has no [npu]: nothing to co-simulate; run it with run_qemu")
    accelerator = accelerator or board.npu.get("vela_accelerator", "")
    config, ident = npu_registers(accelerator)
    symbols = {s.name: s for s in elfinfo.symbols(elf)}
    if "main" not in symbols:
        raise InputError(f"{elf} has no main(): not an mcu-compile firmware")
    state, wait = symbols.get(STATE_SYMBOL), symbols.get(WAIT_SYMBOL)
    driver = "mcu_npu_run" in symbols
    if driver != (state is not None) or driver != (wait is not None) or (state and state.size != STATE_BYTES):
        raise InputError(f"{elf} was built with another version of mcu_npu.c (co-simulation "
                         f"symbols {STATE_SYMBOL}/{WAIT_SYMBOL} missing or of another layout); "
                         f"regenerate and rebuild the project")
    if wait is not None and npu_model is None:
        npu_model = _default_model()
    streams = [s for s in symbols.values() if s.kind == "object" and s.size]

    deadline = time.monotonic() + timeout
    proc, gdb = start_qemu(board, elf, deadline)
    jobs: list[float] = []
    exit_code: int | None = None
    try:
        gdb.status()
        main = symbols["main"].address & ~1
        gdb.set_breakpoint(main)
        stop = _cont(gdb, deadline, elf, proc, timeout)
        if not stop.exited:
            pc = gdb.read_register(PC)
            if pc != main:
                raise RspError(f"QEMU stopped at 0x{pc:08x} ({stop.text}), expected main at 0x{main:08x}")
            if state is not None:
                gdb.write_memory(state.address + STATE_ENABLED, struct.pack("<III", 1, config, ident))
                gdb.set_breakpoint(wait.address)
            gdb.remove_breakpoint(main)
            hook = wait.address & ~1 if wait is not None else None
            while True:
                stop = _cont(gdb, deadline, elf, proc, timeout)
                if stop.exited:
                    break
                pc = gdb.read_register(PC)
                if pc != hook:
                    raise RspError(f"QEMU stopped at 0x{pc:08x} ({stop.text}) outside {WAIT_SYMBOL}")
                start = time.perf_counter()
                _run_job(gdb, len(jobs) + 1, state.address, streams, npu_model, accelerator)
                jobs.append(time.perf_counter() - start)
                gdb.remove_breakpoint(hook)
                stepped = gdb.step()
                if stepped.exited:
                    stop = stepped
                    break
                gdb.set_breakpoint(hook)
        if stop.kind == "W":
            exit_code = stop.value
    except BaseException:
        gdb.close()
        proc.stop()
        raise
    gdb.close()
    code = proc.stop(grace=5.0)
    run = ProcessOutput(code if code is not None else exit_code, proc.stdout, proc.stderr)
    console = qemu_console(board, load_simulator("qemu"), where=" under co-simulation",
                           names_error=True, lockup_report=False)
    parsed = classify(elf, timeout, run, console)
    result = CosimResult(**{f: getattr(parsed, f) for f in parsed.__dataclass_fields__})
    result.npu_jobs = len(jobs)
    result.npu_job_seconds = jobs
    return result


def _cont(gdb: GdbRemote, deadline: float, elf: Path, proc: Process, timeout: float) -> StopReply:
    try:
        return gdb.cont(max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        proc.stop()
        raise hang_error(elf, timeout, proc.stdout, "QEMU killed") from None


def _run_job(gdb: GdbRemote, index: int, state: int, streams, model: NpuModel, accelerator: str) -> None:
    registers = gdb.read_registers()
    address = registers[1]                       # mcu_npu_cosim_wait(dev r0, job r1)
    recorded = gdb.read_u32(state + STATE_JOB)
    if recorded != address:
        raise RspError(f"{WAIT_SYMBOL} was called with job 0x{address:08x} but the driver recorded "
                       f"0x{recorded:08x}: the firmware's calling convention differs")
    fields = struct.unpack(JOB_FORMAT, gdb.read_memory(address, JOB_BYTES))
    payload_address, payload_bytes = fields[0], fields[1]
    name = next((s.name for s in streams if s.address <= payload_address < s.address + s.size),
                "command stream")
    job = _Job(index, address, payload_address, payload_bytes, fields[2:7], fields[11:16],
               f"{name} at 0x{payload_address:08x}")
    if not any(job.sizes[1:]):
        raise CosimError(f"{job.label()}: the job carries no region sizes (region_bytes is 0); "
                         f"regenerate the project with this version of mcu-compile", index)
    payload = gdb.read_memory(payload_address, payload_bytes)
    regions, groups = _read_regions(gdb, job)
    weights = bytes(regions[0])
    try:
        model(payload, regions, accelerator=accelerator)
    except Exception as e:   # the model's NpuError, or a bug in it: either ends the run
        kind = type(e).__name__
        if kind == "NpuError":
            why = f"the functional NPU model stopped: {e}"
        elif isinstance(e, NotImplementedError):
            why = f"the functional NPU model does not support this command stream yet: {e}"
        else:
            why = f"the functional NPU model failed ({kind}: {e})"
        raise CosimError(f"{job.label()}: {why}", index) from e
    if bytes(regions[0]) != weights:
        raise CosimError(f"{job.label()}: the functional NPU model wrote to region 0, the "
                         f"read-only weights", index)
    for base, before, buffer in groups:
        for start, end in _changed_spans(before, buffer):
            gdb.write_memory(base + start, bytes(buffer[start:end]))
    stream = payload_bytes - (28 + struct.unpack_from("<I", payload, 24)[0]) if payload_bytes >= 28 else 0
    gdb.write_memory(state + STATE_STATUS, struct.pack("<II", STATUS_IRQ_RAISED | STATUS_CMD_END, stream))


def _read_regions(gdb: GdbRemote, job: _Job):
    """Region 0 (read-only) as its own bytearray; regions 1-4 grouped by overlap, each group
    read once: a group of one region is a bytearray, regions of a larger group are memoryview
    slices of its buffer. Also [(address, bytes before, buffer)] per group, for the write-back."""
    regions: dict[int, bytearray | memoryview] = {0: bytearray(gdb.read_memory(job.bases[0], job.sizes[0]))
                                                  if job.sizes[0] else bytearray()}
    spans = sorted((job.bases[r], job.bases[r] + job.sizes[r], r) for r in range(1, 5) if job.sizes[r])
    merged: list[list] = []
    for lo, hi, r in spans:
        if merged and lo < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
            merged[-1][2].append(r)
        else:
            merged.append([lo, hi, [r]])
    groups = []
    for lo, hi, members in merged:
        before = gdb.read_memory(lo, hi - lo)
        buffer = bytearray(before)
        if len(members) == 1:
            regions[members[0]] = buffer
        else:
            view = memoryview(buffer)
            for r in members:
                regions[r] = view[job.bases[r] - lo:job.bases[r] - lo + job.sizes[r]]
        groups.append((lo, before, buffer))
    for r in range(1, 5):
        regions.setdefault(r, bytearray())
    return regions, groups


def _changed_spans(before: bytes, after: bytearray, gap: int = 64) -> list[tuple[int, int]]:
    """[start, end) ranges where after differs from before; ranges closer than gap merge."""
    changed = np.flatnonzero(np.frombuffer(before, np.uint8) != np.frombuffer(after, np.uint8))
    if not changed.size:
        return []
    breaks = np.flatnonzero(np.diff(changed) > gap)
    starts = [int(changed[0])] + [int(changed[b + 1]) for b in breaks]
    ends = [int(changed[b]) + 1 for b in breaks] + [int(changed[-1]) + 1]
    return list(zip(starts, ends))
