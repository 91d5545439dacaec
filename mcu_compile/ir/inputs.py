"""Data at an Edge program's edges: a user's arrays in PyTorch layout quantized to the
program's int8 inputs, int8 outputs dequantized back to PyTorch's layout, named arrays
matched to the inputs, and the deterministic LCG data used when no inputs are given."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .program import Program


def lcg_int8(count: int, seed: int = 1) -> np.ndarray:
    """Deterministic int8 test data: s = s*1664525 + 1013904223 (mod 2**32), top byte.

    The same inputs the peer measurements in TARGETS.md used.
    """
    out = np.empty(count, dtype=np.int8)
    s = seed
    for i in range(count):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = np.uint8(s >> 24).view(np.int8)
    return out


def to_program_inputs(program: Program, arrays) -> list[np.ndarray]:
    """One input tuple (PyTorch layout, float or int8) -> the Edge program's int8 inputs.

    4-D float inputs are NCHW as in PyTorch and are transposed to NHWC; int8 arrays
    are taken as already in the Edge program's layout.
    """
    arrays = list(arrays) if isinstance(arrays, (list, tuple)) else [arrays]
    if len(arrays) != len(program.inputs):
        raise InputError(f"the model takes {len(program.inputs)} input(s), got {len(arrays)}")
    result = []
    for name, value in zip(program.inputs, arrays):
        tensor = program.tensor(name)
        value = value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)
        if value.dtype == np.int8:
            quantized = value
        else:
            if not np.issubdtype(value.dtype, np.number) or not np.all(np.isfinite(value)):
                raise InputError(f"input {name!r} holds NaN, infinity or non-numbers; give finite values")
            if value.ndim == 4:
                value = value.transpose(0, 2, 3, 1)
            from ..ops.quantize import quantize_floats  # the ops import this package
            quantized = quantize_floats(value, float(tensor.quant.scale[0]), int(tensor.quant.zero_point[0]))
        if tuple(quantized.shape) != tensor.shape:
            raise InputError(f"input {name!r}: expected shape {list(tensor.shape)} "
                             f"(Edge program layout, NHWC for images), got {list(quantized.shape)}")
        result.append(quantized)
    return result


def default_vectors(program: Program, example_inputs) -> list[list[np.ndarray]]:
    """The test vectors bundled when none are given: the example inputs, else LCG data."""
    if example_inputs is not None:
        example_inputs = example_inputs if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
        return [to_program_inputs(program, example_inputs)]
    return [[lcg_int8(program.tensor(n).size, seed=1 + i).reshape(program.tensor(n).shape)
             for i, n in enumerate(program.inputs)]]


def to_float_outputs(program: Program, outputs: list[np.ndarray]) -> list[np.ndarray]:
    """The program's int8 outputs as real values, 4-D ones in PyTorch's NCHW order (the
    inverse of to_program_inputs' layout change)."""
    from ..ops.quantize import dequantize_ints  # the ops import this package
    result = []
    for name, value in zip(program.outputs, outputs):
        q = program.tensor(name).quant
        real = dequantize_ints(value, float(q.scale[0]), int(q.zero_point[0]))
        result.append(real.transpose(0, 3, 1, 2) if real.ndim == 4 else real)
    return result


def samples_from_arrays(arrays: dict[str, np.ndarray], names: list[str], what: str) -> list[tuple]:
    """Named arrays (one per model input, first axis = sample) -> one input tuple per
    sample. Arrays are matched to the inputs by name when their names are the inputs'
    names, else taken in their stored order."""
    if not arrays:
        raise InputError(f"{what}: no arrays inside; save one array per model input with np.savez "
                         f"(first axis = sample)")
    ordered = [arrays[n] for n in names] if set(arrays) == set(names) else list(arrays.values())
    if len(ordered) != len(names):
        raise InputError(f"{what} holds {len(ordered)} array(s) ({', '.join(arrays)}) but the model takes "
                         f"{len(names)} input(s) ({', '.join(names)}); save one array per input, named as "
                         f"the inputs or in their order")
    counts = {len(a) if np.ndim(a) else 0 for a in ordered}
    if len(counts) != 1 or 0 in counts:
        raise InputError(f"{what}: every array needs the same number of samples along its first axis, "
                         f"got {sorted(counts)}")
    return [tuple(a[i:i + 1] for a in ordered) for i in range(counts.pop())]
