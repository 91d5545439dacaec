"""Host reference interpreter: runs an Edge program in numpy, bit-exact with TFLite Micro.

Each kernel follows the integer arithmetic of TFLite Micro's reference kernels
(tensorflow/lite/kernels/internal/reference), taking its parameters from op_params,
so the firmware, the reference and TFLite Micro agree byte for byte.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ops import params as op_params
from ..errors import CompileError, InputError, UnsupportedOpError
from ..ir.program import Op, Program
from ..ops.quant_math import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier as mbqm,
                         rounding_divide_by_pot as rdbp,
                         saturating_rounding_doubling_high_mul as srdhm)

Kernel = Callable[[Program, Op, list], np.ndarray]


def run(program: Program, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run the program on one set of inputs; returns its outputs in program order."""
    values = run_with_intermediates(program, inputs)
    return [values[name] for name in program.outputs]


def run_with_intermediates(program: Program, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Run the program; returns every activation tensor (inputs included) by name."""
    values = dict(zip(program.inputs, _checked_inputs(program, inputs)))
    for op in program.ops:
        kernel = KERNELS.get(op.kind)
        if kernel is None:
            raise UnsupportedOpError(f"{op.source or op.kind}: the reference interpreter has no "
                                     f"{op.kind} kernel; supported: {', '.join(KERNELS)}")
        args = [_value(program, values, name, op) for name in op.inputs]
        out = program.tensor(op.outputs[0])
        values[out.name] = np.asarray(kernel(program, op, args)).astype(out.dtype).reshape(out.shape)
    return values


def _checked_inputs(program: Program, inputs: list[np.ndarray]) -> list[np.ndarray]:
    if len(inputs) != len(program.inputs):
        raise InputError(f"the model takes {len(program.inputs)} input(s), got {len(inputs)}; "
                         "pass one array per model input")
    checked = []
    for name, x in zip(program.inputs, inputs):
        t, x = program.tensor(name), np.asarray(x)
        if x.shape != t.shape or x.dtype != np.dtype(t.dtype):
            raise InputError(f"input {name!r}: expected {t.dtype} array of shape {t.shape}, "
                             f"got {x.dtype} {x.shape}; quantize and reshape the input to match")
        checked.append(x)
    return checked


def _value(program: Program, values: dict, name: str, op: Op):
    if not name:
        return None
    t = program.tensor(name)
    if t.is_const:
        return t.data
    if name not in values:
        raise CompileError(f"{op.kind} reads tensor {name!r} before any op produces it; "
                           "the program's ops are not in execution order")
    return values[name]


def _quant(program: Program, name: str) -> tuple[float, int]:
    q = program.tensor(name).quant
    return float(q.scale[0]), int(q.zero_point[0])


def _requantize(acc: np.ndarray, multiplier, shift, program: Program, op: Op) -> np.ndarray:
    """int32 accumulators (channels last) -> int8 with the output's zero point and clamp."""
    _, zp_out = _quant(program, op.outputs[0])
    lo, hi = op_params.op_activation_range(program, op)
    return np.clip(mbqm(acc, multiplier, shift) + zp_out, lo, hi)


# ---------------------------------------------------------------- sliding windows

def _window_patches(x: np.ndarray, op: Op, kernel_hw: tuple[int, int],
                    pad_value) -> list[np.ndarray]:
    """One [N, OH, OW, C] view of the padded NHWC input per kernel tap (row-major taps)."""
    o = op.options
    padding = o.get("padding", "VALID")
    strides = o.get("stride_h", 1), o.get("stride_w", 1)
    dilations = o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
    axes = [_axis_window(x.shape[1 + i], kernel_hw[i], strides[i], dilations[i], padding)
            for i in range(2)]
    xp = np.pad(x, ((0, 0), axes[0][1], axes[1][1], (0, 0)), constant_values=pad_value)
    (oh, _), (ow, _) = axes
    (sh, sw), (dh, dw) = strides, dilations
    return [xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
            for i in range(kernel_hw[0]) for j in range(kernel_hw[1])]


def _axis_window(size: int, kernel: int, stride: int, dilation: int,
                 padding: str) -> tuple[int, tuple[int, int]]:
    """(output size, (pad before, pad after)) of one spatial axis."""
    w = op_params.window(size, kernel, stride, dilation, padding)
    span = (w.out - 1) * stride + (kernel - 1) * dilation + 1
    return w.out, (w.pad_before, max(span - size - w.pad_before, 0))


def _int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matmul through float64 BLAS: |products| < 2**16, so sums stay far below 2**53."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def _bias(args: list) -> np.ndarray | int:
    return args[2].astype(np.int64) if len(args) > 2 and args[2] is not None else 0


# ---------------------------------------------------------------- kernels

def conv_2d(program: Program, op: Op, args: list) -> np.ndarray:
    x, w = args[0], args[1]
    _, zp_in = _quant(program, op.inputs[0])
    if w.shape[3] != x.shape[3]:
        raise UnsupportedOpError(f"{op.source or op.kind}: grouped CONV_2D (input channels "
                                 f"{x.shape[3]}, filter {w.shape[3]}) is not supported")
    # Zero padding after removing the zero point adds nothing, as TFLite skips out-of-bounds taps.
    patches = _window_patches(x.astype(np.int64) - zp_in, op, w.shape[1:3], 0)
    cols = np.concatenate(patches, axis=-1)  # [N, OH, OW, KH*KW*C], tap-major like OHWI
    acc = _int_matmul(cols, w.reshape(w.shape[0], -1).T) + _bias(args)
    return _requantize(acc, *op_params.per_channel_requant(program, op), program, op)


def depthwise_conv_2d(program: Program, op: Op, args: list) -> np.ndarray:
    x, w = args[0], args[1]
    _, zp_in = _quant(program, op.inputs[0])
    multiplier = w.shape[3] // x.shape[3]  # as TFLite, trust the shapes over depth_multiplier
    # Output channel c*M + m reads input channel c.
    xr = np.repeat(x.astype(np.int64) - zp_in, multiplier, axis=-1)
    patches = _window_patches(xr, op, w.shape[1:3], 0)
    taps = w.reshape(-1, w.shape[3]).astype(np.int64)
    acc = sum(p * tap for p, tap in zip(patches, taps)) + _bias(args)
    return _requantize(acc, *op_params.per_channel_requant(program, op), program, op)


def fully_connected(program: Program, op: Op, args: list) -> np.ndarray:
    x, w = args[0], args[1]
    _, zp_in = _quant(program, op.inputs[0])
    w_zp = program.tensor(op.inputs[1]).quant.zero_point
    wz = w.astype(np.int64) - (w_zp[:, None] if w_zp.size > 1 else w_zp[0])
    acc = _int_matmul(x.reshape(-1, w.shape[1]).astype(np.int64) - zp_in, wz.T) + _bias(args)
    return _requantize(acc, *op_params.per_channel_requant(program, op), program, op)


def add(program: Program, op: Op, args: list) -> np.ndarray:
    p = op_params.add_params(program, op)
    a = (args[0].astype(np.int64) + p.input1_offset) << p.left_shift
    b = (args[1].astype(np.int64) + p.input2_offset) << p.left_shift
    total = (_smaller_than_one(a, p.input1_multiplier, p.input1_shift)
             + _smaller_than_one(b, p.input2_multiplier, p.input2_shift))
    out = _smaller_than_one(total, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, *op_params.op_activation_range(program, op))


def _smaller_than_one(x, multiplier: int, shift: int) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0)."""
    return rdbp(srdhm(x, multiplier), -shift)


def mul(program: Program, op: Op, args: list) -> np.ndarray:
    p = op_params.mul_params(program, op)
    a = args[0].astype(np.int64) + p.input1_offset
    prod = a * (args[1].astype(np.int64) + p.input2_offset)
    out = mbqm(prod, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, *op_params.op_activation_range(program, op))


def _pool_kernel(op: Op) -> tuple[int, int]:
    return op.options.get("filter_height", 1), op.options.get("filter_width", 1)


def max_pool_2d(program: Program, op: Op, args: list) -> np.ndarray:
    # Padding below int8 range never wins the max: TFLite only visits in-bounds taps.
    patches = _window_patches(args[0].astype(np.int16), op, _pool_kernel(op), -129)
    return np.clip(np.maximum.reduce(patches), *op_params.op_activation_range(program, op))


def average_pool_2d(program: Program, op: Op, args: list) -> np.ndarray:
    x = args[0].astype(np.int64)
    sums = _window_patches(x, op, _pool_kernel(op), 0)
    ones = _window_patches(np.ones_like(x[..., :1]), op, _pool_kernel(op), 0)
    total, count = sum(sums), sum(ones)  # count: in-bounds taps only
    # Round half away from zero with C's truncating division.
    avg = np.where(total > 0, (total + count // 2) // count, -((count // 2 - total) // count))
    return np.clip(avg, *op_params.op_activation_range(program, op))


def reshape(program: Program, op: Op, args: list) -> np.ndarray:
    return args[0].reshape(program.tensor(op.outputs[0]).shape)


def transpose(program: Program, op: Op, args: list) -> np.ndarray:
    return np.transpose(args[0], [int(a) for a in args[1]])


def concatenation(program: Program, op: Op, args: list) -> np.ndarray:
    first = _quant(program, op.inputs[0])
    if any(_quant(program, n) != first for n in op.inputs[1:] + op.outputs):
        raise UnsupportedOpError(f"{op.source or op.kind}: CONCATENATION inputs and output must share "
                                 "one scale and zero point; requantize the inputs first")
    out = np.concatenate(args, axis=op.options.get("axis", 0))
    return np.clip(out, *op_params.op_activation_range(program, op))


def pad(program: Program, op: Op, args: list) -> np.ndarray:
    _, zp_out = _quant(program, op.outputs[0])
    return np.pad(args[0], np.asarray(args[1], dtype=np.int64), constant_values=zp_out)


def _rescale(x: np.ndarray, p: op_params.RequantParams) -> np.ndarray:
    return mbqm(x.astype(np.int64) + p.input_offset, p.multiplier, p.shift) + p.output_offset


def relu(program: Program, op: Op, args: list) -> np.ndarray:
    p = op_params.requant_params(program, op)
    return np.clip(_rescale(args[0], p), max(p.output_offset, op_params.INT8_MIN), op_params.INT8_MAX)


def relu6(program: Program, op: Op, args: list) -> np.ndarray:
    return np.clip(args[0], *op_params.relu6_range(program, op))


def mean(program: Program, op: Op, args: list) -> np.ndarray:
    x = args[0]
    axes = tuple(sorted({int(a) % x.ndim for a in np.atleast_1d(args[1])}))
    count = int(np.prod([x.shape[a] for a in axes]))
    p = op_params.requant_params(program, op)
    total = (x.astype(np.int64) + p.input_offset).sum(axis=axes)
    multiplier, shift = op_params.mean_multiplier(p.multiplier, p.shift, count)
    out = mbqm(total, multiplier, shift) + p.output_offset
    return np.clip(out, op_params.INT8_MIN, op_params.INT8_MAX)


def quantize(program: Program, op: Op, args: list) -> np.ndarray:
    x = args[0]
    s_out, zp_out = _quant(program, op.outputs[0])
    if x.dtype == np.float32:
        # float32 division, then round half away from zero (TfLiteRound) done exactly in float64.
        ratio = (x / np.float32(s_out)).astype(np.float64)
        q = np.copysign(np.floor(np.abs(ratio) + 0.5), ratio)
        return np.clip(q.astype(np.int64) + zp_out, op_params.INT8_MIN, op_params.INT8_MAX)
    return np.clip(_rescale(x, op_params.requant_params(program, op)),
                   op_params.INT8_MIN, op_params.INT8_MAX)


def dequantize(program: Program, op: Op, args: list) -> np.ndarray:
    scale, zp = _quant(program, op.inputs[0])
    return (np.float64(np.float32(scale)) * (args[0].astype(np.int64) - zp)).astype(np.float32)


# ---------------------------------------------------------------- softmax (gemmlowp fixed point)

def _saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    return np.clip(x * (1 << exponent), INT32_MIN, INT32_MAX)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """exp(a) for Q0.31 a in [-1/4, 0): Taylor series around -1/8."""
    exp_minus_one_eighth, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4_over_4 = rdbp(srdhm(x2, x2), 2)
    tail = rdbp(srdhm(x4_over_4 + x3, one_third) + x2, 1)
    return exp_minus_one_eighth + srdhm(exp_minus_one_eighth, x + tail)


# (bit of the Q5.26 remainder, Q0.31 value of exp(-2**exponent)) for exponent -2..4
_EXP_BARREL = [(26 + e, m) for e, m in zip(range(-2, 5), (1672461947, 1302514674, 790015084,
                                                          290630308, 39332535, 720401, 242))]


def _exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp exp_on_negative_values: Q5.26 a <= 0 -> Q0.31 exp(a)."""
    one_quarter = 1 << 24
    a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod_quarter_minus_quarter, 5))
    remainder = a_mod_quarter_minus_quarter - a
    for bit, multiplier in _EXP_BARREL:
        result = np.where(remainder & (1 << bit), srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp Newton-Raphson 1/(1+a) for Q0.31 a in [0, 1); result Q0.31."""
    total = a + INT32_MAX
    half_denominator = (total + np.where(total >= 0, 1, -1)) // 2  # RoundingHalfSum; total >= 0
    x = 1515870810 + srdhm(half_denominator, -1010580540)  # Q2.29: 48/17 - 32/17 * d
    for _ in range(3):
        one_minus_dx = (1 << 29) - srdhm(half_denominator, x)
        x = x + _saturating_shift_left(srdhm(x, one_minus_dx), 2)
    return _saturating_shift_left(x, 1)


def softmax(program: Program, op: Op, args: list) -> np.ndarray:
    p = op_params.softmax_params(program, op)
    x = args[0].astype(np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= p.diff_min
    scaled = srdhm(np.where(valid, diff, 0) * (1 << p.input_left_shift), p.input_multiplier)
    exps = _exp_on_negative_values(scaled)
    sum_of_exps = np.where(valid, rdbp(exps, 12), 0).sum(axis=-1, keepdims=True)  # Q12.19
    # GetReciprocal: normalise the sum to [1, 2), invert with Newton-Raphson.
    bit_length = np.frexp(sum_of_exps.astype(np.float64))[1].astype(np.int64)
    headroom_plus_one = 32 - bit_length
    num_bits_over_unit = 12 - headroom_plus_one
    shifted_sum_minus_one = (sum_of_exps << headroom_plus_one) - (1 << 31)
    shifted_scale = _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    out = rdbp(srdhm(shifted_scale, exps), num_bits_over_unit + 31 - 8) - 128
    return np.where(valid, np.clip(out, -128, 127), -128)


KERNELS: dict[str, Kernel] = {
    "CONV_2D": conv_2d,
    "DEPTHWISE_CONV_2D": depthwise_conv_2d,
    "FULLY_CONNECTED": fully_connected,
    "ADD": add,
    "MUL": mul,
    "MAX_POOL_2D": max_pool_2d,
    "AVERAGE_POOL_2D": average_pool_2d,
    "SOFTMAX": softmax,
    "RESHAPE": reshape,
    "TRANSPOSE": transpose,
    "CONCATENATION": concatenation,
    "PAD": pad,
    "RELU": relu,
    "RELU6": relu6,
    "MEAN": mean,
    "QUANTIZE": quantize,
    "DEQUANTIZE": dequantize,
}
