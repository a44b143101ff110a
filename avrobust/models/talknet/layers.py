"""TalkNet's building blocks, with the official module names so that checkpoints load unchanged.

Attribute names (``conv1a``, ``outbna``, ``se.fc.0``, ``net.4.gamma`` ...) and registration order
follow the official state dict; the layer quirks that matter for the weights are noted where they
occur (ReLU before BN in the SE blocks, the pre-BN residual of the visual ResNet, global layer norm
over channels and time, the ``src`` residual of the attention layer).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..._checks import check_number

__all__ = [
    "AttentionLayer",
    "AudioEncoder",
    "DSConv1d",
    "GlobalLayerNorm",
    "ResNetLayer",
    "SEBasicBlock",
    "SELayer",
    "VisualConv1D",
    "VisualFrontend",
    "VisualResNet",
    "VisualTCN",
]

# every BatchNorm of the visual front-end: its variance guard (torch's ``eps`` argument) and momentum
_VISUAL_BN_GUARD, _VISUAL_BN_MOMENTUM = 1e-3, 0.01


def _visual_bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_VISUAL_BN_GUARD, momentum=_VISUAL_BN_MOMENTUM)


# ---------------------------------------------------------------- audio encoder (SE-ResNet-34 / 4)


class SELayer(nn.Module):
    """Squeeze-excitation: ``x * sigmoid(W2 relu(W1 mean_hw(x)))`` per channel.

    Args:
        channels: ``C``.
        reduction: bottleneck ratio (``C // reduction`` hidden units, at least 1).

    Shape:
        ``(N, C, H, W) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        """Rescale the channels of ``x`` ``(N, C, H, W)``."""
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class SEBasicBlock(nn.Module):
    """Residual block of the audio encoder, in TalkNet's order: conv -> **ReLU -> BN** -> conv -> BN -> SE.

    Args:
        in_channels: input channels.
        channels: output channels.
        stride: stride of the first convolution (int or (freq, time)).
        reduction: SE ratio.

    Shape:
        ``(N, in, H, W) -> (N, channels, H / s, W / s)``.
    """

    def __init__(
        self, in_channels: int, channels: int, stride: int | tuple[int, int] = 1, reduction: int = 8
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.se = SELayer(channels, reduction)
        self.downsample: nn.Module | None = None
        if stride not in (1, (1, 1)) or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` ``(N, in, H, W)``."""
        out = self.bn1(self.relu(self.conv1(x)))  # ReLU before BN, as the official block
        out = self.se(self.bn2(self.conv2(out)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class AudioEncoder(nn.Module):
    """TalkNet's audio temporal encoder: a quarter-width SE-ResNet-34 over ``(features, time)``.

    Stem Conv2d(1, C0, 7, stride (2, 1)) -> BN -> ReLU, then 4 stages with strides 1, 2, 2, 1
    (frequency and time), then the mean over the frequency axis. The time axis is divided by 4:
    ``T_a`` feature frames give ``ceil(ceil(T_a / 2) / 2)`` steps.

    Args:
        layers: blocks per stage (official ``(3, 4, 6, 3)``).
        channels: channels per stage (official ``(16, 32, 64, 128)``).
        reduction: SE ratio.

    Shape:
        ``(B, T_a, F)`` features -> ``(B, T_a / 4, channels[-1])``.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (3, 4, 6, 3),
        channels: tuple[int, ...] = (16, 32, 64, 128),
        reduction: int = 8,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels[0], 7, stride=(2, 1), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU()
        strides = (1, 2, 2, 1)
        in_channels = channels[0]
        self.stages = len(layers)
        for i, (blocks, width, stride) in enumerate(zip(layers, channels, strides)):
            stage = [SEBasicBlock(in_channels, width, stride, reduction)]
            stage += [SEBasicBlock(width, width, 1, reduction) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
            in_channels = width
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, features: Tensor) -> Tensor:
        """Encode ``(B, T_a, F)`` features into ``(B, T, D)`` frame embeddings."""
        x = features.unsqueeze(1).transpose(2, 3)  # (B, 1, F, T_a): height = coefficients
        x = self.relu(self.bn1(self.conv1(x)))
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.mean(dim=2).transpose(1, 2)


# ------------------------------------------------------------------------------- visual front-end


class ResNetLayer(nn.Module):
    """One stage of the visual ResNet-18: sub-blocks "a" and "b" (the deep_avsr layout).

    ``S = conv2a(relu(bn1a(conv1a(x)))) + shortcut(x)``; then
    ``relu(outbnb(conv2b(relu(bn1b(conv1b(relu(outbna(S)))))) + S))``: the second residual adds
    the **pre-BN** sum ``S``. ``downsample`` (1x1 conv, no BN) is the shortcut when the stride or
    width changes; it exists (unused) in the stride-1 first stage so official checkpoints load.

    Args:
        in_channels: input channels.
        channels: output channels.
        stride: stride of ``conv1a`` and of the shortcut.

    Shape:
        ``(N, in, H, W) -> (N, channels, H / stride, W / stride)``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1a = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1a = _visual_bn2d(channels)
        self.conv2a = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.downsample = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
        self.outbna = _visual_bn2d(channels)
        self.conv1b = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1b = _visual_bn2d(channels)
        self.conv2b = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.outbnb = _visual_bn2d(channels)
        self.use_downsample = stride != 1 or in_channels != channels

    def forward(self, x: Tensor) -> Tensor:
        """Apply the stage to ``x`` ``(N, in, H, W)``."""
        shortcut = self.downsample(x) if self.use_downsample else x
        s = self.conv2a(torch.relu(self.bn1a(self.conv1a(x)))) + shortcut
        out = torch.relu(self.outbna(s))
        out = self.conv2b(torch.relu(self.bn1b(self.conv1b(out)))) + s
        return torch.relu(self.outbnb(out))


class VisualResNet(nn.Module):
    """The 2-D ResNet-18 of the visual front-end (strides 1, 2, 2, 2) and a spatial mean.

    The official model ends with ``AvgPool2d(4)`` on the 4x4 map of a 112x112 face; the mean over
    the map is the same there and also works for other face sizes.

    Args:
        in_channels: channels of the 3-D stem.
        channels: channels of the 4 stages.

    Shape:
        ``(N, in, H, W) -> (N, channels[-1])``.
    """

    def __init__(
        self, in_channels: int = 64, channels: tuple[int, ...] = (64, 128, 256, 512)
    ) -> None:
        super().__init__()
        strides = (1, 2, 2, 2)
        self.stages = len(channels)
        for i, (width, stride) in enumerate(zip(channels, strides)):
            self.add_module(f"layer{i + 1}", ResNetLayer(in_channels, width, stride))
            in_channels = width

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(N, in, H, W)`` to ``(N, channels[-1])``."""
        for i in range(self.stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.mean(dim=(2, 3))


class VisualFrontend(nn.Module):
    """3-D convolution stem + 2-D ResNet-18 over normalised grayscale faces.

    Each clip is its own temporal sequence: the 3-D convolution zero-pads every clip at both ends
    (the official batching runs all ``B T`` frames as one sequence and leaks 2 frames between
    neighbouring clips; with ``B = 1`` both agree).

    Args:
        stem_channels: output channels of Conv3d(1, C, (5, 7, 7), stride (1, 2, 2)).
        channels: channels of the ResNet stages.

    Shape:
        ``(B, T, H, W)`` normalised pixels -> ``(B, T, channels[-1])``.
    """

    def __init__(
        self, stem_channels: int = 64, channels: tuple[int, ...] = (64, 128, 256, 512)
    ) -> None:
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, stem_channels, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(stem_channels, eps=_VISUAL_BN_GUARD, momentum=_VISUAL_BN_MOMENTUM),
            nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.resnet = VisualResNet(stem_channels, channels)

    def forward(self, frames: Tensor) -> Tensor:
        """Encode ``(B, T, H, W)`` normalised faces into ``(B, T, C)``."""
        batch, steps = frames.shape[:2]
        x = self.frontend3D(frames.unsqueeze(1))  # (B, C, T, H', W')
        x = x.transpose(1, 2).flatten(0, 1)  # (B T, C, H', W')
        return self.resnet(x).view(batch, steps, -1)


# ------------------------------------------------------------------------- visual temporal encoder


class GlobalLayerNorm(nn.Module):
    """Global layer norm: per sample, mean and variance over channels **and** time.

    ``y = gamma (x - mean) / sqrt(var + guard) + beta``. The state dict holds ``gamma`` and
    ``beta`` only (the official checkpoint's keys); ``guard`` is a plain attribute.

    Args:
        channels: ``C``; ``gamma``/``beta`` have shape ``(1, C, 1)``.
        guard: added to the variance before the square root (TalkNet's ``eps``, 1e-8), > 0.

    Shape:
        ``(B, C, T) -> (B, C, T)``.
    """

    def __init__(self, channels: int, guard: float = 1e-8) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))
        self.guard = check_number(guard, "guard", min_value=0.0, strict=True)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``(B, C, T)``."""
        mean = x.mean(dim=(1, 2), keepdim=True)
        var = (x - mean).square().mean(dim=(1, 2), keepdim=True)
        return self.gamma * (x - mean) / torch.sqrt(var + self.guard) + self.beta


class DSConv1d(nn.Module):
    """Residual depthwise-separable temporal block: ``x + pw(gLN(PReLU(dw(BN(ReLU(x))))))``.

    ``net`` indices match the official keys: 1 BN, 2 depthwise conv (k=3), 3 PReLU (one shared
    parameter), 4 gLN, 5 pointwise conv.

    Shape:
        ``(B, C, T) -> (B, C, T)``.
    """

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.BatchNorm1d(channels),
            nn.Conv1d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.PReLU(),
            GlobalLayerNorm(channels),
            nn.Conv1d(channels, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``(B, C, T)``."""
        return self.net(x) + x


class VisualTCN(nn.Module):
    """A stack of :class:`DSConv1d` blocks (official: 5 x 512 channels).

    Shape:
        ``(B, C, T) -> (B, C, T)``.
    """

    def __init__(self, channels: int = 512, blocks: int = 5) -> None:
        super().__init__()
        self.net = nn.Sequential(*[DSConv1d(channels) for _ in range(blocks)])

    def forward(self, x: Tensor) -> Tensor:
        """Apply the blocks to ``(B, C, T)``."""
        return self.net(x)


class VisualConv1D(nn.Module):
    """Conv1d(C, H, 5) -> BN -> ReLU -> Conv1d(H, D, 1), both convolutions with bias.

    Shape:
        ``(B, C, T) -> (B, D, T)``.
    """

    def __init__(self, in_channels: int = 512, hidden: int = 256, out_channels: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, hidden, 5, padding=2),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Conv1d(hidden, out_channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, C, T)`` to ``(B, D, T)``."""
        return self.net(x)


# -------------------------------------------------------------------------------------- attention


class AttentionLayer(nn.Module):
    """TalkNet's post-norm attention layer: queries from ``tar``, keys, values **and residual** from ``src``.

    ``x = norm1(src + drop(MHA(q=tar, k=src, v=src)))``,
    ``out = norm2(x + drop(linear2(drop(relu(linear1(x))))))``. No masks, no positional encoding.
    Cross-attention ``crossA2V(src=audio, tar=visual)`` thus returns new *audio* embeddings.

    Args:
        d_model: width ``D`` of both sequences.
        nhead: attention heads.
        dropout: dropout of the attention weights and of the three dropout layers.
        ffn_mult: feed-forward width ``ffn_mult * D``.

    Shape:
        ``src, tar: (B, T, D) -> (B, T, D)`` (both sequences must have the same length ``T``).
    """

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.1, ffn_mult: int = 4) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, ffn_mult * d_model)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn_mult * d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src: Tensor, tar: Tensor) -> Tensor:
        """Attend from ``tar`` to ``src``; returns the updated ``src`` ``(B, T, D)``."""
        attended = self.self_attn(tar, src, src, need_weights=False)[0]
        x = self.norm1(src + self.dropout1(attended))
        ffn = self.linear2(self.dropout(torch.relu(self.linear1(x))))
        return self.norm2(x + self.dropout2(ffn))
