"""Video transforms: pixel type, channel order, grey levels, normalisation.

Each is a small ``nn.Module`` over a function of :mod:`avrobust.transforms.functional`,
differentiable in the float pixel values. Frames are ``(B, T, C, H, W)`` clips or
``(B, C, H, W)`` images (channel axis ``-3``, the default ``dim``); channels-last frames take
``dim=-1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_choice, check_int
from . import _video_functional as F

__all__ = ["ChannelOrder", "Grey", "Normalize", "ToFloat"]


class ToFloat(nn.Module):
    """``uint8`` frames (as video decoders return them) to float; float frames pass through.

    Args:
        scale: divide by 255 (pixels in [0, 1]); ``False`` keeps the 0-255 range.
        dtype: the float dtype (``None``: float32 for integer frames, the input's for float).

    Shape:
        any -> the same. The gradient w.r.t. float frames is the identity (``1/255`` with
        ``scale``).

    Example:
        >>> import torch
        >>> ToFloat(scale=True)(torch.tensor([0, 51, 255], dtype=torch.uint8))
        tensor([0.0000, 0.2000, 1.0000])
    """

    def __init__(self, *, scale: bool = False, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.scale = check_bool(scale, "scale")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype: expected a floating-point torch.dtype or None, got {dtype!r}")
        self.dtype = dtype

    def forward(self, frames: Tensor) -> Tensor:
        """Convert: integer -> float (same shape)."""
        return F.to_float(frames, scale=self.scale, dtype=self.dtype)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, dtype={self.dtype}"


class ChannelOrder(nn.Module):
    """RGB <-> BGR: reverse the 3 channels on axis ``dim`` (the same module converts both ways).

    Args:
        dim: the channel axis (``-3`` for ``(B, T, C, H, W)`` and ``(B, C, H, W)``).

    Shape:
        ``(..., 3, H, W)`` -> the same.
    """

    def __init__(self, *, dim: int = -3) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim")

    def forward(self, frames: Tensor) -> Tensor:
        """Reverse the channel order."""
        return F.flip_channels(frames, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Grey(nn.Module):
    """Grey levels by the ITU-R BT.601 luma weights ``0.299 R + 0.587 G + 0.114 B``.

    The weights of OpenCV's ``cv2.COLOR_BGR2GRAY`` (TalkNet's face crops) and PIL's
    ``convert("L")``; torchvision's ``rgb_to_grayscale`` rounds the first to 0.2989.

    Args:
        order: ``"rgb"`` or ``"bgr"``, the channel order of the input.
        dim: the channel axis.
        keepdim: keep a channel axis of size 1 (``False`` gives ``(B, T, H, W)``).

    Shape:
        ``(..., 3, H, W)`` -> ``(..., 1, H, W)`` (or ``(..., H, W)``), same unit.
    """

    def __init__(self, *, order: str = "rgb", dim: int = -3, keepdim: bool = True) -> None:
        super().__init__()
        self.order = check_choice(order, "order", ("rgb", "bgr"))
        self.dim = check_int(dim, "dim")
        self.keepdim = check_bool(keepdim, "keepdim")

    def forward(self, frames: Tensor) -> Tensor:
        """Convert to grey levels."""
        return F.grey(frames, order=self.order, dim=self.dim, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"order={self.order!r}, dim={self.dim}, keepdim={self.keepdim}"


class Normalize(nn.Module):
    """``(frames - mean) / std`` per channel (or one value for every channel).

    Args:
        mean: a number, or one per channel (in the frames' unit, e.g. 0-255 or [0, 1]).
        std: a number > 0, or one per channel.
        dim: the channel axis.

    Shape:
        any -> the same (per-channel values need ``len(mean)`` channels on ``dim``).

    Example:
        >>> import torch
        >>> Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])(torch.ones(1, 3, 2, 2)).shape
        torch.Size([1, 3, 2, 2])
    """

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        mean: float | Sequence[float] | Tensor,
        std: float | Sequence[float] | Tensor,
        *,
        dim: int = -3,
    ) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim")
        self.register_buffer("mean", F.channel_values(mean, "mean"), persistent=False)
        self.register_buffer("std", F.channel_values(std, "std"), persistent=False)
        if not bool((self.std > 0).all()):
            raise ValueError(f"std: every entry must be > 0, got {self.std.tolist()}")

    def forward(self, frames: Tensor) -> Tensor:
        """Normalise."""
        return F.normalize(frames, self.mean, self.std, dim=self.dim)

    def extra_repr(self) -> str:
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}, dim={self.dim}"
