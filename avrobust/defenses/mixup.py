"""Modality mix-up for the user's own training loop (in the spirit of Li et al., ICASSP 2022).

Li et al. report that a mix-up strategy gives about as much protection as adversarial training at a
fraction of the cost, but neither their paper text nor their released code defines it (see the
project's reference notes). This is **our** definition, built on mix-up (Zhang et al., 2018):

* each sample ``i`` is paired with sample ``j = π(i)`` of a random permutation ``π`` of the batch;
* ``mode="joint"``: one ``λ_i ~ Beta(α, α)`` mixes every modality, ``x'_m = λ_i x_m,i + (1 − λ_i) x_m,j``;
* ``mode="per_modality"``: each mixed modality draws its own ``λ_m,i ~ Beta(α, α)``;
* modalities left out of ``modalities`` stay unmixed (they count as ``λ = 1``);
* the soft target is ``y' = λ̄_i y_i + (1 − λ̄_i) y_j`` with ``λ̄_i`` the mean of the sample's
  ``λ`` over *all* modalities of the batch (mixed or not): each modality carries an equal share of
  the evidence.

``λ`` is drawn per sample (``per_sample=True``) or once per batch, from an explicit generator.
Train with ``F.cross_entropy(logits, batch.targets)``, which accepts soft targets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import (
    check_bool,
    check_choice,
    check_finite_tensor,
    check_generator,
    check_int,
    check_number,
    check_tensor,
    check_tensor_dict,
)

__all__ = ["MixupBatch", "modality_mixup"]


@dataclass(frozen=True)
class MixupBatch:
    """A mixed batch.

    Attributes:
        inputs: ``{modality: tensor}``, same shapes and dtypes as the clean inputs.
        targets: ``(B, C)`` soft targets (rows sum to 1).
        lam: ``{modality: (B,)}`` the ``λ`` used per modality (1 for unmixed modalities).
        index: ``(B,)`` the partner ``j = π(i)`` of each sample.
    """

    inputs: dict[str, Tensor]
    targets: Tensor
    lam: dict[str, Tensor]
    index: Tensor


def _targets(labels: Tensor, num_classes: int | None) -> Tensor:
    """Labels ``(B,)`` int or ``(B, C)`` probabilities -> ``(B, C)`` float."""
    check_tensor(labels, "labels")
    if labels.ndim == 2 and labels.is_floating_point():
        check_finite_tensor(labels, "labels")
        if num_classes is not None and labels.shape[1] != num_classes:
            raise ValueError(
                f"labels: expected (B, num_classes={num_classes}) probabilities, got shape "
                f"{tuple(labels.shape)}"
            )
        sums = labels.sum(1)
        if bool((labels < 0).any()) or not torch.allclose(sums, torch.ones_like(sums), atol=1e-3):
            raise ValueError(
                "labels: expected (B, C) class probabilities (each row >= 0 and summing to 1), "
                f"got rows summing to {[round(float(v), 4) for v in sums[:4]]} with min "
                f"{float(labels.min()):.3g}; "
                "logits or scores? pass softmax(logits, 1), or (B,) class indices with "
                "num_classes"
            )
        return labels
    if labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(
            f"labels: expected (B,) integer classes or (B, C) probabilities, "
            f"got shape {tuple(labels.shape)} and dtype {labels.dtype}"
        )
    if num_classes is None:
        raise ValueError("num_classes: needed with integer labels, got None")
    num_classes = check_int(num_classes, "num_classes", min_value=2)
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise ValueError(
            f"labels: expected classes in [0, {num_classes}), "
            f"got min {int(labels.min())} and max {int(labels.max())}"
        )
    return F.one_hot(labels.long(), num_classes).float()


def modality_mixup(
    inputs: Mapping[str, Tensor],
    labels: Tensor,
    *,
    num_classes: int | None = None,
    alpha: float = 1.0,
    mode: str = "joint",
    modalities: Iterable[str] | None = None,
    per_sample: bool = True,
    generator: torch.Generator | None = None,
) -> MixupBatch:
    """Mix a batch across samples, jointly or per modality (our definition; see the module docstring).

    Args:
        inputs: ``{modality: (B, ...)}`` clean inputs, e.g. ``{"audio": (B, S), "visual": (B, 3, H, W)}``.
        labels: ``(B,)`` class indices or ``(B, C)`` class probabilities.
        num_classes: ``C``, needed with class indices.
        alpha: Beta(α, α) parameter, ``α > 0`` (1.0: uniform λ).
        mode: ``"joint"`` (one λ for all modalities) or ``"per_modality"`` (one λ each).
        modalities: the modalities to mix (default: all).
        per_sample: draw λ per sample (default) or once for the batch.
        generator: source of randomness (on the CPU); the global RNG is used when ``None``.

    Returns:
        :class:`MixupBatch` with mixed ``inputs``, soft ``targets (B, C)``, ``lam`` and ``index``.

    Raises:
        TypeError, ValueError: bad inputs, labels (NaN/Inf class probabilities too, and rows
            that are not probabilities: negative or not summing to 1), mode, alpha,
            generator or an unknown modality. NaN/Inf *inputs* are not checked (that would cost a
            device sync per batch); they stay NaN/Inf in the mixed batch.

    Example:
        >>> x = {"audio": torch.zeros(4, 8), "visual": torch.ones(4, 3, 2, 2)}
        >>> batch = modality_mixup(x, torch.tensor([0, 1, 2, 0]), num_classes=3)
        >>> batch.targets.shape, torch.allclose(batch.targets.sum(1), torch.ones(4))
        (torch.Size([4, 3]), True)
    """
    inputs = check_tensor_dict(inputs, "inputs")
    mode = check_choice(mode, "mode", ("joint", "per_modality"))
    alpha = check_number(alpha, "alpha", min_value=0.0, strict=True)
    check_bool(per_sample, "per_sample")
    check_generator(generator)
    if isinstance(modalities, str):
        raise TypeError(
            f"modalities: expected a list of names such as ['audio'], got {modalities!r}"
        )
    chosen = list(inputs) if modalities is None else list(modalities)
    unknown = sorted(set(chosen) - set(inputs))
    if unknown:
        raise ValueError(f"modalities: {unknown} not in inputs {sorted(inputs)}")
    targets = _targets(labels, num_classes)
    b = targets.shape[0]
    if b != next(iter(inputs.values())).shape[0]:
        raise ValueError(
            f"labels: expected batch size {next(iter(inputs.values())).shape[0]}, got {b}"
        )
    index = torch.randperm(b, generator=generator)

    def draw() -> Tensor:
        u = _beta_sample(alpha, b if per_sample else 1, generator)
        return u.expand(b)

    shared = draw()
    lam = {
        m: (shared if mode == "joint" else draw()) if m in chosen else torch.ones(b) for m in inputs
    }
    mixed = {m: _mix(x, lam[m], index) if m in chosen else x for m, x in inputs.items()}
    lam_bar = torch.stack(list(lam.values())).mean(0).to(targets)
    soft = lam_bar[:, None] * targets + (1 - lam_bar[:, None]) * targets[index.to(targets.device)]
    return MixupBatch(mixed, soft, lam, index)


def _beta_sample(alpha: float, n: int, generator: torch.Generator | None) -> Tensor:
    """``n`` draws of Beta(α, α) from ``generator``, as ``torch.distributions.Beta`` samples them
    (the first coordinate of a Dirichlet(α, α) draw), but with an explicit generator."""
    concentration = torch.full((n, 2), alpha)
    return torch._sample_dirichlet(concentration, generator=generator)[:, 0]


def _mix(x: Tensor, lam: Tensor, index: Tensor) -> Tensor:
    """``λ x + (1 − λ) x[index]`` with ``λ (B,)`` broadcast over the trailing dims."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    w = lam.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float32)
    mixed = w.view(shape) * x + (1 - w.view(shape)) * x[index.to(x.device)]
    return mixed.to(x.dtype)
