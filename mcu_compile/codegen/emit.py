"""C code for one Edge op: the op kind's emitter (mcu_compile/ops/), asked through the registry."""
from __future__ import annotations

from ..errors import McuCompileError
from ..ir.program import Op, Program
from ..ops import registry
from .c_text import CodeFragment, Ref, Site


def emit_op(program: Program, op: Op, ref: Ref, scratch: str | None, uid: str, index: int = 0) -> CodeFragment:
    """C declarations and statements running `op` (see codegen/c_text.py).

    ref names a tensor's data in C, scratch the op's planned scratch buffer (None if it
    has none), uid prefixes the op's file-scope names and index is the op's position in
    the program (what a failing kernel call reports, through model.c's CHECK macro)."""
    registry.check_op(program, op)
    kind = registry.of(op)
    needed = kind.scratch_bytes(program, op)
    if scratch is None and needed:
        raise McuCompileError(f"{op.kind} needs {needed} B of scratch but none was planned: a compiler bug")
    return kind.emit(Site(program, op, ref, scratch, uid, index))
