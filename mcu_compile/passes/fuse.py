"""Passes over the Edge program that save memory without changing a single output byte.

They run after the Edge program is written (the .tflite stays standard TFLite) and
before planning; the firmware runs the fused form, the tests check it bit for bit.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir.program import Op, Program
from ..ops import registry
from ..ops.shape import folded_padding


def fold_pads_into_windows(program: Program) -> Program:
    """A pad op before a VALID window op becomes that op's `explicit_padding` ([top, left,
    bottom, right]) when it pads with the value the window's kernel stands for by skipping
    out-of-bounds taps: a convolution's input zero point (x - zero_point = 0 adds nothing),
    max pooling's -128 (never above a real tap). The padded copy is never built.
    """
    ops, dropped = [], set()
    for op in program.ops:
        producer = program.producer(op.inputs[0]) if registry.of(op).folded_pad_value else None
        padding = _foldable_padding(program, producer, op) if producer is not None else None
        if padding is not None:
            op = replace(op, inputs=[producer.inputs[0]] + op.inputs[1:],
                         options={**op.options, "explicit_padding": padding})
            dropped.add(id(producer))
        ops.append(op)
    ops = [op for op in ops if id(op) not in dropped]
    used = {name for op in ops for name in op.inputs + op.outputs} | set(program.inputs) | set(program.outputs)
    tensors = {name: t for name, t in program.tensors.items() if name in used}
    return Program(tensors, ops, list(program.inputs), list(program.outputs), dict(program.metadata))


def _foldable_padding(program: Program, pad: Op, window_op: Op) -> list[int] | None:
    pad_value = registry.of(pad).pad_value
    if pad_value is None or window_op.options.get("padding") != "VALID":
        return None
    if pad_value(program, pad) != registry.of(window_op).folded_pad_value(program, window_op):
        return None
    padded = pad.outputs[0]
    if padded in program.outputs or len(program.consumers(padded)) != 1:
        return None
    return folded_padding(program, pad)


def fuse_residual_adds(program: Program) -> Program:
    """conv -> add(conv, residual) becomes one op of the conv kind's residual_add_kind,
    which adds the residual as it stores each output (mcu_convolve_add_s8), when the
    addition is the convolution's only reader and nothing broadcasts. The sum may then
    overwrite the residual (plan.py decides), so a residual block needs two feature
    maps instead of three."""
    ops = list(program.ops)
    for add in [op for op in ops if registry.of(op).is_residual_add]:
        fused = _residual_fusion(program, add)
        if fused is not None:
            conv, op = fused
            ops[ops.index(add)] = op
            ops.remove(conv)
    return Program(program.tensors, ops, list(program.inputs), list(program.outputs), dict(program.metadata))


def _residual_fusion(program: Program, add):
    out = program.tensor(add.outputs[0])
    for conv_output, residual in (add.inputs[:2], add.inputs[1::-1]):
        conv = program.producer(conv_output)
        if (conv is None or registry.of(conv).residual_add_kind is None
                or conv_output in program.outputs or len(program.consumers(conv_output)) != 1):
            continue
        r = program.tensor(residual)
        if r.is_const or r.shape != out.shape or program.tensor(conv_output).shape != out.shape:
            continue
        # the sum is written over the residual: not when the convolution itself reads it
        # (y + conv(y)), and the fused kernel takes the bias the convolution may lack
        if residual in conv.inputs or len(conv.inputs) < 3 or not conv.inputs[2]:
            continue
        # the conv's own output stays in the program (never stored): its quantization
        # is the convolution's requantization target
        options = {**conv.options, "conv_output": conv_output,
                   "add_fused_activation_function": add.options.get("fused_activation_function", "NONE")}
        inputs = (conv.inputs + [""] * 3)[:3] + [residual]
        return conv, replace(conv, kind=registry.of(conv).residual_add_kind, inputs=inputs,
                             outputs=list(add.outputs), options=options)
    return None
