"""Data movement: RESHAPE (the output is the input's bytes), TRANSPOSE (any rank whose
axes, merged where they move together, are at most 4: merged_transpose), CONCATENATION,
PAD (with the output's zero point) and PADV2 (with a constant value). None of them
computes: the output shares the input's scale and zero point."""
from __future__ import annotations

import math

import numpy as np

from ..codegen import c_text as c
from ..errors import IRError
from ..ir.program import Op, Program
from . import common, params
from .registry import OpKind, TfliteForm, register


def _const_input(program: Program, op: Op, index: int) -> np.ndarray | None:
    t = program.tensor(op.inputs[index]) if len(op.inputs) > index and op.inputs[index] else None
    return t.data if t is not None and t.is_const else None


def _check_rank(program: Program, op: Op) -> None:
    rank = len(common.shape(program, op))
    if rank > 4:
        raise common.unsupported(op, f"{op.kind} on a rank-{rank} tensor is not supported (at most 4D)")


# ---------------------------------------------------------------- RESHAPE

def _reshape_shapes(program: Program, op: Op):
    """new_shape (option, or the shape input) with a -1 resolved; None when neither says."""
    given = op.options.get("new_shape")
    if not given and _const_input(program, op, 1) is not None:
        given = [int(d) for d in _const_input(program, op, 1).reshape(-1)]
    if not given:
        return None
    size = program.tensor(op.inputs[0]).size
    known = math.prod(d for d in given if d != -1)
    shape = tuple(size // known if d == -1 and known else d for d in given)
    if math.prod(shape) != size:
        raise IRError(f"RESHAPE {op.source or op.outputs[0]!r}: {size} values cannot take the shape {list(given)}")
    return [shape]


def reshape(program: Program, op: Op, args: list) -> np.ndarray:
    return args[0].reshape(program.tensor(op.outputs[0]).shape)


def emit_reshape(site: c.Site) -> c.CodeFragment:
    if site.x == site.y:
        return c.CodeFragment([], [])
    size = site.program.tensor(site.op.outputs[0]).nbytes
    # memmove: the planner may place the two buffers overlapping.
    body = [f"memmove({site.y}, {site.x}, {size});"]
    return c.CodeFragment([], [c.block(site, "copy", body)])


# ---------------------------------------------------------------- TRANSPOSE

def _transpose_shapes(program: Program, op: Op):
    perm, x = _const_input(program, op, 1), common.shape(program, op)
    if perm is None:
        return None
    axes = [int(a) for a in perm.reshape(-1)]
    if not x or any(not -len(x) <= a < len(x) for a in axes) or sorted(a % len(x) for a in axes) != list(range(len(x))):
        raise IRError(f"TRANSPOSE {op.source or op.outputs[0]!r}: {axes} is not a permutation of the {len(x)} axes")
    return [tuple(x[a] for a in axes)]


def transpose(program: Program, op: Op, args: list) -> np.ndarray:
    return np.transpose(args[0], [int(a) for a in args[1]])


def merged_transpose(shape, perm) -> tuple[tuple[int, ...], list[int]]:
    """The same transpose on as few axes as possible: size-1 axes dropped, and each run
    of input axes that stays consecutive and in order under perm merged into one (the
    channel shuffle (n, g, c/g, h, w) -> (n, c/g, g, h, w) becomes (g, c/g, h*w) -> (c/g,
    g, h*w)). The bytes moved are the same; only the kernel's loop nest changes."""
    rank = len(shape)
    kept = [a % rank for a in perm if shape[a % rank] != 1]
    runs: list[list[int]] = []  # in output order, each a run of consecutive input axes
    for axis in kept:
        if runs and axis == runs[-1][-1] + 1:
            runs[-1].append(axis)
        else:
            runs.append([axis])
    by_input = sorted(runs, key=lambda run: run[0])
    sizes = tuple(math.prod(shape[a] for a in run) for run in by_input)
    return (sizes, [by_input.index(run) for run in runs]) if runs else ((1,), [0])


def _merged_transpose_of(program: Program, op: Op) -> tuple[tuple[int, ...], list[int]]:
    perm = [int(a) for a in _const_input(program, op, 1).reshape(-1)]
    return merged_transpose(common.shape(program, op), perm)


def _check_transpose(program: Program, op: Op) -> None:
    shape, perm = _merged_transpose_of(program, op)
    if len(shape) > 4:
        given = [int(a) for a in _const_input(program, op, 1).reshape(-1)]
        raise common.unsupported(op, f"{op.kind} of a rank-{len(common.shape(program, op))} tensor by {given} moves "
                                     f"{len(shape)} separate axis groups, the kernel at most 4; permute fewer axes "
                                     "at a time (two transposes) or merge axes that move together with a reshape")


def _emit_transpose(site: c.Site) -> c.CodeFragment:
    shape, merged_perm = _merged_transpose_of(site.program, site.op)
    dims = c.nhwc4(shape, site)
    lead = 4 - len(shape)
    perm = list(range(lead)) + [p + lead for p in merged_perm]
    body = [f"const mcu_nn_dims input_dims = {c.dims(dims)};",
            f"const int32_t perm[4] = {{{', '.join(str(p) for p in perm)}}};",
            c.checked_call(site, "mcu_transpose_s8", [site.x, "&input_dims", "perm", site.y])]
    return c.CodeFragment([], [c.block(site, f"perm {c.const_ints(site, 1)}", body)])


# ---------------------------------------------------------------- CONCATENATION

def _concat_axis(program: Program, op: Op) -> int:
    return op.options.get("axis", 0) % len(common.shape(program, op))


def _concat_shapes(program: Program, op: Op):
    axis, first = _concat_axis(program, op), list(common.shape(program, op))
    first[axis] = sum(program.tensor(n).shape[axis] for n in op.inputs)
    return [tuple(first)]


def _check_concatenation(program: Program, op: Op) -> None:
    first = common.quant(program, op.inputs[0])
    if any(common.quant(program, n) != first for n in op.inputs[1:] + op.outputs):
        raise common.unsupported(op, f"{op.kind} inputs and output must share one scale and zero point; "
                                     "requantize the inputs first")


def _check_concatenation_kernel(program: Program, op: Op) -> None:
    _check_concatenation(program, op)
    if op.options.get("fused_activation_function", "NONE") != "NONE":
        raise common.unsupported(op, f"{op.kind} with a fused activation is not supported")


def concatenation(program: Program, op: Op, args: list) -> np.ndarray:
    _check_concatenation(program, op)
    out = np.concatenate(args, axis=op.options.get("axis", 0))
    return np.clip(out, *params.op_activation_range(program, op))


def _emit_concatenation(site: c.Site) -> c.CodeFragment:
    op, program = site.op, site.program
    y_shape = site.shape(output=True)
    axis = op.options.get("axis", 0) % len(y_shape)
    outer = int(np.prod(y_shape[:axis], dtype=np.int64))
    rows = [int(np.prod(program.tensor(n).shape[axis:], dtype=np.int64)) for n in op.inputs]
    body = [f"const int8_t *const inputs[{len(rows)}] = {{{', '.join(site.ref(n) for n in op.inputs)}}};",
            f"const int32_t row_sizes[{len(rows)}] = {{{', '.join(str(r) for r in rows)}}};",
            c.checked_call(site, "mcu_concat_s8", ["inputs", "row_sizes", str(len(rows)), str(outer), site.y])]
    return c.CodeFragment([], [c.block(site, f"axis {axis}", body)])


# ---------------------------------------------------------------- PAD

def _paddings(program: Program, op: Op) -> np.ndarray | None:
    data = _const_input(program, op, 1)
    return None if data is None else np.asarray(data, dtype=np.int64).reshape(-1, 2)


def _pad_shapes(program: Program, op: Op):
    paddings, x = _paddings(program, op), common.shape(program, op)
    if paddings is None or len(paddings) != len(x):
        return None
    return [tuple(d + int(lo) + int(hi) for d, (lo, hi) in zip(x, paddings))]


def _check_pad(program: Program, op: Op) -> None:
    _check_rank(program, op)
    paddings = _paddings(program, op)
    if paddings is None:
        raise common.unsupported(op, f"{op.kind} needs constant paddings")
    if np.any(paddings < 0):
        raise common.unsupported(op, f"{op.kind} with negative padding is not supported")


def _pad_value(program: Program, op: Op) -> int:
    """PAD pads with the output's zero point (a real 0), PADV2 with its constant input."""
    if op.kind == "PADV2":
        return int(program.tensor(op.inputs[2]).data.reshape(-1)[0])
    return common.quant(program, op.outputs[0])[1]


def _check_padv2(program: Program, op: Op) -> None:
    _check_pad(program, op)
    value = program.tensor(op.inputs[2])
    if value.size != 1 or value.dtype != program.tensor(op.inputs[0]).dtype:
        raise common.unsupported(op, "PADV2 needs one constant pad value of the input's type")


def pad(program: Program, op: Op, args: list) -> np.ndarray:
    return np.pad(args[0], np.asarray(args[1], dtype=np.int64), constant_values=_pad_value(program, op))


def folded_padding(program: Program, op: Op) -> list[int] | None:
    """[top, left, bottom, right] when this PAD pads only H and W, by >= 0 (what a
    window kernel can do by skipping out-of-bounds taps); None otherwise."""
    paddings = _paddings(program, op)
    if paddings is None or paddings.shape != (4, 2) or paddings[0].any() or paddings[3].any() or (paddings < 0).any():
        return None
    return [int(paddings[1][0]), int(paddings[2][0]), int(paddings[1][1]), int(paddings[2][1])]


def _emit_pad(site: c.Site) -> c.CodeFragment:
    shape = site.shape()
    paddings = np.asarray(c.const_ints(site, 1)).reshape(len(shape), 2)
    dims = c.nhwc4(shape, site)
    before = (0,) * (4 - len(shape)) + tuple(int(p) for p in paddings[:, 0])
    pad_value = _pad_value(site.program, site.op)
    body = [f"const mcu_nn_dims input_dims = {c.dims(dims)};",
            f"const mcu_nn_dims pad_before = {c.dims(before)};",
            f"const mcu_nn_dims output_dims = {c.dims(c.nhwc4(site.shape(output=True), site))};",
            c.checked_call(site, "mcu_pad_s8", [site.x, "&input_dims", "&pad_before", str(pad_value), "&output_dims",
                                                site.y])]
    return c.CodeFragment([], [c.block(site, f"paddings {paddings.tolist()}, value {pad_value}", body)])


register(
    OpKind("RESHAPE", _reshape_shapes, reshape, emit_reshape, inputs=(1, 2),
           tflite=TfliteForm("ReshapeOptions", {"new_shape": None}), storage="input"),
    OpKind("TRANSPOSE", _transpose_shapes, transpose, _emit_transpose, inputs=(2, 2), const_inputs=(1,),
           tflite=TfliteForm("TransposeOptions"), check=_check_transpose),
    OpKind("CONCATENATION", _concat_shapes, concatenation, _emit_concatenation, inputs=(1, -1),
           tflite=TfliteForm("ConcatenationOptions", {"axis": 0, **common.FUSED}), label="concat",
           check=_check_concatenation_kernel),
    OpKind("PAD", _pad_shapes, pad, _emit_pad, inputs=(2, 2), const_inputs=(1,), tflite=TfliteForm("PadOptions"),
           check=_check_pad, pad_value=_pad_value),
    OpKind("PADV2", _pad_shapes, pad, _emit_pad, inputs=(3, 3), const_inputs=(1, 2),
           tflite=TfliteForm("PadV2Options"), check=_check_padv2, pad_value=_pad_value),
)
