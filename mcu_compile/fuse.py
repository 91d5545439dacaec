"""Passes over the Edge program that save memory without changing a single output byte.

They run after the Edge program is written (the .tflite stays standard TFLite) and
before planning; the firmware runs the fused form, the tests check it bit for bit.
"""
from __future__ import annotations

from dataclasses import replace

from .ir import Program

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
