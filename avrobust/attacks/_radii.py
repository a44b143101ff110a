"""Checking and shaping a budget's radii (``eps``, ``alpha``): numbers, per-sample, per-dimension.

A radius is one of three forms:

- a number: the same radius for every sample and every coordinate;
- a tensor ``(B,)``: one radius per sample (e.g. from :func:`~avrobust.attacks.snr_eps`);
- a tensor ``(1, *dims)`` with two or more dimensions: one radius per coordinate, the same for
  every sample. It broadcasts against each sample as PyTorch broadcasts, so ``(1, D)`` serves
  ``(B, D)`` features and ``(B, T, D)`` frame features alike (e.g. from
  :func:`~avrobust.attacks.feature_budgets`). Only L-inf budgets take it: an L2 ball has one radius.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._checks import check_finite_tensor, check_number, check_tensor

__all__ = ["batch_view", "check_radius", "shape_radius"]


def batch_view(values: Tensor, like: Tensor) -> Tensor:
    """Reshape per-sample values ``(N,)`` to ``(N, 1, ..., 1)`` so they broadcast over ``like``."""
    return values.reshape((-1,) + (1,) * (like.ndim - 1))


def check_radius(value: Any, name: str, *, strict: bool, per_dimension: bool) -> float | Tensor:
    """Validate a radius (see the module docstring); ``per_dimension`` allows the ``(1, ...)`` form.

    Raises:
        ValueError: a negative (or, with ``strict``, zero) entry, NaN/Inf, an empty tensor, a
            per-dimension tensor whose leading axis is not 1, or one where it is not allowed.
        TypeError: not a number or tensor.
    """
    if not (isinstance(value, Tensor) and value.ndim > 0):
        return check_number(value, name, min_value=0.0, strict=strict)
    check_tensor(value, name)
    if value.numel() == 0:
        raise ValueError(f"{name}: expected a number or one value per sample, got an empty tensor")
    if value.ndim >= 2:
        if not per_dimension:
            raise ValueError(
                f"{name}: per-dimension radii (a (1, ...) tensor) are an L-inf notion; this budget "
                f"takes a number or one value per sample (B,), got shape {tuple(value.shape)}"
            )
        if value.shape[0] != 1:
            raise ValueError(
                f"{name}: expected a number, one value per sample (B,), or per-dimension radii "
                f"(1, *dims) shared by every sample, got shape {tuple(value.shape)}"
            )
    check_finite_tensor(value.detach().float(), name)
    low = float(value.min())
    if low < 0 or (strict and low == 0):
        op = ">" if strict else ">="
        raise ValueError(f"{name}: every entry must be {op} 0, got min {low:g}")
    return value.detach()


def shape_radius(value: float | Tensor, x: Tensor, repeats: int, name: str) -> Tensor:
    """The radius for a batch ``x`` of ``N = repeats * B`` samples, ready to broadcast over it.

    Numbers and per-sample radii come back ``(N, 1, ..., 1)``; per-dimension radii come back
    expanded to ``x.shape`` (a view, no copy).

    Raises:
        ValueError: per-sample radii of the wrong length, or per-dimension radii that do not
            broadcast against one sample of ``x``.
    """
    n = x.shape[0]
    if isinstance(value, Tensor) and value.ndim >= 2:
        try:
            fits = value.ndim <= x.ndim and torch.broadcast_shapes(value.shape, x.shape) == x.shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"{name}: per-dimension radii of shape {tuple(value.shape)} do not broadcast "
                f"against the input of shape {tuple(x.shape)}; give (1, D) for features (..., D) "
                "or the shape of one sample with a leading 1"
            )
        return value.to(device=x.device, dtype=x.dtype).expand(x.shape)
    if isinstance(value, Tensor) and value.ndim == 1:
        if value.shape[0] * repeats != n:
            raise ValueError(
                f"{name}: expected one value per sample ({n // repeats}), got {value.shape[0]}; "
                "per-dimension radii take the form (1, D)"
            )
        per_sample = value.to(device=x.device, dtype=x.dtype).repeat(repeats)
    else:
        per_sample = torch.full((n,), float(value), dtype=x.dtype, device=x.device)
    return batch_view(per_sample, x)
