"""Passes over the Edge program that save memory without changing a single output byte.

They run after the Edge program is written (the .tflite stays standard TFLite) and
before planning; the firmware runs the fused form, the tests check it bit for bit.
"""
from __future__ import annotations

from dataclasses import replace

from ..ir.program import Program

PADDABLE = ("CONV_2D", "DEPTHWISE_CONV_2D")


def fold_pads_into_convolutions(program: Program) -> Program:
    """PAD -> VALID convolution becomes one convolution with explicit leading padding.

    The kernels skip out-of-bounds taps, which adds exactly what taps on the zero
    point would (x - zero_point = 0), so the padded copy of the input is never built.
    """
    ops, dropped = [], set()
    for op in program.ops:
        producer = program.producer(op.inputs[0]) if op.kind in PADDABLE else None
        if producer is not None and _foldable(program, producer, op):
            paddings = program.tensor(producer.inputs[1]).data
            op = replace(op, inputs=[producer.inputs[0]] + op.inputs[1:],
                         options={**op.options, "explicit_padding": [int(paddings[1][0]), int(paddings[2][0])]})
            dropped.add(id(producer))
        ops.append(op)
    ops = [op for op in ops if id(op) not in dropped]
    used = {name for op in ops for name in op.inputs + op.outputs} | set(program.inputs) | set(program.outputs)
    tensors = {name: t for name, t in program.tensors.items() if name in used}
    return Program(tensors, ops, list(program.inputs), list(program.outputs), dict(program.metadata))


def _foldable(program: Program, pad, conv) -> bool:
    if pad.kind != "PAD" or conv.options.get("padding") != "VALID":
        return False
    padded = pad.outputs[0]
    if padded in program.outputs or len(program.consumers(padded)) != 1:
        return False
    paddings = program.tensor(pad.inputs[1]).data
    # only spatial padding, and a kernel can only skip leading/trailing taps that are >= 0
    return (paddings.shape == (4, 2) and not paddings[0].any() and not paddings[3].any()
            and (paddings >= 0).all())


def fuse_residual_adds(program: Program) -> Program:
    """CONV_2D -> ADD(conv, residual) becomes one CONV_2D that adds the residual as it
    stores each output (mcu_convolve_add_s8), when the ADD is the convolution's only
    reader and nothing broadcasts. The sum may then overwrite the residual (plan.py
    decides), so a residual block needs two feature maps instead of three."""
    ops = list(program.ops)
    for add in [op for op in ops if op.kind == "ADD"]:
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
        if (conv is None or conv.kind != "CONV_2D" or "residual_add" in conv.options
                or conv_output in program.outputs or len(program.consumers(conv_output)) != 1):
            continue
        r = program.tensor(residual)
        if r.is_const or r.shape != out.shape or program.tensor(conv_output).shape != out.shape:
            continue
        options = {**conv.options, "residual_add": {
            "conv_output": conv_output,
            "fused_activation_function": add.options.get("fused_activation_function", "NONE")}}
        inputs = (conv.inputs + [""] * 3)[:3] + [residual]
        return conv, replace(conv, inputs=inputs, outputs=list(add.outputs), options=options)
    return None
