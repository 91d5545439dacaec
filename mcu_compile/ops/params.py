"""Derived integer parameters shared by several op families, with TFLite's exact formulas.

An op family's own parameters (the adder's, softmax's...) live in its module; both its
reference kernel and its C emitter take them from there, so they cannot drift apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir.program import Op, Program, Quant
from .quant_math import quantize_multiplier, round_half_away

INT8_MIN, INT8_MAX = -128, 127


@dataclass(frozen=True)
class Window:
    """One spatial axis of a sliding-window op."""

    out: int
    pad_before: int


def window(in_size: int, kernel: int, stride: int, dilation: int, padding: str) -> Window:
    """Output size and leading padding, as TFLite computes them for SAME/VALID."""
    effective = (kernel - 1) * dilation + 1
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    elif padding == "VALID":
        out = (in_size - effective + stride) // stride
    else:
        raise UnsupportedOpError(f"padding must be SAME or VALID, not {padding!r}")
    total = max((out - 1) * stride + effective - in_size, 0)
    return Window(out, total // 2)


def quantize_value(real: float, quant: Quant) -> int:
    """zero_point + round(real / scale), dividing in float32 as TFLite's kernels do."""
    ratio = np.float32(real) / np.float32(quant.scale[0])
    return int(quant.zero_point[0]) + int(round_half_away(float(ratio)))


# TFLite's fused activation functions: the real interval each clamps its op's output to
FUSED_ACTIVATION_BOUNDS: dict[str, tuple[float, float]] = {
    "NONE": (-math.inf, math.inf), "RELU": (0.0, math.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def activation_range(fused: str, quant: Quant) -> tuple[int, int]:
    """Clamp bounds of a fused activation in the output's int8 domain."""
    if fused not in FUSED_ACTIVATION_BOUNDS:
        raise UnsupportedOpError(f"unsupported fused activation {fused!r}; "
                                 f"use one of {', '.join(FUSED_ACTIVATION_BOUNDS)}")
    real_lo, real_hi = FUSED_ACTIVATION_BOUNDS[fused]
    lo = INT8_MIN if real_lo == -math.inf else max(INT8_MIN, quantize_value(real_lo, quant))
    hi = INT8_MAX if real_hi == math.inf else min(INT8_MAX, quantize_value(real_hi, quant))
    return lo, hi


def op_activation_range(program: Program, op: Op) -> tuple[int, int]:
    out_q = program.tensor(op.outputs[0]).quant
    return activation_range(op.options.get("fused_activation_function", "NONE"), out_q)


def per_channel_requant(program: Program, op: Op, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier[], shift[]) per output channel of a weighted op (conv, depthwise, FC).

    real = s_input * s_weight[c] / s_output. A per-tensor weight scale is broadcast.
    """
    s_in = float(program.tensor(op.inputs[0]).quant.scale[0])
    weights = program.tensor(op.inputs[1])
    s_out = float(program.tensor(op.outputs[0]).quant.scale[0])
    w_scales = np.broadcast_to(weights.quant.scale, (channels,))
    pairs = [quantize_multiplier(s_in * float(s_w) / s_out) for s_w in w_scales]
    return (np.array([m for m, _ in pairs], dtype=np.int64),
            np.array([s for _, s in pairs], dtype=np.int64))


@dataclass(frozen=True)
class RequantParams:
    """Per-tensor rescale of a standalone activation or a requantization (output = zp_o + MBQM(x - zp_i, m, s))."""

    input_offset: int
    output_offset: int
    multiplier: int
    shift: int


def requant_params(program: Program, op: Op) -> RequantParams:
    qi = program.tensor(op.inputs[0]).quant
    qo = program.tensor(op.outputs[0]).quant
    m, s = quantize_multiplier(float(qi.scale[0]) / float(qo.scale[0]))
    return RequantParams(-int(qi.zero_point[0]), int(qo.zero_point[0]), m, s)
