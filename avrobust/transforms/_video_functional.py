"""Video transform functions (frames -> frames), differentiable in the float pixel values.

Frames are ``(B, T, C, H, W)`` clips or ``(B, C, H, W)`` images: the channel axis is ``-3`` in
both, the default ``dim`` everywhere. Decoders that return channels last ``(..., H, W, C)`` take
``dim=-1``. Exported through :mod:`avrobust.transforms.functional`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .._checks import check_choice, check_int, check_tensor, describe

__all__ = ["BT601_LUMA", "channel_values", "flip_channels", "grey", "normalize", "to_float"]

BT601_LUMA = (0.299, 0.587, 0.114)
"""Luma weights of ITU-R BT.601 for (R, G, B): ``Y = 0.299 R + 0.587 G + 0.114 B``, the weights
of OpenCV's ``COLOR_BGR2GRAY`` and PIL's ``convert("L")``."""


def to_float(frames: Tensor, *, scale: bool = False, dtype: torch.dtype | None = None) -> Tensor:
    """Integer (``uint8``) frames to float; float frames pass through unchanged in value.

    Args:
        frames: any shape, integer (0-255) or floating point.
        scale: divide by 255 (pixels in [0, 1]); ``False`` keeps 0-255.
        dtype: the float dtype; ``None`` is float32 for integer frames and the input's own
            dtype for float frames.

    Returns:
        The same shape in ``dtype``. The gradient w.r.t. float frames is the identity (``1/255``
        with ``scale``).
    """
    check_tensor(frames, "frames")
    if frames.dtype == torch.bool or frames.is_complex():
        raise TypeError(f"frames: expected integer or float pixel values, got dtype {frames.dtype}")
    if dtype is not None and not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating-point dtype or None, got {dtype}")
    out_dtype = dtype or (frames.dtype if frames.is_floating_point() else torch.float32)
    out = frames.to(out_dtype)
    return out / 255.0 if scale else out


def _channel_dim(frames: Tensor, dim: int, channels: int | None) -> int:
    check_int(dim, "dim")
    if not -frames.ndim <= dim < frames.ndim:
        raise ValueError(
            f"dim: expected a channel axis of frames with shape {tuple(frames.shape)}, got {dim}"
        )
    if channels is not None and frames.shape[dim] != channels:
        raise ValueError(
            f"frames: expected {channels} channels on axis dim={dim}, got shape "
            f"{tuple(frames.shape)}; set dim to the channel axis (-3 for (B, T, C, H, W), "
            "-1 for channels last)"
        )
    return dim % frames.ndim


def flip_channels(frames: Tensor, *, dim: int = -3) -> Tensor:
    """RGB <-> BGR: reverse the 3 channels on axis ``dim`` (its own inverse).

    Args:
        frames: ``(..., 3, H, W)`` (or 3 channels on ``dim``).
        dim: the channel axis.

    Returns:
        The same shape, channels reversed.
    """
    check_tensor(frames, "frames")
    return frames.flip(_channel_dim(frames, dim, 3))


def grey(frames: Tensor, *, order: str = "rgb", dim: int = -3, keepdim: bool = True) -> Tensor:
    """Grey levels ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601 luma, :data:`BT601_LUMA`).

    Args:
        frames: float frames with 3 channels on ``dim``.
        order: ``"rgb"`` or ``"bgr"`` (OpenCV's decoders), the channel order of ``frames``.
        dim: the channel axis.
        keepdim: keep the channel axis with size 1 (as torchvision's ``rgb_to_grayscale``);
            ``False`` drops it (``(B, T, H, W)``, as TalkNet takes faces).

    Returns:
        ``(..., 1, H, W)``, or without the channel axis; same unit as the input.
    """
    check_tensor(frames, "frames", floating=True)
    order = check_choice(order, "order", ("rgb", "bgr"))
    axis = _channel_dim(frames, dim, 3)
    weights = torch.tensor(BT601_LUMA if order == "rgb" else BT601_LUMA[::-1])
    shape = [1] * frames.ndim
    shape[axis] = 3
    return (frames * weights.to(frames).reshape(shape)).sum(axis, keepdim=bool(keepdim))


def normalize(
    frames: Tensor,
    mean: float | Sequence[float] | Tensor,
    std: float | Sequence[float] | Tensor,
    *,
    dim: int = -3,
) -> Tensor:
    """``(frames - mean) / std``, per channel on axis ``dim`` (or one value for all).

    Args:
        frames: float frames.
        mean: one value, or one per channel.
        std: one value > 0, or one per channel, each > 0.
        dim: the channel axis (used when ``mean``/``std`` have one value per channel).

    Returns:
        The same shape and dtype.
    """
    check_tensor(frames, "frames", floating=True)
    m, s = channel_values(mean, "mean"), channel_values(std, "std")
    if not bool((s > 0).all()):
        raise ValueError(f"std: every entry must be > 0, got {s.tolist()}")
    return (frames - _along(m, frames, dim)) / _along(s, frames, dim)


def channel_values(value: object, name: str) -> Tensor:
    """One number or one per channel, as a flat finite float64 tensor ``(C,)``.

    Raises:
        TypeError: not a number, sequence of numbers or tensor.
        ValueError: empty, more than one axis, NaN/Inf.
    """
    try:
        if isinstance(value, Tensor):
            t = value.detach().to(torch.float64)
        else:  # as float64 directly: a list of Python floats keeps its precision
            t = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{name}: expected a number or one number per channel, got {describe(value)}"
        ) from None
    if t.ndim > 1 or t.numel() == 0:
        raise ValueError(
            f"{name}: expected a number or a flat list of channels, got shape {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got {t.tolist()}")
    return t.reshape(-1)


def _along(values: Tensor, frames: Tensor, dim: int) -> Tensor:
    """``(C,)`` values shaped to broadcast along the channel axis ``dim`` of ``frames``."""
    values = values.to(device=frames.device, dtype=frames.dtype)
    if values.numel() == 1:
        return values.reshape(())
    shape = [1] * frames.ndim
    shape[_channel_dim(frames, dim, values.numel())] = values.numel()
    return values.reshape(shape)
