"""Host reference interpreter: runs an Edge program in numpy, bit-exact with TFLite Micro.

Each op kind's kernel (mcu_compile/ops/, asked through the registry) follows the
integer arithmetic of TFLite Micro's reference kernels
(tensorflow/lite/kernels/internal/reference), taking its parameters where the C
emitter takes them, so the firmware, the reference and TFLite Micro agree byte for byte.
"""
from __future__ import annotations

import numpy as np

from ..errors import McuCompileError, InputError, UnsupportedOpError
from ..ir.program import Op, Program
from ..ops import registry


def run(program: Program, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run the program on one set of inputs; returns its outputs in program order."""
    values = run_with_intermediates(program, inputs)
    return [values[name] for name in program.outputs]


def run_with_intermediates(program: Program, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Run the program; returns every activation tensor (inputs included) by name."""
    values = dict(zip(program.inputs, _checked_inputs(program, inputs)))
    for op in program.ops:
        kernel = registry.of(op).reference
        if kernel is None:
            with_kernels = sorted(n for n, k in registry.all_kinds().items() if k.reference is not None)
            raise UnsupportedOpError(f"{op.source or op.kind}: the reference interpreter has no "
                                     f"{op.kind} kernel; supported: {', '.join(with_kernels)}")
        args = [_value(program, values, name, op) for name in op.inputs]
        result = kernel(program, op, args)
        # a kind with several outputs (SPLIT) returns a list of arrays, one per output
        arrays = result if isinstance(result, list) else [result]
        if len(arrays) != len(op.outputs):
            raise McuCompileError(f"{op.kind}: the reference kernel gave {len(arrays)} output(s) "
                                  f"for the op's {len(op.outputs)}: a compiler bug")
        for name, array in zip(op.outputs, arrays):
            out = program.tensor(name)
            values[name] = np.asarray(array).astype(out.dtype).reshape(out.shape)
    return values


def _checked_inputs(program: Program, inputs: list[np.ndarray]) -> list[np.ndarray]:
    if len(inputs) != len(program.inputs):
        raise InputError(f"the model takes {len(program.inputs)} input(s), got {len(inputs)}; "
                         "pass one array per model input")
    checked = []
    for name, x in zip(program.inputs, inputs):
        t, x = program.tensor(name), np.asarray(x)
        if x.shape != t.shape or x.dtype != np.dtype(t.dtype):
            raise InputError(f"input {name!r}: expected {t.dtype} array of shape {t.shape}, "
                             f"got {x.dtype} {x.shape}; quantize and reshape the input to match")
        checked.append(x)
    return checked


def _value(program: Program, values: dict, name: str, op: Op):
    if not name:
        return None
    t = program.tensor(name)
    if t.is_const:
        return t.data
    if name not in values:
        raise McuCompileError(f"{op.kind} reads tensor {name!r} before any op produces it; "
                           "the program's ops are not in execution order")
    return values[name]
