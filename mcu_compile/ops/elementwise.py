"""Elementwise binary ops: ADD and MUL, int8 with TFLite's rescaling, shapes equal or
broadcast (numpy rules), a fused activation clamp; MAXIMUM and MINIMUM, which compare
raw values of inputs that share the output's quantization."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..codegen import c_text as c
from ..ir.program import Op, Program, Quant
from . import common, params
from .registry import OpKind, TfliteForm, register
from .quant_math import (multiply_by_quantized_multiplier as mbqm, quantize_multiplier,
                         rounding_divide_by_pot as rdbp, saturating_rounding_doubling_high_mul as srdhm)


@dataclass(frozen=True)
class AddParams:
    left_shift: int
    input1_offset: int
    input1_multiplier: int
    input1_shift: int
    input2_offset: int
    input2_multiplier: int
    input2_shift: int
    output_offset: int
    output_multiplier: int
    output_shift: int


def add_params_for(q1: Quant, q2: Quant, qo: Quant) -> AddParams:
    """TFLite int8 ADD: both inputs rescaled to 2*max(s1, s2) with 20 bits of headroom."""
    s1, s2, so = float(q1.scale[0]), float(q2.scale[0]), float(qo.scale[0])
    left_shift = 20
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return AddParams(left_shift, -int(q1.zero_point[0]), m1, sh1, -int(q2.zero_point[0]), m2, sh2,
                     int(qo.zero_point[0]), mo, sho)


def add_params(program: Program, op: Op) -> AddParams:
    return add_params_for(*(program.tensor(n).quant for n in (*op.inputs[:2], op.outputs[0])))


@dataclass(frozen=True)
class MulParams:
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int


def mul_params(program: Program, op: Op) -> MulParams:
    q1, q2 = (program.tensor(n).quant for n in op.inputs[:2])
    qo = program.tensor(op.outputs[0]).quant
    m, s = quantize_multiplier(float(q1.scale[0]) * float(q2.scale[0]) / float(qo.scale[0]))
    return MulParams(-int(q1.zero_point[0]), -int(q2.zero_point[0]), int(qo.zero_point[0]), m, s)


def _broadcast_shapes(program: Program, op: Op):
    return [np.broadcast_shapes(common.shape(program, op, 0), common.shape(program, op, 1))]


# ---------------------------------------------------------------- reference kernels

def _smaller_than_one(x, multiplier: int, shift: int) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0)."""
    return rdbp(srdhm(x, multiplier), -shift)


def add(program: Program, op: Op, args: list) -> np.ndarray:
    p = add_params(program, op)
    a = (args[0].astype(np.int64) + p.input1_offset) << p.left_shift
    b = (args[1].astype(np.int64) + p.input2_offset) << p.left_shift
    total = (_smaller_than_one(a, p.input1_multiplier, p.input1_shift)
             + _smaller_than_one(b, p.input2_multiplier, p.input2_shift))
    out = _smaller_than_one(total, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, *params.op_activation_range(program, op))


def mul(program: Program, op: Op, args: list) -> np.ndarray:
    p = mul_params(program, op)
    a = args[0].astype(np.int64) + p.input1_offset
    prod = a * (args[1].astype(np.int64) + p.input2_offset)
    out = mbqm(prod, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, *params.op_activation_range(program, op))


# ---------------------------------------------------------------- C emitters

def _binary_shapes(site: c.Site) -> tuple[tuple, tuple, tuple] | None:
    """The three 4D shapes when the op broadcasts, None when all shapes are equal."""
    a, b, y = site.shape(0), site.shape(1), site.shape(output=True)
    if a == b == y:
        return None
    return c.nhwc4(a, site), c.nhwc4(b, site), c.nhwc4(y, site)


def _output_quant_lines(site: c.Site, offset: int, multiplier: int, shift: int) -> list[str]:
    lo, hi = c.activation(site)
    return [c.named_ints([("out_offset", offset), ("out_mult", multiplier), ("out_shift", shift)]),
            c.named_ints([("act_min", lo), ("act_max", hi)])]


def _elementwise(site: c.Site, name: str, quant_lines: list[str], quant_args: list[str]) -> c.CodeFragment:
    """The CMSIS-NN kernel on equal shapes, the mcu_ broadcasting one otherwise."""
    a, b = (site.ref(n) for n in site.op.inputs[:2])
    out_args = ["out_offset", "out_mult", "out_shift", "act_min", "act_max"]
    shapes = _binary_shapes(site)
    if shapes is None:
        size = site.program.tensor(site.op.outputs[0]).size
        call = c.call(f"arm_elementwise_{name}_s8", [a, b, *quant_args, site.y, *out_args, str(size)])
        return c.CodeFragment([], [c.block(site, f"{size} elements" + c.activation_text(site), quant_lines + [call])])
    dims = [f"const cmsis_nn_dims input_1_dims = {c.dims(shapes[0])};",
            f"const cmsis_nn_dims input_2_dims = {c.dims(shapes[1])};",
            f"const cmsis_nn_dims output_dims = {c.dims(shapes[2])};"]
    call = c.call(f"mcu_broadcast_{name}_s8", [a, "&input_1_dims", b, "&input_2_dims", *quant_args, site.y,
                                               "&output_dims", *out_args])
    return c.CodeFragment([], [c.block(site, "broadcast" + c.activation_text(site), quant_lines + dims + [call])])


def _emit_add(site: c.Site) -> c.CodeFragment:
    p = add_params(site.program, site.op)
    lines = [c.named_ints([("in1_offset", p.input1_offset), ("in1_mult", p.input1_multiplier),
                           ("in1_shift", p.input1_shift)]),
             c.named_ints([("in2_offset", p.input2_offset), ("in2_mult", p.input2_multiplier),
                           ("in2_shift", p.input2_shift)]),
             c.named_ints([("left_shift", p.left_shift)]),
             *_output_quant_lines(site, p.output_offset, p.output_multiplier, p.output_shift)]
    args = ["in1_offset", "in1_mult", "in1_shift", "in2_offset", "in2_mult", "in2_shift", "left_shift"]
    return _elementwise(site, "add", lines, args)


def _emit_mul(site: c.Site) -> c.CodeFragment:
    p = mul_params(site.program, site.op)
    lines = [c.named_ints([("in1_offset", p.input1_offset), ("in2_offset", p.input2_offset)]),
             *_output_quant_lines(site, p.output_offset, p.output_multiplier, p.output_shift)]
    return _elementwise(site, "mul", lines, ["in1_offset", "in2_offset"])


def _check_broadcast_rank(program: Program, op: Op) -> None:
    """The broadcasting kernels take 4-D shapes."""
    shapes = [program.tensor(n).shape for n in (*op.inputs[:2], op.outputs[0])]
    if len(set(shapes)) > 1 and max(len(s) for s in shapes) > 4:
        raise common.unsupported(op, f"{op.kind} broadcasting a rank-{max(len(s) for s in shapes)} tensor "
                                     "is not supported (at most 4D)")


# ---------------------------------------------------------------- MAXIMUM, MINIMUM

def maximum(program: Program, op: Op, args: list) -> np.ndarray:
    return np.maximum(args[0], args[1])


def minimum(program: Program, op: Op, args: list) -> np.ndarray:
    return np.minimum(args[0], args[1])


def _check_maximum_minimum(program: Program, op: Op) -> None:
    """TFLite's int8 kernel compares raw values: one quantization for inputs and output."""
    quants = {(float(program.tensor(n).quant.scale[0]), int(program.tensor(n).quant.zero_point[0]))
              for n in (*op.inputs[:2], op.outputs[0])}
    if len(quants) > 1:
        raise common.unsupported(op, f"{op.kind} needs its inputs and output quantized alike, got "
                                     f"(scale, zero point) {sorted(quants)}")
    _check_broadcast_rank(program, op)


def _emit_maximum_minimum(site: c.Site) -> c.CodeFragment:
    a, b = (site.ref(n) for n in site.op.inputs[:2])
    shapes = (c.nhwc4(site.shape(0), site), c.nhwc4(site.shape(1), site), c.nhwc4(site.shape(output=True), site))
    body = [f"const cmsis_nn_dims input_1_dims = {c.dims(shapes[0])};",
            f"const cmsis_nn_dims input_2_dims = {c.dims(shapes[1])};",
            f"const cmsis_nn_dims output_dims = {c.dims(shapes[2])};",
            c.call("mcu_maximum_minimum_s8", [a, "&input_1_dims", b, "&input_2_dims", site.y, "&output_dims",
                                              "1" if site.op.kind == "MAXIMUM" else "0"])]
    return c.CodeFragment([], [c.block(site, "raw int8 values, one shared quantization", body)])


register(
    OpKind("ADD", _broadcast_shapes, add, _emit_add, inputs=(2, 2), tflite=TfliteForm("AddOptions", dict(common.FUSED)),
           storage="overwrite", overwritable=(0, 1), check=_check_broadcast_rank, is_residual_add=True),
    OpKind("MUL", _broadcast_shapes, mul, _emit_mul, inputs=(2, 2), tflite=TfliteForm("MulOptions", dict(common.FUSED)),
           storage="overwrite", overwritable=(0, 1), check=_check_broadcast_rank),
    OpKind("MAXIMUM", _broadcast_shapes, maximum, _emit_maximum_minimum, inputs=(2, 2),
           tflite=TfliteForm("MaximumMinimumOptions"),
           storage="overwrite", overwritable=(0, 1), check=_check_maximum_minimum, label="max"),
    OpKind("MINIMUM", _broadcast_shapes, minimum, _emit_maximum_minimum, inputs=(2, 2),
           tflite=TfliteForm("MaximumMinimumOptions"),
           storage="overwrite", overwritable=(0, 1), check=_check_maximum_minimum, label="min"),
)
