"""Boards are data: one TOML file per board in boards/ (see boards/mps3-an547.toml).

A board file is checked against the schema below before any of its fields reaches C, a
linker script, a Makefile or a simulator's command line: names and flags from small
character sets, numbers as integers in range, memory regions that exist and do not overlap.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import BoardFileError, InputError
from ..resources import resource_dir

REGION_KINDS = ("flash", "ram")
U32 = 2 ** 32
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
        field = ".".join(p for p in (self.where, key) if p) or "the file"
        return BoardFileError(f"board file {self.path}: {field} {why}; compare it with boards/mps3-an547.toml")

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


def _is_int(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _shown(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


TOP_FIELDS = ("name", "description", "cpu", "memory", "uart", "timer", "simulator", "npu", "fvp")
NPU_FIELDS = ("variant", "macs", "base", "irq", "vela_accelerator", "vela_system_config", "vela_memory_mode",
              "const_region", "arena_region", "qconfig", "region_config", "axi_limit")


def _parse(top: _Table) -> Board:
    name = top.text("name", BOARD_NAME, "lower-case letters, digits and '-'")
    cpu = top.table("cpu", ("core", "arch", "features", "cflags"))
    mem = top.table("memory", ("code", "data", "arena", "regions"))
    regions = _regions(mem)
    names = [r.name for r in regions]
    uart = top.table("uart", ("kind", "base"), required=False)
    timer = top.table("timer", ("kind", "clock_hz", "ns_per_tick"))
    simulator = top.table("simulator", ("name", "machine"), required=False)
    board = Board(
        name=name,
        description=top.text("description", LINE, "one line of text", default=""),
        cpu=Cpu(cpu.text("core", WORD, "a CPU name"), cpu.text("arch", WORD, "an architecture name"),
                cpu.texts("features", LOWER_NAME, "lower-case feature names", default=[]),
                cpu.texts("cflags", CPU_FLAG, "compiler machine options (-m...)")),
        regions=regions,
        code_region=mem.choice("code", names),
        data_region=mem.choice("data", names),
        arena_region=mem.choice("arena", names),
        uart={} if uart is None else {"kind": uart.text("kind", WORD, "a UART name"),
                                      "base": uart.integer("base", 0, U32 - 1)},
        timer=Timer(timer.text("kind", WORD, "a timer name"), timer.integer("clock_hz", 1, 10 ** 12),
                    timer.number("ns_per_tick")),
        simulator={} if simulator is None else _simulator(simulator),
        path=top.path,
        npu=_npu(top.table("npu", NPU_FIELDS, required=False), names),
        fvp=_fvp(top.table("fvp", ("executable", "params"), required=False)),
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


def _check_kinds(board: Board, mem: _Table) -> None:
    if board.region(board.code_region).kind != "flash":
        raise mem.error("code", f"names {board.code_region}, which must have kind 'flash'")
    for key, name in (("data", board.data_region), ("arena", board.arena_region)):
        if board.region(name).kind != "ram":
            raise mem.error(key, f"names {name}, which must have kind 'ram'")
