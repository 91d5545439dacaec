"""What several op families' reference kernels and shape rules share: tensor
quantization lookups, requantization of int32 accumulators, sliding windows."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedOpError
from ..ir.program import Op, Program
from . import params
from .quant_math import multiply_by_quantized_multiplier as mbqm

# fused_activation_function: the clamp a weighted, elementwise or pooling op applies to its output
FUSED = {"fused_activation_function": "NONE"}
WINDOW = {"padding": "VALID", "stride_h": 1, "stride_w": 1}


def unsupported(op: Op, why: str) -> UnsupportedOpError:
    """The error for an op variant no kernel takes, naming where the op came from."""
    return UnsupportedOpError(f"{op.source or op.kind}: {why}")


def quant(program: Program, name: str) -> tuple[float, int]:
    """(scale, zero point) of a per-tensor quantized tensor."""
    q = program.tensor(name).quant
    return float(q.scale[0]), int(q.zero_point[0])


def shape(program: Program, op: Op, index: int = 0) -> tuple[int, ...]:
    return program.tensor(op.inputs[index]).shape


def same_shape(program: Program, op: Op) -> list[tuple[int, ...]]:
    """Shape rule of ops whose output has their first input's shape."""
    return [shape(program, op)]


def requantize(acc: np.ndarray, multiplier, shift, program: Program, op: Op) -> np.ndarray:
    """int32 accumulators (channels last) -> int8 with the output's zero point and clamp."""
    _, zp_out = quant(program, op.outputs[0])
    lo, hi = params.op_activation_range(program, op)
    return np.clip(mbqm(acc, multiplier, shift) + zp_out, lo, hi)


def rescale(x: np.ndarray, p: params.RequantParams) -> np.ndarray:
    return mbqm(x.astype(np.int64) + p.input_offset, p.multiplier, p.shift) + p.output_offset


def window_options(op: Op) -> tuple[tuple[int, int], tuple[int, int], str]:
    o = op.options
    return ((o.get("stride_h", 1), o.get("stride_w", 1)),
            (o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)), o.get("padding", "VALID"))


def window_padding(program: Program, op: Op, kernel_hw: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) padding of a sliding-window op: its explicit_padding
    (a folded pad op, or a strip's: passes/fuse.py, passes/patch.py), else TFLite's for
    SAME/VALID."""
    explicit = op.options.get("explicit_padding")
    if explicit:  # [top, left, bottom, right]
        return (explicit[0], explicit[2]), (explicit[1], explicit[3])
    strides, dilations, padding = window_options(op)
    _, h, w, _ = shape(program, op)
    return tuple(axis_window(size, k, s, d, padding)[1]
                 for size, k, s, d in zip((h, w), kernel_hw, strides, dilations))


def window_output_hw(program: Program, op: Op, kernel_hw: tuple[int, int]) -> tuple[int, int]:
    """Output height and width of a sliding-window op (SAME/VALID, or padding folded in)."""
    strides, dilations, padding = window_options(op)
    _, h, w, _ = shape(program, op)
    explicit = op.options.get("explicit_padding")
    if explicit:  # [top, left, bottom, right] of a pad op folded into a VALID window
        h, w = h + explicit[0] + explicit[2], w + explicit[1] + explicit[3]
    return tuple(params.window(size, k, s, d, padding).out
                 for size, k, s, d in zip((h, w), kernel_hw, strides, dilations))


def window_patches(x: np.ndarray, op: Op, kernel_hw: tuple[int, int], pad_value) -> list[np.ndarray]:
    """One [N, OH, OW, C] view of the padded NHWC input per kernel tap (row-major taps)."""
    strides, dilations, padding = window_options(op)
    explicit = op.options.get("explicit_padding")
    if explicit:  # [top, left, bottom, right]: pad as given, then a VALID window
        x = np.pad(x, ((0, 0), (explicit[0], explicit[2]), (explicit[1], explicit[3]), (0, 0)),
                   constant_values=pad_value)
    axes = [axis_window(x.shape[1 + i], kernel_hw[i], strides[i], dilations[i], padding)
            for i in range(2)]
    xp = np.pad(x, ((0, 0), axes[0][1], axes[1][1], (0, 0)), constant_values=pad_value)
    (oh, _), (ow, _) = axes
    (sh, sw), (dh, dw) = strides, dilations
    return [xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            for i in range(kernel_hw[0]) for j in range(kernel_hw[1])]


def axis_window(size: int, kernel: int, stride: int, dilation: int,
                 padding: str) -> tuple[int, tuple[int, int]]:
    """(output size, (pad before, pad after)) of one spatial axis."""
    w = params.window(size, kernel, stride, dilation, padding)
    span = (w.out - 1) * stride + (kernel - 1) * dilation + 1
    return w.out, (w.pad_before, max(span - size - w.pad_before, 0))


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matmul through float64 BLAS: |products| < 2**16, so sums stay far below 2**53."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
