"""Example models, in plain PyTorch (torchvision is not needed).

The seed 003 models are the ones ExecuTorch's Arm flow fails on today: softmax
runs there, linear and add hang, and MobileNetV2-0.05 (96x96) asks for 1,785,600 B
of planned memory at run time.
"""
from __future__ import annotations

import torch
from torch import nn


class SoftmaxModel(nn.Module):
    """Seed 003's softmax: softmax over dim 0 of a 2x2 input."""

    def forward(self, x):
        return torch.softmax(x, dim=0)


class LinearModel(nn.Module):
    """Seed 003's linear: one fully connected layer."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(61, 37)

    def forward(self, x):
        return self.fc(x)


class AddModel(nn.Module):
    """Seed 003's add: x + x."""

    def forward(self, x):
        return x + x


def make_divisible(value: float, divisor: int = 8) -> int:
    """Channel counts rounded to a multiple of 8, never more than 10% below the value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn_relu6(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) with a width multiplier, as in seed 003."""

    # expansion t, output channels c, repeats n, first stride s
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width: float = 0.05, num_classes: int = 10, last_channel: int = 1280):
        super().__init__()
        cin = make_divisible(32 * width)
        layers: list[nn.Module] = [conv_bn_relu6(3, cin, 3, stride=2)]
        for t, c, n, s in self.SETTINGS:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(conv_bn_relu6(cin, last_channel, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last_channel, num_classes)

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


class DigitsCNN(nn.Module):
    """A small CNN for sklearn's 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(x.flatten(1))


def seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise deterministically, with batchnorm statistics that are not trivial."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return module.eval()
