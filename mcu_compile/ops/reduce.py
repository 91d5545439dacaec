"""Reductions over any set of axes (TFLite's ReducerOptions ops, axes a constant input):
MEAN and SUM (int32 sums of the inputs less their zero point, rescaled to the output;
MEAN folds the division by the count into the multiplier), REDUCE_MAX and REDUCE_MIN
(the output shares the input's quantization). keep_dims only shapes the output.

The firmware runs mcu_reduce_s8 over the input with its axes merged: neighbours both
reduced or both kept become one axis, size-1 axes go."""
from __future__ import annotations

import numpy as np

from ..codegen import c_text as c
from ..errors import IRError
from ..ir.program import Op, Program
from . import common, params
from .quant_math import multiply_by_quantized_multiplier as mbqm
from .registry import OpKind, TfliteForm, register
from .slice import check_same_quant, const_ints, where

MAX_KERNEL_AXES = 8  # MCU_REDUCE_MAX_AXES in mcu_reduce_s8.c
_MODES = {"MEAN": "MCU_REDUCE_SUM", "SUM": "MCU_REDUCE_SUM", "REDUCE_MAX": "MCU_REDUCE_MAX",
          "REDUCE_MIN": "MCU_REDUCE_MIN"}


def _axes(program: Program, op: Op) -> tuple[int, ...]:
    """The reduced axes, negative ones wrapped, each once (TFLite's ResolveAxis)."""
    rank = len(common.shape(program, op))
    axes = const_ints(program, op, 1)
    if any(not -rank <= a < rank for a in axes):
        raise IRError(f"{where(op)}: axes {axes} outside the input's {rank} axes")
    return tuple(sorted({a % rank for a in axes}))


def _reduce_shapes(program: Program, op: Op):
    axes, x = _axes(program, op), common.shape(program, op)
    if op.options.get("keep_dims"):
        return [tuple(1 if i in axes else d for i, d in enumerate(x))]
    return [tuple(d for i, d in enumerate(x) if i not in axes)]


def mean_multiplier(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """Fold MEAN's division by `count` into the s_in/s_out multiplier (TFLite's integer MEAN).

    The shift is capped so the multiplier keeps fitting in 32 bits and the total
    shift stays >= -31, at the price of a little precision.
    """
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << extra) // count, shift - extra


def _sum_rescale(program: Program, op: Op) -> tuple[int, int, int, int]:
    """(sum offset, multiplier, shift, output offset) of MEAN and SUM: output =
    clamp(output offset + MBQM(sum of the inputs + sum offset, multiplier, shift))."""
    x = common.shape(program, op)
    count = int(np.prod([x[a] for a in _axes(program, op)], dtype=np.int64))
    p = params.requant_params(program, op)
    multiplier, shift = p.multiplier, p.shift
    if op.kind == "MEAN":
        multiplier, shift = mean_multiplier(multiplier, shift, count)
    return p.input_offset * count, multiplier, shift, p.output_offset


def mean_or_sum(program: Program, op: Op, args: list) -> np.ndarray:
    sum_offset, multiplier, shift, output_offset = _sum_rescale(program, op)
    total = args[0].astype(np.int64).sum(axis=_axes(program, op)) + sum_offset
    return np.clip(mbqm(total, multiplier, shift) + output_offset, params.INT8_MIN, params.INT8_MAX)


def max_or_min(program: Program, op: Op, args: list) -> np.ndarray:
    check_same_quant(program, op)  # TFLite Micro refuses other quantizations
    return (np.max if op.kind == "REDUCE_MAX" else np.min)(args[0], axis=_axes(program, op))


def _kernel_axes(program: Program, op: Op) -> tuple[list[int], list[int]]:
    """The input's axes merged for mcu_reduce_s8: (sizes, each one's stride in the output,
    0 where reduced)."""
    axes, sizes, kept = _axes(program, op), [], []
    for i, d in enumerate(common.shape(program, op)):
        if d > 1 and sizes and kept[-1] == (i not in axes):
            sizes[-1] *= d
        elif d > 1:
            sizes.append(d)
            kept.append(i not in axes)
    sizes, kept = sizes or [1], kept or [True]
    strides, stride = [], 1
    for size, keep in zip(reversed(sizes), reversed(kept)):
        strides.insert(0, stride if keep else 0)
        stride *= size if keep else 1
    return sizes, strides


def _scratch(program: Program, op: Op) -> int:
    return 4 * program.tensor(op.outputs[0]).size  # one int32 accumulator per output value


def _check(program: Program, op: Op) -> None:
    if op.kind in ("REDUCE_MAX", "REDUCE_MIN"):
        check_same_quant(program, op)
    axes = len(_kernel_axes(program, op)[0])
    if axes > MAX_KERNEL_AXES:
        raise common.unsupported(op, f"{op.kind} alternating over {axes} axes is not supported "
                                     f"(at most {MAX_KERNEL_AXES} once neighbours are merged)")


def _emit(site: c.Site) -> c.CodeFragment:
    op = site.op
    sizes, strides = _kernel_axes(site.program, op)
    n = len(sizes)
    body = [f"const mcu_nn_context ctx = {{{site.scratch}, {_scratch(site.program, op)}}};",
            f"const int32_t sizes[{n}] = {{{', '.join(map(str, sizes))}}};",
            f"const int32_t out_strides[{n}] = {{{', '.join(map(str, strides))}}};"]
    quant = "NULL"
    if _MODES[op.kind] == "MCU_REDUCE_SUM":
        body.append("const mcu_reduce_quant quant = {{{}, {}, {}, {}}};".format(*_sum_rescale(site.program, op)))
        quant = "&quant"
    body.append(c.checked_call(site, "mcu_reduce_s8", ["&ctx", site.x, "sizes", "out_strides", str(n), _MODES[op.kind],
                                                       quant, str(site.program.tensor(op.outputs[0]).size), site.y]))
    summary = f"axes {list(_axes(site.program, op))}" + (", keep_dims" if op.options.get("keep_dims") else "")
    return c.CodeFragment([], [c.block(site, summary, body)])


def _kind(name: str, reference) -> OpKind:
    return OpKind(name, _reduce_shapes, reference, _emit, inputs=(2, 2), const_inputs=(1,), check=_check,
                  scratch_bytes=_scratch, tflite=TfliteForm("ReducerOptions", {"keep_dims": False}))


register(_kind("MEAN", mean_or_sum), _kind("SUM", mean_or_sum), _kind("REDUCE_MAX", max_or_min),
         _kind("REDUCE_MIN", max_or_min))
