"""Repeating kinds: BROADCAST_TO (the input repeated to a constant shape, numpy's
broadcasting rules). It is a gather (slice.py): along each axis the output position i
reads input index i % size, so a size-1 axis repeats its one entry; new leading output
axes fold into the first input axis's table. No rescaling: the output shares the
input's scale and zero point.

TILE (a converter writes it for `repeat`/`tile`; TFLite's lite/kernels/tile.cc copies the
input multiples[i] times along each axis i) has no TFLite Micro kernel. It is defined here
(shape rule, reference: the same gather with tables i % size) so that a .tflite holding
it can be read and checked, and the reader replaces it by the CONCATENATIONs of copies
that tile_steps lists (ir/tflite_io.py, tiles_as_concatenations), a builtin TFLite Micro
runs; PyTorch's x.repeat lowers to the same steps (frontend/lower.py)."""
from __future__ import annotations

import numpy as np

from ..errors import IRError, UnsupportedOpError
from ..ir.program import Op, Program, Tensor
from . import common
from .registry import OpKind, TfliteForm, register
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


# ---------------------------------------------------------------- TILE

def _tile_multiples(program: Program, op: Op) -> list[int]:
    multiples = const_ints(program, op, 1, ("int32", "int64"))
    x = common.shape(program, op)
    if len(multiples) != len(x) or min(multiples, default=1) < 1:
        raise IRError(f"{where(op)}: multiples {multiples} must be one count >= 1 per input axis ({len(x)} axes)")
    return multiples


def _tile_shapes(program: Program, op: Op):
    return [tuple(d * m for d, m in zip(common.shape(program, op), _tile_multiples(program, op)))]


def _tile_tables(program: Program, op: Op) -> list[Tables]:
    x = common.shape(program, op)
    return [[np.arange(d * m) % d for d, m in zip(x, _tile_multiples(program, op))]]


def tile_steps(shape: tuple[int, ...], multiples) -> list[tuple[int, int, tuple[int, ...]]]:
    """TILE as CONCATENATIONs: per axis repeated more than once, (axis, copies, the shape
    after concatenating that many copies of the result so far along it)."""
    steps = []
    for axis, copies in enumerate(int(m) for m in multiples):
        if copies > 1:
            shape = shape[:axis] + (shape[axis] * copies,) + shape[axis + 1:]
            steps.append((axis, copies, shape))
    return steps


def _check_tile_copies(program: Program, op: Op) -> None:
    """Refuses a TILE that CONCATENATIONs cannot copy: computed multiples, or an output
    quantized unlike its input (both copy bytes; TFLite's converter gives them one)."""
    if len(op.inputs) != 2 or not op.inputs[1] or not program.tensor(op.inputs[1]).is_const:
        raise UnsupportedOpError(f"{op.source}: TILE needs constant multiples; fold them into the model "
                                 "(a constant repeat count) before converting")
    x, y = (program.tensor(name) for name in (op.inputs[0], op.outputs[0]))
    if x.quant is None or y.quant is None or common.quant(program, x.name) != common.quant(program, y.name):
        raise UnsupportedOpError(f"{op.source}: TILE's output scale and zero point differ from its input's "
                                 "(TILE copies bytes); give both the same quantization")


def _tile_as_concatenations(program: Program, op: Op) -> list[Op]:
    """One TILE as the ops TFLite Micro runs: CONCATENATIONs of copies (a RESHAPE, a copy,
    when nothing repeats), the last writing the TILE's output."""
    _check_tile_copies(program, op)
    x, y = op.inputs[0], op.outputs[0]
    ops, steps = [], tile_steps(common.shape(program, op), _tile_multiples(program, op))
    for index, (axis, copies, shape) in enumerate(steps):
        last = index == len(steps) - 1
        out = y if last else program.add_tensor(Tensor(program.unique_name(f"{y}_tiled{axis}"), shape, "int8",
                                                       program.tensor(x).quant)).name
        ops.append(Op("CONCATENATION", [x] * copies, [out], {"axis": axis, "fused_activation_function": "NONE"},
                      source=op.source))
        x = out
    return ops or [Op("RESHAPE", [x], [y], {"new_shape": list(program.tensor(y).shape)}, source=op.source)]


def tiles_as_concatenations(program: Program) -> Program:
    """The program with every TILE replaced by _tile_as_concatenations' ops, in place."""
    program.ops = [new for op in program.ops
                   for new in (_tile_as_concatenations(program, op) if op.kind == "TILE" else [op])]
    return program


register(
    gather_kind("BROADCAST_TO", _broadcast_to_shapes, Gather(_broadcast_to_tables), inputs=(2, 2),
                const_inputs=(1,), tflite=TfliteForm()),
    # emit None: the reader rewrites it (tiles_as_concatenations) before anything is compiled
    OpKind("TILE", _tile_shapes, Gather(_tile_tables).reference, None, TfliteForm("TileOptions"), inputs=(2, 2),
           const_inputs=(1,)),
)
