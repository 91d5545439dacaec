"""Elementwise binary ops: ADD, SUB and MUL, int8 with TFLite's rescaling, shapes equal or
broadcast (numpy rules), a fused activation clamp; SQUARED_DIFFERENCE (SUB's rescaling,
the difference squared); MAXIMUM and MINIMUM, which compare raw values of inputs that
share the output's quantization."""
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


def add_params_for(q1: Quant, q2: Quant, qo: Quant, left_shift: int = 20, squared: bool = False) -> AddParams:
    """TFLite int8 ADD's and SUB's Prepare: both inputs rescaled to 2*max(s1, s2) with
    left_shift bits of headroom, the ratios in double. With squared (SQUARED_DIFFERENCE),
    the output multiplier maps the squared difference."""
    s1, s2, so = float(q1.scale[0]), float(q2.scale[0]), float(qo.scale[0])
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    if squared:
        mo, sho = quantize_multiplier(twice_max * twice_max / ((1 << (2 * left_shift)) * so))
    else:
        mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return AddParams(left_shift, -int(q1.zero_point[0]), m1, sh1, -int(q2.zero_point[0]), m2, sh2,
                     int(qo.zero_point[0]), mo, sho)


def _quants(program: Program, op: Op) -> list[Quant]:
    return [program.tensor(n).quant for n in (*op.inputs[:2], op.outputs[0])]


def add_params(program: Program, op: Op) -> AddParams:
    """ADD's and SUB's (the tflite-micro interpreter computes SUB's ratios in double as ADD's)."""
    return add_params_for(*_quants(program, op))


def squared_difference_params(program: Program, op: Op) -> AddParams:
    """TFLite Micro's SQUARED_DIFFERENCE Prepare: 7 bits of headroom (255**2 * 2**14 fits in int32)."""
    return add_params_for(*_quants(program, op), left_shift=7, squared=True)


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


def _rescaled(p: AddParams, args: list) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs offset, shifted left and rescaled to the common scale (TFLite's ADD and SUB)."""
    a = (args[0].astype(np.int64) + p.input1_offset) << p.left_shift
    b = (args[1].astype(np.int64) + p.input2_offset) << p.left_shift
    return (_smaller_than_one(a, p.input1_multiplier, p.input1_shift),
            _smaller_than_one(b, p.input2_multiplier, p.input2_shift))


def _add_or_sub(program: Program, op: Op, p: AddParams, args: list, sign: int) -> np.ndarray:
    """a + b or a - b: not an ADD with the second multiplier negated, as the doubling high
    multiply rounds ties towards +infinity (it is not odd)."""
    a, b = _rescaled(p, args)
    out = _smaller_than_one(a + sign * b, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, *params.op_activation_range(program, op))


def add(program: Program, op: Op, args: list) -> np.ndarray:
    return _add_or_sub(program, op, add_params(program, op), args, 1)


def sub(program: Program, op: Op, args: list) -> np.ndarray:
    return _add_or_sub(program, op, add_params(program, op), args, -1)


def squared_difference(program: Program, op: Op, args: list) -> np.ndarray:
    p = squared_difference_params(program, op)
    a, b = _rescaled(p, args)
    out = mbqm((a - b) ** 2, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, params.INT8_MIN, params.INT8_MAX)


def mul(program: Program, op: Op, args: list) -> np.ndarray:
    p = mul_params(program, op)
    a = args[0].astype(np.int64) + p.input1_offset
    prod = a * (args[1].astype(np.int64) + p.input2_offset)
    out = mbqm(prod, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(out, *params.op_activation_range(program, op))


# ---------------------------------------------------------------- C emitters

def _dims(site: c.Site) -> list[str]:
    """input_1_dims, input_2_dims and output_dims: the three shapes as 4D NHWC."""
    shapes = (site.shape(0), site.shape(1), site.shape(output=True))
    return [f"const mcu_nn_dims {name}_dims = {c.dims(c.nhwc4(shape, site))};"
            for name, shape in zip(("input_1", "input_2", "output"), shapes)]


def _output_quant_lines(site: c.Site, offset: int, multiplier: int, shift: int) -> list[str]:
    lo, hi = c.activation(site)
    return [c.named_ints([("out_offset", offset), ("out_mult", multiplier), ("out_shift", shift)]),
            c.named_ints([("act_min", lo), ("act_max", hi)])]


def _elementwise(site: c.Site, name: str, quant_lines: list[str], quant_args: list[str]) -> c.CodeFragment:
    """The CMSIS-NN kernel on equal shapes, the mcu_ broadcasting one otherwise."""
    a, b = (site.ref(n) for n in site.op.inputs[:2])
    out_args = ["out_offset", "out_mult", "out_shift", "act_min", "act_max"]
    if site.shape(0) == site.shape(1) == site.shape(output=True):
        size = site.program.tensor(site.op.outputs[0]).size
        call = c.checked_call(site, f"mcu_elementwise_{name}_s8",
                              [a, b, *quant_args, site.y, *out_args, str(size)])
        return c.CodeFragment([], [c.block(site, f"{size} elements" + c.activation_text(site), quant_lines + [call])])
    call = c.checked_call(site, f"mcu_broadcast_{name}_s8", [a, "&input_1_dims", b, "&input_2_dims", *quant_args,
                                                             site.y, "&output_dims", *out_args])
    return c.CodeFragment([], [c.block(site, "broadcast" + c.activation_text(site),
                                       quant_lines + _dims(site) + [call])])


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


def add_quant_declaration(p: AddParams, act_min: int, act_max: int) -> str:
    """`quant`, an mcu_add_quant (the rescaling of ADD, SUB and SQUARED_DIFFERENCE) holding p."""
    return (f"const mcu_add_quant quant = {{{p.input1_offset}, {p.input1_multiplier}, {p.input1_shift}, "
            f"{p.input2_offset}, {p.input2_multiplier}, {p.input2_shift},\n"
            f"    {p.left_shift}, {p.output_offset}, {p.output_multiplier}, {p.output_shift}, {act_min}, {act_max}}};")


def _emit_sub(site: c.Site) -> c.CodeFragment:
    """mcu_sub_s8 on any shapes: SUB, or SQUARED_DIFFERENCE (the difference squared)."""
    squared = site.op.kind == "SQUARED_DIFFERENCE"
    p = (squared_difference_params if squared else add_params)(site.program, site.op)
    a, b = (site.ref(n) for n in site.op.inputs[:2])
    call = c.checked_call(site, "mcu_sub_s8", [a, "&input_1_dims", b, "&input_2_dims", "&quant", site.y,
                                               "&output_dims", "1" if squared else "0"])
    body = [add_quant_declaration(p, *c.activation(site)), *_dims(site), call]
    summary = ("squared" if squared else "input 1 - input 2") + c.activation_text(site)
    return c.CodeFragment([], [c.block(site, summary, body)])


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


def _check_squared_difference(program: Program, op: Op) -> None:
    """Below this output scale TFLite Micro's int8 kernel overflows int32 (its left shift
    wraps where ours saturates): a squared difference is below 2**30, so a shift of 1 is safe."""
    _check_broadcast_rank(program, op)
    if squared_difference_params(program, op).output_shift > 1:
        raise common.unsupported(op, f"int8 {op.kind} needs an output scale of at least (2 * the larger input "
                                     "scale)**2 / 2**15; below it TFLite Micro's kernel overflows int32")


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
    body = [*_dims(site),
            c.checked_call(site, "mcu_maximum_minimum_s8", [a, "&input_1_dims", b, "&input_2_dims", site.y,
                                                            "&output_dims", "1" if site.op.kind == "MAXIMUM" else "0"])]
    return c.CodeFragment([], [c.block(site, "raw int8 values, one shared quantization", body)])


register(
    OpKind("ADD", _broadcast_shapes, add, _emit_add, inputs=(2, 2), tflite=TfliteForm("AddOptions", dict(common.FUSED)),
           storage="overwrite", overwritable=(0, 1), check=_check_broadcast_rank, is_residual_add=True),
    OpKind("MUL", _broadcast_shapes, mul, _emit_mul, inputs=(2, 2), tflite=TfliteForm("MulOptions", dict(common.FUSED)),
           storage="overwrite", overwritable=(0, 1), check=_check_broadcast_rank),
    OpKind("SUB", _broadcast_shapes, sub, _emit_sub, inputs=(2, 2), tflite=TfliteForm("SubOptions", dict(common.FUSED)),
           storage="overwrite", overwritable=(0, 1), check=_check_broadcast_rank),
    OpKind("SQUARED_DIFFERENCE", _broadcast_shapes, squared_difference, _emit_sub, inputs=(2, 2),
           tflite=TfliteForm("SquaredDifferenceOptions"), storage="overwrite", overwritable=(0, 1),
           check=_check_squared_difference, label="sqdiff"),
    OpKind("MAXIMUM", _broadcast_shapes, maximum, _emit_maximum_minimum, inputs=(2, 2),
           tflite=TfliteForm("MaximumMinimumOptions"),
           storage="overwrite", overwritable=(0, 1), check=_check_maximum_minimum, label="max"),
    OpKind("MINIMUM", _broadcast_shapes, minimum, _emit_maximum_minimum, inputs=(2, 2),
           tflite=TfliteForm("MaximumMinimumOptions"),
           storage="overwrite", overwritable=(0, 1), check=_check_maximum_minimum, label="min"),
)
