"""Budgets for attacks on precomputed features, scaled per feature dimension to their spread.

When a model takes embeddings (VGGish or VGG-19 features, say) rather than waveforms and pixels,
one ``eps`` for every dimension is arbitrary: a dimension that varies by 10 across clips and one
that varies by 0.01 would get the same radius. :func:`feature_budgets` sets the radius of each
dimension to ``scale`` times its standard deviation over a set of clean features, so ``scale``
reads as "a fraction of the natural spread" in every dimension.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .._checks import check_bounds, check_finite_tensor, check_number, check_tensor, describe
from .budgets import Linf

__all__ = ["feature_budgets"]


def feature_budgets(
    clean_features: Mapping[str, Tensor],
    *,
    scale: float,
    bounds: tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Linf]:
    r"""Per-dimension L-inf budgets: radius :math:`\epsilon_d = \mathrm{scale}\cdot\sigma_d`.

    :math:`\sigma_d` is the population standard deviation (``ddof=0``, what scikit-learn's
    ``StandardScaler`` divides by) of dimension ``d`` (the last axis) over every other axis of
    the clean features: rows of ``(N, D)``, or rows and frames of ``(N, T, D)``. The returned
    :class:`~avrobust.Linf` budgets hold ``eps`` as a ``(1, D)`` tensor, which broadcasts over
    inputs ``(B, D)`` and ``(B, T, D)``; the step size defaults to ``2.5 * eps_d / steps`` per
    dimension.

    When it makes sense: for features with a meaningful per-dimension spread (embeddings, pooled
    CNN features, standardised descriptors), estimated on enough clean samples (tens at least)
    from the distribution you attack, and with a threat model in feature space (e.g. an upstream
    network an attacker controls up to a bounded change of its output). It does not make sense as
    a budget on raw waveforms or pixels (use :class:`~avrobust.Linf` in the input's unit), for
    features whose scale carries no meaning, or as an unbounded attack on raw features without
    such a threat model: a radius of one standard deviation can already move a sample anywhere in
    the clean distribution. A dimension without spread (constant across the clean set) gets radius
    0 and is never perturbed, with a warning.

    Args:
        clean_features: ``{modality: (N, ..., D)}`` floating-point clean features, ``N >= 2``
            (rows; any middle axes such as frames are pooled with them).
        scale: the radius in standard deviations, ``>= 0`` (e.g. 0.1).
        bounds: the valid range of the features: ``None`` (open), one ``(low, high)`` pair for
            every modality, or ``{modality: (low, high)}`` for some of them.

    Returns:
        ``{modality: Linf(eps=(1, D) tensor, bounds=...)}`` in the features' dtype.

    Raises:
        TypeError: ``clean_features`` not a mapping of tensors, a non-float tensor, ``scale`` not
            a number, malformed ``bounds``.
        ValueError: no modality, fewer than 2 rows, fewer than 2 axes, NaN/Inf values, a negative
            ``scale`` or one so large that a radius overflows the features' dtype, ``bounds``
            with ``low >= high`` or for a modality not given.

    Example:
        >>> import torch
        >>> feats = {"audio": torch.tensor([[0.0, 10.0], [2.0, 30.0]])}
        >>> feature_budgets(feats, scale=0.5)["audio"].eps
        tensor([[0.5000, 5.0000]])
    """
    features = _check_features(clean_features)
    factor = check_number(scale, "scale", min_value=0.0)
    per_modality = _check_bounds(bounds, features)
    budgets: dict[str, Linf] = {}
    for name, feats in features.items():
        rows = feats.detach().reshape(-1, feats.shape[-1])
        std = rows.std(dim=0, correction=0)
        flat = int((std == 0).sum())
        if flat:
            warnings.warn(
                f"clean_features[{name!r}]: {flat} of {std.numel()} dimensions have no spread "
                "(constant over the clean features); their radius is 0, so they are never "
                "perturbed",
                stacklevel=2,
            )
        eps = (factor * std).reshape(1, -1)
        if not bool(torch.isfinite(eps).all()):
            limit = torch.finfo(eps.dtype).max / float(std.max())
            raise ValueError(
                f"scale: {factor:g} times the spread of clean_features[{name!r}] (largest "
                f"standard deviation {float(std.max()):g}) overflows {eps.dtype} to inf; "
                f"expected a scale below {limit:.3g} (a radius of a few standard deviations "
                "already covers the clean distribution)"
            )
        budgets[name] = Linf(eps, bounds=per_modality.get(name))
    return budgets


def _check_features(clean_features: Any) -> dict[str, Tensor]:
    if not isinstance(clean_features, Mapping):
        raise TypeError(
            "clean_features: expected a dict {modality: (N, D) tensor} of clean features, "
            f"got {describe(clean_features)}"
        )
    if not clean_features:
        raise ValueError("clean_features: expected at least one modality, got an empty dict")
    out: dict[str, Tensor] = {}
    for key, value in clean_features.items():
        name = f"clean_features[{key!r}]"
        check_tensor(value, name, floating=True)
        if value.ndim < 2 or value.shape[0] < 2 or value.shape[-1] < 1:
            raise ValueError(
                f"{name}: expected (N, D) or (N, ..., D) features with N >= 2 rows, "
                f"got shape {tuple(value.shape)}"
            )
        check_finite_tensor(value.detach(), name)
        out[str(key)] = value
    return out


def _check_bounds(bounds: Any, features: Mapping[str, Tensor]) -> dict[str, tuple[float, float]]:
    if bounds is None:
        return {}
    if not isinstance(bounds, Mapping):
        pair = check_bounds(bounds, "bounds")
        return {name: pair for name in features} if pair is not None else {}
    unknown = [str(k) for k in bounds if k not in features]
    if unknown:
        raise ValueError(
            f"bounds: modality {unknown[0]!r} has bounds but no clean features; "
            f"the clean features have {list(features)}"
        )
    out: dict[str, tuple[float, float]] = {}
    for key, value in bounds.items():
        pair = check_bounds(value, f"bounds[{key!r}]")
        if pair is not None:
            out[str(key)] = pair
    return out
