"""Table kinds: unary int8 ops whose output depends only on the input value, run in
firmware as a 256-entry table (mcu_lut_s8, in place). The compiler fills the table by
evaluating the kind's reference kernel on every int8 value, so the firmware computes
exactly what the reference does. The kinds here: HARD_SWISH (16-bit fixed point),
LEAKY_RELU and ABS (requantizations), ELU (a float32 table, filled as TFLite Micro's
Prepare fills it), GELU (TFLite's float32 table; TFLite Micro has none), RSQRT (Newton-Raphson); the sigmoid and tanh kinds (gemmlowp's fixed point)
are in activation.py.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..codegen import c_text as c
from ..ir.program import Op, Program
from . import common, params, registry
from .quant_math import (INT32_MAX, multiply_by_quantized_multiplier as mbqm, quantize_multiplier,
                         rounding_divide_by_pot as rdbp, saturating_rounding_doubling_high_mul as srdhm)
from .registry import Kernel, OpKind, TfliteForm, register

TABLE_SIZE = 256
INT8_VALUES = np.arange(params.INT8_MIN, params.INT8_MAX + 1)


# ---------------------------------------------------------------- the mechanism

def table(program: Program, op: Op) -> np.ndarray:
    """The op's int8 results for the inputs -128..127: its reference kernel on every value."""
    return np.asarray(registry.of(op).reference(program, op, [INT8_VALUES]))


def _emit_table(site: c.Site) -> c.CodeFragment:
    return emit_table(site, table(site.program, site.op), f"{site.op.kind} {site.op.outputs[0]}: the int8 result "
                      "for inputs -128..127", f"{TABLE_SIZE}-entry table")


def emit_table(site: c.Site, values, about: str, summary: str) -> c.CodeFragment:
    """mcu_lut_s8 over the op's input with a file-scope table of TABLE_SIZE int8 values
    (the result for inputs -128..127); about: the table's comment, summary: the call's."""
    name = f"{site.uid}_table"
    rows = [", ".join(str(int(v)) for v in values[i:i + 16]) for i in range(0, TABLE_SIZE, 16)]
    declaration = (c.comment(about) + "\n"
                   f"static const int8_t {name}[{TABLE_SIZE}] = {{\n    " + ",\n    ".join(rows) + "\n};")
    size = site.program.tensor(site.op.outputs[0]).size
    body = [c.checked_call(site, "mcu_lut_s8", [site.x, site.y, str(size), name])]
    return c.CodeFragment([declaration], [c.block(site, summary, body)])


def _table_bytes(program: Program, op: Op) -> int:
    return TABLE_SIZE


def table_kind(name: str, reference: Kernel, tflite: TfliteForm = TfliteForm(),
               check: Callable[[Program, Op], None] | None = None, label: str = "") -> OpKind:
    """A unary int8 kind run as a table: same shape, in place over its input."""
    return OpKind(name, common.same_shape, reference, _emit_table, tflite, storage="overwrite", overwritable=(0,),
                  check=check, table_bytes=_table_bytes, label=label)


def _float32_quant(program: Program, name: str) -> tuple[np.float32, int]:
    """(scale, zero point), the scale as the float32 TFLite Micro computes with."""
    scale, zero_point = common.quant(program, name)
    return np.float32(scale), zero_point


def _clamp_int8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, params.INT8_MIN, params.INT8_MAX)


def saturating_shift_left(x: np.ndarray, exponent: int, bits: int = 32) -> np.ndarray:
    """x * 2**exponent saturated to a `bits`-bit integer: gemmlowp's Rescale to fewer
    integer bits (int32), TFLite's SaturatingLeftShift (int16)."""
    return np.clip(x * (1 << exponent), -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


# ---------------------------------------------------------------- HARD_SWISH (16-bit fixed point)

INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
HARD_SWISH_RELUISH_SCALE = np.float32(3 / 32768)  # the real 3 on the int16 scale of the relu-ish factor


@dataclass(frozen=True)
class HardSwishParams:
    input_zero_point: int
    output_zero_point: int
    output_multiplier: int  # Q0.15
    output_exponent: int  # <= 0
    reluish_multiplier: int  # Q0.15
    reluish_exponent: int


def _int16_multiplier(multiplier: int) -> int:
    """TFLite's DownScaleInt32ToInt16Multiplier: a Q0.31 multiplier rounded to Q0.15."""
    return INT16_MAX if multiplier >= INT32_MAX - (1 << 15) else (multiplier + (1 << 15)) >> 16


def hard_swish_params(program: Program, op: Op) -> HardSwishParams:
    """TFLite Micro's HardSwishPrepare: the ratios in float32, as the kernel computes them."""
    s_in, zp_in = _float32_quant(program, op.inputs[0])
    s_out, zp_out = _float32_quant(program, op.outputs[0])
    hires_input_scale = np.float32(1 / 128) * s_in
    out_multiplier, out_exponent = quantize_multiplier(float(hires_input_scale / s_out))
    reluish_multiplier, reluish_exponent = quantize_multiplier(float(hires_input_scale / HARD_SWISH_RELUISH_SCALE))
    return HardSwishParams(zp_in, zp_out, _int16_multiplier(out_multiplier), out_exponent,
                           _int16_multiplier(reluish_multiplier), reluish_exponent)


def _truncating_divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """C's integer division by 2**exponent (towards zero)."""
    return np.where(x >= 0, x >> exponent, -((-x) >> exponent))


def _srdhm16(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int16 values."""
    ab = a * b
    high = _truncating_divide_by_pot(ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14)), 15)
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, high)


def _sdhm16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """TFLite's SaturatingDoublingHighMul on int16 values: as above, truncating instead of rounding."""
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, _truncating_divide_by_pot(a * b, 15))


def _rdbp16(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT on int16 values: its mask (1 << exponent) - 1 is an int16
    too, so from exponent 16 on it is -1 and the result 1 for x >= 0, -1 below."""
    mask = (1 << exponent) - 1 if exponent < 16 else -1
    return (x >> exponent) + ((x & mask) > (mask >> 1) + (x < 0))


def hard_swish(program: Program, op: Op, args: list) -> np.ndarray:
    """TFLite's reference_ops::HardSwish on int8: x * relu6(x + 3) / 6 in int16 fixed point."""
    p = hard_swish_params(program, op)
    hires_input = (args[0].astype(np.int64) - p.input_zero_point) * (1 << 7)
    preshift_output = _srdhm16(hires_input, p.output_multiplier)
    # the relu-ish factor: x rescaled so that 3 is 2**15 (saturating), then mapped to [0, 1]
    reluish = hires_input
    if p.reluish_exponent > 0:
        reluish = saturating_shift_left(reluish, p.reluish_exponent - 1, 16)
    reluish = _srdhm16(reluish, p.reluish_multiplier)
    if p.reluish_exponent > 0:
        reluish = saturating_shift_left(reluish, 1, 16)
    elif p.reluish_exponent < 0:
        reluish = _rdbp16(reluish, -p.reluish_exponent)
    reluish = (reluish + (1 << 15)) >> 1
    output = _rdbp16(_sdhm16(reluish, preshift_output), -p.output_exponent)
    return _clamp_int8(output + p.output_zero_point)  # |output| <= 32640: the int16 sum does not wrap


def _check_hard_swish(program: Program, op: Op) -> None:
    if hard_swish_params(program, op).output_exponent > 0:
        raise common.unsupported(op, f"int8 {op.kind} needs an output scale above 1/128 of the input scale "
                                     "(TFLite Micro's kernel refuses the model otherwise)")


# ---------------------------------------------------------------- LEAKY_RELU, ABS (requantizations)

def leaky_relu(program: Program, op: Op, args: list) -> np.ndarray:
    """TFLite's reference_ops::QuantizeLeakyRelu; the multipliers from float32 ratios (Prepare)."""
    s_in, zp_in = _float32_quant(program, op.inputs[0])
    s_out, zp_out = _float32_quant(program, op.outputs[0])
    alpha = np.float32(op.options.get("alpha", 0.0))
    alpha_multiplier, alpha_shift = quantize_multiplier(float(s_in * alpha / s_out))
    identity_multiplier, identity_shift = quantize_multiplier(float(s_in / s_out))
    x = args[0].astype(np.int64) - zp_in
    # a negative alpha: the multiplier's magnitude, the result negated
    scaled_alpha = np.sign(alpha_multiplier) * mbqm(x, abs(alpha_multiplier), alpha_shift)
    return _clamp_int8(zp_out + np.where(x >= 0, mbqm(x, identity_multiplier, identity_shift), scaled_alpha))


def abs_(program: Program, op: Op, args: list) -> np.ndarray:
    """TFLite Micro's AbsEvalQuantized: |x - zero point|, requantized when the scales differ."""
    s_in, zp_in = _float32_quant(program, op.inputs[0])
    s_out, zp_out = _float32_quant(program, op.outputs[0])
    value = np.abs(args[0].astype(np.int64) - zp_in)
    if s_in != s_out:
        value = mbqm(value, *quantize_multiplier(float(s_in / s_out)))
    return _clamp_int8(value + zp_out)


# ---------------------------------------------------------------- ELU (a float32 table)

@functools.cache
def _c_float_function(name: str):
    """A float32 function of the C library (expf, erff, tanhf): what TFLite's tables are
    computed with."""
    function = getattr(ctypes.CDLL(ctypes.util.find_library("m")), name)
    function.restype, function.argtypes = ctypes.c_float, [ctypes.c_float]
    return function


def _round_half_away(x: np.ndarray) -> np.ndarray:
    """std::round of float32 values (exact in float64)."""
    x = x.astype(np.float64)
    return np.where(x >= 0, np.floor(x + 0.5), -np.floor(-x + 0.5))


def _elu_table(program: Program, op: Op) -> np.ndarray:
    """TFLite Micro's PopulateLookupTable for ELU, in float32: exp(x) - 1 below zero, x above."""
    s_in, zp_in = _float32_quant(program, op.inputs[0])
    s_out, zp_out = _float32_quant(program, op.outputs[0])
    dequantized = s_in * (INT8_VALUES - zp_in).astype(np.float32)
    expf = _c_float_function("expf")
    transformed = np.array([np.float32(expf(v)) - np.float32(1) if v < 0 else v for v in dequantized],
                           dtype=np.float32)
    rescaled = _round_half_away(transformed * (np.float32(1) / s_out)).astype(np.float32)
    return _clamp_int8(rescaled + np.float32(zp_out)).astype(np.int64)


def elu(program: Program, op: Op, args: list) -> np.ndarray:
    return _elu_table(program, op)[args[0].astype(np.int64) - params.INT8_MIN]


# ---------------------------------------------------------------- GELU (a float32 table)
# TFLite Micro has no GELU kernel, so the oracle cannot check this one: the table is TFLite's
# (lite/kernels/gelu.cc: the same float32 populate as ELU's, with
# 0.5f * x * (1 + erff(x * M_SQRT1_2)), or with approximate
# 0.5f * x * (1 + tanhf(sqrt(2/pi) * (x + 0.044715f * x**3)))), and our integer definition.

SQRT1_2 = np.float32(0.70710678118654752440)
SQRT_2_PI = np.float32(0.79788456080286535588)   # M_2_SQRTPI * M_SQRT1_2


def _gelu_value(x: np.float32, approximate: bool) -> np.float32:
    half_x = np.float32(0.5) * x
    if approximate:
        inner = SQRT_2_PI * (x + np.float32(0.044715) * x * x * x)
        return half_x * (np.float32(1) + np.float32(_c_float_function("tanhf")(inner)))
    return half_x * (np.float32(1) + np.float32(_c_float_function("erff")(x * SQRT1_2)))


def _gelu_table(program: Program, op: Op) -> np.ndarray:
    s_in, zp_in = _float32_quant(program, op.inputs[0])
    s_out, zp_out = _float32_quant(program, op.outputs[0])
    dequantized = s_in * (INT8_VALUES - zp_in).astype(np.float32)
    approximate = bool(op.options.get("approximate", False))
    transformed = np.array([_gelu_value(v, approximate) for v in dequantized], dtype=np.float32)
    rescaled = _round_half_away(transformed * (np.float32(1) / s_out)).astype(np.float32)
    return _clamp_int8(rescaled + np.float32(zp_out)).astype(np.int64)


def gelu(program: Program, op: Op, args: list) -> np.ndarray:
    return _gelu_table(program, op)[args[0].astype(np.int64) - params.INT8_MIN]


# ---------------------------------------------------------------- RSQRT (Newton-Raphson in Q3.28)

RSQRT_SHIFT = 20  # TFLite Micro's kShift: 1/sqrt(x) * 2**20 stays an integer
HALF_SQRT_2 = 1518500250  # Q0.31


def _inv_sqrt_multiplier(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp (reverse shift -1) for 2 <= value < 2**29:
    1/sqrt(value) as a Q0.31 multiplier and a left shift. The value is normalised by pairs
    of bits to [2**27, 2**29), read as Q3.28, and inverted by five Newton-Raphson steps."""
    bit_length = np.frexp(value.astype(np.float64))[1]
    pairs = (31 - bit_length) // 2 - 1
    shift = 11 - pairs  # a right shift
    half_input = rdbp((value << (2 * pairs)) >> 1, 1)
    x = np.full(value.shape, 1 << 28, dtype=np.int64)  # 1.0
    for _ in range(5):
        x3 = saturating_shift_left(srdhm(srdhm(x, x), x), 6)
        x = saturating_shift_left(srdhm(x, 3 << 27) - srdhm(half_input, x3), 3)  # 1.5 x - x**3 * input / 2
    multiplier = srdhm(x, HALF_SQRT_2)
    return multiplier << np.maximum(-shift, 0), -np.maximum(shift, 0)


def rsqrt(program: Program, op: Op, args: list) -> np.ndarray:
    """TFLite Micro's RsqrtEvalQuantized. On an input below the zero point (a negative real)
    TFLite Micro fails the invocation; here it gives the largest output, as the zero point."""
    s_in, zp_in = _float32_quant(program, op.inputs[0])
    s_out, zp_out = _float32_quant(program, op.outputs[0])
    out_multiplier, out_shift = quantize_multiplier(1.0 / float(np.sqrt(s_in) * s_out))
    value = args[0].astype(np.int64) - zp_in
    multiplier, shift = _inv_sqrt_multiplier(np.maximum(value, 2))
    inv_sqrt = mbqm(1, np.where(value == 1, INT32_MAX, multiplier), np.where(value == 1, 0, shift) + RSQRT_SHIFT)
    out = mbqm(inv_sqrt, out_multiplier, out_shift - RSQRT_SHIFT) + zp_out
    return np.where(value <= 0, params.INT8_MAX, _clamp_int8(out))


register(
    table_kind("HARD_SWISH", hard_swish, TfliteForm("HardSwishOptions"), check=_check_hard_swish),
    table_kind("LEAKY_RELU", leaky_relu, TfliteForm("LeakyReluOptions", {"alpha": 0.0})),
    table_kind("ELU", elu),
    table_kind("GELU", gelu, TfliteForm("GeluOptions", {"approximate": False})),
    table_kind("ABS", abs_, TfliteForm("AbsOptions")),
    table_kind("RSQRT", rsqrt),
)
