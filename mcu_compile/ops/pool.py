"""Pooling: MAX_POOL_2D and AVERAGE_POOL_2D (NHWC windows, SAME/VALID, padding excluded
from the average as in TFLite). The reductions (MEAN...) are in reduce.py."""
from __future__ import annotations

import numpy as np

from ..codegen import c_text as c
from ..ir.program import Op, Program
from . import common, params
from .registry import OpKind, TfliteForm, register

_POOL_FIELDS = {**common.WINDOW, "filter_height": 1, "filter_width": 1, **common.FUSED}


def _kernel(op: Op) -> tuple[int, int]:
    return op.options.get("filter_height", 1), op.options.get("filter_width", 1)


def _pool_shapes(program: Program, op: Op):
    n, _, _, ch = common.shape(program, op)
    return [(n, *common.window_output_hw(program, op, _kernel(op)), ch)]


def _avg_scratch(program: Program, op: Op) -> int:
    return common.shape(program, op)[-1] * 4  # one int32 sum per channel


# ---------------------------------------------------------------- reference kernels

def max_pool_2d(program: Program, op: Op, args: list) -> np.ndarray:
    # Padding below int8 range never wins the max: TFLite only visits in-bounds taps.
    patches = common.window_patches(args[0].astype(np.int16), op, _kernel(op), -129)
    return np.clip(np.maximum.reduce(patches), *params.op_activation_range(program, op))


def average_pool_2d(program: Program, op: Op, args: list) -> np.ndarray:
    x = args[0].astype(np.int64)
    sums = common.window_patches(x, op, _kernel(op), 0)
    ones = common.window_patches(np.ones_like(x[..., :1]), op, _kernel(op), 0)
    total, count = sum(sums), sum(ones)  # count: in-bounds taps only
    # Round half away from zero with C's truncating division.
    avg = np.where(total > 0, (total + count // 2) // count, -((count // 2 - total) // count))
    return np.clip(avg, *params.op_activation_range(program, op))


# ---------------------------------------------------------------- C emitters

def _pool(site: c.Site, function: str, ctx: str) -> c.CodeFragment:
    o = site.op.options
    kernel = _kernel(site.op)
    pads = c.padding(site, kernel)
    lo, hi = c.activation(site)
    body = [
        ctx,
        "const mcu_nn_pool_params pool_params = {"
        f".stride = {{.w = {o.get('stride_w', 1)}, .h = {o.get('stride_h', 1)}}},\n"
        f"    .padding = {{.w = {pads[1]}, .h = {pads[0]}}}, .activation = {{.min = {lo}, .max = {hi}}}}};",
        f"const mcu_nn_dims input_dims = {c.dims(site.shape())};",
        f"const mcu_nn_dims filter_dims = {c.dims((1, *kernel, 1))};",
        f"const mcu_nn_dims output_dims = {c.dims(site.shape(output=True))};",
        c.checked_call(site, function, ["&ctx", "&pool_params", "&input_dims", site.x, "&filter_dims", "&output_dims",
                                        site.y]),
    ]
    return c.CodeFragment([], [c.block(site, c.window_text(site, kernel, pads) + c.activation_text(site), body)])


def _emit_max_pool_2d(site: c.Site) -> c.CodeFragment:
    return _pool(site, "mcu_max_pool_s8", "const mcu_nn_context ctx = {NULL, 0};")


def _emit_average_pool_2d(site: c.Site) -> c.CodeFragment:
    size = _avg_scratch(site.program, site.op)
    return _pool(site, "mcu_avgpool_s8", f"const mcu_nn_context ctx = {{{site.scratch}, {size}}};")


register(
    OpKind("MAX_POOL_2D", _pool_shapes, max_pool_2d, _emit_max_pool_2d,
           tflite=TfliteForm("Pool2DOptions", _POOL_FIELDS), label="maxpool",
           folded_pad_value=lambda program, op: params.INT8_MIN),
    OpKind("AVERAGE_POOL_2D", _pool_shapes, average_pool_2d, _emit_average_pool_2d,
           tflite=TfliteForm("Pool2DOptions", _POOL_FIELDS), scratch_bytes=_avg_scratch, label="avgpool"),
)
