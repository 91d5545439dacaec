"""The PyTorch (ATen) ops mcu-compile accepts: one table, filled by the lowerings
themselves (frontend/lower.py: `@lowers("aten.x.default", role=...)` on the function
that lowers the op), so an op's name, quantization role and lowering are stated once.

Quantization roles:
  weighted   conv/linear: int8 activation in, per-channel int8 weights, int32 bias
  binary     add/mul: both inputs and the output have their own activation scale
  shared     output reuses the input's scale (pooling, reshapes, concat, maximum,
             minimum): TFLite requires it for these int8 kernels
  activation relu/relu6: fused into the producer when it is a weighted or binary op
  unit_output  output in [0, 1): fixed scale 1/256, zero point -128 (TFLite's int8
             softmax and sigmoid); symmetric_unit_output: (-1, 1), 1/128 and 0 (tanh);
             log_unit_output: (-16, 0], 16/256 and 127 (log_softmax)
  unary      an elementwise function of one value with its own output scale
  identity   no computation (dropout in eval, clone, contiguous)
  constant   made in the graph (zeros): no inputs, its readers observe it
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AtenOp:
    role: str
    lower: Callable  # (Lowering, node, output quant, fused activation) -> Edge tensor name


_ATEN_OPS: dict[str, AtenOp] = {}


def lowers(*names: str, role: str):
    """Registers the decorated lowering for the ATen ops `names` with their quantization role."""
    def register(function):
        for name in names:
            if name in _ATEN_OPS:
                raise RuntimeError(f"{name} is lowered twice")
            _ATEN_OPS[name] = AtenOp(role, function)
        return function
    return register


def aten_ops() -> dict[str, AtenOp]:
    from . import lower  # noqa: F401  (its lowerings register themselves on import)
    return _ATEN_OPS


def role_of(target) -> str | None:
    op = aten_ops().get(aten_name(target))
    return op.role if op else None


# Fused into the conv before quantization (torchao's PT2E prepare folds it).
FOLDED_ATEN_OPS = {"aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default"}


def aten_name(target) -> str:
    """'aten.conv2d.default' for torch.ops.aten.conv2d.default."""
    if not hasattr(target, "_schema"):
        return str(target)
    return f"aten.{target._schema.name.split('::')[1]}.{target._overloadname}"


def supported_list() -> str:
    names = sorted({n.split(".")[1] for n in aten_ops()})
    return ", ".join(names)
