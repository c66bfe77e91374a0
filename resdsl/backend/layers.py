"""The PyTorch modules of op kinds that torch.nn does not have.

An op definition (resdsl/ops/) names one of these classes as its constructor;
the ejected source (`compile --emit python`) copies the class's source, so
each class here must be self-contained: torch, nn and F only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), named as timm's SEModule: fc1, fc2.

    The hidden width is `hidden`, or channels / ratio rounded to a multiple of `divisor` as timm's
    make_divisible(channels / ratio, divisor, round_limit=0) (divisor 1: exactly channels / ratio).
    `dims` is the number of spatial axes (2 for images; 1 and 3 use Conv1d / Conv3d 1×1 convs).
    """

    def __init__(self, channels: int, hidden: int | None = None, ratio: int = 16, divisor: int = 1, dims: int = 2):
        super().__init__()
        if hidden is None:
            hidden = max(divisor, int(channels / ratio + divisor / 2) // divisor * divisor)
        conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
        self.axes = list(range(2, 2 + dims))  # the spatial axes the squeeze averages over
        self.fc1 = conv(channels, hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = conv(hidden, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc2(self.act(self.fc1(x.mean(self.axes, keepdim=True))))  # (N, C, 1, 1)
        return x * self.gate(scale)


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015: subsample by the stride, append zero channels.

    The zeros are split before and after the channels, as the widely used
    CIFAR reference code (`F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))`) does.
    `stride` is one number or one per spatial axis (a video's (1, 2, 2)); `at_end` appends all the
    zeros after the input's channels, as MONAI's shortcut A and fb.resnet.torch do.
    """

    def __init__(self, stride: int | tuple[int, ...], channels: int, at_end: bool = False):
        super().__init__()
        self.stride, self.channels, self.at_end = stride, channels, at_end
        self.strides = list(stride) if isinstance(stride, tuple) else [stride] * 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before = 0 if self.at_end else self.channels // 2
        s = self.strides
        if x.dim() == 3:  # (N, C, L)
            x = x[:, :, :: s[0]]
        elif x.dim() == 4:  # (N, C, H, W)
            x = x[:, :, :: s[0], :: s[1]]
        elif x.dim() == 5:  # (N, C, D, H, W)
            x = x[:, :, :: s[0], :: s[1], :: s[2]]
        # a vector (N, C) only gains channels; F.pad's list runs from the last axis back to the channels
        return F.pad(x, [0, 0] * (x.dim() - 2) + [before, self.channels - before])

    def extra_repr(self) -> str:
        return f"stride={self.stride}, channels=+{self.channels}" + (", at_end=True" if self.at_end else "")


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al. 2020), as timm's EcaModule: a 1-d conv across the pooled channels, a sigmoid gate.

    The kernel grows with log2(channels): t = int(|log2(C) + beta| / gamma), the next odd number >= 3.
    """

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: float = 2, beta: float = 1):
        super().__init__()
        if kernel_size is None:
            t = int(abs(math.log(channels, 2) + beta) / gamma)  # noqa: FURB163 - timm's formula, to the last bit
            kernel_size = max(t if t % 2 else t + 1, 3)
        self.conv = nn.Conv1d(1, 1, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axes = [axis for axis in range(2, x.dim())]  # the spatial axes, whatever their number
        y = self.conv(x.mean(axes).view(x.shape[0], 1, -1))  # (N, 1, C)
        return x * self.gate(y).view([x.shape[0], -1] + [1] * len(axes))  # gate (N, C, 1, 1)


class BlurPool(nn.Module):
    """Anti-aliased downsampling (Zhang 2019), as timm's BlurPool2d: reflect padding, a fixed binomial
    filter per channel (a buffer that is not saved), then the stride. `dims`: the spatial axes (1, 2, 3)."""

    def __init__(self, channels: int, kernel_size: int = 3, stride: int = 2, dims: int = 2):
        super().__init__()
        self.channels, self.stride, self.dims = channels, stride, dims
        self.padding = [((stride - 1) + (kernel_size - 1)) // 2] * (2 * dims)
        coeffs = torch.tensor([math.comb(kernel_size - 1, k) for k in range(kernel_size)], dtype=torch.float32)
        coeffs = coeffs / 2 ** (kernel_size - 1)  # (1 2 1) / 4 for kernel 3
        filt = coeffs
        for _ in range(dims - 1):  # the outer product over the axes: k×k for images, k×k×k for volumes
            filt = filt[..., None] * coeffs
        self.register_buffer("filt", filt.repeat([channels, 1] + [1] * dims), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.padding, mode="reflect")
        # a buffer: nn.Module's __getattr__ types it Tensor | Module (a class annotation would trip TorchScript)
        if self.dims == 1:
            return F.conv1d(x, self.filt, stride=self.stride, groups=self.channels)  # type: ignore[arg-type]
        if self.dims == 3:
            return F.conv3d(x, self.filt, stride=self.stride, groups=self.channels)  # type: ignore[arg-type]
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.channels)  # type: ignore[arg-type]


def select_branches(weights: torch.Tensor, branches: list[torch.Tensor], groups: int = 1) -> torch.Tensor:
    """Attention across branches (SKNet's SelectiveKernel, ResNeSt's SplitAttn): `weights` holds
    n·C logits laid out [groups][n][C/groups] (timm's RadixSoftmax with cardinality `groups`);
    a softmax over the n branches (a sigmoid when n = 1) weighs them, and the weighted sum is returned.

    weights: (B, n·C, 1, 1) or (B, n·C, H, W), or (B, n·C) for vectors; each branch (B, C, ...).
    """
    n = len(branches)
    batch, channels = branches[0].shape[0], branches[0].shape[1]
    rest = list(weights.shape[2:])
    w = weights.reshape([batch, groups, n, channels // groups] + rest)
    w = torch.softmax(w, dim=2) if n > 1 else torch.sigmoid(w)
    w = w.transpose(1, 2).reshape([batch, n, channels] + rest)  # [n][C]
    out = branches[0] * w[:, 0]
    for i in range(1, n):
        out = out + branches[i] * w[:, i]
    return out


def resize_as(
    x: torch.Tensor, like: torch.Tensor, mode: str = "nearest", align_corners: bool | None = None
) -> torch.Tensor:
    """x resized to `like`'s spatial size (a merge's fit, `upsample to_input`): torchvision's
    `F.interpolate(top, size=lateral.shape[-2:], mode="nearest")` in its FPN and its segmentation heads.
    x: (B, C, *sizes), like: (B, C', *sizes') -> (B, C, *sizes')."""
    return F.interpolate(x, size=like.shape[2:], mode=mode, align_corners=align_corners)


class FrozenBatchNorm(nn.Module):
    """Batch norm with fixed statistics and affine parameters, all buffers (torchvision's
    FrozenBatchNorm2d, the detection backbones' norm): no parameters, no `num_batches_tracked`, the
    same state dict keys (weight, bias, running_mean, running_var) and the same arithmetic, on any rank.

    Its buffers are not annotated on the class: TorchScript cannot read a class annotation under
    `from __future__ import annotations` (`compile --emit torchscript`), so mypy is told below."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the buffers are Tensor | Module to mypy; TorchScript reads a type comment on an assignment as its own
        return self.frozen(x, self.weight, self.bias, self.running_mean, self.running_var)  # type: ignore[arg-type]

    def frozen(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, var: torch.Tensor
    ) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)  # (1, C, 1, ...): per channel, on (N, C, *sizes)
        scale = weight * (var + self.eps).rsqrt()
        shift = bias - mean * scale
        return x * scale.reshape(shape) + shift.reshape(shape)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"  # type: ignore[index]


class StdConv2d(nn.Conv2d):
    """A conv whose filters are standardised (zero mean, unit variance) first, as timm's StdConv2d (BiT)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
        eps: float = 1e-6,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0, eps=self.eps
        ).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class StdConv1d(nn.Conv1d):
    """StdConv2d for sequences (N, C, L): the same standardisation of each filter."""

    def __init__(self, *args, eps: float = 1e-6, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0, eps=self.eps
        ).reshape_as(self.weight)
        return F.conv1d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class StdConv3d(nn.Conv3d):
    """StdConv2d for volumes and videos (N, C, D, H, W): the same standardisation of each filter."""

    def __init__(self, *args, eps: float = 1e-6, **kwargs):
        super().__init__(*args, **kwargs)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0, eps=self.eps
        ).reshape_as(self.weight)
        return F.conv3d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class EvoNormS0(nn.Module):
    """EvoNorm-S0, as timm's EvoNorm2dS0: x·sigmoid(v·x) / group_std(x) · weight + bias."""

    def __init__(self, num_features: int, groups: int = 32, eps: float = 1e-5):
        super().__init__()
        self.groups, self.eps = groups, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.v = nn.Parameter(torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        per_channel = [1, -1] + [1] * (x.dim() - 2)  # (1, C, 1, 1) for images
        grouped = x.reshape(b, self.groups, -1)  # (N, G, C/G · spatial)
        std = grouped.float().var(dim=2, unbiased=False, keepdim=True).add(self.eps).sqrt().to(x.dtype)
        std = std.expand(grouped.shape).reshape(x.shape)
        x = x * (x * self.v.view(per_channel)).sigmoid() / std
        return x * self.weight.view(per_channel) + self.bias.view(per_channel)


class FilterResponseNormTlu(nn.Module):
    """Filter response normalisation and a thresholded linear unit, as timm's FilterResponseNormTlu2d."""

    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.tau = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axes = [axis for axis in range(2, x.dim())]  # the spatial axes
        per_channel = [1, -1] + [1] * len(axes)  # (1, C, 1, 1) for images
        rms = x.square().float().mean(dim=axes, keepdim=True).add(self.eps).rsqrt().to(x.dtype)
        x = x * rms.expand(x.shape)
        x = x * self.weight.view(per_channel) + self.bias.view(per_channel)
        return torch.maximum(x, self.tau.view(per_channel))


class DropPath(nn.Module):
    """Stochastic depth, as timm's DropPath: in training, zero each example with probability `rate` and
    scale the rest by 1 / (1 - rate); in eval mode, the identity."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty([x.shape[0]] + [1] * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:g}"


class ChannelLayerNorm(nn.LayerNorm):
    """Layer norm over the channels of a feature map (N, C, *sizes), as timm's LayerNorm2d and
    torchvision's ConvNeXt LayerNorm2d: the channels are moved last, F.layer_norm, moved back.
    Parameters `weight` and `bias` of shape (C,), as nn.LayerNorm's, so their state dicts load."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class ChannelLinear(nn.Linear):
    """nn.Linear over the channels at every position of (N, C, *sizes): torchvision's CNBlock and timm's
    ConvNeXtBlock apply it to the channels-last map. Weight (out, in) and bias (out,), as nn.Linear's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.movedim(1, -1), self.weight, self.bias).movedim(-1, 1)


def scale_channels(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """x (N, C, *sizes) times a scale per channel, stored (C,) as timm's gamma or (C, 1, 1) as
    torchvision's layer_scale: either is viewed as (C, 1, ...) to broadcast over the positions."""
    return x * gamma.reshape([-1] + [1] * (x.dim() - 2))


# ---- the normaliser-free ResNets (Brock et al. 2021): timm's ScaledStdConv2d, and NormFreeBlock's scalars ----
# One class per rank, each self-contained (the ejector copies a class alone). The learned `gain` (out×1×1×1)
# and the fixed gamma / sqrt(fan_in) scale the standardised filter inside F.batch_norm, as timm does, so the
# arithmetic is timm's to the last bit. `gain=False` keeps no gain: the filters are scaled by the constant.


class ScaledStdConv2d(nn.Conv2d):
    """A conv with scaled weight standardisation, as timm's ScaledStdConv2d: parameters weight, bias, gain."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
        eps: float = 1e-6,
        gamma: float = 1.0,
        gain: bool = True,
        gain_init: float = 1.0,
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias)
        self.eps = eps
        self.scale = gamma * self.weight[0].numel() ** -0.5  # gamma / sqrt(fan_in)
        self.gain = nn.Parameter(torch.full((out_channels, 1, 1, 1), float(gain_init))) if gain else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gain is None:
            factor = torch.full([self.out_channels], self.scale, dtype=self.weight.dtype, device=self.weight.device)
        else:
            factor = (self.gain * self.scale).view(-1)
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, factor, training=True, momentum=0.0, eps=self.eps
        ).reshape_as(self.weight)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ScaledStdConv1d(nn.Conv1d):
    """ScaledStdConv2d for sequences (N, C, L): the same scaled standardisation of each filter."""

    def __init__(self, *args, eps: float = 1e-6, gamma: float = 1.0, gain: bool = True, gain_init: float = 1.0, **kw):
        super().__init__(*args, **kw)
        self.eps = eps
        self.scale = gamma * self.weight[0].numel() ** -0.5  # gamma / sqrt(fan_in)
        self.gain = nn.Parameter(torch.full((self.out_channels, 1, 1), float(gain_init))) if gain else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gain is None:
            factor = torch.full([self.out_channels], self.scale, dtype=self.weight.dtype, device=self.weight.device)
        else:
            factor = (self.gain * self.scale).view(-1)
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, factor, training=True, momentum=0.0, eps=self.eps
        ).reshape_as(self.weight)
        return F.conv1d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ScaledStdConv3d(nn.Conv3d):
    """ScaledStdConv2d for volumes and videos (N, C, D, H, W): the same scaled standardisation of each filter."""

    def __init__(self, *args, eps: float = 1e-6, gamma: float = 1.0, gain: bool = True, gain_init: float = 1.0, **kw):
        super().__init__(*args, **kw)
        self.eps = eps
        self.scale = gamma * self.weight[0].numel() ** -0.5  # gamma / sqrt(fan_in)
        self.gain = nn.Parameter(torch.full((self.out_channels, 1, 1, 1, 1), float(gain_init))) if gain else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gain is None:
            factor = torch.full([self.out_channels], self.scale, dtype=self.weight.dtype, device=self.weight.device)
        else:
            factor = (self.gain * self.scale).view(-1)
        weight = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, factor, training=True, momentum=0.0, eps=self.eps
        ).reshape_as(self.weight)
        return F.conv3d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Multiply(nn.Module):
    """x times a constant `factor` (NormFreeBlock's alpha and beta, timm's attn_gain): no parameters."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"{self.factor:g}"


class SpaceToDepth(nn.Module):
    """Every size×size patch of pixels made size² channels, as timm's SpaceToDepth (TResNet's stem), on any
    number of spatial axes `dims`: (N, C, H, W) -> (N, C·s², H/s, W/s), the channels ordered patch position
    first, then input channel, as timm's view-permute-view."""

    def __init__(self, size: int = 4, dims: int = 2):
        super().__init__()
        self.size = size
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = [x.shape[0], x.shape[1]]  # (N, C, H/s, s, W/s, s) on an image
        out = [x.shape[0], x.shape[1]]
        for axis in range(self.dims):
            split += [x.shape[2 + axis] // self.size, self.size]
            out[1] = out[1] * self.size
            out.append(x.shape[2 + axis] // self.size)
        order = [0] + [3 + 2 * axis for axis in range(self.dims)] + [1] + [2 + 2 * axis for axis in range(self.dims)]
        return x.reshape(split).permute(order).reshape(out)  # (N, s, s, C, H/s, W/s), then the channels merged

    def extra_repr(self) -> str:
        return f"size={self.size}" + (f", dims={self.dims}" if self.dims != 2 else "")


def install_module(root: nn.Module, path: str, module: nn.Module | nn.Parameter) -> None:
    """Put `module` (or a bare parameter: layer scale) at the dotted `path` of `root`, making plain
    containers on the way (an ejected block written flat builds its modules with it)."""
    *parents, leaf = path.split(".")
    for part in parents:
        if part not in root._modules:
            root.add_module(part, nn.Module())
        child = root._modules[part]
        assert child is not None  # a container, never an empty slot
        root = child
    if isinstance(module, nn.Parameter):
        root.register_parameter(leaf, module)
    else:
        root.add_module(leaf, module)
