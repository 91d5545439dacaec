"""Row views: the two firmware-only kinds patch-based execution (passes/patch.py) builds
its strips with. Both move no data when the planner places them as intended, which it
always does (passes/plan.py storage "view" and "parts"):

- ROW_VIEW: rows [row, row + rows) of an NHWC tensor with batch 1: bytes of its input,
  `row * W * C` bytes in.
- ROW_CONCAT: its inputs stacked along the rows (axis 1), each input stored in place
  inside the output at its rows' offset: the strips of a patch stage write straight into
  the tensor after the stage.

Their C is a comment when the buffers coincide; should a plan ever place them apart, the
emitted code copies (memmove) instead of computing on the wrong bytes.
"""
from __future__ import annotations

import numpy as np

from ..codegen import c_text as c
from ..errors import IRError
from ..ir.program import Op, Program
from . import common
from .registry import OpKind, register


def row_bytes(program: Program, name: str) -> int:
    """Bytes of one row of an NHWC tensor with batch 1."""
    t = program.tensor(name)
    return t.nbytes // (t.shape[0] * t.shape[1])


def concat_offsets(program: Program, op: Op) -> list[int]:
    """Byte offset of each ROW_CONCAT input inside its output."""
    offsets, row = [], 0
    for name in op.inputs:
        offsets.append(row * row_bytes(program, op.outputs[0]))
        row += program.tensor(name).shape[1]
    return offsets


def view_offset(program: Program, op: Op) -> int:
    return op.options["row"] * row_bytes(program, op.inputs[0])


def _check_rank(program: Program, op: Op, names) -> None:
    for name in names:
        shape = program.tensor(name).shape
        if len(shape) != 4 or shape[0] != 1:
            raise IRError(f"{op.kind} writing {op.outputs[0]!r}: {name!r} is {list(shape)}, not NHWC with batch 1")


def _view_shapes(program: Program, op: Op):
    _check_rank(program, op, op.inputs)
    n, h, w, ch = common.shape(program, op)
    row, rows = op.options["row"], op.options["rows"]
    if not (0 <= row and 0 < rows and row + rows <= h):
        raise IRError(f"ROW_VIEW writing {op.outputs[0]!r}: rows {row}..{row + rows - 1} outside 0..{h - 1}")
    return [(n, rows, w, ch)]


def _view(program: Program, op: Op, args: list) -> np.ndarray:
    row = op.options["row"]
    return args[0][:, row:row + op.options["rows"]]


def _in_place(inner: str, outer: str, offset: int) -> bool:
    """Whether the C expression `inner` is `outer` + offset as codegen/model.py writes it."""
    return inner == (f"({outer} + {offset})" if offset else outer)


def _emit_view(site: c.Site) -> c.CodeFragment:
    offset, size = view_offset(site.program, site.op), site.program.tensor(site.op.outputs[0]).nbytes
    row, rows = site.op.options["row"], site.op.options["rows"]
    if _in_place(site.y, site.x, offset):
        return c.CodeFragment([], [c.comment(f"{site.op.outputs[0]}: rows {row}..{row + rows - 1} of "
                                             f"{site.op.inputs[0]}, in place")])
    return c.CodeFragment([], [c.block(site, f"rows {row}..{row + rows - 1}, copied",
                                       [f"memmove({site.y}, {site.x} + {offset}, {size});"])])


def _concat_shapes(program: Program, op: Op):
    _check_rank(program, op, op.inputs)
    shapes = [program.tensor(n).shape for n in op.inputs]
    if any(s[2:] != shapes[0][2:] for s in shapes):
        raise IRError(f"ROW_CONCAT writing {op.outputs[0]!r}: parts of different widths or channels")
    return [(1, sum(s[1] for s in shapes), *shapes[0][2:])]


def _concat(program: Program, op: Op, args: list) -> np.ndarray:
    return np.concatenate(args, axis=1)


def _emit_concat(site: c.Site) -> c.CodeFragment:
    program, op = site.program, site.op
    copies = [f"memmove({site.y} + {offset}, {site.ref(name)}, {program.tensor(name).nbytes});"
              for name, offset in zip(op.inputs, concat_offsets(program, op))
              if not _in_place(site.ref(name), site.y, offset)]
    if not copies:
        return c.CodeFragment([], [c.comment(f"{op.outputs[0]}: {len(op.inputs)} strips, each written in place")])
    return c.CodeFragment([], [c.block(site, "strips copied", copies)])


register(
    OpKind("ROW_VIEW", _view_shapes, _view, _emit_view, storage="view", label="rows"),
    OpKind("ROW_CONCAT", _concat_shapes, _concat, _emit_concat, storage="parts", inputs=(1, -1), label="strips"),
)
