"""QUANTIZE and DEQUANTIZE at a graph's edges (float32 <-> int8) and int8 -> int8
requantization, as models from other converters carry them. Host reference only: no
C kernel yet, so a program with one is refused before anything is written."""
from __future__ import annotations

import numpy as np

from ..ir.program import Op, Program
from . import common, params
from .registry import OpKind, TfliteForm, register


def quantize_floats(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite's QUANTIZE of float values to int8: a float32 division, then rounding half
    away from zero (TfLiteRound, done exactly in float64)."""
    ratio = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)
    q = np.copysign(np.floor(np.abs(ratio) + 0.5), ratio)
    return np.clip(q.astype(np.int64) + zero_point, params.INT8_MIN, params.INT8_MAX).astype(np.int8)


def quantize(program: Program, op: Op, args: list) -> np.ndarray:
    x = args[0]
    if x.dtype == np.float32:
        return quantize_floats(x, *common.quant(program, op.outputs[0]))
    return np.clip(common.rescale(x, params.requant_params(program, op)), params.INT8_MIN, params.INT8_MAX)


def dequantize(program: Program, op: Op, args: list) -> np.ndarray:
    scale, zp = common.quant(program, op.inputs[0])
    return (np.float64(np.float32(scale)) * (args[0].astype(np.int64) - zp)).astype(np.float32)


register(
    OpKind("QUANTIZE", common.same_shape, quantize, None, TfliteForm("QuantizeOptions"), int8_input=False),
    OpKind("DEQUANTIZE", common.same_shape, dequantize, None, TfliteForm("DequantizeOptions"), int8_input=False),
)
