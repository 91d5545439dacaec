"""Reads sizes, symbols and memory use out of a firmware ELF (pyelftools)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from .boards import Board

HEAP_FUNCTIONS = ("malloc", "free", "calloc", "realloc", "_sbrk", "_malloc_r", "_free_r", "_sbrk_r")


@dataclass(frozen=True)
class Symbol:
    name: str
    address: int
    size: int
    section: str   # "" for absolute/undefined symbols
    kind: str      # "func" or "object"


def _alloc_sections(elf: ELFFile):
    return [s for s in elf.iter_sections() if s["sh_flags"] & SH_FLAGS.SHF_ALLOC and s["sh_size"]]


def section_sizes(elf_path: Path) -> dict[str, int]:
    """Bytes of every section that occupies target memory."""
    with open(elf_path, "rb") as f:
        return {s.name: s["sh_size"] for s in _alloc_sections(ELFFile(f))}


def symbols(elf_path: Path) -> list[Symbol]:
    """Functions and data objects, with the section that holds them."""
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        names = {i: s.name for i, s in enumerate(elf.iter_sections())}
        out = []
        for sym in elf.get_section_by_name(".symtab").iter_symbols():
            kind = {"STT_FUNC": "func", "STT_OBJECT": "object"}.get(sym["st_info"]["type"])
            if kind:
                shndx = sym["st_shndx"]
                section = names.get(shndx, "") if isinstance(shndx, int) else ""
                out.append(Symbol(sym.name, sym["st_value"], sym["st_size"], section, kind))
        return out


def heap_symbols(elf_path: Path) -> list[str]:
    """Heap functions linked into the firmware; heapless firmware has none."""
    return sorted({s.name for s in symbols(elf_path) if s.name in HEAP_FUNCTIONS})


def stack_size(elf_path: Path) -> int:
    """Bytes reserved for the stack by the linker script (__stack_top - __stack_limit)."""
    with open(elf_path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        top, limit = (symtab.get_symbol_by_name(n) for n in ("__stack_top", "__stack_limit"))
        return top[0]["st_value"] - limit[0]["st_value"] if top and limit else 0


def function_at(elf_path: Path, address: int) -> str | None:
    """Name of the function containing address (Thumb bit ignored)."""
    address &= ~1
    for s in symbols(elf_path):
        start = s.address & ~1
        if s.kind == "func" and start <= address < start + max(s.size, 1):
            return s.name
    return None


def region_usage(elf_path: Path, board: Board) -> dict[str, int]:
    """Bytes used in each board region: sections at their run address, plus the load
    image of initialised data (e.g. .data) at its load address in flash."""
    used = {r.name: 0 for r in board.regions}
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        segments = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        for sec in _alloc_sections(elf):
            _add(used, board, sec["sh_addr"], sec["sh_size"])
            load = _load_address(sec, segments)
            if load != sec["sh_addr"]:
                _add(used, board, load, sec["sh_size"])
    return used


def _load_address(sec, segments) -> int:
    if sec["sh_type"] == "SHT_NOBITS":
        return sec["sh_addr"]
    for seg in segments:
        if seg.section_in_segment(sec):
            return sec["sh_addr"] - seg["p_vaddr"] + seg["p_paddr"]
    return sec["sh_addr"]


def _add(used: dict[str, int], board: Board, address: int, size: int) -> None:
    region = board.region_at(address)
    if region is not None:
        used[region.name] += size


def flash_image(elf_path: Path, origin: int, length: int) -> tuple[int, bytes]:
    """What a programmer writes to the flash at [origin, origin+length): the ELF's loadable
    bytes at their load addresses (PT_LOAD segments with file data; .data's initial values
    load into flash too), gaps filled with 0xFF (erased flash). Returns (start, image)."""
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        pieces = [(seg["p_paddr"], seg.data()[:seg["p_filesz"]]) for seg in elf.iter_segments()
                  if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]]
    outside = [(a, len(d)) for a, d in pieces if not (origin <= a and a + len(d) <= origin + length)]
    if outside:
        a, n = outside[0]
        raise ValueError(f"{elf_path} loads {n} B at 0x{a:08x}, outside the flash at 0x{origin:08x}..0x{origin + length:08x}")
    if not pieces:
        raise ValueError(f"{elf_path} has nothing to load")
    start = min(a for a, _ in pieces)
    image = bytearray(b"\xff" * (max(a + len(d) for a, d in pieces) - start))
    for a, data in pieces:
        image[a - start:a - start + len(data)] = data
    return start, bytes(image)
