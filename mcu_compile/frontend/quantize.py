"""Stage 2, quantize: PT2E post-training quantization with mcu-compile's own Quantizer.

int8 activations (asymmetric, per tensor), int8 weights (symmetric per output
channel, +-127), int32 bias (scale = s_in * s_w); conv+batchnorm folded and
relu/relu6 fused into the op that produces their input, as TFLite int8 expects.
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import Iterable

import torch

# torchao's compiled extensions are CUDA kernels we never call; loading them only prints
# warnings on a CPU-only machine, as does a deprecation notice of its pytree registrations.
os.environ.setdefault("TORCHAO_FORCE_SKIP_LOADING_SO_FILES", "1")
logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
logging.getLogger("torchao").setLevel(logging.ERROR)
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.observer import MinMaxObserver, PerChannelMinMaxObserver
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer import (
    DerivedQuantizationSpec,
    FixedQParamsQuantizationSpec,
    QuantizationAnnotation,
    QuantizationSpec,
    Quantizer,
    SharedQuantizationSpec,
)

from ..errors import InputError
from .aten_ops import aten_name, role_of

ACTIVATION = QuantizationSpec(
    dtype=torch.int8, quant_min=-128, quant_max=127, qscheme=torch.per_tensor_affine,
    observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
WEIGHT = QuantizationSpec(
    dtype=torch.int8, quant_min=-127, quant_max=127, qscheme=torch.per_channel_symmetric, ch_axis=0,
    observer_or_fake_quant_ctr=PerChannelMinMaxObserver.with_args(eps=2**-12))
TRANSPOSED_WEIGHT = QuantizationSpec(
    dtype=torch.int8, quant_min=-127, quant_max=127, qscheme=torch.per_channel_symmetric, ch_axis=1,
    observer_or_fake_quant_ctr=PerChannelMinMaxObserver.with_args(eps=2**-12))
UNIT_OUTPUT = FixedQParamsQuantizationSpec(
    dtype=torch.int8, scale=1.0 / 256.0, zero_point=-128, quant_min=-128, quant_max=127,
    qscheme=torch.per_tensor_affine)
# output in (-1, 1): TFLite's int8 tanh writes scale 1/128, zero point 0
SYMMETRIC_UNIT_OUTPUT = FixedQParamsQuantizationSpec(
    dtype=torch.int8, scale=1.0 / 128.0, zero_point=0, quant_min=-128, quant_max=127,
    qscheme=torch.per_tensor_affine)
# log of a probability, in (-16, 0]: TFLite's int8 LOG_SOFTMAX writes scale 16/256, zero point 127
LOG_UNIT_OUTPUT = FixedQParamsQuantizationSpec(
    dtype=torch.int8, scale=16.0 / 256.0, zero_point=127, quant_min=-128, quant_max=127,
    qscheme=torch.per_tensor_affine)
FUSABLE_PRODUCERS = ("weighted", "transposed_weighted", "binary")


def _bias_spec(input_node: Node, weight_node: Node, node: Node) -> DerivedQuantizationSpec:
    def derive(observers):
        act, weight = observers
        act_scale, _ = act.calculate_qparams()
        weight_scale, _ = weight.calculate_qparams()
        scale = (act_scale * weight_scale).to(torch.float32)
        return scale, torch.zeros_like(scale, dtype=torch.int32)

    return DerivedQuantizationSpec(
        derived_from=[(input_node, node), (weight_node, node)], derive_qparams_fn=derive,
        dtype=torch.int32, quant_min=-(2**31) + 1, quant_max=2**31 - 1,
        qscheme=torch.per_channel_symmetric, ch_axis=0)


def role(node: Node) -> str | None:
    if node.op != "call_function":
        return None
    return role_of(node.target)


def fused_activation_of(node: Node) -> Node | None:
    """The relu/relu6 that consumes this op's output alone, if it can be fused into it."""
    if role(node) not in FUSABLE_PRODUCERS or len(node.users) != 1:
        return None
    user = next(iter(node.users))
    return user if role(user) == "activation" and is_fusable_activation(user) else None


def activation_bounds(node: Node) -> tuple[float, float]:
    """(low, high) of relu (0, inf), relu6 (0, 6), hardtanh (default -1, 1) and clamp,
    clamp_min, clamp_max (an absent bound is infinite)."""
    name = aten_name(node.target)
    if name == "aten.relu.default":
        return 0.0, float("inf")
    if name == "aten.relu6.default":
        return 0.0, 6.0
    if name == "aten.hardtanh.default":
        low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min_val", -1.0)
        high = node.args[2] if len(node.args) > 2 else node.kwargs.get("max_val", 1.0)
        return float(low), float(high)
    bounds = list(node.args[1:3]) + [None] * (3 - len(node.args))
    if name == "aten.clamp_max.default":
        bounds = [None, node.args[1]]
    low, high = (node.kwargs.get(key, bound) for key, bound in zip(("min", "max"), bounds))
    return (float("-inf") if low is None else float(low)), (float("inf") if high is None else float(high))


def is_fusable_activation(node: Node) -> bool:
    return activation_bounds(node) in ((0.0, float("inf")), (0.0, 6.0), (-1.0, 1.0))


# Standalone clamps TFLite has an op for (RELU, RELU6: they also rescale, so the output has its
# own scale); any other bounds clamp by comparison (MAXIMUM/MINIMUM, raw values: one scale).
OWN_OP_CLAMPS = {(0.0, float("inf")): "RELU", (0.0, 6.0): "RELU6"}
CLAMPS = {"aten.relu.default", "aten.relu6.default", "aten.hardtanh.default", "aten.clamp.default",
          "aten.clamp_min.default", "aten.clamp_max.default"}


def clamps_by_comparison(node: Node) -> bool:
    """A clamp that, unfused, lowers to MAXIMUM/MINIMUM against its bounds quantized on the
    input's scale: its output shares the input's quantization."""
    return aten_name(node.target) in CLAMPS and activation_bounds(node) not in OWN_OP_CLAMPS


def _has_fixed_output(node: Node) -> bool:
    annotation = node.meta.get("quantization_annotation")
    return annotation is not None and isinstance(annotation.output_qspec, FixedQParamsQuantizationSpec)


class McuQuantizer(Quantizer):
    """Annotates an exported graph with TFLite-compatible int8 quantization."""

    def annotate(self, model: GraphModule) -> GraphModule:
        for node in model.graph.nodes:
            kind = role(node)
            if kind is None or "quantization_annotation" in node.meta:
                continue
            getattr(self, f"_annotate_{kind}")(node)
        return model

    def validate(self, model: GraphModule) -> None:
        pass

    @staticmethod
    def _set(node: Node, inputs: dict, output) -> None:
        # an activation input read straight from a fixed-scale output (softmax, sigmoid,
        # tanh) keeps that scale: a second observer would need a requantizing op between
        inputs = {arg: SharedQuantizationSpec(arg) if spec is ACTIVATION and _has_fixed_output(arg) else spec
                  for arg, spec in inputs.items()}
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map=inputs, output_qspec=output, _annotated=True)

    def _output_spec_with_fusion(self, node: Node):
        """The op's output spec, or none if a fused activation carries it."""
        activation = fused_activation_of(node)
        if activation is None:
            return ACTIVATION
        self._set(activation, {}, ACTIVATION)
        return None

    def _annotate_weighted(self, node: Node, weight_spec: QuantizationSpec = WEIGHT) -> None:
        x, weight = node.args[0], node.args[1]
        bias = node.args[2] if len(node.args) > 2 else None
        inputs = {x: ACTIVATION, weight: weight_spec}
        if isinstance(bias, Node):
            inputs[bias] = _bias_spec(x, weight, node)
        self._set(node, inputs, self._output_spec_with_fusion(node))

    def _annotate_transposed_weighted(self, node: Node) -> None:
        """conv_transpose: the weights' output channels are their axis 1."""
        self._annotate_weighted(node, TRANSPOSED_WEIGHT)

    def _annotate_matmul(self, node: Node) -> None:
        """Two operands (a constant one stays float: the lowering quantizes it), no fusion:
        TFLite's BATCH_MATMUL has no fused activation."""
        inputs = {arg: ACTIVATION for arg in node.args[:2] if isinstance(arg, Node) and arg.op != "get_attr"}
        self._set(node, inputs, ACTIVATION)

    def _annotate_binary(self, node: Node) -> None:
        # constant operands (module tensors, get_attr) stay float: the lowering quantizes
        # them on their own scale; Python numbers are not nodes
        inputs = {arg: ACTIVATION for arg in node.args[:2] if isinstance(arg, Node) and arg.op != "get_attr"}
        self._set(node, inputs, self._output_spec_with_fusion(node))

    def _annotate_activation(self, node: Node) -> None:
        """An activation not fused into its producer (which annotated the fused ones)."""
        shared = SharedQuantizationSpec((node.args[0], node))
        self._set(node, {node.args[0]: ACTIVATION}, shared if clamps_by_comparison(node) else ACTIVATION)

    def _annotate_shared(self, node: Node) -> None:
        if aten_name(node.target) == "aten.cat.default":
            sources = node.args[0]
        else:  # the activation operands (pooling, reshapes: one; maximum, minimum: two)
            sources = [arg for arg in node.args if isinstance(arg, Node)]
        first = sources[0]
        inputs = {first: ACTIVATION}
        for other in sources[1:]:
            if other not in inputs:  # torch.cat([y, y]) names one input twice
                inputs[other] = SharedQuantizationSpec((first, node))
        self._set(node, inputs, SharedQuantizationSpec((first, node)))

    def _annotate_unit_output(self, node: Node) -> None:
        self._set(node, {node.args[0]: ACTIVATION}, UNIT_OUTPUT)

    def _annotate_log_unit_output(self, node: Node) -> None:
        self._set(node, {node.args[0]: ACTIVATION}, LOG_UNIT_OUTPUT)

    def _annotate_symmetric_unit_output(self, node: Node) -> None:
        self._set(node, {node.args[0]: ACTIVATION}, SYMMETRIC_UNIT_OUTPUT)

    def _annotate_unary(self, node: Node) -> None:
        self._set(node, {node.args[0]: ACTIVATION}, ACTIVATION)

    def _annotate_constant(self, node: Node) -> None:
        """A constant made in the graph (zeros): its readers observe it."""

    def _annotate_identity(self, node: Node) -> None:
        self._set(node, {node.args[0]: ACTIVATION}, SharedQuantizationSpec((node.args[0], node)))


def quantize(exported: torch.export.ExportedProgram, calibration: Iterable[tuple] | None,
             example_inputs: tuple) -> GraphModule:
    """Calibrate on `calibration` (or the example inputs, with a warning) and convert."""
    if calibration is None:
        warnings.warn("no calibration data given: calibrating on the example inputs only; "
                      "pass calibration=[...] (representative inputs) for accurate int8 scales",
                      stacklevel=3)
        calibration = [tuple(example_inputs)]
    prepared = prepare_pt2e(exported.module(), McuQuantizer())
    count = 0
    with torch.no_grad():
        for count, sample in enumerate(calibration, start=1):
            prepared(*calibration_sample(sample, example_inputs, count))
    if count == 0:
        raise InputError("calibration data is empty: give at least one input tuple")
    return convert_pt2e(prepared)


def calibration_sample(sample, example_inputs: tuple, number: int) -> list[torch.Tensor]:
    """One calibration tuple as float tensors, checked against the example inputs: as
    many arrays, the same shapes (PyTorch's layout, NCHW for images), finite values."""
    sample = list(sample) if isinstance(sample, (tuple, list)) else [sample]
    if len(sample) != len(example_inputs):
        raise InputError(f"calibration sample {number} has {len(sample)} array(s) but forward() takes "
                         f"{len(example_inputs)}; give one array per model input")
    tensors = []
    for index, (value, example) in enumerate(zip(sample, example_inputs)):
        try:
            tensor = torch.as_tensor(value, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InputError(f"calibration sample {number}, input {index}: not numeric data ({err})") from None
        expected = tuple(torch.as_tensor(example).shape)
        if tuple(tensor.shape) != expected:
            raise InputError(f"calibration sample {number}, input {index} has shape {list(tensor.shape)}, the "
                             f"model's input is {list(expected)} (PyTorch layout, NCHW for images)")
        if not torch.isfinite(tensor).all():
            raise InputError(f"calibration sample {number}, input {index} holds NaN or infinity; "
                             f"calibrate on real, finite inputs")
        tensors.append(tensor)
    return tensors
