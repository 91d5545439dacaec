"""Export -> quantize -> lower: the Edge program computes what the PT2E model computes,
and unsupported models fail at compile time with a useful message."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from models import AddModel, DigitsCNN, LinearModel, MobileNetV2, SoftmaxModel, seeded  # noqa: E402

from mcu_compile.reference import interpreter as reference  # noqa: E402
from mcu_compile.ir.inputs import to_program_inputs  # noqa: E402
from mcu_compile.errors import UnsupportedOpError  # noqa: E402
from mcu_compile.frontend.export import export  # noqa: E402
from mcu_compile.frontend.lower import lower  # noqa: E402
from mcu_compile.frontend.quantize import quantize  # noqa: E402


class ResidualCat(nn.Module):
    """Branches, concat, mul, max/avg pooling, a permute and a standalone relu."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.b = nn.Conv2d(3, 6, 1)
        self.dw = nn.Conv2d(12, 24, 3, stride=2, padding=1, groups=12)
        self.fc = nn.Linear(24 * 2 * 2, 5)

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), self.b(x)], dim=1)
        y = nn.functional.relu6(self.dw(y))
        y = nn.functional.max_pool2d(y, 2) * nn.functional.avg_pool2d(y, 2)
        return torch.relu(self.fc(y.permute(0, 2, 3, 1).flatten(1)))


def lowered(model, shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    calibration = [(torch.randn(shape, generator=generator),) for _ in range(4)]
    converted = quantize(export(model, calibration[0]), calibration, calibration[0])
    return converted, lower(converted, calibration[0]), calibration


CASES = {
    "softmax": (SoftmaxModel(), (2, 2)),
    "linear": (seeded(LinearModel(), 1), (1, 61)),
    "add": (AddModel(), (5,)),
    "digits": (seeded(DigitsCNN(), 2), (1, 1, 8, 8)),
    "mobilenetv2": (seeded(MobileNetV2(0.05), 3), (1, 3, 96, 96)),
}


@pytest.mark.parametrize("name", CASES)
def test_edge_program_equals_pt2e_simulation(name):
    """Host reference on the Edge program == the converted PT2E graph run in float, up to
    a rounding tie broken differently by float and integer arithmetic (one step, rarely):
    layouts, weights, biases and scales were carried over exactly."""
    model, shape = CASES[name]
    converted, program, calibration = lowered(model, shape)
    for sample in calibration[1:3]:
        (out,) = reference.run(program, to_program_inputs(program, sample))
        quant = program.tensor(program.outputs[0]).quant
        dequantized = (out.astype(np.float64) - quant.zero_point[0]) * quant.scale[0]
        simulated = converted(*sample).detach().numpy().reshape(dequantized.shape)
        assert_within_one_step(dequantized, simulated, quant.scale[0])


def assert_within_one_step(dequantized, simulated, scale, steps_allowed=1):
    steps = np.abs(dequantized - simulated) / scale
    assert steps.max() < steps_allowed + 1e-3
    assert (steps < 1e-3).mean() >= 0.6


def test_batchnorm_folded_and_relu_fused():
    _, program, _ = lowered(seeded(DigitsCNN(), 2), (1, 1, 8, 8))
    kinds = [op.kind for op in program.ops]
    assert kinds == ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "TRANSPOSE", "RESHAPE", "FULLY_CONNECTED"]
    assert [op.options.get("fused_activation_function") for op in program.ops[:2]] == ["RELU", "RELU"]
    weights = program.tensor(program.ops[0].inputs[1])
    assert weights.shape == (8, 3, 3, 1) and weights.quant.per_channel
    assert np.abs(weights.data).max() == 127  # symmetric per channel, +-127


def test_torch_padding_that_differs_from_same_becomes_pad_op():
    """Stride 2, padding 1 on an even size: PyTorch pads the top, TFLite's SAME the bottom."""
    _, program, _ = lowered(seeded(MobileNetV2(0.05), 3), (1, 3, 96, 96))
    first = program.ops[:2]
    assert [op.kind for op in first] == ["PAD", "CONV_2D"]
    assert first[1].options["padding"] == "VALID"


def test_mixed_graph_matches_simulation():
    converted, program, calibration = lowered(seeded(ResidualCat(), 4), (1, 3, 10, 10))
    assert {"CONCATENATION", "DEPTHWISE_CONV_2D", "MUL", "MAX_POOL_2D", "TRANSPOSE"} <= {
        op.kind for op in program.ops}
    (out,) = reference.run(program, to_program_inputs(program, calibration[1]))
    quant = program.tensor(program.outputs[0]).quant
    dequantized = (out.astype(np.float64) - quant.zero_point[0]) * quant.scale[0]
    # Average pooling rounds ties away from zero in TFLite and to even in float
    # quantization; a tie there moves the result through mul and linear by a step or two.
    assert_within_one_step(dequantized, converted(*calibration[1]).detach().numpy(), quant.scale[0],
                           steps_allowed=3)


class Sine(nn.Module):
    def forward(self, x):
        return torch.sin(x) + x


def test_unsupported_op_names_op_line_and_supported_list():
    with pytest.raises(UnsupportedOpError) as err:
        export(Sine(), (torch.randn(4),))
    message = str(err.value)
    assert "aten.sin.default" in message
    assert "test_lowering.py:" in message and "in forward" in message
    assert "supported ops:" in message and "conv2d" in message
    assert "\n" not in message


def test_grouped_convolution_is_one_convolution_per_group():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2)).eval()
    _, program, _ = lowered(model, (1, 4, 6, 6))
    assert [op.kind for op in program.ops] == ["STRIDED_SLICE", "CONV_2D", "STRIDED_SLICE", "CONV_2D", "CONCATENATION"]
    assert [program.tensor(op.inputs[1]).shape for op in program.ops if op.kind == "CONV_2D"] == [(4, 3, 3, 2)] * 2


class CatSelf(nn.Module):
    def forward(self, x):
        return torch.cat([x, x], dim=1)


def test_concat_of_one_tensor_twice():
    converted, program, calibration = lowered(CatSelf(), (1, 3, 4, 4))
    (out,) = reference.run(program, to_program_inputs(program, calibration[1]))
    x = to_program_inputs(program, calibration[1])[0]
    assert np.array_equal(out, np.concatenate([x, x], axis=3))


def test_quantization_is_deterministic():
    """The same model and calibration give the same Edge program bytes: an NPU build can be
    checked against the CPU-only build of the same model."""
    from mcu_compile.ir.tflite_io import write_tflite
    model, shape = CASES["mobilenetv2"]
    first = write_tflite(lowered(model, shape)[1])
    second = write_tflite(lowered(model, shape)[1])
    assert first == second


def test_every_unsupported_op_is_named_at_once():
    class TwoUnsupported(nn.Module):
        def forward(self, x):
            return torch.sin(x) + torch.cos(x)

    with pytest.raises(UnsupportedOpError, match=r"^unsupported ops aten\.sin\.default at \S+:\d+ in forward "
                                                 r"\(compute it on the host or as a constant input\), "
                                                 r"aten\.cos\.default at \S+:\d+ in forward \(.*\); supported ops: "):
        export(TwoUnsupported(), (torch.randn(4),))


def test_unsupported_ops_come_with_the_nearest_rewrite():
    class Powers(nn.Module):
        def forward(self, x):
            return torch.sqrt(x * x) + x ** 2

    with pytest.raises(UnsupportedOpError) as err:
        export(Powers(), (torch.randn(4),))
    message = str(err.value)
    assert "aten.sqrt.default at test_lowering.py:" in message and "(write x * torch.rsqrt(x))" in message
    assert "aten.pow.Tensor_Scalar at test_lowering.py:" in message and "(for x**2 write x * x)" in message
