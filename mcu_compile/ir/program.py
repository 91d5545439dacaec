"""The Edge program: a typed, in-memory int8 IR with TFLite int8 semantics.

Tensors are named; ops refer to tensors by name and are kept in execution order.
Activations are NHWC. The file form of a Program is a standard TFLite flatbuffer
(see tflite_io.py), so Vela, the TFLite Micro interpreter and Netron can read it.

Op kinds are TFLite builtin operator names ("CONV_2D", ...) or a firmware-only
fused kind; ops/registry.py defines each kind once (its inputs, options and shape rule
live in its family module, ops/<family>.py). Options use TFLite's option field names in
snake_case; fused_activation_function is a key of ops/params.py's
FUSED_ACTIVATION_BOUNDS.
Op.target says where the op runs: "cpu", or "npu" for a delegated partition.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import IRError

DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "float32": 4}


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point).

    One scale/zero point per tensor, or one per channel along `axis`.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    def __post_init__(self):
        # .tflite files store scales as float32; rounding here keeps the in-memory program
        # (which the firmware is generated from) identical to the file TFLM runs.
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32).astype(np.float64))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> "Quant":
        return cls(np.array([scale]), np.array([zero_point]))


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    quant: Quant | None = None
    data: np.ndarray | None = None  # set for constants (weights, biases, shapes)

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        if self.dtype not in DTYPE_BYTES:
            raise IRError(f"tensor {self.name!r}: unsupported dtype {self.dtype!r}")
        if self.data is not None:
            self.data = np.asarray(self.data, dtype=self.dtype).reshape(self.shape)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_BYTES[self.dtype]


@dataclass
class Op:
    kind: str
    inputs: list[str]
    outputs: list[str]
    options: dict = field(default_factory=dict)
    target: str = "cpu"
    source: str = ""  # where in the user's model it came from, for messages

    def __repr__(self):
        return f"Op({self.kind}, in={self.inputs}, out={self.outputs}, {self.options})"


@dataclass
class Program:
    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    metadata: dict[str, bytes] = field(default_factory=dict)

    def add_tensor(self, tensor: Tensor) -> Tensor:
        if tensor.name in self.tensors:
            raise IRError(f"duplicate tensor name {tensor.name!r}")
        self.tensors[tensor.name] = tensor
        return tensor

    def unique_name(self, base: str) -> str:
        name, n = base, 1
        while name in self.tensors:
            name, n = f"{base}_{n}", n + 1
        return name

    def add_op(self, op: Op) -> Op:
        for name in op.inputs + op.outputs:
            if name and name not in self.tensors:
                raise IRError(f"{op.kind}: unknown tensor {name!r}")
        self.ops.append(op)
        return op

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def consumers(self, name: str) -> list[Op]:
        return [op for op in self.ops if name in op.inputs]

    def producer(self, name: str) -> Op | None:
        for op in self.ops:
            if name in op.outputs:
                return op
        return None

    def activations(self) -> list[Tensor]:
        """Non-constant tensors: the ones the memory planner places."""
        return [t for t in self.tensors.values() if not t.is_const]

    def constants(self) -> list[Tensor]:
        return [t for t in self.tensors.values() if t.is_const]

    def verify(self, stage: str = "") -> "Program":
        """Check the program's invariants (ir/verify.py); raises IRError on the first
        violation, naming `stage`. Returns the program, so a pass can end with it."""
        from .verify import verify
        verify(self, stage)
        return self

    def weights(self) -> list[Tensor]:
        """Quantized constants (weights and biases); shape, permutation and padding
        constants are parameters the kernels' calls carry instead."""
        return [t for t in self.constants() if t.quant is not None]
