"""Stage 5b, patch: run the first ops of a model strip by strip to go below the
layer-by-layer memory bound (MCUNetV2's patch-based inference, with strips of whole
rows as the patches).

The memory-heavy first layers of a vision model hold large feature maps although each
output row needs only a few rows of them. A *stage* is the chain of ops from the graph
input to a *split* tensor; the pass rewrites it into strips: each strip computes a band
of the split tensor's rows from just the rows of every intermediate map it needs
(receptive-field overlap is recomputed, not stored), the strip's first op reading its
rows straight from the input (ROW_VIEW) and its last op writing straight into the split
tensor (ROW_CONCAT: in place). Whole rows keep every view contiguous in NHWC, so the
usual kernels run unchanged on a strip, with padding at the image border given as
`explicit_padding` and none inside.

Strips run top to bottom, so the split tensor may be written over input rows no later
strip reads: the pass computes that gap and the planner lets the two overlap by it.

`optimize` picks among the schedules (layer by layer, every split point and strip
height) by arena bytes and an instruction estimate: "speed" the fastest, "ram" the
smallest arena, "balanced" the smallest arena within 10% of the fastest.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import InputError
from ..ir.program import Op, Program, Tensor
from ..ops import common, registry
from ..ops.rows import row_bytes
from ..report.budget import macs
from .in_place import IN_PLACE_KIND, depthwise_in_place_at_peak
from .plan import MemoryPlan, plan_memory

OPTIMIZE = ("balanced", "speed", "ram")
BALANCED_SLACK = 1.10  # "balanced": at most 10% above the fastest schedule's estimate
STRIP_ROWS = (1, 2, 3, 4, 6, 8, 12, 16)
# The estimate: a MAC or an output byte about one instruction, plus a kernel call's set-up
# (columns, tiles, tables), measured on VWW's strips on the Cortex-M55: about 12,000
# instructions per call, and up to 10,000 more per group of four channels of a depthwise
# convolution on a few rows (its tile path does not pay off there).
CALL_INSTRUCTIONS = 12_000
DEPTHWISE_GROUP_INSTRUCTIONS = 10_000
IN_PLACE_MAC_INSTRUCTIONS = 4  # the in-place depthwise kernel is portable C
PATCH_KINDS = ("ROW_VIEW", "ROW_CONCAT")  # the firmware-only kinds this pass makes (ops/rows.py)
POOL_KINDS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")
WINDOW_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", *POOL_KINDS)


@dataclass(frozen=True)
class RowMap:
    """How an op's output rows read its input rows (along the height)."""

    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad_top: int = 0

    def input_rows(self, first: int, end: int, in_rows: int) -> tuple[int, int, int, int]:
        """Output rows [first, end) read input rows [lo, hi), with pad_top rows of padding
        above and pad_bottom below (at the image border only)."""
        start = first * self.stride - self.pad_top
        stop = (end - 1) * self.stride - self.pad_top + (self.kernel - 1) * self.dilation + 1
        lo, hi = max(0, start), min(in_rows, stop)
        return lo, hi, lo - start, stop - hi


@dataclass
class Schedule:
    name: str
    program: Program
    plan: MemoryPlan
    instructions: int  # estimate

    def summary(self) -> dict:
        return {"schedule": self.name, "arena": self.plan.arena_bytes, "estimated_instructions": self.instructions}


def estimated_instructions(program: Program) -> int:
    return sum(_op_estimate(program, op) for op in program.ops if op.kind not in PATCH_KINDS)


def _op_estimate(program: Program, op: Op) -> int:
    out = program.tensor(op.outputs[0])
    estimate = macs(program, op) + out.size + CALL_INSTRUCTIONS
    if op.kind == IN_PLACE_KIND:
        estimate += macs(program, op) * (IN_PLACE_MAC_INSTRUCTIONS - 1)
    if op.kind == "DEPTHWISE_CONV_2D" and "strip" in op.options:
        estimate += DEPTHWISE_GROUP_INSTRUCTIONS * -(-out.shape[-1] // 4)
    return estimate


def choose_schedule(program: Program, scratch_bytes, optimize: str = "balanced") -> tuple[Schedule, list[Schedule]]:
    """The schedule `optimize` asks for, and every one considered. scratch_bytes(program)
    gives each op's scratch."""
    if optimize not in OPTIMIZE:
        raise InputError(f"unknown optimize setting {optimize!r}; choose one of {', '.join(OPTIMIZE)}")
    layer_by_layer = _schedule("layer by layer", program, scratch_bytes)
    allowed = layer_by_layer.instructions * {"speed": 1, "balanced": BALANCED_SLACK, "ram": float("inf")}[optimize]
    schedules = [layer_by_layer]
    if optimize != "speed":
        for split in stage_lengths(program):
            for rows in _strip_heights(program, program.ops[:split]):
                patched = patch_stage(program, split, rows)
                estimate = estimated_instructions(patched)
                if estimate <= allowed:  # planned only if it may be chosen
                    name = f"first {split} ops in strips of {rows} row{'s' if rows > 1 else ''}"
                    schedules.append(_schedule(name, patched, scratch_bytes, estimate))
        schedules += [s for s in (_in_place(s, scratch_bytes) for s in list(schedules)) if s is not None]
    best = min((s for s in schedules if s.instructions <= allowed), key=lambda s: (s.plan.arena_bytes, s.instructions))
    return best, schedules


def _in_place(schedule: Schedule, scratch_bytes) -> Schedule | None:
    """The schedule with its peak depthwise convolutions in place, if that helps."""
    program, plan = depthwise_in_place_at_peak(schedule.program, schedule.plan, scratch_bytes)
    if program is schedule.program:
        return None
    return Schedule(schedule.name + ", depthwise in place at the peak", program, plan, estimated_instructions(program))


def _schedule(name: str, program: Program, scratch_bytes, estimate: int | None = None) -> Schedule:
    plan = plan_memory(program, scratch_bytes(program)).verify()
    return Schedule(name, program, plan, estimated_instructions(program) if estimate is None else estimate)


def _strip_heights(program: Program, stage: list[Op]) -> list[int]:
    """Strip heights worth trying: the split tensor smaller than a map inside the stage
    (else nothing is saved), at least two strips."""
    split = program.tensor(stage[-1].outputs[0])
    inside = [program.tensor(op.outputs[0]).nbytes for op in stage[:-1]] + [program.tensor(stage[0].inputs[0]).nbytes]
    if split.nbytes >= max(inside):
        return []
    return [h for h in STRIP_ROWS if 2 * h <= split.shape[1]]


# ---------------------------------------------------------------- the stage

def row_maps(program: Program, op: Op) -> dict[int, RowMap] | None:
    """How a strip of the op's output reads each activation input (input index -> RowMap):
    a window op's input through its window, a residual or an elementwise operand row for
    row; None when the op cannot run on a strip."""
    window = _window_input(op)
    maps = {} if window is None else {window: _window_map(program, op)}
    out_shape = program.tensor(op.outputs[0]).shape
    for i, name in enumerate(op.inputs):
        if i == window or not name or program.tensor(name).is_const:
            continue
        pointwise = registry.of(op).storage == "overwrite" and (window is None or i in registry.of(op).overwritable)
        if not pointwise or program.tensor(name).shape != out_shape:
            return None
        maps[i] = RowMap()
    return maps or None


def _window_input(op: Op) -> int | None:
    return 0 if op.kind in WINDOW_KINDS or op.kind == "CONV_2D_ADD" else None


def _window_map(program: Program, op: Op) -> RowMap:
    kernel = _kernel_hw(program, op)
    (strides, dilations, _), ((pad_top, _), _) = common.window_options(op), common.window_padding(program, op, kernel)
    return RowMap(kernel[0], strides[0], dilations[0], pad_top)


def _kernel_hw(program: Program, op: Op) -> tuple[int, int]:
    o = op.options
    return (tuple(program.tensor(op.inputs[1]).shape[1:3]) if op.kind not in POOL_KINDS
            else (o["filter_height"], o["filter_width"]))


def stage_lengths(program: Program) -> list[int]:
    """The prefixes of the op list that may run in strips: CPU ops on NHWC int8 maps with
    batch 1 that all run on strips, reading one graph input (nothing else reads it) and
    the prefix's own tensors, of which only the last op's output is read after it."""
    lengths, produced = [], set()
    source = program.ops[0].inputs[0] if program.ops else None
    if source not in program.inputs:
        return []
    for index, op in enumerate(program.ops):
        maps = row_maps(program, op) if op.target == "cpu" and len(op.outputs) == 1 else None
        if maps is None or not all(_strip_able(program, op.inputs[i]) for i in maps) or \
                not _strip_able(program, op.outputs[0]) or \
                not all(op.inputs[i] in produced or op.inputs[i] == source for i in maps):
            break
        produced.add(op.outputs[0])
        stage = program.ops[:index + 1]
        inside = {id(o) for o in stage}
        escaping = {n for o in program.ops[index + 1:] for n in o.inputs if n in produced or n == source}
        escaping |= {n for n in program.outputs if n in produced}
        if escaping <= {op.outputs[0]} and all(id(c) in inside for c in program.consumers(source)):
            lengths.append(index + 1)
    return lengths


def _strip_able(program: Program, name: str) -> bool:
    t = program.tensor(name)
    return len(t.shape) == 4 and t.shape[0] == 1 and t.dtype == "int8"


def patch_stage(program: Program, split: int, rows: int) -> Program:
    """The program with its first `split` ops (one of stage_lengths()) run in strips of
    `rows` rows of their last output."""
    stage, rest = program.ops[:split], program.ops[split:]
    source, target = stage[0].inputs[0], stage[-1].outputs[0]
    height = program.tensor(target).shape[1]
    tensors = dict(program.tensors)
    ops: list[Op] = []
    parts, first_rows = [], []
    bands = [(first, min(first + rows, height)) for first in range(0, height, rows)]
    for j, band in enumerate(bands):
        strip = _Strip(program, tensors, ops, source, j)
        produced, reads = _rows_needed(program, stage, target, band)
        first_rows.append(produced[source][0])
        for k, op in enumerate(stage):
            inputs = list(op.inputs)
            for i, (lo, hi, _, _) in reads[k].items():
                inputs[i] = strip.rows_of(op.inputs[i], produced[op.inputs[i]], (lo, hi))
            out_rows = produced[op.outputs[0]][1] - produced[op.outputs[0]][0]
            name = strip.new_tensor(op.outputs[0], out_rows)
            options = {**_strip_options(program, op, reads[k], j, len(bands), k),
                       "strip_of": op.outputs[0], "rows": list(produced[op.outputs[0]])}  # for `debug`
            if "conv_output" in options:  # CONV_2D_ADD: its convolution's (never stored) output
                options["conv_output"] = strip.new_tensor(options["conv_output"], out_rows)
            ops.append(dataclasses.replace(op, inputs=inputs, outputs=[name], options=options))
        parts.append(f"{target}.strip{j}")
    gap = _overlap_gap(program, stage, [band[1] for band in bands], first_rows)
    ops.append(Op("ROW_CONCAT", parts, [target], {"overlaps": source, "gap": gap}, source=stage[-1].source))
    return Program(tensors, ops + rest, list(program.inputs), list(program.outputs), dict(program.metadata))


def _overlap_gap(program: Program, stage: list[Op], band_ends: list[int], first_rows: list[int]) -> int:
    """How far below the stage's input its output may start: strip j's output rows (up to
    band_ends[j]) must not reach input rows a later strip reads (from first_rows[j + 1]),
    nor, when the stage's last op reads the input itself, the rows it reads while writing."""
    source, target = stage[0].inputs[0], stage[-1].outputs[0]
    reads_source = source in [stage[-1].inputs[i] for i in row_maps(program, stage[-1])]
    limits = first_rows[1:] + [program.tensor(source).shape[1]]
    if reads_source:
        limits = [min(a, b) for a, b in zip(limits, first_rows)]
    return max(0, *(end * row_bytes(program, target) - first * row_bytes(program, source)
                    for end, first in zip(band_ends, limits)))


class _Strip:
    """Builds one strip's tensors and row views."""

    def __init__(self, program: Program, tensors: dict, ops: list, source: str, index: int):
        self.program, self.tensors, self.ops, self.source, self.index = program, tensors, ops, source, index
        self.views: dict[tuple, str] = {}

    def new_tensor(self, like: str, rows: int, name: str | None = None) -> str:
        t = self.program.tensor(like)
        name = name or f"{like}.strip{self.index}"
        self.tensors[name] = Tensor(name, (1, rows, *t.shape[2:]), t.dtype, t.quant)
        return name

    def rows_of(self, tensor: str, held: tuple[int, int], wanted: tuple[int, int]) -> str:
        """The strip's buffer of `tensor` (its rows held: [lo, hi); the whole graph input),
        or a view of rows `wanted` of it."""
        buffer = tensor if tensor == self.source else f"{tensor}.strip{self.index}"
        if tensor == self.source:
            held = (0, self.program.tensor(tensor).shape[1])
        if wanted == held:
            return buffer
        key = (buffer, wanted)
        if key not in self.views:
            name = self.new_tensor(tensor, wanted[1] - wanted[0], f"{buffer}.rows{wanted[0]}-{wanted[1] - 1}")
            self.ops.append(Op("ROW_VIEW", [buffer], [name], {"row": wanted[0] - held[0], "rows": wanted[1] - wanted[0]}))
            self.views[key] = name
        return self.views[key]


def _rows_needed(program: Program, stage: list[Op], target: str, band: tuple[int, int]):
    """Walking back from the split tensor's band: the rows [lo, hi) of every tensor the
    strip computes (the hull of what its readers need; the graph input's rows read), and
    per op, per activation input, (lo, hi, pad top, pad bottom) of the rows it reads."""
    produced = {target: band}
    reads: list[dict] = [{}] * len(stage)
    for k in reversed(range(len(stage))):
        op = stage[k]
        first, end = produced[op.outputs[0]]
        reads[k] = {i: rmap.input_rows(first, end, common.shape(program, op, i)[1])
                    for i, rmap in row_maps(program, op).items()}
        for i, (lo, hi, _, _) in reads[k].items():
            held = produced.get(op.inputs[i], (lo, hi))
            produced[op.inputs[i]] = (min(held[0], lo), max(held[1], hi))
    return produced, reads


def _strip_options(program: Program, op: Op, reads: dict, strip: int, strips: int, position: int) -> dict:
    """The op's options on a strip: its window's padding made explicit (top and bottom
    only at the image border), and where it sits in the stage (codegen shares its tables)."""
    options = {**op.options, "strip": [strip, strips], "stage_op": position}
    window = _window_input(op)
    if window is None:
        return options
    _, _, pad_top, pad_bottom = reads[window]
    _, (left, right) = common.window_padding(program, op, _kernel_hw(program, op))
    return {**options, "padding": "VALID", "explicit_padding": [pad_top, left, pad_bottom, right]}
