"""Repeating kinds: BROADCAST_TO (the input repeated to a constant shape, numpy's
broadcasting rules). It is a gather (slice.py): along each axis the output position i
reads input index i % size, so a size-1 axis repeats its one entry; new leading output
axes fold into the first input axis's table. No rescaling: the output shares the
input's scale and zero point. TILE is not here: TFLite Micro has no TILE kernel."""
from __future__ import annotations

import numpy as np

from ..errors import IRError
from ..ir.program import Op, Program
from . import common
from .registry import TfliteForm, register
from .slice import Gather, Tables, const_ints, gather_kind, where


def _broadcast_to_shapes(program: Program, op: Op):
    x = common.shape(program, op)
    shape = tuple(const_ints(program, op, 1, ("int32", "int64")))
    if (len(shape) > 5 or len(shape) < len(x) or min(shape, default=1) < 1
            or any(d not in (1, o) for d, o in zip(reversed(x), reversed(shape)))):
        raise IRError(f"{where(op)}: cannot broadcast the shape {list(x)} to {list(shape)} "
                      "(TFLite Micro takes at most 5 axes)")
    return [shape]


def _broadcast_to_tables(program: Program, op: Op) -> list[Tables]:
    x, [out] = common.shape(program, op), _broadcast_to_shapes(program, op)
    if not x:
        raise common.unsupported(op, f"{op.kind} of a scalar is not supported; reshape it to [1] first")
    lead = len(out) - len(x) + 1  # the output axes the first input axis spans
    sizes = [int(np.prod(out[:lead]))] + list(out[lead:])
    return [[np.arange(n) % d for n, d in zip(sizes, x)]]


register(
    gather_kind("BROADCAST_TO", _broadcast_to_shapes, Gather(_broadcast_to_tables), inputs=(2, 2),
                const_inputs=(1,), tflite=TfliteForm()),
)
