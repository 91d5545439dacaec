"""Integer arithmetic of the output stage: scale, round, add zero point, clamp.

Rounding modes (NPU_SET_OFM_PRECISION / IFM_PRECISION round_mode):
  0 DBL (TFL): TFLite's two-step rounding. MultiplyByQuantizedMultiplier first rounds the
    doubled high product at bit 31 (half up), then divides by the remaining power of two
    rounding half away from zero. A shift of 31 or less is a left shift in TFLite terms:
    one rounding, half up.
  1 TRUNCATE: towards zero.
  2 NATURAL: half up.
Values are int64 numpy arrays; products that could leave int64 fall back to Python ints.
"""
from __future__ import annotations

import numpy as np

DBL, TRUNCATE, NATURAL = 0, 1, 2
_LIMIT = 1 << 62


def _fits(acc: np.ndarray, scale) -> bool:
    peak = int(np.max(np.abs(acc))) if acc.size else 0
    return peak * int(np.max(np.abs(scale))) < _LIMIT


def rescale(acc: np.ndarray, scale, shift, mode: int, double_round: int = 0) -> np.ndarray:
    """round(acc * scale / 2**shift) in the given mode; scale/shift broadcast (per channel).

    double_round: the U55's elementwise input scaling emulates TFLite's (x << 20) * m,
    so its first rounding point sits double_round bits lower (regor graphir Scale()).
    """
    acc = np.asarray(acc, dtype=np.int64)
    scale = np.asarray(scale, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    if not _fits(acc, scale):
        obj = rescale_exact(acc.astype(object), scale.astype(object), shift.astype(object), mode, double_round)
        return obj.astype(np.int64)
    return _rescale(acc * scale, shift, mode, double_round)


def rescale_exact(acc, scale, shift, mode: int, double_round: int = 0):
    """The same with Python integers (object arrays): for 32-bit x 32-bit products."""
    return _rescale(acc * scale, shift, mode, double_round)


def _rescale(v, shift, mode, double_round):
    one = v * 0 + 1  # an array of ones in v's own integer kind
    if mode == TRUNCATE:
        bias = np.where(v < 0, (one << shift) - 1, 0)
        return (v + bias) >> shift
    half = np.where(shift > 0, one << np.maximum(shift - 1, 0), 0)
    if mode == NATURAL:
        return (v + half) >> shift
    split = 31 - double_round  # DBL: TFLite's first rounding point
    first = np.maximum(shift - split, 0)
    high = np.where(shift > split, (v + (one << (split - 1))) >> split, v)
    # second step: divide by 2**first, half away from zero
    half2 = np.where(first > 0, one << np.maximum(first - 1, 0), 0)
    rounded = (high + half2 - np.where((high < 0) & (first > 0), 1, 0)) >> first
    return np.where(shift > split, rounded, (v + half) >> shift)


def clamp(values: np.ndarray, low: int, high: int) -> np.ndarray:
    return np.minimum(np.maximum(values, low), high)
