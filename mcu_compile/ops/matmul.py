"""BATCH_MATMUL: int8 matrix products of two tensors of rank 2 to 5 (either may be a constant),
adj_x / adj_y transposing the last two axes of the left / right operand, the axes before
them broadcast against each other (equal, or one of them 1), as TFLite Micro's kernel does.

TFLite's integer definition: out = clamp(zp_out + MBQM(sum_k (lhs - zp_lhs) * (rhs - zp_rhs),
m, s)) with m, s from float32(s_lhs * s_rhs) / s_out: per-tensor scales, no bias, no fused
activation. The firmware runs mcu_batch_matmul_s8, which reads the operands through strides.
"""
from __future__ import annotations

import numpy as np

from ..codegen import c_text as c
from ..errors import IRError
from ..ir.program import Op, Program
from . import common, params
from .quant_math import quantize_multiplier
from .registry import OpKind, TfliteForm, register

BATCH_AXES = 3  # TFLite Micro extends both operands to rank 5: three batch axes


def _where(op: Op) -> str:
    return f"{op.kind} {op.source or op.outputs[0]!r}"


def _operands(program: Program, op: Op) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Both operands' shapes extended to rank 5 with leading ones."""
    shapes = [common.shape(program, op, i) for i in (0, 1)]
    for side, s in zip(("lhs", "rhs"), shapes):
        if not 2 <= len(s) <= 5:
            raise IRError(f"{_where(op)}: {side} has rank {len(s)}; BATCH_MATMUL takes ranks 2 to 5")
    return tuple((1,) * (5 - len(s)) + tuple(s) for s in shapes)


def _matrix(op: Op, lhs: tuple[int, ...], rhs: tuple[int, ...]) -> tuple[int, int, int]:
    """(rows, depth, cols) of each product, after adj_x / adj_y."""
    rows, depth = lhs[-2:][::-1] if op.options.get("adj_x") else lhs[-2:]
    cols, rhs_depth = rhs[-2:] if op.options.get("adj_y") else rhs[-2:][::-1]
    if depth != rhs_depth:
        raise IRError(f"{_where(op)}: lhs depth {depth} and rhs depth {rhs_depth} differ "
                      f"(adj_x={bool(op.options.get('adj_x'))}, adj_y={bool(op.options.get('adj_y'))})")
    return rows, depth, cols


def _batches(op: Op, lhs: tuple[int, ...], rhs: tuple[int, ...]) -> tuple[int, ...]:
    for a, b in zip(lhs[:BATCH_AXES], rhs[:BATCH_AXES]):
        if a != b and 1 not in (a, b):
            raise IRError(f"{_where(op)}: batch axes {lhs[:BATCH_AXES]} and {rhs[:BATCH_AXES]} do not broadcast")
    return tuple(max(a, b) for a, b in zip(lhs[:BATCH_AXES], rhs[:BATCH_AXES]))


def _shapes(program: Program, op: Op):
    lhs, rhs = _operands(program, op)
    rows, _, cols = _matrix(op, lhs, rhs)
    rank = max(len(common.shape(program, op, i)) for i in (0, 1))
    return [(*_batches(op, lhs, rhs), rows, cols)[5 - rank:]]


def _requant(program: Program, op: Op) -> tuple[int, int]:
    """TFLite's GetQuantizedConvolutionMultipler without a bias: the product of the scales in float32."""
    s_lhs, s_rhs, s_out = (np.float32(program.tensor(n).quant.scale[0]) for n in (*op.inputs, op.outputs[0]))
    return quantize_multiplier(float(s_lhs * s_rhs) / float(s_out))


def _check(program: Program, op: Op) -> None:
    for side, name in zip(("lhs", "rhs"), op.inputs):
        t = program.tensor(name)
        if t.dtype != "int8" or t.quant is None or t.quant.scale.size != 1:
            raise common.unsupported(op, f"BATCH_MATMUL {side} must be int8 with one scale and zero point "
                                         f"(per-tensor), not {t.dtype}"
                                         f"{'' if t.quant is None else f' with {t.quant.scale.size} scales'}")


def batch_matmul(program: Program, op: Op, args: list) -> np.ndarray:
    _check(program, op)
    (_, zp_lhs), (_, zp_rhs) = (common.quant(program, n) for n in op.inputs)
    lhs, rhs = args[0].astype(np.int64) - zp_lhs, args[1].astype(np.int64) - zp_rhs
    if op.options.get("adj_x"):
        lhs = np.swapaxes(lhs, -1, -2)
    if op.options.get("adj_y"):
        rhs = np.swapaxes(rhs, -1, -2)
    return common.requantize(common.int_matmul(lhs, rhs), *_requant(program, op), program, op)


def _strides(shape: tuple[int, ...]) -> list[int]:
    """Row-major strides of an extended shape, 0 along its size-1 (broadcast) batch axes."""
    strides = [int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))]
    return [0 if i < BATCH_AXES and shape[i] == 1 else s for i, s in enumerate(strides)]


def _emit(site: c.Site) -> c.CodeFragment:
    program, op = site.program, site.op
    lhs, rhs = _operands(program, op)
    rows, depth, cols = _matrix(op, lhs, rhs)
    ls, rs = _strides(lhs), _strides(rhs)
    # lhs[i, k] and rhs[k, j]: the last two axes' strides, swapped by adj_x / adj_y
    lhs_row, lhs_depth = (ls[4], ls[3]) if op.options.get("adj_x") else (ls[3], ls[4])
    rhs_depth, rhs_col = (rs[4], rs[3]) if op.options.get("adj_y") else (rs[3], rs[4])
    multiplier, shift = _requant(program, op)
    lo, hi = params.op_activation_range(program, op)
    (_, zp_lhs), (_, zp_rhs) = (common.quant(program, n) for n in op.inputs)
    batches = _batches(op, lhs, rhs)

    def triple(values) -> str:
        return "{" + ", ".join(str(int(v)) for v in values) + "}"

    body = [
        f"const mcu_batch_matmul_dims dims = {{{triple(batches)}, {triple(ls[:BATCH_AXES])}, "
        f"{triple(rs[:BATCH_AXES])},\n    {rows}, {cols}, {depth}, {lhs_row}, {lhs_depth}, {rhs_depth}, {rhs_col}}};",
        f"const mcu_batch_matmul_quant quant = {{{-zp_lhs}, {-zp_rhs}, {site.zero_point(op.outputs[0])}, "
        f"{multiplier}, {shift}, {lo}, {hi}}};",
        c.checked_call(site, "mcu_batch_matmul_s8", [site.x, site.ref(op.inputs[1]), "&dims", "&quant", site.y]),
    ]
    adj = "".join(f", {flag}" for flag in ("adj_x", "adj_y") if op.options.get(flag))
    summary = f"{int(np.prod(batches))} x ({rows}x{depth} @ {depth}x{cols}){adj}"
    return c.CodeFragment([], [c.block(site, summary, body)])


register(
    OpKind("BATCH_MATMUL", _shapes, batch_matmul, _emit, inputs=(2, 2), label="matmul", check=_check,
           tflite=TfliteForm("BatchMatMulOptions", {"adj_x": False, "adj_y": False,
                                                    "asymmetric_quantize_inputs": False})),
)
