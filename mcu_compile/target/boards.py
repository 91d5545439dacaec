"""Boards are data: one TOML file per board in boards/ (see boards/mps3-an547.toml)."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import BoardFileError, InputError
from ..resources import resource_dir

REGION_KINDS = ("flash", "ram")


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


def load_board(name: str) -> Board:
    """A board by name (boards/<name>.toml) or by the path of a board file."""
    path = Path(name)
    if path.suffix != ".toml" or not path.is_file():
        path = resource_dir("boards") / f"{name}.toml"
    if not path.is_file():
        raise UnknownBoardError(f"unknown board '{name}'; known boards: {', '.join(list_boards())} "
                                f"(or pass the path of a board .toml file)")
    try:
        return _parse(tomllib.loads(path.read_text()), path)
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise BoardFileError(f"board file {path} is invalid: {e!r}; "
                             f"compare it with boards/mps3-an547.toml") from e


def _parse(data: dict, path: Path) -> Board:
    mem = data["memory"]
    regions = tuple(Region(r["name"], int(r["origin"]), int(r["length"]), r["kind"], int(r["speed"]),
                           bool(r.get("npu", False)))
                    for r in mem["regions"])
    cpu = data["cpu"]
    board = Board(
        name=data["name"],
        description=data.get("description", ""),
        cpu=Cpu(cpu["core"], cpu["arch"], tuple(cpu.get("features", ())), tuple(cpu["cflags"])),
        regions=regions,
        code_region=mem["code"],
        data_region=mem["data"],
        arena_region=mem["arena"],
        uart=dict(data.get("uart", {})),
        timer=Timer(data["timer"]["kind"], int(data["timer"]["clock_hz"]),
                    float(data["timer"]["ns_per_tick"])),
        simulator=dict(data.get("simulator", {})),
        path=path,
        npu=dict(data["npu"]) if "npu" in data else None,
        fvp=dict(data["fvp"]) if "fvp" in data else None,
    )
    _check(board)
    return board


def _check(board: Board) -> None:
    for r in board.regions:
        if r.kind not in REGION_KINDS:
            raise BoardFileError(f"region {r.name}: kind must be one of {REGION_KINDS}")
    ordered = sorted(board.regions, key=lambda r: r.origin)
    for a, b in zip(ordered, ordered[1:]):
        if a.end > b.origin:
            raise BoardFileError(f"regions {a.name} and {b.name} overlap")
    if board.region(board.code_region).kind != "flash":
        raise BoardFileError(f"code region {board.code_region} must have kind 'flash'")
    for name in (board.data_region, board.arena_region):
        if board.region(name).kind != "ram":
            raise BoardFileError(f"region {name} must have kind 'ram'")
