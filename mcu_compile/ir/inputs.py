"""Input data for an Edge program: a user's arrays in PyTorch layout quantized to the
program's int8 inputs, and the deterministic LCG data used when no inputs are given."""
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
            if value.ndim == 4:
                value = value.transpose(0, 2, 3, 1)
            scale, zero_point = float(tensor.quant.scale[0]), int(tensor.quant.zero_point[0])
            quantized = np.clip(np.round(value / scale) + zero_point, -128, 127).astype(np.int8)
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
