"""LOG_SOFTMAX over the last axis, int8 as TFLite Micro's LogSoftmax: output scale 16/256
and zero point 127 (TFLite's), beta 1. The input differences to the row maximum are
rescaled to Q5.26 (SOFTMAX's scaling, activation.py), their gemmlowp exps summed in
Q12.19, the sum's log taken in Q5.26 (TFLite's log_x_for_x_greater_than_or_equal_to_1)
and subtracted; differences too small to matter give -128. The firmware reads the exps
from a 256-entry table (one per difference -255..0) computed here from the same
definition, and does the rest (the log of each row's sum) in fixed point."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codegen import c_text as c
from ..ir.program import Op, Program
from . import common, params
from .activation import (SOFTMAX_SCALED_DIFF_INTEGER_BITS as Q5_BITS, _exp_on_negative_values,
                         _one_over_one_plus_x_for_x_in_0_1, _output_quant_check, softmax_params)
from .lut import TABLE_SIZE, saturating_shift_left
from .quant_math import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier as mbqm, quantize_multiplier,
                         rounding_divide_by_pot as rdbp, saturating_rounding_doubling_high_mul as srdhm)
from .registry import OpKind, TfliteForm, register

ACCUM_BITS = 12  # the sum of exps, Q12.19
OUTPUT_BITS = 4  # the output, scale 16/256: Q4 on int8
OUTPUT_SCALE, OUTPUT_ZERO_POINT = 16 / 256, 127
# Q0.31 constants of TFLite's log: log(2), 2**-0.25, 2**-0.5, and its rational approximation's alpha_n,
# alpha_d, alpha_i, alpha_f
LOG_2, SQRT_SQRT_HALF, SQRT_HALF = 1488522236, 1805811301, 1518500250
ALPHA_N, ALPHA_D, ALPHA_I, ALPHA_F = 117049297, 127690142, 1057819769, 638450708


@dataclass(frozen=True)
class LogSoftmaxParams:
    input_multiplier: int
    input_left_shift: int
    reverse_multiplier: int  # back from Q5.26 to input steps: the lowest difference the output keeps
    reverse_shift: int
    diff_min: int


def log_softmax_params(program: Program, op: Op) -> LogSoftmaxParams:
    """TFLite's PreprocessLogSoftmaxScalingExp and CalculateInputRadius (beta 1)."""
    p = softmax_params(program, op)
    reverse = quantize_multiplier((1 << (31 - p.input_left_shift)) / p.input_multiplier)
    return LogSoftmaxParams(p.input_multiplier, p.input_left_shift, *reverse, p.diff_min)


def _saturating_add(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    return np.clip(a + b, INT32_MIN, INT32_MAX)


def _leading_zeros(x: np.ndarray) -> np.ndarray:
    """CountLeadingZeros of positive int32 values."""
    return 32 - np.frexp(x.astype(np.float64))[1].astype(np.int64)


def _log_q5(x: np.ndarray) -> np.ndarray:
    """TFLite's log_x_for_x_greater_than_or_equal_to_1<5>: Q12.19 x >= 1 -> Q5.26 log(x),
    through an accumulator of 6 integer bits."""
    accum_bits = Q5_BITS + 1
    quarter = rdbp(1 << 29, accum_bits)
    za_headroom_plus_1 = _leading_zeros(x)
    r_a = saturating_shift_left(srdhm(saturating_shift_left(x, za_headroom_plus_1 - 1), SQRT_HALF), 1)
    za_pow_2 = _saturating_add(saturating_shift_left(ACCUM_BITS - za_headroom_plus_1, 31 - accum_bits), quarter)
    zb_headroom = _leading_zeros(srdhm(x, SQRT_HALF)) - 1
    r_b = saturating_shift_left(x, zb_headroom)
    zb_pow_2 = _saturating_add(saturating_shift_left(ACCUM_BITS - zb_headroom, 31 - accum_bits), -quarter)
    r, pow_2 = np.minimum(r_a, r_b), np.maximum(za_pow_2, zb_pow_2)
    total = r + SQRT_SQRT_HALF
    p = (total + 1) // 2  # RoundingHalfSum of two positive values
    q = 2 * (r - SQRT_SQRT_HALF)
    q_sq = srdhm(q, q)
    num = srdhm(q, r) + srdhm(srdhm(q, q_sq), ALPHA_N)
    denominator_minus_one = srdhm(p, ALPHA_I + q + srdhm(ALPHA_D, q_sq)) + srdhm(ALPHA_F, q)
    log = srdhm(pow_2, LOG_2) + srdhm(rdbp(num, accum_bits), _one_over_one_plus_x_for_x_in_0_1(denominator_minus_one))
    return saturating_shift_left(log, 1)


def _exps_q12(p: LogSoftmaxParams, diff: np.ndarray) -> np.ndarray:
    """Q12.19 exp of each difference (<= 0) to the row maximum; 0 below diff_min."""
    valid = diff >= p.diff_min
    exps = rdbp(_exp_on_negative_values(mbqm(np.where(valid, diff, 0), p.input_multiplier, p.input_left_shift),
                                        Q5_BITS), ACCUM_BITS)
    return np.where(valid, exps, 0)


def log_softmax(program: Program, op: Op, args: list) -> np.ndarray:
    p = log_softmax_params(program, op)
    x = args[0].astype(np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    log_sum = _log_q5(_exps_q12(p, diff).sum(axis=-1, keepdims=True))
    lowest = np.maximum(p.diff_min - 1, mbqm(log_sum + INT32_MIN, p.reverse_multiplier, p.reverse_shift))
    out = rdbp(mbqm(diff, p.input_multiplier, p.input_left_shift) - log_sum, 31 - Q5_BITS - OUTPUT_BITS) + params.INT8_MAX
    return np.where(diff > lowest, np.clip(out, params.INT8_MIN, params.INT8_MAX), params.INT8_MIN)


def _emit_log_softmax(site: c.Site) -> c.CodeFragment:
    p = log_softmax_params(site.program, site.op)
    shape = site.shape()
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    table = f"{site.uid}_exps"
    declaration = (c.comment(f"LOG_SOFTMAX {site.op.outputs[0]}: Q12.19 exp of the differences 0, -1, ..., -255")
                   + "\n" + c.int_array(table, _exps_q12(p, -np.arange(TABLE_SIZE))))
    body = [c.named_ints([("input_mult", p.input_multiplier), ("input_shift", p.input_left_shift),
                          ("diff_min", p.diff_min)]),
            c.named_ints([("reverse_mult", p.reverse_multiplier), ("reverse_shift", p.reverse_shift)]),
            c.checked_call(site, "mcu_log_softmax_s8", [site.x, str(rows), str(shape[-1]), "input_mult", "input_shift",
                                                        "reverse_mult", "reverse_shift", "diff_min", table, site.y])]
    return c.CodeFragment([declaration], [c.block(site, f"{rows} row(s) of {shape[-1]}", body)])


def _table_bytes(program: Program, op: Op) -> int:
    return 4 * TABLE_SIZE


register(
    OpKind("LOG_SOFTMAX", common.same_shape, log_softmax, _emit_log_softmax, TfliteForm(),
           check=_output_quant_check(OUTPUT_SCALE, OUTPUT_ZERO_POINT, "16/256"), table_bytes=_table_bytes),
)
