"""The op registry: one definition per Edge op kind, and every stage asks it.

An OpKind holds everything the compiler knows about a kind: its TFLite form (builtin
code, options table, option fields with defaults: read and written by ir/tflite_io),
shape inference (ir/verify), the numpy reference kernel (TFLM's Eval, reference/),
the C emitter and its scratch size (codegen/), how its output may share storage with
an input (passes/plan), and what the fusion passes may do with it (passes/fuse).
Each op family defines its kinds in one module beside this one (conv, matmul, pool,
reduce, elementwise, activation, lut, shape, slice, resize, quantize, npu) and registers
them here.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import UnsupportedOpError
from ..ir.program import Op, Program

Shapes = Callable[[Program, Op], "list[tuple[int, ...]] | None"]
Kernel = Callable[[Program, Op, list], np.ndarray | list[np.ndarray]]  # one array per output


@dataclass(frozen=True)
class TfliteForm:
    """How a kind is stored in a .tflite: a builtin (or CUSTOM with a custom code), its
    BuiltinOptions table (None: no options) and the option fields, snake_case as in
    TFLite's schema, with their defaults (the IR option keys are these names)."""

    options_table: str | None = None
    fields: dict = field(default_factory=dict)
    custom_code: str | None = None
    builtin: str | None = None  # BuiltinOperator name when it differs from the kind's
    # TFLite Micro's kernel crashes without a bias: the writer adds zeros, one per entry
    # of this weights dimension (the output channels); None: a missing bias is fine
    zero_bias_dim: int | None = None


def _no_scratch(program: Program, op: Op) -> int:
    return 0


def _no_bytes(program: Program, op: Op) -> int:
    return 0


@dataclass(frozen=True)
class OpKind:
    name: str
    shapes: Shapes  # the output shapes from the inputs and options (None: not inferable)
    reference: Kernel | None  # numpy kernel with TFLM's integer semantics
    emit: Callable | None  # codegen.c_text.Site -> CodeFragment; None: no C kernel yet
    tflite: TfliteForm | None = None  # None: a firmware-only (fused) kind, never in a file
    scratch_bytes: Callable[[Program, Op], int] = _no_scratch
    # storage: "own" (a buffer of its own), "input" (the output *is* input 0's bytes,
    # as a reshape), "overwrite" (each output byte depends only on the input bytes at
    # the same index: it may write over one of `overwritable` inputs that dies there),
    # "workspace" (an NPU partition: its feature maps live in its scratch), "view" (the
    # output is rows of input 0, inside its bytes), "parts" (each input is stored inside
    # the output, stacked along the rows: ops/rows.py)
    storage: str = "own"
    overwritable: tuple[int, ...] = ()  # input indices the output may overwrite
    # how many inputs the kind takes (max -1: any number), and which of them, when
    # present, must be constants (weights, biases, permutations, paddings)
    inputs: tuple[int, int] = (1, 1)
    const_inputs: tuple[int, ...] = ()
    label: str = ""  # short name for plots
    int8_input: bool = True  # input 0 must be int8 (checked when a .tflite is read)
    check: Callable[[Program, Op], None] | None = None  # refuses what no kernel can run
    table_bytes: Callable[[Program, Op], int] = _no_bytes  # flash beside the weights (requant tables)
    # fusions (passes/fuse.py)
    # a window kind whose kernel skips out-of-bounds taps: the pad value that skipping
    # equals (a convolution: the input's zero point; max pooling: -128), so a pad op with
    # that value before it may fold into it
    folded_pad_value: Callable[[Program, Op], int] | None = None
    pad_value: Callable[[Program, Op], int] | None = None  # a pad op: the value it pads with
    residual_add_kind: str | None = None  # the kind this op becomes with a residual add fused
    is_residual_add: bool = False  # an addition that may fuse into its producer
    uses_npu: bool = False
    const_sections: Callable[[Op], dict[str, str]] = lambda op: {}  # constant -> linker section
    npu_const_bytes: Callable[[Program, Op], int] = _no_bytes  # in the board's NPU constant region

    def short_label(self) -> str:
        return self.label or self.name.lower().replace("_2d", "")


KINDS: dict[str, OpKind] = {}


def register(*kinds: OpKind) -> None:
    for kind in kinds:
        if kind.name in KINDS:
            raise RuntimeError(f"op kind {kind.name} is defined twice")
        KINDS[kind.name] = kind


def get(kind: str) -> OpKind:
    _load_families()
    if kind not in KINDS:
        raise UnsupportedOpError(f"{kind}: not an op kind mcu-compile knows; supported: {', '.join(sorted(KINDS))}")
    return KINDS[kind]


def of(op: Op) -> OpKind:
    return get(op.kind)


def all_kinds() -> dict[str, OpKind]:
    _load_families()
    return KINDS


def file_kinds() -> dict[str, OpKind]:
    """The kinds a .tflite can hold."""
    return {name: k for name, k in all_kinds().items() if k.tflite is not None}


def scratch_bytes(program: Program, op: Op) -> int:
    """Kernel scratch bytes the op needs (0 if none), as its *_get_buffer_size() computes."""
    return of(op).scratch_bytes(program, op)


def infer_output_shapes(program: Program, op: Op) -> list[tuple[int, ...]] | None:
    """The output shapes the op's kind computes from its inputs and options; None when
    the kind does not say."""
    shapes = of(op).shapes(program, op)
    return None if shapes is None else [tuple(int(d) for d in s) for s in shapes]


def check_compilable(program: Program) -> None:
    """Refuses, before anything is written, an op the firmware cannot run."""
    for op in program.ops:
        check_op(program, op)


def check_op(program: Program, op: Op) -> None:
    """A kind with no C kernel, or a variant its kernel does not take (the kind's own
    check), is one UnsupportedOpError."""
    kind = of(op)
    if kind.emit is None:
        emitted = sorted(n for n, k in all_kinds().items() if k.emit is not None and k.tflite is not None)
        raise UnsupportedOpError(f"{op.source or op.kind}: no C kernel for {op.kind} yet, so it cannot run "
                                 f"in firmware; ops with kernels: {', '.join(emitted)}")
    if kind.check is not None:
        kind.check(program, op)


def uses_npu(program: Program) -> bool:
    return any(of(op).uses_npu for op in program.ops)


_loaded = False


def _load_families() -> None:
    """Import the family modules (they register their kinds): late, because they import
    the code generator's helpers, which import the shared parameters of this package."""
    global _loaded
    if not _loaded:
        _loaded = True
        from . import (activation, conv, elementwise, log_softmax, lut, matmul, npu, pool, prelu,  # noqa: F401
                       quantize, reduce, repeat, resize, rows, shape, slice)
