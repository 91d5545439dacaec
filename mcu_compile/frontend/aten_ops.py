"""The PyTorch (ATen) ops mcu-compile accepts, and how each is quantized.

One row per op: adding an op means a row here, a lowering in lower.py (keyed by the
same name) and, if it needs a new kernel, one in cmsis_kernels/.

Quantization roles:
  weighted   conv/linear: int8 activation in, per-channel int8 weights, int32 bias
  binary     add/mul: both inputs and the output have their own activation scale
  shared     output reuses the input's scale (pooling, reshapes, concat): TFLite
             requires it for these int8 kernels
  activation relu/relu6: fused into the producer when it is a weighted or binary op
  softmax    fixed output scale 1/256, zero point -128 (TFLite's int8 softmax)
  identity   no computation (dropout in eval, clone, contiguous)
"""
from __future__ import annotations

SUPPORTED_ATEN_OPS: dict[str, str] = {
    "aten.conv2d.default": "weighted",
    "aten.linear.default": "weighted",
    "aten.add.Tensor": "binary",
    "aten.mul.Tensor": "binary",
    "aten.relu.default": "activation",
    "aten.relu6.default": "activation",
    "aten.hardtanh.default": "activation",
    "aten.max_pool2d.default": "shared",
    "aten.avg_pool2d.default": "shared",
    "aten.adaptive_avg_pool2d.default": "shared",
    "aten.mean.dim": "shared",
    "aten.flatten.using_ints": "shared",
    "aten.view.default": "shared",
    "aten.reshape.default": "shared",
    "aten.permute.default": "shared",
    "aten.cat.default": "shared",
    "aten.softmax.int": "softmax",
    "aten.dropout.default": "identity",
    "aten.clone.default": "identity",
    "aten.contiguous.default": "identity",
}

# Fused into the conv before quantization (torchao's PT2E prepare folds it).
FOLDED_ATEN_OPS = {"aten.batch_norm.default", "aten._native_batch_norm_legit_no_training.default"}


def aten_name(target) -> str:
    """'aten.conv2d.default' for torch.ops.aten.conv2d.default."""
    return str(target) if not hasattr(target, "_schema") else f"aten.{target._schema.name.split('::')[1]}.{target._overloadname}"


def supported_list() -> str:
    names = sorted({n.split(".")[1] for n in SUPPORTED_ATEN_OPS})
    return ", ".join(names)
