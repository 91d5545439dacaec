"""Fixed-point helpers with TFLite's exact integer semantics.

Shared by the host reference interpreter and by the code generator, so that the
multipliers the firmware uses are the ones the reference was checked with.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """real -> (q31 multiplier, shift) with real ~= multiplier * 2**(shift - 31).

    Same as TFLite's QuantizeMultiplier (frexp, round half away from zero).
    A positive shift means a left shift.
    """
    if real == 0.0:
        return 0, 0
    mantissa, exponent = math.frexp(real)
    q = int(round_half_away(mantissa * (1 << 31)))
    if q == (1 << 31):
        q //= 2
        exponent += 1
    if exponent < -31:  # too small to represent: flush to zero like TFLite
        return 0, 0
    return q, exponent


def round_half_away(x: float) -> float:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (vectorised)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    # C integer division truncates toward zero.
    total = ab + nudge
    result = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where(overflow, INT32_MAX, result).astype(np.int64)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2**exponent, rounding half away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (the 32-bit, non-double-rounding-free form).

    x: int32 values; multiplier/shift: scalars or arrays broadcastable to x.
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.where(shift > 0, shift, 0)
    right = np.where(shift > 0, 0, -shift)
    scaled = np.clip(x * (np.int64(1) << left), INT32_MIN, INT32_MAX)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, multiplier), right)
