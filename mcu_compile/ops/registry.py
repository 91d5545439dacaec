"""The op registry: one definition per Edge op kind, asked by every stage.

(Being filled in: for now it forwards to the modules that still hold the tables.)
"""
from __future__ import annotations

from ..ir.program import Op, Program


def scratch_bytes(program: Program, op: Op) -> int:
    """Kernel scratch bytes the op needs (0 if none), as its *_get_buffer_size() computes."""
    from ..codegen import ops as codegen_ops
    return codegen_ops.scratch_bytes(program, op)


def infer_output_shapes(program: Program, op: Op) -> list[tuple[int, ...]] | None:
    """The output shapes the op's kind computes from its inputs and options; None when
    the kind does not (yet) say."""
    return None
