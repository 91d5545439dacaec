"""PyTorch models of the kinds users bring, compiled, run in QEMU bit-exact with the host
reference, and within a few int8 steps of the float model."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

import mcu_compile

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="QEMU not installed")


class ScalarArithmetic(nn.Module):
    """Python numbers and a module constant as operands: x * 0.5, + 3, / 4, - 1, -x, * buffer."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.register_buffer("gain", torch.tensor([0.5, 2.0, -1.0, 1.5]).reshape(4, 1, 1))

    def forward(self, x):
        y = self.conv(x) * 0.5 + 3
        y = -(y / 4.0 - 1)
        return torch.relu(y * self.gain), 1.5 + y


def _check(model: nn.Module, shape, board: str, tmp_path, steps: float = 3.0):
    generator = torch.Generator().manual_seed(0)
    calibration = [(torch.randn(shape, generator=generator),) for _ in range(6)]
    compiled = mcu_compile.compile(model.eval(), calibration[0], calibration=calibration, board=board,
                                   out_dir=tmp_path / "fw", test_inputs=calibration[1:3])
    run = compiled.run()
    assert run.bit_exact
    with torch.no_grad():
        want = model(calibration[1][0])
    want = want if isinstance(want, tuple) else (want,)
    for name, got, expected in zip(compiled.program.outputs, run.outputs_float[0], want):
        scale = compiled.program.tensor(name).quant.scale[0]
        assert got.shape == tuple(expected.shape)
        assert np.abs(got - expected.numpy()).max() <= steps * scale, name
    return compiled


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_arithmetic_with_numbers_and_constants(board, tmp_path):
    compiled = _check(ScalarArithmetic(), (1, 3, 8, 8), board, tmp_path)
    assert [op.kind for op in compiled.program.ops].count("ADD") == 3


class ResNetStem(nn.Module):
    """conv 7x7/2 + max pool 3x3/2 padding 1 (PADV2 with -128, folded into the pool) and an
    average pool counting its zero padding (PAD)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 7, stride=2, padding=3)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.avg = nn.AvgPool2d(3, 1, 1)

    def forward(self, x):
        return self.avg(self.pool(torch.relu(self.conv(x))))


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_padded_pooling(board, tmp_path):
    compiled = _check(ResNetStem(), (1, 3, 32, 32), board, tmp_path)
    assert [op.kind for op in compiled.program.ops] == ["PAD", "CONV_2D", "PADV2", "MAX_POOL_2D", "PAD",
                                                      "AVERAGE_POOL_2D"]
    assert "PADV2" not in compiled.report["model"]["op_counts"]  # folded: the firmware pools in place of padding


class KeywordSpotter1d(nn.Module):
    """The 1-D models of audio and IMU users: conv1d (+ BatchNorm1d), depthwise conv1d with
    padding="same", a residual add, max/avg pool1d and a global mean over time."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(6, 8, 5, stride=2, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.depthwise = nn.Conv1d(8, 8, 3, padding="same", groups=8)
        self.pool = nn.MaxPool1d(3, 2, 1)
        self.avg = nn.AvgPool1d(2)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = self.avg(self.pool(torch.relu(self.depthwise(y)) + y))
        return self.fc(y.mean(-1))


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_conv1d_models(board, tmp_path):
    torch.manual_seed(0)
    model = KeywordSpotter1d()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    model.bn.running_var.uniform_(0.5, 2.0)
    compiled = _check(model, (1, 6, 32), board, tmp_path)
    kinds = [op.kind for op in compiled.program.ops]
    assert kinds.count("CONV_2D") == 1 and kinds.count("DEPTHWISE_CONV_2D") == 1 and "TRANSPOSE" in kinds


class ShapesAndClamps(nn.Module):
    """unsqueeze / squeeze / transpose, clamp(0, 6) fused into a conv, clamp_min(0) into a linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):  # x: (N, 8, 8)
        y = torch.clamp(self.conv(x.unsqueeze(1)), 0.0, 6.0)
        y = y.mean((2, 3), keepdim=True).squeeze(-1).transpose(1, 2)  # (N, 1, 4)
        return torch.clamp_min(self.fc(torch.cat([y, y], dim=2).squeeze(1)), 0.0)


def test_shape_ops_and_clamps(tmp_path):
    compiled = _check(ShapesAndClamps(), (2, 8, 8), "mps3-an547", tmp_path, steps=6)  # four rounding layers
    fused = {op.kind: op.options.get("fused_activation_function") for op in compiled.program.ops}
    assert fused["CONV_2D"] == "RELU6" and fused["FULLY_CONNECTED"] == "RELU"


def _lowered(model: nn.Module, shape, tmp_path):
    """The model's Edge program (export, calibrate, lower; no firmware), its int8 inputs for
    one sample and the host reference's outputs, checked byte for byte against TFLite Micro."""
    from mcu_compile.frontend.export import export
    from mcu_compile.frontend.lower import lower
    from mcu_compile.frontend.quantize import quantize
    from mcu_compile.ir.inputs import to_program_inputs
    from mcu_compile.ir.tflite_io import write_tflite
    from mcu_compile.reference import interpreter as reference
    from mcu_compile.reference.oracle import tflm_outputs
    generator = torch.Generator().manual_seed(0)
    calibration = [(torch.randn(shape, generator=generator),) for _ in range(4)]
    program = lower(quantize(export(model.eval(), calibration[0]), calibration, calibration[0]), calibration[0])
    inputs = to_program_inputs(program.verify("lower"), calibration[1])
    outputs = reference.run(program, inputs)
    path = tmp_path / "model.tflite"
    path.write_bytes(write_tflite(program))
    assert [o.tobytes() for o in outputs] == [o.tobytes() for o in tflm_outputs(path, inputs)]
    return program, inputs, outputs


def _nchw(values: np.ndarray) -> torch.Tensor:
    """int8 NHWC values as a float NCHW tensor, to apply PyTorch's own op to the codes."""
    return torch.from_numpy(values.transpose(0, 3, 1, 2).astype(np.float32))


class Clamps(nn.Module):
    """Standalone clamps to bounds TFLite has no op for: MAXIMUM/MINIMUM against the bounds."""

    def forward(self, x):
        return torch.clamp_min(x, -0.5) + x, x.clamp(-0.3, 0.7), torch.clamp_max(x, 0.2), nn.functional.hardtanh(x)


def test_standalone_clamps_are_maximum_and_minimum(tmp_path):
    program, inputs, outputs = _lowered(Clamps(), (1, 3, 4, 4), tmp_path)
    assert [op.kind for op in program.ops] == ["MAXIMUM", "ADD", "MAXIMUM", "MINIMUM", "MINIMUM", "MAXIMUM", "MINIMUM"]
    quant = program.tensor(program.inputs[0]).quant
    scale, zero_point = float(quant.scale[0]), int(quant.zero_point[0])
    for out, bounds in zip(outputs[1:], [(-0.3, 0.7), (-1e9, 0.2), (-1.0, 1.0)]):
        low, high = (int(np.clip(zero_point + np.round(bound / scale), -128, 127)) for bound in bounds)
        np.testing.assert_array_equal(out, np.clip(inputs[0], low, high))  # the input's codes clamped
    assert all(program.tensor(name).quant == quant for name in program.outputs[1:])  # the input's scale, exact


class AdaptiveMaxPools(nn.Module):
    """Adaptive max pools whose windows are a plain pool's: 8 into 2 (4/4) and 7 into 3 (3/2)."""

    def forward(self, x):
        return nn.functional.adaptive_max_pool2d(x, 2), nn.AdaptiveMaxPool2d((3, None))(x[:, :, :7])


def test_adaptive_max_pool_is_max_pool(tmp_path):
    program, inputs, outputs = _lowered(AdaptiveMaxPools(), (1, 3, 8, 8), tmp_path)
    pools = [op for op in program.ops if op.kind == "MAX_POOL_2D"]
    assert [(op.options["filter_height"], op.options["stride_h"], op.options["filter_width"]) for op in pools] == \
        [(4, 4, 4), (3, 2, 1)]
    x = _nchw(inputs[0])
    for got, want in zip(outputs, AdaptiveMaxPools()(x)):  # the max of int8 codes is exact
        np.testing.assert_array_equal(got.transpose(0, 3, 1, 2), want.numpy())


def test_adaptive_pools_with_unequal_windows_are_one_line(tmp_path):
    class Uneven(nn.Module):
        def forward(self, x):
            return nn.functional.adaptive_max_pool2d(x, (3, 2)), nn.functional.adaptive_avg_pool2d(x, 5)

    class Indices(nn.Module):
        def forward(self, x):
            return nn.functional.adaptive_max_pool2d(x, 2, return_indices=True)[1].float()

    x = (torch.randn(1, 2, 8, 8),)
    with pytest.raises(mcu_compile.McuCompileError) as err:
        mcu_compile.compile(Uneven(), x, out_dir=tmp_path / "fw")
    fix = ("needs windows of unequal sizes; use an output size whose windows are alike (one that divides 8x8), or "
           "pad or crop the input to a multiple of")
    assert str(err.value).startswith(f"adaptive_max_pool2d from 8x8 to 3x2 {fix} 3x2 (at test_pytorch_ops.py:")
    assert f"; adaptive_avg_pool2d from 8x8 to 5x5 {fix} 5x5 (at test_pytorch_ops.py:" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(mcu_compile.McuCompileError, match=r"^adaptive_max_pool2d with return_indices=True is not "
                       r"supported \(no int8 index output\); return the pooled values and find the indices on "
                       r"the host \(at test_pytorch_ops\.py:\d+ in forward\)$"):
        mcu_compile.compile(Indices(), x, out_dir=tmp_path / "fw")


class ReplicatePads(nn.Module):
    """F.pad replicate with unequal sides (corners repeat the corner value), nn.ReplicationPad2d."""

    def forward(self, x):
        return nn.functional.pad(x, (1, 3, 0, 2), mode="replicate"), nn.ReplicationPad2d(1)(x)


def test_replicate_padding_is_edge_copies(tmp_path):
    program, inputs, outputs = _lowered(ReplicatePads(), (1, 3, 5, 6), tmp_path)
    assert {op.kind for op in program.ops} == {"STRIDED_SLICE", "BROADCAST_TO", "CONCATENATION"}
    for got, want in zip(outputs, ReplicatePads()(_nchw(inputs[0]))):
        np.testing.assert_array_equal(got.transpose(0, 3, 1, 2), want.numpy())


def test_replicate_padding_of_a_sequence_and_circular_refused(tmp_path):
    class Sequence(nn.Module):
        def forward(self, x):
            return nn.functional.pad(x, (2, 1), mode="replicate")

    program, inputs, outputs = _lowered(Sequence(), (1, 3, 5), tmp_path)
    want = nn.functional.pad(torch.from_numpy(inputs[0].astype(np.float32)), (2, 1), mode="replicate")
    np.testing.assert_array_equal(outputs[0], want.numpy())

    class Circular(nn.Module):
        def forward(self, x):
            return nn.functional.pad(x, (1, 1), mode="circular")

    with pytest.raises(mcu_compile.McuCompileError, match=r"^aten\.pad\.default: padding mode 'circular' is not "
                       r"supported; use 'constant', 'reflect' or 'replicate' "
                       r"\(at test_pytorch_ops\.py:\d+ in forward\)$"):
        mcu_compile.compile(Circular(), (torch.randn(1, 3, 5),), out_dir=tmp_path / "fw")


class PoolPadClamp(nn.Module):
    """The four constructs together in firmware: adaptive max pool, replicate padding,
    standalone clamps, an average pool counting its padding PyTorch's way (both sides)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        padded = nn.functional.pad(y, (2, 1, 1, 0), mode="replicate")
        return (nn.functional.adaptive_max_pool2d(padded, (3, 1)), torch.clamp_min(y, -0.5) + y,
                y.clamp(-0.3, 0.7), nn.AvgPool2d(3, 2, 1, count_include_pad=True)(y))


def test_pool_pad_clamp_firmware_is_bit_exact_with_tflm(tmp_path):
    from mcu_compile.reference.oracle import tflm_outputs
    torch.manual_seed(6)
    compiled = _check(PoolPadClamp(), (1, 3, 8, 8), "mps3-an547", tmp_path)
    kinds = [op.kind for op in compiled.program.ops]
    assert {"MAX_POOL_2D", "BROADCAST_TO", "CONCATENATION", "MAXIMUM", "MINIMUM", "PAD",
            "AVERAGE_POOL_2D"} <= set(kinds)
    for inputs, outputs in zip(compiled.vectors(), compiled.expected()):  # the firmware's, as _check found
        for got, want in zip(tflm_outputs(compiled.program_path, inputs), outputs):
            np.testing.assert_array_equal(got, want)


class SliceResizeReduce(nn.Module):
    """Slicing and select (STRIDED_SLICE), nn.Upsample nearest and bilinear (RESIZE_*), the
    sum, max and mean over channels (SUM, REDUCE_MAX, MEAN): a small U-Net-like decoder."""

    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.smooth = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.head = nn.Conv2d(11, 4, 1)

    def forward(self, x):
        y = torch.relu(self.down(x))
        skip = torch.cat([self.up(y[:, :4]), self.smooth(y[:, 4:]), x], dim=1)
        z = self.head(skip)
        return z[:, :, 1:-1:2], z.sum(1), z.amax(1), z.mean(1), z[:, 2]


def test_slicing_resize_and_reductions(tmp_path):
    compiled = _check(SliceResizeReduce(), (1, 3, 8, 8), "mps3-an547", tmp_path, steps=4)
    kinds = {op.kind for op in compiled.program.ops}
    assert {"STRIDED_SLICE", "RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "SUM", "REDUCE_MAX", "MEAN"} <= kinds


class Activations(nn.Module):
    """tanh, hardswish (MobileNetV3), leaky_relu, elu, abs through 256-entry tables; a - b and
    1 - x (SUB)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        gate = 1 - torch.tanh(a)
        mixed = nn.functional.hardswish(a - b) + nn.functional.leaky_relu(b, 0.2)
        return gate, mixed, nn.functional.elu(b).abs()


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_activations_and_sub(board, tmp_path):
    compiled = _check(Activations(), (1, 3, 8, 8), board, tmp_path, steps=4)
    kinds = {op.kind for op in compiled.program.ops}
    assert {"TANH", "HARD_SWISH", "LEAKY_RELU", "ELU", "ABS", "SUB"} <= kinds


class GroupsAndGates(nn.Module):
    """Grouped convolution (per-group convolutions joined), SiLU and hardsigmoid
    (EfficientNet / MobileNetV3 gates), F.pad constant and reflect."""

    def __init__(self):
        super().__init__()
        self.grouped = nn.Conv2d(4, 6, 3, padding=1, groups=2)
        self.stem = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        y = nn.functional.silu(self.grouped(self.stem(x)))
        y = y * nn.functional.hardsigmoid(y.mean((2, 3), keepdim=True))
        padded = nn.functional.pad(y, (1, 2, 0, 1), value=0.5)
        return padded, nn.functional.pad(y, (1, 1, 2, 2), mode="reflect"), nn.functional.pad(y, (0, 0, 1, 0))


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_grouped_convolution_gates_and_padding(board, tmp_path):
    compiled = _check(GroupsAndGates(), (1, 3, 8, 8), board, tmp_path, steps=4)
    kinds = [op.kind for op in compiled.program.ops]
    assert kinds.count("CONV_2D") == 3 and {"MIRROR_PAD", "PADV2", "PAD", "LOGISTIC"} <= set(kinds)


class AttentionAndDecoder(nn.Module):
    """nn.Linear on (B, T, D) (FULLY_CONNECTED keep_num_dims), q @ k^T and bmm (BATCH_MATMUL),
    softmax over the last dim; ConvTranspose2d (TRANSPOSE_CONV) as SAME and with PyTorch's
    output_padding (VALID + a slice), ReLU fused."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.up = nn.ConvTranspose2d(4, 3, 2, stride=2)
        self.up_padded = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1)

    def forward(self, tokens, image):
        scores = torch.softmax(torch.matmul(self.q(tokens), self.k(tokens).transpose(1, 2)), dim=-1)
        attended = torch.bmm(scores, self.v(tokens))
        return attended, self.up_padded(torch.relu(self.up(image)))


@pytest.mark.parametrize("board", ["mps3-an547", "mps2-an386"])
def test_attention_and_transpose_convolution(board, tmp_path):
    generator = torch.Generator().manual_seed(0)
    calibration = [(torch.randn(2, 5, 8, generator=generator), torch.randn(1, 4, 3, 3, generator=generator))
                   for _ in range(6)]
    model = AttentionAndDecoder().eval()
    compiled = mcu_compile.compile(model, calibration[0], calibration=calibration, board=board,
                                   out_dir=tmp_path / "fw", test_inputs=calibration[1:3])
    run = compiled.run()
    assert run.bit_exact
    with torch.no_grad():
        want = model(*calibration[1])
    for name, got, expected in zip(compiled.program.outputs, run.outputs_float[0], want):
        scale = compiled.program.tensor(name).quant.scale[0]
        assert got.shape == tuple(expected.shape) and np.abs(got - expected.numpy()).max() <= 6 * scale
    kinds = [op.kind for op in compiled.program.ops]
    assert kinds.count("BATCH_MATMUL") == 2 and kinds.count("TRANSPOSE_CONV") == 2 and "STRIDED_SLICE" in kinds


class NormsAndSplits(nn.Module):
    """LayerNorm (decomposed: mean, sub, mul, rsqrt table, weight and bias), torch.split and
    chunk (slices), the mean of everything."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 8)

    def forward(self, tokens):
        normed = self.norm(self.fc(tokens))
        head, tail = torch.split(normed, [3, 5], dim=-1)
        first, second = normed.chunk(2, dim=1)
        return head * 2, tail, first - second, normed.mean()


def test_layer_norm_and_splits(tmp_path):
    torch.manual_seed(1)
    model = NormsAndSplits()
    nn.init.uniform_(model.norm.weight, 0.5, 1.5)
    nn.init.uniform_(model.norm.bias, -0.2, 0.2)
    compiled = _check(model, (1, 4, 8), "mps3-an547", tmp_path, steps=6)
    kinds = [op.kind for op in compiled.program.ops]
    assert "RSQRT" in kinds and kinds.count("STRIDED_SLICE") == 4


class Recurrent(nn.Module):
    """nn.GRU and nn.LSTM (batch_first, zero initial state) unrolled over 4 steps."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(6, 8, batch_first=True)
        self.lstm = nn.LSTM(8, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        sequence, _ = self.gru(x)
        outputs, (last, _) = self.lstm(sequence)
        return self.head(outputs[:, -1]), last


def test_gru_and_lstm(tmp_path):
    torch.manual_seed(2)
    compiled = _check(Recurrent(), (1, 4, 6), "mps3-an547", tmp_path, steps=4)
    kinds = [op.kind for op in compiled.program.ops]
    assert kinds.count("LOGISTIC") == 4 * 2 + 4 * 3 and kinds.count("TANH") == 4 + 4 * 2


class Gelus(nn.Module):
    """GELU exact and with the tanh approximation (TFLite's GELU table; TFLM has no kernel)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 8)

    def forward(self, x):
        return nn.functional.gelu(self.linear(x)), nn.functional.gelu(x, approximate="tanh")


def test_gelu(tmp_path):
    torch.manual_seed(4)
    compiled = _check(Gelus(), (1, 8), "mps3-an547", tmp_path, steps=2)
    gelus = [op for op in compiled.program.ops if op.kind == "GELU"]
    assert [op.options["approximate"] for op in gelus] == [False, True]


class Repeats(nn.Module):
    """x.repeat: along existing dimensions, and with a new leading one."""

    def forward(self, x):
        return x.repeat(1, 2, 1, 3) + 1, torch.relu(x).repeat(2, 1, 1, 1, 1)


def test_repeat_is_concatenation(tmp_path):
    compiled = _check(Repeats(), (1, 3, 4, 5), "mps3-an547", tmp_path, steps=2)
    kinds = [op.kind for op in compiled.program.ops]
    assert kinds.count("CONCATENATION") == 3 and "TILE" not in kinds


class DeepRecurrent(nn.Module):
    """A two-layer bidirectional GRU (sequence first) feeding a two-layer LSTM, 3 steps."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 6, num_layers=2, bidirectional=True)
        self.lstm = nn.LSTM(12, 5, num_layers=2)

    def forward(self, x):
        sequence, h_n = self.gru(x)
        outputs, (last, cell) = self.lstm(sequence)
        return outputs, h_n, cell


def test_multi_layer_and_bidirectional_recurrent(tmp_path):
    torch.manual_seed(3)
    compiled = _check(DeepRecurrent(), (3, 1, 4), "mps3-an547", tmp_path, steps=6)
    kinds = [op.kind for op in compiled.program.ops]
    # GRU: 2 layers x 2 directions x 3 steps x 2 sigmoids; LSTM: 2 layers x 3 steps x 3
    assert kinds.count("LOGISTIC") == 2 * 2 * 3 * 2 + 2 * 3 * 3
    assert [tuple(compiled.program.tensor(o).shape) for o in compiled.program.outputs] == [(3, 1, 5), (4, 1, 6), (2, 1, 5)]


class ExpandPreluLogSoftmax(nn.Module):
    """expand (BROADCAST_TO), nn.PReLU per channel (PRELU), log_softmax (LOG_SOFTMAX)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.prelu = nn.PReLU(4, init=0.2)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        y = self.prelu(self.conv(x))
        pooled = y.mean((2, 3))
        scores = torch.log_softmax(self.fc(pooled), dim=-1)
        return scores, pooled.unsqueeze(1).expand(-1, 3, -1)


def test_expand_prelu_log_softmax(tmp_path):
    compiled = _check(ExpandPreluLogSoftmax(), (1, 3, 8, 8), "mps3-an547", tmp_path, steps=4)
    assert {"BROADCAST_TO", "PRELU", "LOG_SOFTMAX"} <= {op.kind for op in compiled.program.ops}


def channel_shuffle(x, groups: int):
    """torchvision's ShuffleNet channel shuffle, as torchvision writes it (5-D view)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ChannelShuffle5d(nn.Module):
    """ShuffleNetV2's unit in small, as torchvision writes it: chunk, a branch, cat, shuffle."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.branch = nn.Conv2d(4, 4, 1)
        self.project = nn.Conv2d(8, 6, 1)

    def forward(self, x):
        kept, branch = torch.relu(self.conv(x)).chunk(2, dim=1)
        return self.project(channel_shuffle(torch.cat((kept, torch.relu(self.branch(branch))), dim=1), 2))


def test_rank5_channel_shuffle_is_bit_exact_with_tflm(tmp_path):
    """The rank-5 TRANSPOSE merges to (g, C/g, H*W) and chunk alone is two slices: it
    compiles; firmware (Cortex-M55) == host reference == TFLite Micro on the Edge program
    (which keeps the rank-5 TRANSPOSE)."""
    from mcu_compile.reference.oracle import tflm_outputs
    torch.manual_seed(5)
    compiled = _check(ChannelShuffle5d(), (1, 3, 6, 5), "mps3-an547", tmp_path)
    ranks = [len(compiled.program.tensor(op.inputs[0]).shape) for op in compiled.program.ops if op.kind == "TRANSPOSE"]
    assert 5 in ranks
    for inputs, outputs in zip(compiled.vectors(), compiled.expected()):  # the firmware's, as _check found
        for got, want in zip(tflm_outputs(compiled.program_path, inputs), outputs):
            np.testing.assert_array_equal(got, want)
