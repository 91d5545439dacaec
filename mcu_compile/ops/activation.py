"""Activations: RELU and RELU6 (standalone; fused ones are the producer's clamp), SOFTMAX
(over the last axis), LOGISTIC (sigmoid) and TANH. SOFTMAX and LOGISTIC output int8 with
scale 1/256 and zero point -128, TANH with scale 1/128 and zero point 0; the three follow
gemmlowp's fixed-point exp. LOGISTIC and TANH run in firmware as 256-entry tables computed
from the same integer definition (lut.py); the other table kinds are there."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..codegen import c_text as c
from ..ir.program import Op, Program
from . import common, params
from .quant_math import (INT32_MAX, multiply_by_quantized_multiplier as mbqm, quantize_multiplier,
                         rounding_divide_by_pot as rdbp, saturating_rounding_doubling_high_mul as srdhm)
from .lut import saturating_shift_left, table_kind
from .registry import OpKind, TfliteForm, register


# ---------------------------------------------------------------- RELU, RELU6

def relu6_range(program: Program, op: Op) -> tuple[int, int]:
    """Standalone int8 RELU6 clamps in the input's domain, without rescaling (as TFLite Micro).

    The output must therefore share the input's scale and zero point.
    """
    qi = program.tensor(op.inputs[0]).quant
    six = min(max(params.quantize_value(6.0, qi), params.INT8_MIN), params.INT8_MAX)
    return int(qi.zero_point[0]), six


def relu(program: Program, op: Op, args: list) -> np.ndarray:
    p = params.requant_params(program, op)
    return np.clip(common.rescale(args[0], p), max(p.output_offset, params.INT8_MIN), params.INT8_MAX)


def relu6(program: Program, op: Op, args: list) -> np.ndarray:
    return np.clip(args[0], *relu6_range(program, op))


def _emit_relu(site: c.Site) -> c.CodeFragment:
    return emit_requantize(site, *params.activation_range("RELU", site.program.tensor(site.op.outputs[0]).quant))


def emit_requantize(site: c.Site, lo: int, hi: int) -> c.CodeFragment:
    """mcu_relu_s8: each value rescaled from the input's quantization to the output's and
    clamped to [lo, hi] (RELU; an int8 -> int8 QUANTIZE with the full range)."""
    p = params.requant_params(site.program, site.op)
    size = site.program.tensor(site.op.outputs[0]).size
    body = [c.named_ints([("in_offset", p.input_offset)]),
            c.named_ints([("out_offset", p.output_offset), ("out_mult", p.multiplier), ("out_shift", p.shift)]),
            c.named_ints([("act_min", lo), ("act_max", hi)]),
            c.checked_call(site, "mcu_relu_s8", [site.x, site.y, str(size), "in_offset", "out_offset", "out_mult",
                                                 "out_shift", "act_min", "act_max"])]
    return c.CodeFragment([], [c.block(site, "requantizing", body)])


def _emit_relu6(site: c.Site) -> c.CodeFragment:
    lo, hi = relu6_range(site.program, site.op)
    size = site.program.tensor(site.op.outputs[0]).size
    body = [c.checked_call(site, "mcu_relu6_s8", [site.x, site.y, str(size), str(lo), str(hi)])]
    return c.CodeFragment([], [c.block(site, f"clamp to [{lo}, {hi}]", body)])


# ---------------------------------------------------------------- SOFTMAX

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


# ---------------------------------------------------------------- softmax (gemmlowp fixed point)

def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """exp(a) for Q0.31 a in [-1/4, 0): Taylor series around -1/8."""
    exp_minus_one_eighth, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4_over_4 = rdbp(srdhm(x2, x2), 2)
    tail = rdbp(srdhm(x4_over_4 + x3, one_third) + x2, 1)
    return exp_minus_one_eighth + srdhm(exp_minus_one_eighth, x + tail)


# (exponent, Q0.31 value of exp(-2**exponent)): gemmlowp's barrel shifter multipliers
_EXP_BARREL = list(zip(range(-2, 5), (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)))


def _exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: Q(integer_bits).(31-integer_bits) a <= 0 -> Q0.31 exp(a)."""
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_shift_left(a_mod_quarter_minus_quarter, integer_bits))
    remainder = a_mod_quarter_minus_quarter - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            result = np.where(remainder & (1 << (fractional_bits + exponent)), srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _two_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp's Newton-Raphson division for Q0.31 a in [0, 1): 1 / ((1 + a) / 2), Q2.29."""
    total = a + INT32_MAX
    half_denominator = (total + np.where(total >= 0, 1, -1)) // 2  # RoundingHalfSum; total >= 0
    x = 1515870810 + srdhm(half_denominator, -1010580540)  # Q2.29: 48/17 - 32/17 * d
    for _ in range(3):
        one_minus_dx = (1 << 29) - srdhm(half_denominator, x)
        x = x + saturating_shift_left(srdhm(x, one_minus_dx), 2)
    return x


def _one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp 1/(1+a) for Q0.31 a in [0, 1); result Q0.31."""
    return saturating_shift_left(_two_over_one_plus_x_for_x_in_0_1(a), 1)


def _one_minus_x_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp (1-a)/(1+a) for Q0.31 a in [0, 1); result Q0.31."""
    return saturating_shift_left(_two_over_one_plus_x_for_x_in_0_1(a) - (1 << 29), 2)


def softmax(program: Program, op: Op, args: list) -> np.ndarray:
    p = softmax_params(program, op)
    x = args[0].astype(np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= p.diff_min
    scaled = srdhm(np.where(valid, diff, 0) * (1 << p.input_left_shift), p.input_multiplier)
    exps = _exp_on_negative_values(scaled, SOFTMAX_SCALED_DIFF_INTEGER_BITS)
    sum_of_exps = np.where(valid, rdbp(exps, 12), 0).sum(axis=-1, keepdims=True)  # Q12.19
    # GetReciprocal: normalise the sum to [1, 2), invert with Newton-Raphson.
    bit_length = np.frexp(sum_of_exps.astype(np.float64))[1].astype(np.int64)
    headroom_plus_one = 32 - bit_length
    num_bits_over_unit = 12 - headroom_plus_one
    shifted_sum_minus_one = (sum_of_exps << headroom_plus_one) - (1 << 31)
    shifted_scale = _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    out = rdbp(srdhm(shifted_scale, exps), num_bits_over_unit + 31 - 8) - 128
    return np.where(valid, np.clip(out, -128, 127), -128)


def _emit_softmax(site: c.Site) -> c.CodeFragment:
    p = softmax_params(site.program, site.op)
    shape = site.shape()
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    body = [c.named_ints([("beta_mult", p.input_multiplier), ("beta_left_shift", p.input_left_shift),
                          ("diff_min", p.diff_min)]),
            c.call("mcu_softmax_s8", [site.x, str(rows), str(shape[-1]), "beta_mult", "beta_left_shift", "diff_min",
                                      site.y])]
    summary = f"{rows} row(s) of {shape[-1]}, beta {site.op.options.get('beta', 1.0)}"
    return c.CodeFragment([], [c.block(site, summary, body)])


# ---------------------------------------------------------------- LOGISTIC, TANH

Q4_INPUT_INTEGER_BITS = 4  # the input is rescaled to Q4.27


@dataclass(frozen=True)
class Q4InputParams:
    input_zero_point: int
    input_range_radius: int  # |x - zero point| at or past it saturates
    input_multiplier: int
    input_left_shift: int


def q4_input_params(program: Program, op: Op) -> Q4InputParams:
    """TFLite Micro's int8 LOGISTIC and TANH Prepare (the same): input scale * 2**27 as
    multiplier and shift."""
    s_in, zp_in = common.quant(program, op.inputs[0])
    bits = Q4_INPUT_INTEGER_BITS
    multiplier, left_shift = quantize_multiplier(s_in * (1 << (31 - bits)))
    radius = math.floor(math.ldexp(((1 << bits) - 1) * (1 << (31 - bits)), -left_shift))
    return Q4InputParams(zp_in, radius, multiplier, left_shift)


def _logistic_q0(a: np.ndarray) -> np.ndarray:
    """gemmlowp logistic: Q4.27 -> Q0.31, through 1 / (1 + exp(-|a|))."""
    negative = a < 0
    positive = _one_over_one_plus_x_for_x_in_0_1(
        _exp_on_negative_values(-np.abs(a), Q4_INPUT_INTEGER_BITS))
    result = np.where(negative, INT32_MAX - positive, positive)
    return np.where(a == 0, 1 << 30, result)


def _tanh_q0(a: np.ndarray) -> np.ndarray:
    """gemmlowp tanh: Q4.27 -> Q0.31, through (1 - exp(-2|a|)) / (1 + exp(-2|a|)); -2|a| is
    the same raw value read as Q5.26."""
    magnitude = _one_minus_x_over_one_plus_x_for_x_in_0_1(
        _exp_on_negative_values(-np.abs(a), Q4_INPUT_INTEGER_BITS + 1))
    return np.where(a == 0, 0, np.where(a < 0, -magnitude, magnitude))


def _q4_activation(program: Program, op: Op, x: np.ndarray, function: Callable[[np.ndarray], np.ndarray],
                   output_bits: int, output_offset: int) -> np.ndarray:
    """TFLite's reference_integer_ops Logistic and Tanh on int8 values: x - zero point
    rescaled to Q4.27, `function` (Q4.27 -> Q0.31), the result rounded to `output_bits`
    fractional bits plus output_offset; inputs at or past the radius saturate."""
    p = q4_input_params(program, op)
    centered = x.astype(np.int64) - p.input_zero_point
    rescaled = mbqm(np.clip(centered, 1 - p.input_range_radius, p.input_range_radius - 1),
                    p.input_multiplier, p.input_left_shift)
    out = np.clip(rdbp(function(rescaled), 31 - output_bits) + output_offset, params.INT8_MIN, params.INT8_MAX)
    return np.where(centered <= -p.input_range_radius, params.INT8_MIN,
                    np.where(centered >= p.input_range_radius, params.INT8_MAX, out))


def logistic(program: Program, op: Op, args: list) -> np.ndarray:
    return _q4_activation(program, op, args[0], _logistic_q0, 8, -128)


def tanh(program: Program, op: Op, args: list) -> np.ndarray:
    return _q4_activation(program, op, args[0], _tanh_q0, 7, 0)


def _output_quant_check(scale: float, zero_point: int, scale_text: str):
    """The check of a kind whose int8 kernel assumes one output quantization (TFLite's)."""
    def check(program: Program, op: Op) -> None:
        if common.quant(program, op.outputs[0]) != (scale, zero_point):
            raise common.unsupported(op, f"int8 {op.kind} needs the output scale {scale_text} and zero point "
                                         f"{zero_point} (TFLite's), got {common.quant(program, op.outputs[0])}")
    return check


register(
    OpKind("RELU", common.same_shape, relu, _emit_relu, TfliteForm(), storage="overwrite", overwritable=(0,)),
    OpKind("RELU6", common.same_shape, relu6, _emit_relu6, TfliteForm(), storage="overwrite", overwritable=(0,)),
    OpKind("SOFTMAX", common.same_shape, softmax, _emit_softmax, TfliteForm("SoftmaxOptions", {"beta": 1.0})),
    table_kind("LOGISTIC", logistic, check=_output_quant_check(1 / 256, -128, "1/256"), label="sigmoid"),
    table_kind("TANH", tanh, check=_output_quant_check(1 / 128, 0, "1/128")),
)
