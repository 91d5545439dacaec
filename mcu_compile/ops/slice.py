"""Slicing and views: STRIDED_SLICE and SLICE (a box of the input, read with any strides),
SPLIT and SPLIT_V (several outputs, each a run of the input along one axis), MIRROR_PAD
(REFLECT or SYMMETRIC), SQUEEZE and EXPAND_DIMS (the input's bytes under another shape,
stored like RESHAPE). None of them computes: TFLite Micro copies bytes, so the outputs
must share the input's scale and zero point.

All but the views are gathers: output position (i0, i1, ...) reads the input at
(table0[i0], table1[i1], ...), one index table per input axis, computed here at compile
time. The reference indexes with the tables; the firmware runs mcu_gather_axes_s8, which
takes a table only where the indices are not a run (runs become a begin, the innermost
run one memcpy per row). RESIZE_NEAREST_NEIGHBOR (resize.py) is a gather too."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..codegen import c_text as c
from ..errors import IRError
from ..ir.program import Op, Program
from . import common
from .registry import OpKind, TfliteForm, register
from .shape import emit_reshape as _emit_view, reshape as _view

Tables = list[np.ndarray]  # per input axis: the input index each output position along it reads


class KernelAxis(NamedTuple):
    """One of mcu_gather_axes_s8's four axes: it reads `table` (None: begin, begin + 1, ...)."""

    dim: int  # the input's size along it
    begin: int
    count: int  # the output's size along it
    table: np.ndarray | None


def where(op: Op) -> str:
    """The op as shape errors name it."""
    return f"{op.kind} {op.source or op.outputs[0]!r}"


def const_ints(program: Program, op: Op, index: int, dtypes: tuple[str, ...] = ("int32",)) -> list[int]:
    """The values of constant input `index` (the verifier has checked it is one), of one of
    `dtypes`: TFLite Micro reads these index tensors as int32 (a few kernels also int64)."""
    t = program.tensor(op.inputs[index])
    if t.dtype not in dtypes:
        raise IRError(f"{where(op)}: input {index} is {t.dtype}; TFLite Micro reads it as {' or '.join(dtypes)}")
    return [int(v) for v in t.data.reshape(-1)]


def check_same_quant(program: Program, op: Op, data: int = 0) -> None:
    """Refuses an op whose outputs do not share the quantization of its int8 data input:
    the kernel (TFLite Micro's too) moves or compares bytes without rescaling them."""
    first = common.quant(program, op.inputs[data])
    if program.tensor(op.inputs[data]).dtype != "int8" or any(common.quant(program, n) != first
                                                              for n in op.outputs):
        raise common.unsupported(op, f"{op.kind} needs int8 outputs with the input's scale and zero point; "
                                     "requantize after it instead")


# ---------------------------------------------------------------- gathers

@dataclass(frozen=True)
class Gather:
    """The reference, C emitter and table bytes of a kind whose outputs are gathers of
    input `data`; `tables` gives one Tables per output."""

    tables: Callable[[Program, Op], list[Tables]]
    data: int = 0

    def reference(self, program: Program, op: Op, args: list):
        x = args[self.data]
        outputs = [x[np.ix_(*tables)].reshape(program.tensor(name).shape)
                   for name, tables in zip(op.outputs, self.tables(program, op))]
        return outputs if len(outputs) > 1 else outputs[0]

    def kernel_axes(self, program: Program, op: Op) -> list[list[KernelAxis]]:
        """Per output, the four axes of its mcu_gather_axes_s8 call."""
        shape = common.shape(program, op, self.data)
        return [_kernel_axes(op, shape, tables) for tables in self.tables(program, op)]

    def table_bytes(self, program: Program, op: Op) -> int:
        return sum(4 * axis.count for axes in self.kernel_axes(program, op) for axis in axes
                   if axis.table is not None)

    def check(self, program: Program, op: Op) -> None:
        check_same_quant(program, op, self.data)
        self.kernel_axes(program, op)  # at most 4 axes once simplified

    def emit(self, site: c.Site) -> c.CodeFragment:
        """One mcu_gather_axes_s8 call per output (each in its own block when there are
        several), the index tables at file scope."""
        declarations, statements = [], []
        x = site.ref(site.op.inputs[self.data])
        for out, (name, axes) in enumerate(zip(site.op.outputs, self.kernel_axes(site.program, site.op))):
            tables = []
            for k, axis in enumerate(axes):
                tables.append("NULL" if axis.table is None else f"{site.uid}_index{out}_{k}")
                if axis.table is not None:
                    declarations.append(c.int_array(tables[-1], axis.table))
            call = "\n".join([f"const mcu_nn_dims input_dims = {c.dims([a.dim for a in axes])};",
                              f"const mcu_nn_dims begin = {c.dims([a.begin for a in axes])};",
                              f"const mcu_nn_dims output_dims = {c.dims([a.count for a in axes])};",
                              f"const int32_t *const index[4] = {{{', '.join(tables)}}};",
                              c.checked_call(site, "mcu_gather_axes_s8", [x, "&input_dims", "&begin", "index",
                                                                          "&output_dims", site.ref(name)])])
            if len(site.op.outputs) > 1:
                call = "{\n" + "\n".join("    " + line for line in call.splitlines()) + "\n}"
            statements.append(call)
        summary = f"{len(declarations)} index table(s)" if declarations else "runs only"
        if len(site.op.outputs) > 1:
            summary = f"{len(site.op.outputs)} outputs ({', '.join(site.op.outputs)}), {summary}"
        return c.CodeFragment(declarations, [c.block(site, summary, statements)])


def _is_run(table: np.ndarray) -> bool:
    return bool(np.array_equal(table, np.arange(table[0], table[0] + table.size)))


def _kernel_axes(op: Op, shape: tuple[int, ...], tables: Tables) -> list[KernelAxis]:
    """The gather as four kernel axes, tables kept only where the indices are not a run:
    axes reading the one entry of a size-1 axis are dropped, and an axis read whole merges
    into a run around it (a box of rows is then one memcpy per row)."""
    axes = [KernelAxis(d, int(t[0]), t.size, None if _is_run(t) else t)
            for d, t in zip(shape, map(np.asarray, tables)) if not (d == 1 and t.size == 1)]
    merged: list[KernelAxis] = []
    for axis in reversed(axes):
        inner = merged[0] if merged else None
        if (inner is not None and axis.table is None and inner.table is None and inner.begin == 0
                and inner.count == inner.dim):
            merged[0] = KernelAxis(axis.dim * inner.dim, axis.begin * inner.dim, axis.count * inner.dim, None)
        else:
            merged.insert(0, axis)
    if len(merged) > 4:
        raise common.unsupported(op, f"{op.kind} over {len(merged)} axes that do not merge is not supported "
                                     "(at most 4)")
    return [KernelAxis(1, 0, 1, None)] * (4 - len(merged)) + merged


# ---------------------------------------------------------------- STRIDED_SLICE

def _strided_box(program: Program, op: Op) -> tuple[list[tuple[int, int, int]], tuple[int, ...]]:
    """(start, count, step) per input axis and the output shape, as TFLite Micro's
    Prepare and Eval compute them (begin/end wrapped once, clamped for the direction,
    overridden by the masks; a shrunk axis reads its begin only)."""
    o, x = op.options, common.shape(program, op)
    for mask in ("ellipsis_mask", "new_axis_mask", "offset"):
        if o.get(mask):
            raise common.unsupported(op, f"{op.kind} with {mask} is not supported (TFLite Micro ignores it)")
    if len(x) > 4:
        raise common.unsupported(op, f"{op.kind} on a rank-{len(x)} tensor is not supported (at most 4D)")
    begin, end, steps = (const_ints(program, op, i) for i in (1, 2, 3))
    if not len(begin) == len(end) == len(steps) == len(x):
        raise IRError(f"{where(op)}: begin, end and strides need {len(x)} values each, one per input axis")
    box, shape = [], []
    for axis, (size, b, e, step) in enumerate(zip(x, begin, end, steps)):
        if step == 0:
            raise IRError(f"{where(op)}: stride 0 on axis {axis}")
        bit = 1 << axis
        lo, hi = (0, size) if step > 0 else (-1, size - 1)  # the clamp for either direction
        start = min(max(b + size if b < 0 else b, lo), hi)
        if o.get("begin_mask", 0) & bit:
            start = 0 if step > 0 else size - 1
        if o.get("shrink_axis_mask", 0) & bit:
            if step < 0:
                raise common.unsupported(op, f"{op.kind} shrinking axis {axis} with a negative stride is not "
                                             "supported (TFLite Micro writes nothing)")
            if not -size <= b < size and not o.get("begin_mask", 0) & bit:
                raise IRError(f"{where(op)}: shrinks axis {axis} to index {b}, outside its {size} entries")
            box.append((start, 1, 1))
            continue
        stop = min(max(e + size if e < 0 else e, lo), hi)
        if o.get("end_mask", 0) & bit:
            stop = size if step > 0 else -1
        count = -((start - stop) // step)  # ceil((stop - start) / step)
        if count <= 0:
            raise IRError(f"{where(op)}: selects nothing along axis {axis} (begin {b}, end {e}, stride {step})")
        box.append((start, count, step))
        shape.append(count)
    return box, tuple(shape)


def _strided_slice_shapes(program: Program, op: Op):
    return [_strided_box(program, op)[1]]


def _strided_slice_tables(program: Program, op: Op) -> list[Tables]:
    return [[start + step * np.arange(count) for start, count, step in _strided_box(program, op)[0]]]


# ---------------------------------------------------------------- SLICE

def _slice_box(program: Program, op: Op) -> list[tuple[int, int]]:
    """(begin, count) per input axis; a size of -1 runs to the end."""
    x = common.shape(program, op)
    begin, size = (const_ints(program, op, i, ("int32", "int64")) for i in (1, 2))
    if not len(begin) == len(size) == len(x):
        raise IRError(f"{where(op)}: begin and size need {len(x)} values each, one per input axis")
    box = []
    for axis, (dim, b, n) in enumerate(zip(x, begin, size)):
        count = dim - b if n == -1 else n
        if not 0 <= b < dim or not 0 < count <= dim - b:
            raise IRError(f"{where(op)}: begin {b}, size {n} on axis {axis} of {dim} entries")
        box.append((b, count))
    return box


def _slice_shapes(program: Program, op: Op):
    return [tuple(count for _, count in _slice_box(program, op))]


def _slice_tables(program: Program, op: Op) -> list[Tables]:
    return [[b + np.arange(count) for b, count in _slice_box(program, op)]]


# ---------------------------------------------------------------- SPLIT, SPLIT_V

def _split_data(op: Op) -> int:
    """SPLIT's inputs are (axis, input), SPLIT_V's (input, size_splits, axis)."""
    return 1 if op.kind == "SPLIT" else 0


def _split_sizes(program: Program, op: Op) -> tuple[int, list[int]]:
    """(axis, each output's size along it)."""
    x = common.shape(program, op, _split_data(op))
    axis_values = const_ints(program, op, 0 if op.kind == "SPLIT" else 2)
    if len(axis_values) != 1 or not -len(x) <= axis_values[0] < len(x):
        raise IRError(f"{where(op)}: axis {axis_values} is not one of the {len(x)} input axes")
    axis = axis_values[0] % len(x)
    parts, dim = op.options.get("num_splits", 0), x[axis]
    if parts != len(op.outputs):
        raise IRError(f"{where(op)}: num_splits {parts} but {len(op.outputs)} outputs")
    if op.kind == "SPLIT":
        if dim % parts:
            raise IRError(f"{where(op)}: {dim} entries along axis {axis} do not split into {parts} equal parts")
        return axis, [dim // parts] * parts
    sizes = const_ints(program, op, 1)
    unknown = [i for i, s in enumerate(sizes) if s == -1]
    if len(sizes) != parts or len(unknown) > 1:
        raise IRError(f"{where(op)}: size_splits {sizes} needs {parts} sizes, at most one of them -1")
    if unknown:
        sizes[unknown[0]] = dim - (sum(sizes) + 1)
    if sum(sizes) != dim or min(sizes) < 1:
        raise IRError(f"{where(op)}: size_splits {sizes} do not split the {dim} entries of axis {axis}")
    return axis, sizes


def _split_shapes(program: Program, op: Op):
    axis, sizes = _split_sizes(program, op)
    x = common.shape(program, op, _split_data(op))
    return [x[:axis] + (size,) + x[axis + 1:] for size in sizes]


def _split_tables(program: Program, op: Op) -> list[Tables]:
    axis, sizes = _split_sizes(program, op)
    x = common.shape(program, op, _split_data(op))
    starts = np.cumsum([0] + sizes[:-1])
    return [[start + np.arange(size) if i == axis else np.arange(d) for i, d in enumerate(x)]
            for start, size in zip(starts, sizes)]


# ---------------------------------------------------------------- MIRROR_PAD

MIRROR_MODES = {0: "reflect", 1: "symmetric"}  # MirrorPadOptions.mode: REFLECT, SYMMETRIC


def _mirror_paddings(program: Program, op: Op) -> list[tuple[int, int]]:
    x, mode = common.shape(program, op), op.options.get("mode", 0)
    if mode not in MIRROR_MODES:
        raise IRError(f"{where(op)}: mode {mode} is neither REFLECT (0) nor SYMMETRIC (1)")
    values = const_ints(program, op, 1, ("int32", "int64"))
    if len(values) != 2 * len(x):
        raise IRError(f"{where(op)}: {len(values)} paddings for {len(x)} axes; one (before, after) pair per axis")
    pairs = list(zip(values[::2], values[1::2]))
    most = [d - 1 if MIRROR_MODES[mode] == "reflect" else d for d in x]  # REFLECT does not repeat the edge
    for axis, (pair, limit) in enumerate(zip(pairs, most)):
        if min(pair) < 0 or max(pair) > limit:
            raise IRError(f"{where(op)}: {MIRROR_MODES[mode]} padding {list(pair)} on axis {axis} "
                          f"(each side 0 to {limit})")
    return pairs


def _mirror_pad_shapes(program: Program, op: Op):
    return [tuple(d + lo + hi for d, (lo, hi) in zip(common.shape(program, op), _mirror_paddings(program, op)))]


def _mirror_pad_tables(program: Program, op: Op) -> list[Tables]:
    """TFLite Micro's GetInputDimension per axis, which for paddings in range is numpy's
    reflect/symmetric padding of the indices."""
    mode = MIRROR_MODES[op.options.get("mode", 0)]
    return [[np.pad(np.arange(d), pair, mode=mode)
             for d, pair in zip(common.shape(program, op), _mirror_paddings(program, op))]]


# ---------------------------------------------------------------- SQUEEZE, EXPAND_DIMS

def _squeeze_shapes(program: Program, op: Op):
    x = common.shape(program, op)
    dims = op.options.get("squeeze_dims") or [i for i, d in enumerate(x) if d == 1]
    if len(x) > 8 or any(not -len(x) <= d < len(x) or x[d] != 1 for d in dims):
        raise IRError(f"{where(op)}: squeeze_dims {list(dims)} are not size-1 axes of the shape {list(x)} "
                      "(TFLite Micro takes at most 8 axes)")
    squeezed = {d % len(x) for d in dims}
    return [tuple(d for i, d in enumerate(x) if i not in squeezed)]


def _expand_dims_shapes(program: Program, op: Op):
    x = common.shape(program, op)
    axis = const_ints(program, op, 1)
    if len(axis) != 1 or not -len(x) - 1 <= axis[0] <= len(x):
        raise IRError(f"{where(op)}: axis {axis} is not one of the {len(x) + 1} positions of the output")
    at = axis[0] % (len(x) + 1)
    return [x[:at] + (1,) + x[at:]]


def gather_kind(name: str, shapes, gather: Gather, **kind) -> OpKind:
    """An op kind computed by `gather`, with its shape rule and OpKind fields."""
    return OpKind(name, shapes, gather.reference, gather.emit, check=gather.check, table_bytes=gather.table_bytes,
                  **kind)


register(
    gather_kind("STRIDED_SLICE", _strided_slice_shapes, Gather(_strided_slice_tables), inputs=(4, 4),
                const_inputs=(1, 2, 3), tflite=TfliteForm("StridedSliceOptions", {
                    "begin_mask": 0, "end_mask": 0, "ellipsis_mask": 0, "new_axis_mask": 0, "shrink_axis_mask": 0,
                    "offset": False})),
    gather_kind("SLICE", _slice_shapes, Gather(_slice_tables), inputs=(3, 3), const_inputs=(1, 2),
                tflite=TfliteForm("SliceOptions")),
    gather_kind("SPLIT", _split_shapes, Gather(_split_tables, data=1), inputs=(2, 2), const_inputs=(0,),
                int8_input=False, tflite=TfliteForm("SplitOptions", {"num_splits": 0})),
    gather_kind("SPLIT_V", _split_shapes, Gather(_split_tables), inputs=(3, 3), const_inputs=(1, 2),
                tflite=TfliteForm("SplitVOptions", {"num_splits": 0})),
    gather_kind("MIRROR_PAD", _mirror_pad_shapes, Gather(_mirror_pad_tables), inputs=(2, 2), const_inputs=(1,),
                tflite=TfliteForm("MirrorPadOptions", {"mode": 0})),
    OpKind("SQUEEZE", _squeeze_shapes, _view, _emit_view, storage="input", check=check_same_quant,
           tflite=TfliteForm("SqueezeOptions", {"squeeze_dims": []})),
    OpKind("EXPAND_DIMS", _expand_dims_shapes, _view, _emit_view, inputs=(2, 2), const_inputs=(1,),
           storage="input", check=check_same_quant, tflite=TfliteForm("ExpandDimsOptions")),
)
