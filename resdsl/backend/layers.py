"""The PyTorch modules of op kinds that torch.nn does not have.

An op definition (resdsl/ops/) names one of these classes as its constructor;
the ejected source (`compile --emit python`) copies the class's source, so
each class here must be self-contained: torch, nn and F only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), named as timm's SEModule: fc1, fc2."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))  # (N, C, 1, 1)
        return x * self.gate(scale)


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015: subsample by the stride, append zero channels.

    The zeros are split before and after the channels, as the widely used
    CIFAR reference code (`F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))`) does.
    """

    def __init__(self, stride: int, channels: int):
        super().__init__()
        self.stride, self.channels = stride, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before = self.channels // 2
        if x.dim() == 2:  # a vector: (N, C) -> (N, C + channels)
            return F.pad(x, (before, self.channels - before))
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, before, self.channels - before))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, channels=+{self.channels}"
