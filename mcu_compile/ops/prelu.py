"""PRELU: x >= 0 ? x : alpha * x, int8 with alpha a constant int8 tensor broadcast against
the input (numpy rules). As TFLite Micro's int8 Prelu: x - zero point is requantized to
the output with input scale / output scale where it is >= 0, else its product with
alpha - alpha's zero point with input scale * alpha scale / output scale."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codegen import c_text as c
from ..ir.program import Op, Program
from . import common, params
from .elementwise import _broadcast_shapes, _check_broadcast_rank, _dims
from .quant_math import multiply_by_quantized_multiplier as mbqm, quantize_multiplier
from .registry import OpKind, TfliteForm, register


@dataclass(frozen=True)
class PreluParams:
    input_offset: int
    alpha_offset: int
    output_offset: int
    positive_multiplier: int
    positive_shift: int
    negative_multiplier: int
    negative_shift: int


def prelu_params(program: Program, op: Op) -> PreluParams:
    """TFLite Micro's CalculatePreluParams."""
    (s_in, zp_in), (s_alpha, zp_alpha), (s_out, zp_out) = (common.quant(program, n)
                                                           for n in (*op.inputs, op.outputs[0]))
    return PreluParams(-zp_in, -zp_alpha, zp_out, *quantize_multiplier(s_in / s_out),
                       *quantize_multiplier(s_in * s_alpha / s_out))


def prelu(program: Program, op: Op, args: list) -> np.ndarray:
    p = prelu_params(program, op)
    x = args[0].astype(np.int64) + p.input_offset
    alpha = args[1].astype(np.int64) + p.alpha_offset
    out = np.where(x >= 0, mbqm(x, p.positive_multiplier, p.positive_shift),
                   mbqm(x * alpha, p.negative_multiplier, p.negative_shift))
    return np.clip(out + p.output_offset, params.INT8_MIN, params.INT8_MAX)


def _check_prelu(program: Program, op: Op) -> None:
    tensors = [program.tensor(n) for n in (*op.inputs, op.outputs[0])]
    if any(t.dtype != "int8" or t.quant is None or t.quant.scale.size != 1 for t in tensors):
        raise common.unsupported(op, "PRELU needs an int8 input, alpha and output, each with one scale "
                                     "(no per-channel alpha)")
    _check_broadcast_rank(program, op)


def _emit_prelu(site: c.Site) -> c.CodeFragment:
    p = prelu_params(site.program, site.op)
    quant = (f"const mcu_prelu_quant quant = {{{p.input_offset}, {p.alpha_offset}, {p.output_offset}, "
             f"{p.positive_multiplier}, {p.positive_shift}, {p.negative_multiplier}, {p.negative_shift}}};")
    alpha = site.ref(site.op.inputs[1])
    call = c.checked_call(site, "mcu_prelu_s8", [site.x, "&input_1_dims", alpha, "&input_2_dims", "&quant", site.y,
                                                 "&output_dims"])
    return c.CodeFragment([], [c.block(site, "alpha broadcast", [quant, *_dims(site), call])])


register(
    OpKind("PRELU", _broadcast_shapes, prelu, _emit_prelu, TfliteForm(), inputs=(2, 2), const_inputs=(1,),
           check=_check_prelu),
)
