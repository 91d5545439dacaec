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


def test_an_unfusable_clamp_is_one_line(tmp_path):
    class Clamp(nn.Module):
        def forward(self, x):
            return torch.clamp(x, -2.0, 2.0)

    with pytest.raises(mcu_compile.McuCompileError, match=r"clamping to \[-2.0, 2.0\] is supported right after"):
        mcu_compile.compile(Clamp(), (torch.randn(1, 4),), out_dir=tmp_path / "fw")


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
