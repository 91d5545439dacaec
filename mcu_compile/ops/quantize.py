"""QUANTIZE and DEQUANTIZE, as models from other converters carry them.

At a graph's edges (float32 <-> int8) the host does the conversion (passes/edges.py).
Inside a graph the firmware, integer-only, runs:
- an int8 -> int8 QUANTIZE (a requantization): TFLite Micro's Requantize, the input
  rescaled by MultiplyByQuantizedMultiplier (mcu_relu_s8 with the full range);
- a DEQUANTIZE whose float32 output only QUANTIZEs read. TFLite Micro computes each in
  float32 (float32(scale * (q - zero_point)), then a float32 division rounded half away
  from zero), which is not the int8 requantization: that one rounds twice in fixed point,
  and for most scale pairs some of the 256 codes land one step apart. So the pair stays in
  the Edge program as the file has it (TFLite Micro runs it), and in firmware the
  DEQUANTIZE copies its int8 codes into its output buffer (nothing else reads that float32
  tensor), and each QUANTIZE maps the codes through a 256-entry table of the pair's float
  arithmetic, computed at compile time (mcu_lut_s8): bit-exact by construction.
Other float ops inside the graph are refused before anything is written."""
from __future__ import annotations

import numpy as np

from ..codegen import c_text as c
from ..ir.program import Op, Program
from . import common, params
from .activation import emit_requantize
from .lut import TABLE_SIZE, emit_table
from .registry import OpKind, TfliteForm, register

INT8_CODES = np.arange(params.INT8_MIN, params.INT8_MAX + 1)
FLOAT_INSIDE_FIX = ("export with full-integer (int8) quantization, so that the requantization is an int8 -> int8 "
                    "QUANTIZE and no op computes in float32")


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


# ---------------------------------------------------------------- inside the graph

def _is_requantization(program: Program, op: Op) -> bool:
    return program.tensor(op.inputs[0]).dtype == "int8"


def _codes_source(program: Program, op: Op) -> str:
    """The int8 tensor a float QUANTIZE's input was dequantized from."""
    return program.producer(op.inputs[0]).inputs[0]


def dequantize_quantize_table(program: Program, op: Op) -> np.ndarray:
    """What DEQUANTIZE -> this QUANTIZE makes of each int8 code -128..127, in TFLite's float32."""
    real = dequantize_ints(INT8_CODES, *common.quant(program, _codes_source(program, op)))
    return quantize_floats(real, *common.quant(program, op.outputs[0]))


def _check_per_tensor(program: Program, op: Op, name: str) -> None:
    quant = program.tensor(name).quant
    if quant is None or quant.per_channel:
        raise common.unsupported(op, f"{op.kind} inside the graph needs one scale and zero point on {name!r}, not "
                                     f"{'none' if quant is None else 'one per channel'}; {FLOAT_INSIDE_FIX}")


def _check_quantize(program: Program, op: Op) -> None:
    types = (program.tensor(op.inputs[0]).dtype, program.tensor(op.outputs[0]).dtype)
    if types[1] != "int8" or types[0] not in ("int8", "float32"):
        raise common.unsupported(op, f"a QUANTIZE from {types[0]} to {types[1]} is not supported (int8 or float32 to "
                                     f"int8 only); {FLOAT_INSIDE_FIX}")
    producer = program.producer(op.inputs[0])
    if types[0] == "float32" and (producer is None or producer.kind != "DEQUANTIZE"):
        raise common.unsupported(op, "a QUANTIZE of a float32 tensor no DEQUANTIZE made cannot run in firmware "
                                     "(it has no float arithmetic; one right after a float32 graph input runs on "
                                     f"the host); {FLOAT_INSIDE_FIX}")
    _check_per_tensor(program, op, op.outputs[0])
    if types[0] == "int8":
        _check_per_tensor(program, op, op.inputs[0])


def _check_dequantize(program: Program, op: Op) -> None:
    """Only QUANTIZEs may read a DEQUANTIZE's float32 output inside the graph."""
    types = (program.tensor(op.inputs[0]).dtype, program.tensor(op.outputs[0]).dtype)
    if types != ("int8", "float32"):
        raise common.unsupported(op, f"a DEQUANTIZE from {types[0]} to {types[1]} is not supported (int8 to float32 "
                                     "only)")
    _check_per_tensor(program, op, op.inputs[0])
    readers = program.consumers(op.outputs[0])
    others = [r for r in readers if r.kind != "QUANTIZE"]
    if others or not readers or op.outputs[0] in program.outputs:
        what = (f"feeds {others[0].source or others[0].kind}, which computes in float32" if others
                else "is a graph output read inside the graph too" if readers else "is read by no op")
        raise common.unsupported(op, f"DEQUANTIZE inside the graph {what}: the firmware has no float arithmetic "
                                     f"(only DEQUANTIZE -> QUANTIZE runs, as a table); {FLOAT_INSIDE_FIX}")


def _emit_quantize(site: c.Site) -> c.CodeFragment:
    if _is_requantization(site.program, site.op):
        return emit_requantize(site, params.INT8_MIN, params.INT8_MAX)
    return emit_table(site, dequantize_quantize_table(site.program, site.op),
                      f"DEQUANTIZE -> QUANTIZE {site.op.outputs[0]}: TFLite's float32 result for the codes -128..127",
                      f"int8 codes of {_codes_source(site.program, site.op)} through a {TABLE_SIZE}-entry table")


def _emit_dequantize(site: c.Site) -> c.CodeFragment:
    """The int8 codes, copied: only the next QUANTIZEs' tables read them."""
    size = site.program.tensor(site.op.inputs[0]).nbytes
    body = [f"memmove({site.y}, {site.x}, {size});"]
    return c.CodeFragment([], [c.block(site, "int8 codes kept for the QUANTIZE table", body)])


def _quantize_table_bytes(program: Program, op: Op) -> int:
    return 0 if _is_requantization(program, op) else TABLE_SIZE


register(
    OpKind("QUANTIZE", common.same_shape, quantize, _emit_quantize, TfliteForm("QuantizeOptions"), int8_input=False,
           check=_check_quantize, table_bytes=_quantize_table_bytes),
    OpKind("DEQUANTIZE", common.same_shape, dequantize, _emit_dequantize, TfliteForm("DequantizeOptions"),
           int8_input=False, check=_check_dequantize),
)
