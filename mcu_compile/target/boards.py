"""Boards are data: one TOML file per board in boards/ (see boards/mps3-an547.toml for a
simulated board, boards/stm32f4-discovery.toml for a real one).

A board file is checked against the schema below before any of its fields reaches C, a
linker script, a Makefile or a simulator's command line: names and flags from small
character sets, numbers as integers in range, memory regions that exist and do not overlap,
register addresses word-aligned, a clock set-up whose waits can end, flash sectors that tile
the code region exactly.

Sections beside [cpu], [memory], [timer], [simulator], [npu] and [fvp]:

[uart]          the console UART. kind: "cmsdk" (Arm CMSDK APB UART), "stm32f4" (STM32
                F1/F2/F4 USART: SR, DR, BRR, CR1), "stm32" (F7/L4/H7/U5 USART: CR1, BRR, ISR,
                RDR, TDR) or "stm32-lpuart" (the same registers, BRR = 256 * clock / baud);
                base; baud (115200); clock_hz: the UART's kernel clock once [clock] completed;
                reset_clock_hz: its clock when the clock set-up did not complete (default
                clock_hz; with no [clock] the two are one clock); enable: [[register, bit],
                ...] set before use (RCC clock enables, supply bits); pins: [{gpio = GPIO port
                base, pin = 0..15, af = 0..15}, ...] put in alternate-function mode (STM32
                F2/F4/F7/L4/H7/U5 GPIO layout). A CMSDK UART takes none of enable/pins; its
                clock defaults to the [timer] clock.
[clock]         optional clock set-up, run by the start-up code before main: steps = a list of
                {write = register, set = mask, clear = mask} (read-modify-write) and {wait =
                register, mask = m, value = v} (until register & m == v, at most wait_loops
                polls, default 100000); hz: the core clock once every step completed; reset_hz:
                the core clock after reset. A wait that times out skips the remaining steps:
                the board stays on its reset clock (QEMU's STM32 machines model no RCC, so
                there the first wait for a ready flag times out).
[console]       kind: "semihosting" (default on a board with a [simulator]) or "uart" (default
                on a real board); semihosting_exit: end with a semihosting exit call (default:
                true with a [simulator]; false on a real board, where `bkpt` without a
                debugger halts the core).
[flash_loader]  how a real board is flashed: kind = "stm32-uart" (the ROM bootloader, ST
                AN3155), chip_id (its Get ID answer), sectors = [[origin, size, count], ...]
                (erase units in address order, exactly covering the code region), boot0 and
                reset: the serial modem line wired to BOOT0 / NRST ("dtr", "rts" or "none"),
                baud (115200), probe ("stlink" or "none").
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BoardFileError, InputError
from ..resources import resource_dir

REGION_KINDS = ("flash", "ram")
UART_KINDS = ("cmsdk", "stm32f4", "stm32", "stm32-lpuart")
CONSOLE_KINDS = ("semihosting", "uart")
FLASH_LOADER_KINDS = ("stm32-uart",)
MODEM_LINES = ("dtr", "rts", "none")
PROBES = ("stlink", "none")
U32 = 2 ** 32
MAX_HZ = 10 ** 10             # clocks: 10 GHz is far above any microcontroller
MAX_CLOCK_STEPS = 64
MAX_WAIT_LOOPS = 100_000_000
DEFAULT_WAIT_LOOPS = 100_000
DEFAULT_BAUD = 115_200
MAX_UART_ENABLES = 16
MAX_UART_PINS = 8
GPIO_PORT_ALIGN = 0x400       # every STM32 GPIO port is a 1 KiB block
MAX_SECTORS = 8192
BOARD_NAME = re.compile(r"[a-z0-9-]+")          # board, simulator and QEMU machine names
LOWER_NAME = re.compile(r"[a-z][a-z0-9_]*")      # memory regions, CPU features
WORD = re.compile(r"[A-Za-z0-9_.+-]+")          # cpu core and arch, kinds, Vela names, executables
CPU_FLAG = re.compile(r"-m[a-z0-9][a-z0-9_.,=+-]*")  # machine options only: -mcpu=..., -mthumb
LINE = re.compile(r"[^\x00-\x1f\x7f-\x9f]*")     # free text: one line, no control characters


class UnknownBoardError(InputError):
    pass


@dataclass(frozen=True)
class Region:
    name: str
    origin: int
    length: int
    kind: str      # "flash": holds code/rodata; "ram": writable at run time
    speed: int     # 0 is the fastest
    npu: bool = False  # the board's NPU can read/write it

    @property
    def end(self) -> int:
        return self.origin + self.length

    def contains(self, address: int) -> bool:
        return self.origin <= address < self.end


@dataclass(frozen=True)
class Cpu:
    core: str
    arch: str
    features: tuple[str, ...]
    cflags: tuple[str, ...]


@dataclass(frozen=True)
class Timer:
    kind: str
    clock_hz: int
    ns_per_tick: float


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    cpu: Cpu
    regions: tuple[Region, ...]
    code_region: str    # vectors, .text, .rodata, .data load image
    data_region: str    # stack, .data, .bss
    arena_region: str   # default region of activation arenas
    uart: dict
    timer: Timer
    simulator: dict     # {"name": "qemu", "machine": ...}
    path: Path
    npu: dict | None = None  # [npu]: variant, macs, base, irq, Vela configuration, regions
    fvp: dict | None = None  # [fvp]: executable and parameters of Arm's FVP
    clock: dict | None = None  # [clock]: steps, hz, reset_hz, wait_loops; None: the reset clock
    console: dict = field(default_factory=lambda: {"kind": "semihosting", "semihosting_exit": True})
    flash_loader: dict | None = None  # [flash_loader], sectors expanded to (origin, size)

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.regions)
        raise InputError(f"board {self.name} has no memory region '{name}'; its regions: {known}")

    def region_at(self, address: int) -> Region | None:
        return next((r for r in self.regions if r.contains(address)), None)


def list_boards() -> list[str]:
    return sorted(p.stem for p in resource_dir("boards").glob("*.toml"))


def is_catalog_board(board: Board) -> bool:
    """True for a board of the catalog (boards/), False for a user's own board file."""
    return board.path.resolve().parent == resource_dir("boards").resolve()


def load_board(name: str) -> Board:
    """A board by name (boards/<name>.toml) or by the path of a board file."""
    path = Path(name)
    if path.suffix != ".toml" or not path.is_file():
        path = resource_dir("boards") / f"{name}.toml"
    if not path.is_file():
        raise UnknownBoardError(f"unknown board '{name}'; known boards: {', '.join(list_boards())} "
                                f"(or pass the path of a board .toml file)")
    try:
        data = tomllib.loads(path.read_text())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BoardFileError(f"board file {path} is not valid TOML: {e}") from None
    return _parse(_Table(path, "", data, TOP_FIELDS))


_REQUIRED = object()


class _Table:
    """One table of a board file, read field by field against the schema: every field is
    known, present if required and of the right type and range, else a BoardFileError
    naming the file and the field."""

    def __init__(self, path: Path, where: str, data, known: tuple[str, ...]):
        self.path, self.where = path, where
        if not isinstance(data, dict):
            raise self.error("", f"must be a table, got {_shown(data)}")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise self.error(unknown[0], f"is not a board file field; known here: {', '.join(known)}")
        self.data = data

    def error(self, key: str, why: str) -> BoardFileError:
        name = ".".join(p for p in (self.where, key) if p) or "the file"
        example = _EXAMPLES.get(self.where.split(".")[0].split("[")[0], "mps3-an547")
        return BoardFileError(f"board file {self.path}: {name} {why}; compare it with boards/{example}.toml")

    def value(self, key: str, default=_REQUIRED):
        if key in self.data:
            return self.data[key]
        if default is _REQUIRED:
            raise self.error(key, "is missing")
        return default

    def integer(self, key: str, lo: int, hi: int, default=_REQUIRED) -> int:
        v = self.value(key, default)
        if not _is_int(v, lo, hi):
            raise self.error(key, f"must be an integer from {lo} to {hi}, got {_shown(v)}")
        return v

    def number(self, key: str) -> float:
        v = self.value(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise self.error(key, f"must be a positive number, got {_shown(v)}")
        return float(v)

    def choice(self, key: str, options) -> str:
        v = self.value(key)
        if not isinstance(v, str) or v not in options:
            raise self.error(key, f"must be one of {', '.join(options)}, got {_shown(v)}")
        return v

    def flag(self, key: str) -> bool:
        v = self.value(key, False)
        if not isinstance(v, bool):
            raise self.error(key, f"must be true or false, got {_shown(v)}")
        return v

    def text(self, key: str, pattern: re.Pattern, what: str, default=_REQUIRED) -> str:
        v = self.value(key, default)
        if not isinstance(v, str) or not pattern.fullmatch(v):
            raise self.error(key, f"must be {what}, got {_shown(v)}")
        return v

    def texts(self, key: str, pattern: re.Pattern, what: str, default=_REQUIRED) -> tuple[str, ...]:
        v = self.value(key, default)
        if not isinstance(v, list) or not all(isinstance(x, str) and pattern.fullmatch(x) for x in v):
            raise self.error(key, f"must be a list of {what}, got {_shown(v)}")
        return tuple(v)

    def integers(self, key: str, count: int, hi: int, default=_REQUIRED) -> list[int]:
        v = self.value(key, default)
        if not isinstance(v, list) or len(v) != count or not all(_is_int(x, 0, hi) for x in v):
            raise self.error(key, f"must be a list of {count} integers from 0 to {hi}, got {_shown(v)}")
        return list(v)

    def table(self, key: str, known: tuple[str, ...], required: bool = True) -> _Table | None:
        if key not in self.data and not required:
            return None
        return _Table(self.path, f"{self.where}.{key}".strip("."), self.value(key), known)

    def address(self, key: str, default=_REQUIRED) -> int:
        """A register address: a word-aligned 32-bit integer."""
        v = self.integer(key, 0, U32 - 4, default)
        if v % 4:
            raise self.error(key, f"must be a word-aligned (multiple of 4) address, got 0x{v:X}")
        return v

    def listing(self, key: str, most: int, default=_REQUIRED) -> list:
        v = self.value(key, default)
        if not isinstance(v, list) or len(v) > most:
            raise self.error(key, f"must be a list of at most {most} entries, got {_shown(v)}")
        return v


# The board file to compare a section with, in error messages.
_EXAMPLES = {"uart": "stm32f4-discovery", "clock": "stm32f4-discovery", "console": "stm32f4-discovery",
             "flash_loader": "stm32f4-discovery"}


def _is_int(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _shown(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


TOP_FIELDS = ("name", "description", "cpu", "memory", "uart", "timer", "simulator", "npu", "fvp",
              "clock", "console", "flash_loader")
UART_FIELDS = ("kind", "base", "baud", "clock_hz", "reset_clock_hz", "enable", "pins")
CLOCK_FIELDS = ("steps", "hz", "reset_hz", "wait_loops")
FLASH_LOADER_FIELDS = ("kind", "chip_id", "sectors", "boot0", "reset", "baud", "probe")
NPU_FIELDS = ("variant", "macs", "base", "irq", "vela_accelerator", "vela_system_config", "vela_memory_mode",
              "const_region", "arena_region", "qconfig", "region_config", "axi_limit")


def _parse(top: _Table) -> Board:
    name = top.text("name", BOARD_NAME, "lower-case letters, digits and '-'")
    cpu = top.table("cpu", ("core", "arch", "features", "cflags"))
    mem = top.table("memory", ("code", "data", "arena", "regions"))
    regions = _regions(mem)
    names = [r.name for r in regions]
    code = mem.choice("code", names)
    timer = top.table("timer", ("kind", "clock_hz", "ns_per_tick"))
    timer_hz = timer.integer("clock_hz", 1, 10 ** 12)
    simulator = top.table("simulator", ("name", "machine"), required=False)
    clock = _clock(top.table("clock", CLOCK_FIELDS, required=False), timer, timer_hz)
    uart = _uart(top.table("uart", UART_FIELDS, required=False), clock, timer_hz)
    board = Board(
        name=name,
        description=top.text("description", LINE, "one line of text", default=""),
        cpu=Cpu(cpu.text("core", WORD, "a CPU name"), cpu.text("arch", WORD, "an architecture name"),
                cpu.texts("features", LOWER_NAME, "lower-case feature names", default=[]),
                cpu.texts("cflags", CPU_FLAG, "compiler machine options (-m...)")),
        regions=regions,
        code_region=code,
        data_region=mem.choice("data", names),
        arena_region=mem.choice("arena", names),
        uart=uart,
        timer=Timer(timer.text("kind", WORD, "a timer name"), timer_hz, timer.number("ns_per_tick")),
        simulator={} if simulator is None else _simulator(simulator),
        path=top.path,
        npu=_npu(top.table("npu", NPU_FIELDS, required=False), names),
        fvp=_fvp(top.table("fvp", ("executable", "params"), required=False)),
        clock=clock,
        console=_console(top, simulated=simulator is not None, has_uart=bool(uart)),
        flash_loader=_flash_loader(top.table("flash_loader", FLASH_LOADER_FIELDS, required=False),
                                   next(r for r in regions if r.name == code)),
    )
    _check_kinds(board, mem)
    return board


def _regions(mem: _Table) -> tuple[Region, ...]:
    entries = mem.value("regions")
    if not isinstance(entries, list) or not entries:
        raise mem.error("regions", "must be one or more [[memory.regions]] tables")
    regions = []
    for i, entry in enumerate(entries):
        r = _Table(mem.path, f"memory.regions[{i}]", entry, ("name", "origin", "length", "kind", "speed", "npu"))
        origin = r.integer("origin", 0, U32 - 1)
        region = Region(r.text("name", LOWER_NAME, "a lower-case name ([a-z][a-z0-9_]*)"), origin,
                        r.integer("length", 1, U32 - origin), r.choice("kind", REGION_KINDS),
                        r.integer("speed", 0, 255), r.flag("npu"))
        if any(region.name == other.name for other in regions):
            raise r.error("name", f"repeats the region name {region.name!r}")
        regions.append(region)
    ordered = sorted(regions, key=lambda r: r.origin)
    for a, b in zip(ordered, ordered[1:]):
        if a.end > b.origin:
            raise mem.error("regions", f"{a.name} and {b.name} overlap")
    return tuple(regions)


def _simulator(sim: _Table) -> dict:
    fields = {"name": sim.text("name", BOARD_NAME, "a simulator name (simulators/<name>.toml)")}
    if fields["name"] == "qemu" or "machine" in sim.data:
        fields["machine"] = sim.text("machine", BOARD_NAME, "a QEMU machine name")
    return fields


def _npu(npu: _Table | None, regions: list[str]) -> dict | None:
    if npu is None:
        return None
    return {"variant": npu.text("variant", WORD, "an Ethos-U name"), "macs": npu.integer("macs", 1, 1 << 16),
            "base": npu.integer("base", 0, U32 - 1), "irq": npu.integer("irq", 0, 495),
            **{key: npu.text(key, WORD, "a Vela configuration name")
               for key in ("vela_accelerator", "vela_system_config", "vela_memory_mode")},
            "const_region": npu.choice("const_region", regions), "arena_region": npu.choice("arena_region", regions),
            "qconfig": npu.integer("qconfig", 0, 3), "region_config": npu.integers("region_config", 8, 3),
            "axi_limit": npu.integers("axi_limit", 4, U32 - 1, default=[0, 0, 0, 0])}


def _fvp(fvp: _Table | None) -> dict | None:
    if fvp is None:
        return None
    return {"executable": fvp.text("executable", WORD, "an executable's file name"),
            "params": list(fvp.texts("params", LINE, "one-line arguments", default=[]))}


def _clock(clock: _Table | None, timer: _Table, timer_hz: int) -> dict | None:
    """[clock]: register steps the start-up code runs, and the clocks before and after."""
    if clock is None:
        return None
    hz = clock.integer("hz", 1, MAX_HZ)
    if hz != timer_hz:
        raise timer.error("clock_hz", f"must equal clock.hz ({hz}): SysTick counts the core clock, "
                                      f"which [clock] sets; got {timer_hz}")
    entries = clock.listing("steps", MAX_CLOCK_STEPS)
    if not entries:
        raise clock.error("steps", "must list at least one {write = ...} or {wait = ...} step")
    steps = [_clock_step(_Table(clock.path, f"clock.steps[{i}]", entry, ("write", "set", "clear", "wait", "mask",
                                                                           "value")))
             for i, entry in enumerate(entries)]
    return {"steps": steps, "hz": hz, "reset_hz": clock.integer("reset_hz", 1, MAX_HZ),
            "wait_loops": clock.integer("wait_loops", 1, MAX_WAIT_LOOPS, default=DEFAULT_WAIT_LOOPS)}


def _clock_step(step: _Table) -> dict:
    """{"write": register, "set": bits, "clear": bits} or {"wait": register, "mask": m, "value": v}."""
    kinds = [k for k in ("write", "wait") if k in step.data]
    if len(kinds) != 1:
        raise step.error("", "must have exactly one of write = <register> (with set/clear) or "
                             "wait = <register> (with mask/value)")
    if kinds[0] == "write":
        for other in ("mask", "value"):
            if other in step.data:
                raise step.error(other, "belongs to a wait step; a write step takes set and clear")
        address = step.address("write")
        bits = {k: step.integer(k, 0, U32 - 1, default=0) for k in ("set", "clear")}
        if not bits["set"] and not bits["clear"]:
            raise step.error("", "sets and clears no bit: give set = <mask> and/or clear = <mask>")
        return {"write": address, **bits}
    for other in ("set", "clear"):
        if other in step.data:
            raise step.error(other, "belongs to a write step; a wait step takes mask and value")
    address = step.address("wait")
    mask = step.integer("mask", 1, U32 - 1)
    value = step.integer("value", 0, U32 - 1, default=0)
    if value & ~mask:
        raise step.error("value", f"0x{value:X} has bits outside mask 0x{mask:X}: the wait could never end")
    return {"wait": address, "mask": mask, "value": value}


def _uart(uart: _Table | None, clock: dict | None, timer_hz: int) -> dict:
    """[uart] with every default filled in; {} when the board has none."""
    if uart is None:
        return {}
    kind = uart.choice("kind", UART_KINDS)
    base = uart.address("base")
    baud = uart.integer("baud", 300, 20_000_000, default=DEFAULT_BAUD)
    if kind == "cmsdk":
        for key in ("enable", "pins"):
            if uart.value(key, []):
                raise uart.error(key, "must be empty for a CMSDK UART: it has no clock enables or pin "
                                      "multiplexing to set up")
        clock_hz = uart.integer("clock_hz", 1, MAX_HZ, default=timer_hz)
    else:
        clock_hz = uart.integer("clock_hz", 1, MAX_HZ)
    reset_hz = uart.integer("reset_clock_hz", 1, MAX_HZ, default=clock_hz)
    if clock is None and reset_hz != clock_hz:
        raise uart.error("reset_clock_hz", f"differs from clock_hz ({clock_hz}) but the board has no [clock] "
                                           f"to change the UART's clock; got {reset_hz}")
    for key, hz in (("clock_hz", clock_hz), ("reset_clock_hz", reset_hz)):
        _check_divisor(uart, key, kind, hz, baud)
    enable = []
    for i, entry in enumerate(uart.listing("enable", MAX_UART_ENABLES, default=[])):
        if (not isinstance(entry, list) or len(entry) != 2 or not _is_int(entry[0], 0, U32 - 4)
                or entry[0] % 4 or not _is_int(entry[1], 0, 31)):
            raise uart.error(f"enable[{i}]", f"must be [word-aligned register address, bit 0..31], got {_shown(entry)}")
        enable.append((entry[0], entry[1]))
    pins = []
    for i, entry in enumerate(uart.listing("pins", MAX_UART_PINS, default=[])):
        pin = _Table(uart.path, f"uart.pins[{i}]", entry, ("gpio", "pin", "af"))
        gpio = pin.integer("gpio", 0, U32 - GPIO_PORT_ALIGN)
        if gpio % GPIO_PORT_ALIGN:
            raise pin.error("gpio", f"must be a GPIO port base (a multiple of 0x{GPIO_PORT_ALIGN:X}), got 0x{gpio:X}")
        pins.append({"gpio": gpio, "pin": pin.integer("pin", 0, 15), "af": pin.integer("af", 0, 15)})
    if len({(p["gpio"], p["pin"]) for p in pins}) != len(pins):
        raise uart.error("pins", "names the same pin twice")
    return {"kind": kind, "base": base, "baud": baud, "clock_hz": clock_hz, "reset_clock_hz": reset_hz,
            "enable": enable, "pins": pins}


def _check_divisor(uart: _Table, key: str, kind: str, hz: int, baud: int) -> None:
    """The baud-rate divisor the driver will compute must fit its register."""
    if kind == "stm32-lpuart":   # LPUART_BRR = 256 * clock / baud, 0x300..0xFFFFF
        div, lo, hi, what = (256 * hz + baud // 2) // baud, 0x300, 0xFFFFF, "256 x clock / baud"
    elif kind == "cmsdk":        # BAUDDIV >= 16
        div, lo, hi, what = hz // baud, 16, 0xFFFFF, "clock / baud"
    else:                        # USART_BRR with 16x oversampling: 16..0xFFFF
        div, lo, hi, what = (hz + baud // 2) // baud, 16, 0xFFFF, "clock / baud"
    if not lo <= div <= hi:
        raise uart.error(key, f"of {hz} Hz cannot make {baud} baud on a {kind} UART: {what} = {div}, "
                              f"outside {lo}..{hi}")


def _console(top: _Table, simulated: bool, has_uart: bool) -> dict:
    """[console], defaults by kind of board: semihosting with an exit call under a simulator, the
    UART without semihosting on a real board."""
    console = top.table("console", ("kind", "semihosting_exit"), required=False)
    table = console or _Table(top.path, "console", {}, ())
    kind = table.value("kind", "semihosting" if simulated else "uart")
    if kind not in CONSOLE_KINDS:
        raise table.error("kind", f"must be one of {', '.join(CONSOLE_KINDS)}, got {_shown(kind)}")
    semihosting_exit = table.value("semihosting_exit", simulated)
    if not isinstance(semihosting_exit, bool):
        raise table.error("semihosting_exit", f"must be true or false, got {_shown(semihosting_exit)}")
    if kind == "uart" and not has_uart:
        raise table.error("kind", "is uart (the default on a board without [simulator]) but the board has "
                                  "no [uart] section")
    return {"kind": kind, "semihosting_exit": semihosting_exit}


def _flash_loader(loader: _Table | None, code: Region) -> dict | None:
    """[flash_loader], its run-length sectors expanded to (origin, size) in address order."""
    if loader is None:
        return None
    sectors = []
    for i, entry in enumerate(loader.listing("sectors", 64)):
        if (not isinstance(entry, list) or len(entry) != 3 or not _is_int(entry[0], 0, U32 - 1)
                or not _is_int(entry[1], 1, U32) or not _is_int(entry[2], 1, MAX_SECTORS)):
            raise loader.error(f"sectors[{i}]", f"must be [origin, size, count] (size >= 1, count 1..{MAX_SECTORS}), "
                                                f"got {_shown(entry)}")
        origin, size, count = entry
        if sectors:
            end = sectors[-1][0] + sectors[-1][1]
            if origin < end:
                raise loader.error(f"sectors[{i}]", f"starts at 0x{origin:08X}, inside the sectors before it "
                                                    f"(they end at 0x{end:08X}): sectors overlap")
            if origin > end:
                raise loader.error(f"sectors[{i}]", f"starts at 0x{origin:08X}, leaving a gap after 0x{end:08X}: "
                                                    f"the sectors must cover flash region {code.name} without holes")
        if len(sectors) + count > MAX_SECTORS:
            raise loader.error("sectors", f"expand to more than {MAX_SECTORS} sectors")
        sectors += [(origin + k * size, size) for k in range(count)]
    if not sectors:
        raise loader.error("sectors", "must list at least one [origin, size, count]")
    first, last = sectors[0][0], sectors[-1][0] + sectors[-1][1]
    if first != code.origin:
        raise loader.error("sectors", f"start at 0x{first:08X}, not at the start of flash region {code.name} "
                                      f"(0x{code.origin:08X}): they must cover it exactly")
    if last > code.end:
        raise loader.error("sectors", f"run past the end of flash region {code.name} (0x{code.end:08X}) to "
                                      f"0x{last:08X}")
    if last < code.end:
        raise loader.error("sectors", f"end at 0x{last:08X}, short of the end of flash region {code.name} "
                                      f"(0x{code.end:08X}): they do not cover it")
    boot0, reset = (loader.value(k, "none") for k in ("boot0", "reset"))
    for key, line in (("boot0", boot0), ("reset", reset)):
        if line not in MODEM_LINES:
            raise loader.error(key, f"must be one of {', '.join(MODEM_LINES)}, got {_shown(line)}")
    if boot0 == reset != "none":
        raise loader.error("reset", f"uses the same modem line as boot0 ({boot0})")
    probe = loader.value("probe", "none")
    if probe not in PROBES:
        raise loader.error("probe", f"must be one of {', '.join(PROBES)}, got {_shown(probe)}")
    return {"kind": loader.choice("kind", FLASH_LOADER_KINDS), "chip_id": loader.integer("chip_id", 1, 0xFFF),
            "sectors": sectors, "boot0": boot0, "reset": reset,
            "baud": loader.integer("baud", 1200, 1_000_000, default=DEFAULT_BAUD), "probe": probe}


def _check_kinds(board: Board, mem: _Table) -> None:
    if board.region(board.code_region).kind != "flash":
        raise mem.error("code", f"names {board.code_region}, which must have kind 'flash'")
    for key, name in (("data", board.data_region), ("arena", board.arena_region)):
        if board.region(name).kind != "ram":
            raise mem.error(key, f"names {name}, which must have kind 'ram'")
