"""Derived integer parameters of each Edge op, with TFLite's exact formulas.

The host reference interpreter and the C code generator both take their
parameters from here, so firmware and reference cannot drift apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
        raise ValueError(f"padding must be SAME or VALID, not {padding!r}")
    total = max((out - 1) * stride + effective - in_size, 0)
    return Window(out, total // 2)


def quantize_value(real: float, quant: Quant) -> int:
    """zero_point + round(real / scale), dividing in float32 as TFLite's kernels do."""
    ratio = np.float32(real) / np.float32(quant.scale[0])
    return int(quant.zero_point[0]) + int(round_half_away(float(ratio)))


def activation_range(fused: str, quant: Quant) -> tuple[int, int]:
    """Clamp bounds of a fused activation in the output's int8 domain."""
    lo, hi = INT8_MIN, INT8_MAX
    if fused == "RELU":
        lo = max(lo, quantize_value(0.0, quant))
    elif fused == "RELU6":
        lo, hi = max(lo, quantize_value(0.0, quant)), min(hi, quantize_value(6.0, quant))
    elif fused == "RELU_N1_TO_1":
        lo, hi = max(lo, quantize_value(-1.0, quant)), min(hi, quantize_value(1.0, quant))
    elif fused != "NONE":
        raise ValueError(f"unsupported fused activation {fused!r}")
    return lo, hi


def op_activation_range(program: Program, op: Op) -> tuple[int, int]:
    out_q = program.tensor(op.outputs[0]).quant
    return activation_range(op.options.get("fused_activation_function", "NONE"), out_q)


def per_channel_requant(program: Program, op: Op) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier[], shift[]) per output channel of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED.

    real = s_input * s_weight[c] / s_output. A per-tensor weight scale is broadcast.
    """
    s_in = float(program.tensor(op.inputs[0]).quant.scale[0])
    weights = program.tensor(op.inputs[1])
    s_out = float(program.tensor(op.outputs[0]).quant.scale[0])
    channels = weights.shape[-1] if op.kind == "DEPTHWISE_CONV_2D" else weights.shape[0]
    w_scales = np.broadcast_to(weights.quant.scale, (channels,))
    pairs = [quantize_multiplier(s_in * float(s_w) / s_out) for s_w in w_scales]
    return (np.array([m for m, _ in pairs], dtype=np.int64),
            np.array([s for _, s in pairs], dtype=np.int64))


@dataclass(frozen=True)
class AddParams:
    left_shift: int
    input1_offset: int
    input1_multiplier: int
    input1_shift: int
    input2_offset: int
    input2_multiplier: int
    input2_shift: int
    output_offset: int
    output_multiplier: int
    output_shift: int


def add_params(program: Program, op: Op) -> AddParams:
    """TFLite int8 ADD: both inputs rescaled to 2*max(s1, s2) with 20 bits of headroom."""
    q1, q2 = (program.tensor(n).quant for n in op.inputs[:2])
    qo = program.tensor(op.outputs[0]).quant
    s1, s2, so = float(q1.scale[0]), float(q2.scale[0]), float(qo.scale[0])
    left_shift = 20
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return AddParams(left_shift, -int(q1.zero_point[0]), m1, sh1, -int(q2.zero_point[0]), m2, sh2,
                     int(qo.zero_point[0]), mo, sho)


@dataclass(frozen=True)
class MulParams:
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int


def mul_params(program: Program, op: Op) -> MulParams:
    q1, q2 = (program.tensor(n).quant for n in op.inputs[:2])
    qo = program.tensor(op.outputs[0]).quant
    m, s = quantize_multiplier(float(q1.scale[0]) * float(q2.scale[0]) / float(qo.scale[0]))
    return MulParams(-int(q1.zero_point[0]), -int(q2.zero_point[0]), int(qo.zero_point[0]), m, s)


@dataclass(frozen=True)
class RequantParams:
    """Per-tensor rescale of RELU/RELU6 (output = zp_o + MBQM(x - zp_i, m, s))."""

    input_offset: int
    output_offset: int
    multiplier: int
    shift: int


def requant_params(program: Program, op: Op) -> RequantParams:
    qi = program.tensor(op.inputs[0]).quant
    qo = program.tensor(op.outputs[0]).quant
    m, s = quantize_multiplier(float(qi.scale[0]) / float(qo.scale[0]))
    return RequantParams(-int(qi.zero_point[0]), int(qo.zero_point[0]), m, s)


def relu6_range(program: Program, op: Op) -> tuple[int, int]:
    """Standalone int8 RELU6 clamps in the input's domain, without rescaling (as TFLite Micro).

    The output must therefore share the input's scale and zero point.
    """
    qi = program.tensor(op.inputs[0]).quant
    six = min(max(quantize_value(6.0, qi), INT8_MIN), INT8_MAX)
    return int(qi.zero_point[0]), six


def mean_multiplier(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """Fold MEAN's division by `count` into the s_in/s_out multiplier (TFLite's integer MEAN).

    The shift is capped so the multiplier keeps fitting in 32 bits and the total
    shift stays >= -31, at the price of a little precision.
    """
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << extra) // count, shift - extra


SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5


@dataclass(frozen=True)
class SoftmaxParams:
    input_multiplier: int
    input_left_shift: int
    diff_min: int


def softmax_params(program: Program, op: Op) -> SoftmaxParams:
    """TFLite PreprocessSoftmaxScaling + CalculateInputRadius for int8 softmax."""
    beta = float(op.options.get("beta", 1.0))
    s_in = float(program.tensor(op.inputs[0]).quant.scale[0])
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(beta * s_in * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    max_rescaled = ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift)
    return SoftmaxParams(multiplier, left_shift, -int(math.floor(max_rescaled)))
