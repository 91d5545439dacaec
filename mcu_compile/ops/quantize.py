"""QUANTIZE and DEQUANTIZE at a graph's edges (float32 <-> int8) and int8 -> int8
requantization, as models from other converters carry them. At the edges the host does
the conversion (passes/edges.py); inside a graph only the int8 -> int8 QUANTIZE runs in
firmware (mcu_relu_s8 with the full range), float ones are refused before anything is
written."""
from __future__ import annotations

import numpy as np

from ..codegen import c_text as c
from ..ir.program import Op, Program
from . import common, params
from .activation import emit_requantize
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


def dequantize_ints(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite's DEQUANTIZE: float32(scale * (q - zero_point)), the product of a float32
    scale and a small integer, exact in float64 before the one rounding to float32."""
    return (np.float64(np.float32(scale)) * (np.asarray(q).astype(np.int64) - zero_point)).astype(np.float32)


def dequantize(program: Program, op: Op, args: list) -> np.ndarray:
    return dequantize_ints(args[0], *common.quant(program, op.inputs[0]))


def _check_requantize(program: Program, op: Op) -> None:
    if program.tensor(op.inputs[0]).dtype != "int8" or program.tensor(op.outputs[0]).dtype != "int8":
        raise common.unsupported(op, "a float QUANTIZE inside the graph cannot run in firmware; only one right "
                                     "after a float32 graph input (done on the host) or an int8 -> int8 one")


def _emit_requantize(site: c.Site) -> c.CodeFragment:
    return emit_requantize(site, params.INT8_MIN, params.INT8_MAX)


register(
    OpKind("QUANTIZE", common.same_shape, quantize, _emit_requantize, TfliteForm("QuantizeOptions"), int8_input=False,
           check=_check_requantize),
    OpKind("DEQUANTIZE", common.same_shape, dequantize, None, TfliteForm("DequantizeOptions"), int8_input=False),
)
