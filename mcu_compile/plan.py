"""Stage 5, plan: every activation and kernel scratch buffer gets a fixed offset in one
static arena, decided at compile time from tensor lifetimes.

A RESHAPE's output shares its input's bytes (same data, another shape), so it costs
nothing. Buffers whose lifetimes overlap never share bytes. Offsets are found
greedily, largest buffer first, each at the lowest aligned offset that fits.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .ir import Program

ALIGNMENT = 16


def align(n: int, alignment: int = ALIGNMENT) -> int:
    return (n + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Buffer:
    """A span of the arena that must stay intact over ops first..last (inclusive)."""

    name: str
    size: int
    first: int
    last: int

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class MemoryPlan:
    arena_bytes: int
    lower_bound: int  # max over ops of the bytes live at once
    offsets: dict[str, int]  # tensor name (and "scratch:<op index>") -> arena offset
    sizes: dict[str, int]
    aliases: dict[str, str] = field(default_factory=dict)  # tensor -> tensor it shares bytes with
    scratch: dict[int, str] = field(default_factory=dict)  # op index -> scratch buffer name
    buffers: list[Buffer] = field(default_factory=list)  # lifetimes, for reports

    def offset(self, tensor: str) -> int:
        return self.offsets[self.aliases.get(tensor, tensor)]


def alias_roots(program: Program) -> dict[str, str]:
    """RESHAPE outputs -> the tensor whose bytes they reuse."""
    roots: dict[str, str] = {}
    for op in program.ops:
        if op.kind == "RESHAPE" and not program.tensor(op.inputs[0]).is_const:
            source = op.inputs[0]
            roots[op.outputs[0]] = roots.get(source, source)
    return roots


def buffers(program: Program, scratch_sizes: list[int], roots: dict[str, str]) -> list[Buffer]:
    """Lifetimes in op indices; graph inputs live from the start, outputs to the end."""
    end = len(program.ops)
    first: dict[str, int] = {name: -1 for name in program.inputs}
    last: dict[str, int] = {name: end for name in program.outputs}
    for index, op in enumerate(program.ops):
        for name in op.outputs:
            first.setdefault(name, index)
        for name in op.inputs:
            if name and not program.tensor(name).is_const:
                last[name] = max(last.get(name, index), index)
    spans: dict[str, list[int]] = {}
    for name in first:
        root = roots.get(name, name)
        lo, hi = first[name], last.get(name, first[name])
        span = spans.setdefault(root, [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
    result = [Buffer(name, program.tensor(name).nbytes, lo, hi) for name, (lo, hi) in spans.items()]
    result += [Buffer(f"scratch:{i}", size, i, i) for i, size in enumerate(scratch_sizes) if size]
    return result


def lower_bound(bufs: list[Buffer], steps: int) -> int:
    return max((sum(b.size for b in bufs if b.first <= t <= b.last) for t in range(-1, steps + 1)),
               default=0)


def place(bufs: list[Buffer]) -> dict[str, int]:
    """Largest first; each at the lowest offset clear of every time-overlapping buffer."""
    offsets: dict[str, int] = {}
    placed: list[Buffer] = []
    for buf in sorted(bufs, key=lambda b: (-b.size, b.first, b.name)):
        busy = sorted((offsets[p.name], offsets[p.name] + p.size) for p in placed if p.overlaps_in_time(buf))
        offset = 0
        for start, stop in busy:
            if offset + buf.size <= start:
                break
            offset = max(offset, align(stop))
        offsets[buf.name] = offset
        placed.append(buf)
    return offsets


def plan_memory(program: Program, scratch_sizes: list[int]) -> MemoryPlan:
    roots = alias_roots(program)
    bufs = buffers(program, scratch_sizes, roots)
    offsets = place(bufs)
    arena = max(align(max((offsets[b.name] + b.size for b in bufs), default=0)), ALIGNMENT)
    return MemoryPlan(
        arena_bytes=arena, lower_bound=lower_bound(bufs, len(program.ops)), offsets=offsets,
        sizes={b.name: b.size for b in bufs}, aliases=roots,
        scratch={i: f"scratch:{i}" for i, size in enumerate(scratch_sizes) if size}, buffers=bufs)
