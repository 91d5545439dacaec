"""Stage 5, plan: every activation and kernel scratch buffer gets a fixed offset in one
static arena, decided at compile time from tensor lifetimes.

Storage is shared where the bytes allow it, as each op kind's `storage` in the op
registry says: a reshape's output is its input (same data, another shape), and an
elementwise op writes its output over an input of the same shape that dies there
(each output byte depends only on the input bytes at the same index, which the
kernel has already read).
Patch-based execution (passes/patch.py) adds two more: a strip's input rows are a view
into the stage's input, and each strip's output rows are stored in place inside the
tensor after the stage.
Buffers whose lifetimes overlap never share bytes, with one exception the patch stage
proves safe: an Overlap lets the tensor after a stage sit `gap` bytes or more below the
stage's input, over rows of it that no later strip reads. Offsets come from several
greedy placements (different orders, first fit and best fit); the smallest arena wins.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import IRError
from ..ir.program import Op, Program
from ..ops import registry
from ..ops.rows import concat_offsets, view_offset
from ..target.boards import Board

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


@dataclass(frozen=True)
class Overlap:
    """Buffer `lower` may share bytes with buffer `upper` while both are live, provided it
    starts at least `gap` bytes below it: the writer of `lower` only writes bytes of
    `upper` that nobody reads any more (passes/patch.py computes the gap)."""

    lower: str
    upper: str
    gap: int

    def footprint(self, lower_size: int, upper_size: int) -> int:
        """Bytes the two span when packed as tightly as allowed."""
        return max(lower_size, self.gap + upper_size)


@dataclass
class MemoryPlan:
    arena_bytes: int
    lower_bound: int  # max over ops of the bytes live at once
    offsets: dict[str, int]  # tensor name (and "scratch:<op index>") -> arena offset
    sizes: dict[str, int]
    aliases: dict[str, str] = field(default_factory=dict)  # tensor -> tensor it shares bytes with
    alias_offsets: dict[str, int] = field(default_factory=dict)  # where inside that tensor
    scratch: dict[int, str] = field(default_factory=dict)  # op index -> scratch buffer name
    buffers: list[Buffer] = field(default_factory=list)  # lifetimes, for reports
    strategy: str = ""  # the placement that won
    region: str = ""  # the board's memory region the arena lives in (choose_arena_region)
    overlaps: list[Overlap] = field(default_factory=list)

    def offset(self, tensor: str) -> int:
        return self.offsets[self.aliases.get(tensor, tensor)] + self.alias_offsets.get(tensor, 0)

    def verify(self) -> "MemoryPlan":
        """The plan's health check: every buffer aligned and inside the arena, and no two
        buffers alive at the same time share a byte (but as an Overlap allows). Raises IRError."""
        allowed = {(o.lower, o.upper): o.gap for o in self.overlaps}
        spans = sorted(((self.offsets[b.name], b) for b in self.buffers), key=lambda span: span[0])
        for i, (start, a) in enumerate(spans):
            if start % ALIGNMENT or start + a.size > self.arena_bytes:
                raise IRError(f"invalid memory plan: {a.name!r} at offset {start} ({a.size} B) is unaligned "
                              f"or outside the {self.arena_bytes} B arena")
            for other_start, b in spans[i + 1:]:
                if other_start >= start + a.size:
                    break
                if a.overlaps_in_time(b) and not _allowed_overlap(allowed, a, start, b, other_start):
                    raise IRError(f"invalid memory plan: {a.name!r} and {b.name!r} share bytes while both are live")
        return self


def _allowed_overlap(allowed: dict, a: Buffer, a_start: int, b: Buffer, b_start: int) -> bool:
    """Whether an Overlap lets a and b share bytes where they are placed."""
    return any((lower.name, upper.name) in allowed and upper_start - lower_start >= allowed[lower.name, upper.name]
               for lower, lower_start, upper, upper_start in ((a, a_start, b, b_start), (b, b_start, a, a_start)))


def last_uses(program: Program) -> dict[str, int]:
    """Index of the last op reading each activation; graph outputs live past the end."""
    last = {name: len(program.ops) for name in program.outputs}
    for index, op in enumerate(program.ops):
        for name in op.inputs:
            if name and not program.tensor(name).is_const:
                last[name] = max(last.get(name, index), index)
    return last


class StorageGroups:
    """Tensors that live in another tensor's bytes: each tensor -> (root, byte offset in it)."""

    def __init__(self):
        self.roots: dict[str, str] = {}
        self.offsets: dict[str, int] = {}
        self.members: dict[str, list[str]] = {}

    def root(self, name: str) -> str:
        return self.roots.get(name, name)

    def group(self, name: str) -> list[str]:
        root = self.root(name)
        return self.members.get(root, [root])

    def join(self, tensor: str, source: str, offset: int = 0) -> None:
        """Place `tensor` (and everything sharing its bytes) at `offset` within `source`."""
        target = self.root(source)
        shift = self.offsets.get(source, 0) + offset - self.offsets.get(tensor, 0)
        moved = self.group(tensor)
        self.members.pop(self.root(tensor), None)
        for m in moved:
            self.roots[m] = target
            self.offsets[m] = self.offsets.get(m, 0) + shift
        self.members.setdefault(target, [target]).extend(moved)


def storage_groups(program: Program) -> StorageGroups:
    groups = StorageGroups()
    last = last_uses(program)
    for index, op in enumerate(program.ops):
        kind = registry.of(op)
        if kind.storage == "input" and not program.tensor(op.inputs[0]).is_const:
            groups.join(op.outputs[0], op.inputs[0])
        elif kind.storage == "overwrite" and "strip" not in op.options:
            # (not on a strip: its small buffers are not worth it, and a strip's output
            # must stay a buffer of its own for ROW_CONCAT to place)
            # only the inputs the kind names: a convolution with a fused residual addition may
            # write over its residual, never over its input (read at other indices)
            candidates = [op.inputs[i] for i in kind.overwritable if i < len(op.inputs)]
            victim = _overwritable_input(program, op, candidates, index, last, groups)
            if victim is not None:
                groups.join(op.outputs[0], victim)
        elif kind.storage == "view":
            groups.join(op.outputs[0], op.inputs[0], view_offset(program, op))
        elif kind.storage == "parts":
            for name, offset in zip(op.inputs, concat_offsets(program, op)):
                groups.join(name, op.outputs[0], offset)
        elif kind.storage == "workspace":
            # an NPU partition whose feature maps Vela placed inside its scratch (region 1)
            for name, offset in op.options.get("io_offsets", {}).items():
                groups.join(name, op.inputs[2], offset)
    return groups


def alias_roots(program: Program) -> dict[str, str]:
    """Tensors that reuse another tensor's bytes -> that tensor (the root of the group)."""
    return dict(storage_groups(program).roots)


def _overwritable_input(program: Program, op: Op, candidates: list[str], index: int, last: dict[str, int],
                        groups: StorageGroups) -> str | None:
    """A candidate input of the same shape and type as the output whose bytes nobody
    reads later, and that no other input of the op shares."""
    out = program.tensor(op.outputs[0])
    for name in candidates:
        t = program.tensor(name) if name else None
        if t is None or t.is_const or t.shape != out.shape or t.dtype != out.dtype:
            continue
        root = groups.root(name)
        others = [n for n in op.inputs if n and n != name and not program.tensor(n).is_const]
        if all(last.get(m, -1) <= index for m in groups.group(name)) and \
                all(groups.root(n) != root for n in others):
            return name
    return None


def buffers(program: Program, scratch_sizes: list[int], roots: dict[str, str]) -> list[Buffer]:
    """Lifetimes in op indices; graph inputs live from the start, outputs to the end."""
    first: dict[str, int] = {name: -1 for name in program.inputs}
    for index, op in enumerate(program.ops):
        # an input no op produces is the op's own workspace (an NPU partition's scratch)
        for name in op.inputs + op.outputs:
            if name and not program.tensor(name).is_const:
                first.setdefault(name, index)
    last = last_uses(program)
    spans: dict[str, list[int]] = {}
    for name in first:
        root = roots.get(name, name)
        lo, hi = first[name], last.get(name, first[name])
        span = spans.setdefault(root, [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
    result = [Buffer(name, program.tensor(name).nbytes, lo, hi) for name, (lo, hi) in spans.items()]
    result += [Buffer(f"scratch:{i}", size, i, i) for i, size in enumerate(scratch_sizes) if size]
    return result


def live_bytes(bufs: list[Buffer], steps: int, overlaps: list[Overlap] = ()) -> list[int]:
    """Bytes live at each step -1 (inputs) .. steps (outputs); two buffers an Overlap lets
    share bytes count for their packed footprint while both are live."""
    by_name = {b.name: b for b in bufs}
    live = []
    for t in range(-1, steps + 1):
        total = sum(b.size for b in bufs if b.first <= t <= b.last)
        for o in overlaps:
            lower, upper = by_name[o.lower], by_name[o.upper]
            if lower.first <= t <= lower.last and upper.first <= t <= upper.last:
                total -= lower.size + upper.size - o.footprint(lower.size, upper.size)
        live.append(total)
    return live


def lower_bound(bufs: list[Buffer], steps: int, overlaps: list[Overlap] = ()) -> int:
    return max(live_bytes(bufs, steps, overlaps), default=0)


# Orders in which buffers are placed; each is tried with first fit and best fit.
ORDERS = {
    "size": lambda b: (-b.size, b.first, b.name),
    "lifetime": lambda b: (-(b.last - b.first), -b.size, b.name),
    "area": lambda b: (-b.size * (b.last - b.first + 1), b.name),
    "start": lambda b: (b.first, -b.size, b.name),
}


def place(bufs: list[Buffer], order: str = "size", best_fit: bool = False,
          overlaps: list[Overlap] = (), concurrent: dict[str, list[Buffer]] | None = None) -> dict[str, int]:
    """Each buffer, in the given order, at an aligned offset clear of every buffer
    placed before it that is live at the same time (or as close as an Overlap allows):
    the lowest such offset (first fit), or the one in the tightest gap (best fit).
    concurrent: each buffer's concurrent_buffers(), when already computed."""
    gaps = {(o.lower, o.upper): o.gap for o in overlaps}
    concurrent = concurrent_buffers(bufs) if concurrent is None else concurrent
    offsets: dict[str, int] = {}
    for buf in sorted(bufs, key=ORDERS[order]):
        busy = sorted(_busy_span(buf, p, offsets[p.name], gaps) for p in concurrent[buf.name] if p.name in offsets)
        offsets[buf.name] = _choose_offset(buf.size, busy, best_fit)
    return offsets


def concurrent_buffers(bufs: list[Buffer]) -> dict[str, list[Buffer]]:
    """Each buffer's name -> the other buffers live at some step it is live."""
    by_start = sorted(bufs, key=lambda b: b.first)
    found: dict[str, list[Buffer]] = {b.name: [] for b in bufs}
    for i, a in enumerate(by_start):
        for b in by_start[i + 1:]:
            if b.first > a.last:
                break
            found[a.name].append(b)
            found[b.name].append(a)
    return found


def _busy_span(buf: Buffer, other: Buffer, other_offset: int, gaps: dict) -> tuple[int, int]:
    """The span of offsets `other` rules out for `buf`, as [start, stop): buf must end by
    start or begin at stop. An Overlap shortens it: buf (lower) may begin `gap` below
    other, or other (lower) reaches only `gap` into buf's way."""
    if (buf.name, other.name) in gaps:
        return other_offset - gaps[buf.name, other.name] + buf.size, other_offset + other.size
    if (other.name, buf.name) in gaps:
        return other_offset, other_offset + gaps[other.name, buf.name]
    return other_offset, other_offset + other.size


def _choose_offset(size: int, busy: list[tuple[int, int]], best_fit: bool) -> int:
    gaps, cursor = [], 0  # (gap size, start) of every hole that fits, then the open end
    for start, stop in busy:
        if cursor + size <= start:
            gaps.append((start - cursor, cursor))
            if not best_fit:
                break
        cursor = max(cursor, align(stop))
    if not gaps or best_fit:
        gaps.append((float("inf"), cursor))
    return min(gaps)[1] if best_fit else gaps[0][1]


def arena_size(bufs: list[Buffer], offsets: dict[str, int]) -> int:
    return max(align(max((offsets[b.name] + b.size for b in bufs), default=0)), ALIGNMENT)


def plan_memory(program: Program, scratch_sizes: list[int]) -> MemoryPlan:
    groups = storage_groups(program)
    roots = groups.roots
    bufs = buffers(program, scratch_sizes, roots)
    overlaps = stage_overlaps(program, groups)
    concurrent = concurrent_buffers(bufs)
    candidates = []
    for order in ORDERS:
        for best_fit in (False, True):
            offsets = place(bufs, order, best_fit, overlaps, concurrent)
            name = f"{order}/{'best' if best_fit else 'first'} fit"
            candidates.append((arena_size(bufs, offsets), len(candidates), name, offsets))
    arena, _, strategy, offsets = min(candidates)
    return MemoryPlan(
        arena_bytes=arena, lower_bound=lower_bound(bufs, len(program.ops), overlaps), offsets=offsets,
        sizes={b.name: b.size for b in bufs}, aliases=dict(roots),
        alias_offsets={t: o for t, o in groups.offsets.items() if o},
        scratch={i: f"scratch:{i}" for i, size in enumerate(scratch_sizes) if size}, buffers=bufs,
        strategy=strategy, overlaps=overlaps)


def stage_overlaps(program: Program, groups: StorageGroups) -> list[Overlap]:
    """The Overlaps patch stages allow: a ROW_CONCAT's output (the tensor after the stage)
    below the stage's input, by the gap the patch pass computed (options "overlaps": the
    input's name, "gap": bytes); only between whole buffers (group roots)."""
    found = []
    for op in program.ops:
        upper = op.options.get("overlaps") if registry.of(op).storage == "parts" else None
        lower = op.outputs[0]
        if upper is None or any(groups.root(n) != n or groups.offsets.get(n, 0) for n in (lower, upper)):
            continue
        found.append(Overlap(lower, upper, align(op.options["gap"])))
    return found


def choose_arena_region(plan: MemoryPlan, board: Board, stack_bytes: int, npu_reachable: bool) -> MemoryPlan:
    """Puts the arena in the fastest RAM region that holds it (with the stack, where they
    share a region), the board's preferred arena region first among equals; only regions
    the NPU reaches when the NPU reads or writes the arena."""
    def need(region) -> int:
        return plan.arena_bytes + (stack_bytes if region.name == board.data_region else 0)
    rams = sorted((r for r in board.regions if r.kind == "ram" and (r.npu or not npu_reachable)),
                  key=lambda r: (r.speed, r.name != board.arena_region))
    fitting = [r for r in rams if need(r) <= r.length]
    plan.region = (fitting or [board.region(board.arena_region)])[0].name
    return plan


def choose_weights_region(board: Board, weights_bytes: int, code_bytes: int, ram_in_use: dict[str, int]) -> tuple[str, str]:
    """The region the weights live in, and why: the code region when they fit beside the
    code (code_bytes: code, tables and other read-only data), else the fastest region with
    room that something loads before the firmware starts: a flash region (the programmer
    writes it) or, on a simulated board, a RAM region (the simulator loads the ELF there;
    nothing loads a real board's RAM). ram_in_use: bytes already planned per RAM region
    (arena, stack)."""
    code = board.region(board.code_region)
    if weights_bytes + code_bytes <= code.length:
        return code.name, f"they fit in {code.name} beside the code"
    loadable = [r for r in board.regions if r.name != code.name and (r.kind == "flash" or board.simulator)]
    fitting = sorted((r for r in loadable if weights_bytes + ram_in_use.get(r.name, 0) <= r.length),
                     key=lambda r: (r.speed, r.length))
    if not fitting:
        return code.name, f"no region holds them (code region {code.name}: {code.length:,} B)"
    region = fitting[0]
    loader = "the programmer writes it" if region.kind == "flash" else f"{board.simulator['name']} loads it"
    return region.name, (f"{weights_bytes:,} B do not fit in {code.name} ({code.length:,} B) beside the code; "
                         f"{region.name} is the fastest region with room ({loader})")


def topological_orders(program: Program) -> dict[str, list[int]]:
    """Candidate execution orders (op indices): the given one, and greedy orders that
    run next the ready op which leaves the fewest bytes live (branches of a residual
    block or a concat are then computed where they cost least)."""
    return {"given": list(range(len(program.ops))),
            "greedy": _greedy_order(program, prefer_freeing=False),
            "greedy, freeing first": _greedy_order(program, prefer_freeing=True)}


def _greedy_order(program: Program, prefer_freeing: bool) -> list[int]:
    producers = {name: i for i, op in enumerate(program.ops) for name in op.outputs}
    needs = [{producers[n] for n in op.inputs if n in producers} for op in program.ops]
    readers: dict[str, set[int]] = {}
    for i, op in enumerate(program.ops):
        for name in op.inputs:
            if name in producers or name in program.inputs:
                readers.setdefault(name, set()).add(i)
    done: list[int] = []
    pending = set(range(len(program.ops)))

    def cost(i: int):
        op = program.ops[i]
        allocated = sum(program.tensor(n).nbytes for n in op.outputs)
        freed = sum(program.tensor(n).nbytes for n in set(op.inputs)
                    if n in readers and n not in program.outputs and readers[n] <= set(done) | {i})
        return (-freed, allocated, i) if prefer_freeing else (allocated - freed, i)

    while pending:
        ready = [i for i in pending if needs[i] <= set(done)]
        best = min(ready, key=cost)
        done.append(best)
        pending.remove(best)
    return done


def reorder(program: Program, order: list[int]) -> Program:
    return Program(program.tensors, [program.ops[i] for i in order], list(program.inputs),
                   list(program.outputs), program.metadata)


def schedule_for_memory(program: Program, scratch_sizes: list[int]) -> tuple[Program, list[int], str]:
    """The execution order with the lowest peak of live bytes (ties keep the given order)."""
    best = None
    for rank, (name, order) in enumerate(topological_orders(program).items()):
        candidate = reorder(program, order)
        scratch = [scratch_sizes[i] for i in order]
        peak = lower_bound(buffers(candidate, scratch, alias_roots(candidate)), len(order))
        if best is None or peak < best[0]:
            best = (peak, candidate, scratch, name)
    return best[1], best[2], best[3]
