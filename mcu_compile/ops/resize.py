"""Image resizing of NHWC int8 tensors to a constant (height, width): RESIZE_NEAREST_NEIGHBOR
and RESIZE_BILINEAR, with TFLite's align_corners and half_pixel_centers. Neither rescales:
the output shares the input's scale and zero point.

Nearest neighbour picks rows and columns with TFLite Micro's float32 arithmetic, done
here at compile time: the firmware gathers with the resulting index tables (slice.py's
mcu_gather_axes_s8), no float on the device. Bilinear is TFLite Micro's integer version
(ResizeBilinearInteger: positions in 1/1024 steps, weights in 2^20), in mcu_resize_bilinear_s8."""
from __future__ import annotations

import math

import numpy as np

from ..codegen import c_text as c
from ..errors import IRError
from ..ir.program import Op, Program
from . import common
from .quant_math import round_half_away
from .registry import OpKind, TfliteForm, register
from .slice import Gather, check_same_quant, const_ints, gather_kind, where

_FIELDS = {"align_corners": False, "half_pixel_centers": False}


def _size(program: Program, op: Op) -> tuple[int, int]:
    """The output (height, width): the constant size input."""
    x = common.shape(program, op)
    size = const_ints(program, op, 1)
    if len(x) != 4 or len(size) != 2 or min(size) < 1:
        raise IRError(f"{where(op)}: needs a 4-D NHWC input and a size of two positive values; "
                      f"got the shape {list(x)} and the size {size}")
    if op.options.get("align_corners") and op.options.get("half_pixel_centers"):
        raise IRError(f"{where(op)}: align_corners and half_pixel_centers cannot both be set")
    return size[0], size[1]


def _resize_shapes(program: Program, op: Op):
    size = _size(program, op)
    n, _, _, ch = common.shape(program, op)
    return [(n, *size, ch)]


# ---------------------------------------------------------------- nearest neighbour

def nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """The input row (or column) each output one copies: TFLite's GetNearestNeighbor in float32."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    positions = (np.arange(out_size, dtype=f32) + f32(0.5 if half_pixel_centers else 0.0)) * scale
    if align_corners:  # TfLiteRound: half away from zero (exact on a float32 value widened to float64)
        picked = [int(round_half_away(float(p))) for p in positions]
    else:
        picked = [math.floor(p) for p in positions]
    index = np.minimum(picked, in_size - 1)
    return np.maximum(index, 0) if half_pixel_centers else index


def _nearest_tables(program: Program, op: Op) -> list[list[np.ndarray]]:
    n, h, w, ch = common.shape(program, op)
    corners, half = op.options.get("align_corners", False), op.options.get("half_pixel_centers", False)
    rows, cols = (nearest_indices(size, out, corners, half) for size, out in zip((h, w), _size(program, op)))
    return [[np.arange(n), rows, cols, np.arange(ch)]]


# ---------------------------------------------------------------- bilinear

def bilinear_scale(in_size: int, out_size: int, align_corners: bool) -> int:
    """in_size / out_size in 1/1024 steps, rounded (TFLite's ResizeBilinearInteger)."""
    if align_corners and out_size > 1:
        in_size, out_size = in_size - 1, out_size - 1
    return ((1 << 10) * in_size + out_size // 2) // out_size


def _positions(in_size: int, out_size: int, scale: int, half_pixel_centers: bool):
    """Per output row (column): its position in 1/1024 input steps, the input row below
    and the one above (TFLite's ComputeInterpolationValuesInteger)."""
    position = np.arange(out_size, dtype=np.int64) * scale
    if half_pixel_centers:
        position += scale // 2 - (1 << 9)
    # C's division truncates; position > -1024 (the offset is at least -512), so truncating
    # differs from flooring only for negatives, which the max() turns into 0 either way
    lower = np.maximum(position // (1 << 10), 0)
    upper = np.minimum((position + (1 << 10) - 1) // (1 << 10), in_size - 1)
    return position, lower, upper


def _bilinear_params(program: Program, op: Op) -> tuple[tuple[int, int], bool]:
    """The (height, width) scales of the kernel call and half_pixel_centers."""
    _, h, w, _ = common.shape(program, op)
    corners = op.options.get("align_corners", False)
    return (tuple(bilinear_scale(size, out, corners) for size, out in zip((h, w), _size(program, op))),
            op.options.get("half_pixel_centers", False))


def _bilinear_axes(program: Program, op: Op):
    """(position, lower, upper) for the rows and for the columns."""
    _, h, w, _ = common.shape(program, op)
    scales, half = _bilinear_params(program, op)
    return [_positions(size, out, scale, half) for size, out, scale in zip((h, w), _size(program, op), scales)]


def resize_bilinear(program: Program, op: Op, args: list) -> np.ndarray:
    x = args[0].astype(np.int64)
    (py, y0, y1), (px, x0, x1) = _bilinear_axes(program, op)
    dy = (py - (y0 << 10))[None, :, None, None]  # the upper row's weight, in 1/1024
    dx = (px - (x0 << 10))[None, None, :, None]
    rows0, rows1 = x[:, y0], x[:, y1]
    total = ((rows0[:, :, x0] * ((1 << 10) - dx) + rows0[:, :, x1] * dx) * ((1 << 10) - dy)
             + (rows1[:, :, x0] * ((1 << 10) - dx) + rows1[:, :, x1] * dx) * dy)
    # + 2^19 away from zero (towards zero when 0), then a division truncating toward zero
    total = total + np.where(total > 0, 1 << 19, -(1 << 19))
    return np.where(total >= 0, total >> 20, -((-total) >> 20))


def _check_bilinear(program: Program, op: Op) -> None:
    check_same_quant(program, op)
    _, h, w, _ = common.shape(program, op)
    for (_, lower, _), size in zip(_bilinear_axes(program, op), (h, w)):
        if lower.max() >= size:
            raise common.unsupported(op, f"{op.kind} upscaling {size} to {lower.size} entries is not supported: "
                                         "TFLite Micro's integer positions overshoot the input there")


def _emit_bilinear(site: c.Site) -> c.CodeFragment:
    (scale_h, scale_w), half = _bilinear_params(site.program, site.op)
    body = [f"const mcu_nn_dims input_dims = {c.dims(site.shape())};",
            f"const mcu_nn_dims output_dims = {c.dims(site.shape(output=True))};",
            c.named_ints([("scale_h", scale_h), ("scale_w", scale_w), ("half_pixel_centers", int(half))]),
            c.checked_call(site, "mcu_resize_bilinear_s8", [site.x, "&input_dims", "scale_h", "scale_w",
                                                            "half_pixel_centers", "&output_dims", site.y])]
    o = site.op.options
    flags = [name for name in _FIELDS if o.get(name)]
    return c.CodeFragment([], [c.block(site, ", ".join(flags), body)])


register(
    gather_kind("RESIZE_NEAREST_NEIGHBOR", _resize_shapes, Gather(_nearest_tables), inputs=(2, 2),
                const_inputs=(1,), label="nearest", tflite=TfliteForm("ResizeNearestNeighborOptions", _FIELDS)),
    OpKind("RESIZE_BILINEAR", _resize_shapes, resize_bilinear, _emit_bilinear, inputs=(2, 2), const_inputs=(1,),
           check=_check_bilinear, label="bilinear", tflite=TfliteForm("ResizeBilinearOptions", _FIELDS)),
)
