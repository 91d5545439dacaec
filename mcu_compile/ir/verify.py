"""The IR health check: Program.verify() runs it after every pass.

It checks what every later stage assumes, so that a corrupt file or a pass's bug stops
here with one line naming the stage, instead of a wrong firmware that still agrees
with a host reference running the same wrong program:

- operands: as many inputs as the kind takes, constants where it needs them (weights,
  permutations, paddings);
- structure: at least one output, every tensor an op names exists, one producer per
  tensor, nobody writes a constant or a graph input, ops in topological order (which
  also rules out cycles), every graph output produced or passed through;
- tensors: positive dimensions, constant data of the declared size, quantization with
  one finite positive scale per tensor or per channel of its axis, zero points inside
  the dtype's range;
- shapes: each op's outputs have the shapes its kind infers (ops/registry.py).
"""
from __future__ import annotations

import numpy as np

from ..errors import IRError, McuCompileError
from .program import Op, Program, Tensor

# Real quantization scales (int32 bias scales included) lie far inside this range; outside
# it the file is corrupt and the fixed-point multipliers would overflow.
SCALE_RANGE = (1e-30, 1e30)
_DTYPE_RANGE = {name: (int(np.iinfo(name).min), int(np.iinfo(name).max))
                for name in ("int8", "uint8", "int16", "int32", "int64")}


def verify(program: Program, stage: str = "") -> None:
    """Raises IRError on the first broken invariant, naming `stage` (the pass that ran last)."""
    where = f"after {stage}: " if stage else ""
    try:
        _check_structure(program)
        for tensor in program.tensors.values():
            _check_tensor(tensor)
        for op in program.ops:
            _check_operands(program, op)
            _check_shapes(program, op)
    except IRError as err:
        raise IRError(f"invalid Edge program {where}{err}") from None


def _check_structure(program: Program) -> None:
    if not program.outputs:
        raise IRError("the program has no outputs")
    for name in program.inputs + program.outputs:
        if name not in program.tensors:
            raise IRError(f"graph input/output {name!r} is not a tensor of the program")
    from ..ops import registry  # the op families import the IR
    available = set(program.inputs) | {t.name for t in program.constants()}
    producers: dict[str, int] = {}
    for index, op in enumerate(program.ops):
        has_workspace = registry.of(op).storage == "workspace"  # inputs nobody writes are its own scratch
        for name in op.inputs:
            if not name:
                continue  # an optional input left out (a missing bias)
            if name not in program.tensors:
                raise IRError(f"op {index} ({op.kind}) reads unknown tensor {name!r}")
            if name not in available and not has_workspace:
                raise IRError(f"op {index} ({op.kind}) reads {name!r} before any op writes it "
                              f"(ops out of order, or a cycle)")
        if not op.outputs:
            raise IRError(f"op {index} ({op.kind}) has no outputs")
        for name in op.outputs:
            if name not in program.tensors:
                raise IRError(f"op {index} ({op.kind}) writes unknown tensor {name!r}")
            if name in producers:
                raise IRError(f"tensor {name!r} is written by op {producers[name]} and op {index}")
            if program.tensors[name].is_const or name in program.inputs:
                raise IRError(f"op {index} ({op.kind}) writes {name!r}, a constant or graph input")
            producers[name] = index
            available.add(name)
    for name in program.outputs:
        if name not in available:
            raise IRError(f"graph output {name!r} is never written")


def _check_tensor(tensor: Tensor) -> None:
    if any(d <= 0 for d in tensor.shape):
        raise IRError(f"tensor {tensor.name!r} has shape {list(tensor.shape)}: dimensions must be positive")
    if tensor.data is not None and tensor.data.size != tensor.size:
        raise IRError(f"tensor {tensor.name!r}: {tensor.data.size} values for shape {list(tensor.shape)}")
    q = tensor.quant
    if q is None:
        return
    if q.zero_point.size not in (1, q.scale.size):
        raise IRError(f"tensor {tensor.name!r}: {q.scale.size} scales but {q.zero_point.size} zero points")
    if q.per_channel:
        if not 0 <= q.axis < len(tensor.shape) or tensor.shape[q.axis] != q.scale.size:
            raise IRError(f"tensor {tensor.name!r}: {q.scale.size} scales along axis {q.axis} "
                          f"of shape {list(tensor.shape)}: one per channel expected")
    if not np.all((q.scale >= SCALE_RANGE[0]) & (q.scale <= SCALE_RANGE[1])):
        raise IRError(f"tensor {tensor.name!r}: scales must be finite and positive, within "
                      f"{SCALE_RANGE[0]:g}..{SCALE_RANGE[1]:g}; got {q.scale[:4].tolist()}")
    lo, hi = _DTYPE_RANGE.get(tensor.dtype, (None, None))
    if lo is not None and (q.zero_point.min() < lo or q.zero_point.max() > hi):
        raise IRError(f"tensor {tensor.name!r}: zero point outside the {tensor.dtype} range")


def _check_operands(program: Program, op: Op) -> None:
    from ..ops import registry
    kind = registry.of(op)
    fewest, most = kind.inputs
    if len(op.inputs) < fewest or (most >= 0 and len(op.inputs) > most):
        wanted = f"{fewest}" if fewest == most else f"{fewest} or more" if most < 0 else f"{fewest} to {most}"
        raise IRError(f"{_describe(op)}: {len(op.inputs)} inputs, the kind takes {wanted}")
    for index, name in enumerate(op.inputs):
        required = index < fewest
        if not name and required:
            raise IRError(f"{_describe(op)}: input {index} is missing")
        if name and index in kind.const_inputs and not program.tensors[name].is_const:
            raise IRError(f"{_describe(op)}: input {index} ({name!r}) must be a constant")


def _check_shapes(program: Program, op: Op) -> None:
    from ..ops import registry
    try:
        inferred = registry.infer_output_shapes(program, op)
    except McuCompileError:
        raise
    except Exception as err:  # a shape rule meeting malformed inputs (wrong rank, missing operand)
        raise IRError(f"{_describe(op)}: its inputs do not fit the op "
                      f"({type(err).__name__}: {err})") from None
    if inferred is None:
        return
    actual = [program.tensors[name].shape for name in op.outputs]
    if inferred != actual[:len(inferred)] or len(inferred) != len(actual):
        raise IRError(f"{_describe(op)}: output shapes {[list(s) for s in actual]} but its inputs "
                      f"give {[list(s) for s in inferred]}")


def _describe(op: Op) -> str:
    return f"{op.kind} {op.source}".rstrip() if op.source else f"{op.kind} writing {op.outputs[0]!r}"
