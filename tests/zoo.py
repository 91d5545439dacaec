"""A model zoo of the kinds microcontroller users bring: small PyTorch models with random
weights (fixed seeds) and realistic small inputs, each compiling in a few seconds.

Every entry is a function returning (nn.Module in eval mode, input shape); ZOO maps the
model's name to it. tests/test_zoo.py checks each one three ways (firmware in QEMU, host
reference, TFLite Micro interpreter) and examples/zoo.py measures them.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

ZOO: dict[str, Callable[[], tuple[nn.Module, tuple[int, ...]]]] = {}

# Models whose compiled program holds an op TFLite Micro cannot run: name -> why.
TFLM_CANNOT_RUN: dict[str, str] = {}

# Models whose firmware is known to differ from the host reference: name -> the bug.
FIRMWARE_BUGS: dict[str, str] = {}


def zoo(name: str, tflm_cannot_run: str | None = None, firmware_bug: str | None = None):
    def register(function):
        ZOO[name] = function
        if tflm_cannot_run:
            TFLM_CANNOT_RUN[name] = tflm_cannot_run
        if firmware_bug:
            FIRMWARE_BUGS[name] = firmware_bug
        return function
    return register


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    """The zoo model `name` (fresh, deterministic weights, eval mode) and its input shape."""
    model, shape = ZOO[name]()
    return model.eval(), tuple(shape)


def _seeded(seed: int) -> None:
    torch.manual_seed(seed)


def _randomize_norms(model: nn.Module) -> nn.Module:
    """BatchNorm statistics and affine parameters away from the identity, so that folding
    them into the convolutions is exercised."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.6, 1.4)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    return model


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1,
            activation: nn.Module | None = None) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if activation is not None:
        layers.append(activation)
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- mobile CNN blocks

class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand + ReLU6, depthwise 3x3 + ReLU6, 1x1 project, residual add."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        self.block = nn.Sequential(conv_bn(cin, hidden, 1, activation=nn.ReLU6()),
                                   conv_bn(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6()),
                                   conv_bn(hidden, cout, 1))

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_residual else y


class MobileNetV2Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 2, activation=nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8, 8, 1, 4), InvertedResidual(8, 12, 2, 4),
                                    InvertedResidual(12, 12, 1, 4))
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


@zoo("mobilenetv2_block")
def mobilenetv2_block():
    _seeded(101)
    return _randomize_norms(MobileNetV2Tiny()), (1, 3, 32, 32)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int, gate: nn.Module, activation: nn.Module):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.activation, self.gate = activation, gate

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.expand(self.activation(self.reduce(s))))


class MobileNetV3Block(nn.Module):
    """MobileNetV3 bneck: 1x1 expand + hardswish, depthwise 5x5 + hardswish, SE with
    hardsigmoid, 1x1 project, residual add."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2, activation=nn.Hardswish())
        self.expand = conv_bn(16, 48, 1, activation=nn.Hardswish())
        self.depthwise = conv_bn(48, 48, 5, groups=48, activation=nn.Hardswish())
        self.se = SqueezeExcite(48, 12, nn.Hardsigmoid(), nn.ReLU())
        self.project = conv_bn(48, 16, 1)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return self.head(F.hardswish((x + y).mean((2, 3))))


@zoo("mobilenetv3_block")
def mobilenetv3_block():
    _seeded(102)
    return _randomize_norms(MobileNetV3Block()), (1, 3, 32, 32)


class MBConv(nn.Module):
    """EfficientNet MBConv: 1x1 expand + SiLU, depthwise 3x3 + SiLU, SE with sigmoid,
    1x1 project, residual add."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, 2, activation=nn.SiLU())
        self.expand = conv_bn(16, 64, 1, activation=nn.SiLU())
        self.depthwise = conv_bn(64, 64, 3, groups=64, activation=nn.SiLU())
        self.se = SqueezeExcite(64, 4, nn.Sigmoid(), nn.SiLU())
        self.project = conv_bn(64, 16, 1)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        x = self.stem(x)
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return self.head((x + y).mean((2, 3)))


@zoo("efficientnet_mbconv")
def efficientnet_mbconv():
    _seeded(103)
    return _randomize_norms(MBConv()), (1, 3, 32, 32)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride, activation=nn.ReLU())
        self.conv2 = conv_bn(cout, cout, 3)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNetTiny(nn.Module):
    """ResNet stem (conv 7x7/2 + BN + ReLU + MaxPool2d(3, 2, 1)), two basic blocks (identity
    and 1x1/2 projection shortcut), global average pool, linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer2(self.layer1(self.stem(x)))), 1))


@zoo("resnet_stem_basic_block")
def resnet_stem_basic_block():
    _seeded(104)
    return _randomize_norms(ResNetTiny()), (1, 3, 32, 32)


class DsCnn(nn.Module):
    """DS-CNN keyword spotter on a 49x10 MFCC map: conv 10x4/2, depthwise-separable
    blocks, global average pool, 12 classes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, (10, 4), 2, (5, 1), bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks = []
        for _ in range(2):
            blocks += [conv_bn(16, 16, 3, groups=16, activation=nn.ReLU()), conv_bn(16, 16, 1, activation=nn.ReLU())]
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(16, 12)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


@zoo("ds_cnn_kws")
def ds_cnn_kws():
    _seeded(105)
    return _randomize_norms(DsCnn()), (1, 1, 49, 10)


class LeNet(nn.Module):
    """The classic: conv, max pool, conv, max pool, flatten, two linear layers, softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 12, 5)
        self.fc1 = nn.Linear(12 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        return torch.softmax(self.fc2(torch.relu(self.fc1(x.flatten(1)))), dim=-1)


@zoo("lenet_softmax")
def lenet_softmax():
    _seeded(106)
    return LeNet(), (1, 1, 28, 28)


# --------------------------------------------------------------------------- 1-D and sequences

class KeywordSpotter1d(nn.Module):
    """Audio (40 MFCC x 49 frames): conv1d stack with BatchNorm1d, max/avg pool1d, global
    mean over time."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv1d(40, 24, 3, padding=1), nn.BatchNorm1d(24), nn.ReLU())
        self.pool1 = nn.MaxPool1d(2)
        self.conv2 = nn.Sequential(nn.Conv1d(24, 32, 3, stride=2, padding=1), nn.BatchNorm1d(32), nn.ReLU())
        self.pool2 = nn.AvgPool1d(3, 1, 1)
        self.fc = nn.Linear(32, 8)

    def forward(self, x):
        return self.fc(self.pool2(self.conv2(self.pool1(self.conv1(x)))).mean(-1))


@zoo("kws_conv1d")
def kws_conv1d():
    _seeded(201)
    return _randomize_norms(KeywordSpotter1d()), (1, 40, 49)


class ImuGru(nn.Module):
    """IMU gesture classifier: 6 axes x 32 samples, conv1d features pooled to 8 steps, a GRU
    over time, the last state classified."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(6, 16, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool1d(2))
        self.gru = nn.GRU(16, 16, batch_first=True)
        self.fc = nn.Linear(16, 6)

    def forward(self, x):
        features = self.conv(x).permute(0, 2, 1)  # (N, T, C)
        _, h_n = self.gru(features)
        return self.fc(h_n[-1])


@zoo("imu_conv1d_gru")
def imu_conv1d_gru():
    _seeded(202)
    return ImuGru(), (1, 6, 32)


class LstmSequence(nn.Module):
    """A sensor sequence model: LSTM over 10 steps, per-step linear read-out (sequence to
    sequence) and the final hidden state."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.out = nn.Linear(16, 2)

    def forward(self, x):
        sequence, (h_n, _) = self.lstm(x)
        return self.out(sequence), h_n


@zoo("lstm_sequence")
def lstm_sequence():
    _seeded(203)
    return LstmSequence(), (1, 10, 8)


class BiGru(nn.Module):
    """A two-layer bidirectional GRU over 6 steps, classified from the mean over time."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(6, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        sequence, _ = self.gru(x)
        return self.fc(sequence.mean(1))


@zoo("bigru_2layer")
def bigru_2layer():
    _seeded(204)
    return BiGru(), (1, 6, 6)


class TemporalConvNet(nn.Module):
    """A WaveNet/TCN-style 1-D stack: causal dilated convolutions (left padding by F.pad,
    dilation 1, 2, 4), residual adds, a log_softmax head."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Conv1d(3, 12, 1)
        self.convs = nn.ModuleList(nn.Conv1d(12, 12, 3, dilation=d) for d in (1, 2, 4))
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.inp(x)
        for conv in self.convs:
            x = x + torch.relu(conv(F.pad(x, (2 * conv.dilation[0], 0))))
        return torch.log_softmax(self.fc(x[:, :, -1]), dim=-1)


@zoo("tcn_dilated_causal")
def tcn_dilated_causal():
    _seeded(205)
    return TemporalConvNet(), (1, 3, 40)


# --------------------------------------------------------------------------- dense prediction

class TinyUNet(nn.Module):
    """Two-level U-Net: conv/2 and max-pool downsampling, nearest and bilinear upsampling,
    concatenated skip connections, per-pixel logits."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.bottom = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.dec2 = nn.Sequential(nn.Conv2d(32, 8, 3, padding=1), nn.ReLU())
        self.dec1 = nn.Sequential(nn.Conv2d(16, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        b = self.bottom(e2)
        d2 = self.dec2(torch.cat([F.interpolate(b, scale_factor=2, mode="nearest"), e2], dim=1))
        up = F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)
        return self.head(self.dec1(torch.cat([up, e1], dim=1)))


@zoo("tiny_unet")
def tiny_unet():
    _seeded(301)
    return TinyUNet(), (1, 3, 16, 16)


class ConvAutoencoder(nn.Module):
    """Image autoencoder: strided conv encoder, ConvTranspose2d decoder, sigmoid output."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(16, 8, 3, 2, 1, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(8, 1, 2, 2))

    def forward(self, x):
        return torch.sigmoid(self.decoder(self.encoder(x)))


@zoo("conv_autoencoder")
def conv_autoencoder():
    _seeded(302)
    return ConvAutoencoder(), (1, 1, 16, 16)


class MlpAutoencoder(nn.Module):
    """MLPerf Tiny anomaly detection in small: 5 frames x 64 mel bins, 128-128-8-128-128."""

    def __init__(self):
        super().__init__()
        sizes = [320, 128, 128, 8, 128, 128]
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(128, 320)

    def forward(self, x):
        return self.out(self.body(x))


@zoo("mlp_autoencoder")
def mlp_autoencoder():
    _seeded(303)
    return _randomize_norms(MlpAutoencoder()), (1, 320)


# --------------------------------------------------------------------------- attention

class TransformerBlock(nn.Module):
    """A pre-norm transformer encoder block: layer_norm, two-head attention (q @ k^T,
    softmax, @ v), GELU MLP, residual adds; mean-pooled classification."""

    def __init__(self, dim: int = 16, heads: int = 2):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.embed = nn.Linear(6, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.fc = nn.Linear(dim, 4)

    def forward(self, x):  # (N, T, 6)
        x = self.embed(x)
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(n, t, self.heads, self.head_dim).transpose(1, 2) for z in (q, k, v))
        scores = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.head_dim ** -0.5, dim=-1)
        # beside a decomposed layer_norm this reshape becomes clone + aten._unsafe_view
        attended = torch.matmul(scores, v).transpose(1, 2).reshape(n, t, d)
        x = x + self.proj(attended)
        x = x + self.mlp(self.norm2(x))
        return self.fc(x.mean(1))


@zoo("transformer_block", tflm_cannot_run="GELU: TFLite Micro has no GELU kernel")
def transformer_block():
    _seeded(401)
    return TransformerBlock(), (1, 8, 6)


# --------------------------------------------------------------------------- constructs

class ChannelShuffleUnit(nn.Module):
    """ShuffleNet unit: grouped 1x1 conv, channel shuffle (view / transpose / reshape),
    depthwise 3x3, grouped 1x1 conv, residual add. The shuffle is written on 4-D views
    (N, groups, C/groups, H*W); torchvision's 5-D form is shufflenet_v2_unit's."""

    def __init__(self, channels: int = 16, groups: int = 4):
        super().__init__()
        self.groups = groups
        self.stem = nn.Conv2d(3, channels, 3, 2, 1)
        self.gconv1 = conv_bn(channels, channels, 1, groups=groups, activation=nn.ReLU())
        self.depthwise = conv_bn(channels, channels, 3, groups=channels)
        self.gconv2 = conv_bn(channels, channels, 1, groups=groups)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = self.gconv1(x)
        n, c, h, w = y.shape
        y = y.view(n, self.groups, c // self.groups, h * w).transpose(1, 2).reshape(n, c, h, w)
        return torch.relu(x + self.gconv2(self.depthwise(y)))


@zoo("shufflenet_channel_shuffle")
def shufflenet_channel_shuffle():
    _seeded(501)
    return _randomize_norms(ChannelShuffleUnit()), (1, 3, 16, 16)


def channel_shuffle(x, groups: int):
    """torchvision's ShuffleNet channel shuffle, as torchvision writes it: a 5-D view."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleNetV2Unit(nn.Module):
    """torchvision's ShuffleNetV2 unit (stride 1): the channels split in two (chunk), one
    half through 1x1 conv + ReLU, depthwise 3x3, 1x1 conv + ReLU, concatenated with the
    other half, then the 5-D channel shuffle (a rank-5 TRANSPOSE, merged to 3 axes)."""

    def __init__(self, channels: int = 16):
        super().__init__()
        half = channels // 2
        self.stem = nn.Conv2d(3, channels, 3, 2, 1)
        self.branch = nn.Sequential(conv_bn(half, half, 1, activation=nn.ReLU()), conv_bn(half, half, 3, groups=half),
                                    conv_bn(half, half, 1, activation=nn.ReLU()))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        kept, branch = x.chunk(2, dim=1)
        return channel_shuffle(torch.cat((kept, self.branch(branch)), dim=1), 2)


@zoo("shufflenet_v2_unit")
def shufflenet_v2_unit():
    _seeded(520)
    return _randomize_norms(ShuffleNetV2Unit()), (1, 3, 16, 16)


class ResNeXtBlock(nn.Module):
    """ResNeXt bottleneck: 1x1 reduce, grouped 3x3 (groups=4), 1x1 expand, residual."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3, activation=nn.ReLU())
        self.reduce = conv_bn(16, 16, 1, activation=nn.ReLU())
        self.grouped = conv_bn(16, 16, 3, groups=4, activation=nn.ReLU())
        self.expand = conv_bn(16, 16, 1)

    def forward(self, x):
        x = self.stem(x)
        return torch.relu(x + self.expand(self.grouped(self.reduce(x))))


@zoo("resnext_grouped_conv")
def resnext_grouped_conv():
    _seeded(502)
    return _randomize_norms(ResNeXtBlock()), (1, 3, 12, 12)


class DilatedContext(nn.Module):
    """DeepLab-style context module: parallel 3x3 convolutions with dilation 1, 2 and 3
    (padding = dilation), concatenated, fused by a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branches = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=d, dilation=d) for d in (1, 2, 3))
        self.fuse = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.fuse(torch.cat([torch.relu(b(x)) for b in self.branches], dim=1))


@zoo("dilated_conv_context")
def dilated_conv_context():
    _seeded(503)
    return DilatedContext(), (1, 3, 16, 16)


class SamePadding(nn.Module):
    """padding="same" with odd, even (asymmetric padding) and dilated kernels."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding="same")
        self.b = nn.Conv2d(8, 8, 4, padding="same")
        self.c = nn.Conv2d(8, 4, (3, 5), padding="same", dilation=2)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


@zoo("padding_same")
def padding_same():
    _seeded(504)
    return SamePadding(), (1, 3, 12, 12)


class AdaptivePooling(nn.Module):
    """Adaptive average pooling to 2x2 (a classifier on a 4-region grid) and to 1x1."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 4 + 8, 5)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        grid = nn.functional.adaptive_avg_pool2d(y, (2, 2)).flatten(1)
        whole = nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.fc(torch.cat([grid, whole], dim=1))


@zoo("adaptive_avg_pool")
def adaptive_avg_pool():
    _seeded(505)
    return AdaptivePooling(), (1, 3, 16, 16)


class Reductions(nn.Module):
    """Global mean and max pooling (mean / amax over H, W) concatenated, as in CBAM's
    channel attention; mean and amax over channels (its spatial attention)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.spatial = nn.Conv2d(2, 1, 3, padding=1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        y = self.conv(x)
        pooled = torch.cat([y.mean((2, 3)), y.amax((2, 3))], dim=1)
        spatial = self.spatial(torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], dim=1))
        return self.fc(pooled), torch.sigmoid(spatial)


@zoo("mean_amax_reductions")
def mean_amax_reductions():
    _seeded(506)
    return Reductions(), (1, 3, 12, 12)


class SliceChunkSplit(nn.Module):
    """Slicing, chunk and split: a crop, two halves of the channels mixed (GLU-like gate),
    uneven split, a select of one time step."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc = nn.Linear(17, 3)

    def forward(self, x):
        y = self.conv(x)[:, :, 1:-1, 2:]  # crop
        value, gate = y.chunk(2, dim=1)
        glu = value * torch.sigmoid(gate)
        a, b = torch.split(glu, [3, 5], dim=1)
        summary = torch.cat([a.mean((2, 3)), b.amax((2, 3)), glu[:, :, 0, ::2].mean(2)[:, :4],
                             glu[:, 0, :, :].mean(-1)[:, :5]], dim=1)
        return self.fc(summary)


@zoo("slice_chunk_split")
def slice_chunk_split():
    _seeded(507)
    return SliceChunkSplit(), (1, 3, 10, 10)


class RepeatExpand(nn.Module):
    """x.repeat and expand: a global context vector broadcast back over the map
    (expand) and concatenated, channel tiling by repeat."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fuse = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        n, c, h, w = y.shape
        context = y.mean((2, 3), keepdim=True).expand(n, c, h, w)
        tiled = y.repeat(1, 2, 1, 1)
        return self.fuse(torch.cat([y, context, tiled], dim=1)), y.mean((2, 3)).repeat(1, 3)


@zoo("repeat_expand")
def repeat_expand():
    _seeded(508)
    return RepeatExpand(), (1, 3, 8, 8)


class LeakyEluPrelu(nn.Module):
    """The ReLU relatives: leaky_relu, ELU and PReLU (per channel) in a small CNN."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.prelu = nn.PReLU(8, init=0.1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.leaky_relu(self.conv1(x), 0.1)
        x = F.elu(self.conv2(x))
        x = self.prelu(self.conv3(x))
        return self.fc(x.mean((2, 3)))


@zoo("leaky_elu_prelu")
def leaky_elu_prelu():
    _seeded(509)
    model = LeakyEluPrelu()
    with torch.no_grad():
        model.prelu.weight.uniform_(0.05, 0.3)
    return model, (1, 3, 12, 12)


class LogSoftmaxHead(nn.Module):
    """A classifier with a log_softmax head (NLLLoss-trained): conv, pooled, two linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, 2, 1)
        self.fc1 = nn.Linear(8 * 8 * 8, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv(x)).flatten(1)
        return F.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)


@zoo("log_softmax_classifier")
def log_softmax_classifier():
    _seeded(510)
    return LogSoftmaxHead(), (1, 1, 16, 16)


class ScalarPreprocessing(nn.Module):
    """Preprocessing written into the model with Python numbers: x / 255, (x - 0.5) * 2,
    1 - x (inverted image), x * 0.5, a residual scaled by 0.25."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        x = (x / 255.0 - 0.5) * 2.0
        inverted = 1 - x
        y = torch.relu(self.conv(inverted * 0.5))
        return y + 0.25 * self.conv2(y)


@zoo("scalar_arithmetic")
def scalar_arithmetic():
    _seeded(511)
    return ScalarPreprocessing(), (1, 3, 10, 10)


class Clamps(nn.Module):
    """clamp(0, 6) and clamp_min(0) after conv/linear (fused), hardtanh(-1, 1) after a
    linear, clamp(0, 6) after an add of two convolutions."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.shortcut = nn.Conv2d(3, 8, 1)
        self.fc = nn.Linear(8, 8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.clamp(self.conv(x), 0.0, 6.0)
        y = torch.clamp(self.conv2(y) + self.shortcut(x), 0.0, 6.0)
        z = torch.clamp_min(self.fc(y.mean((2, 3))), 0.0)
        return F.hardtanh(self.fc2(z))


@zoo("clamp")
def clamp():
    _seeded(512)
    return Clamps(), (1, 3, 8, 8)



class SelfResidualConv(nn.Module):
    """x + conv(x): a residual whose skip tensor is the convolution's own input (a 3x3
    refinement layer added back onto its input), then a ReLU head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.refine = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = torch.relu(self.stem(x))
        return self.head(torch.relu(y + self.refine(y)))


@zoo("self_residual_conv")  # y + conv(y): the sum must not be written over the conv's own input
def self_residual_conv():
    _seeded(513)
    return SelfResidualConv(), (1, 3, 8, 8)


class PoolPadClamp(nn.Module):
    """Replicate padding, a pool that counts its padding (PyTorch's symmetric padding SAME
    cannot place), clamps with arbitrary bounds on their own, adaptive max pooling."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.pool = nn.AvgPool2d(3, 2, 1, count_include_pad=True)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8 * 2 * 2, 4)

    def forward(self, x):
        y = self.conv(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        y = self.pool(y).clamp(-0.3, 0.7)
        y = F.adaptive_max_pool2d(torch.clamp_min(self.conv2(y), -0.5) + y, 2)
        return self.head(y.flatten(1))


@zoo("pool_pad_clamp")
def pool_pad_clamp():
    _seeded(514)
    return PoolPadClamp(), (1, 3, 8, 8)

# --------------------------------------------------------------------------- compiling a zoo model

def calibration_inputs(shape, count: int = 8, seed: int = 0) -> list[tuple[torch.Tensor]]:
    """PT2E calibration data: `count` standard normal inputs."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=generator),) for _ in range(count)]


def bundled_inputs(shape, seed: int = 1) -> list[tuple[torch.Tensor]]:
    """The test vectors bundled into the firmware: one typical input and one three times
    as large (inputs saturating at the int8 edges, activations beyond the calibrated range)."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=generator),), (3 * torch.randn(shape, generator=generator),)]


def compile_zoo(name: str, board: str, out_dir, **options):
    """Compile zoo model `name` for `board` into out_dir: (compiled, float model, input shape)."""
    import mcu_compile
    model, shape = build(name)
    calibration = calibration_inputs(shape)
    compiled = mcu_compile.compile(model, calibration[0], calibration=calibration, board=board, out_dir=out_dir,
                                   test_inputs=bundled_inputs(shape), **options)
    return compiled, model, shape
