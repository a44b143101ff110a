"""Attack objectives: functions ``(AVOutput, labels) -> (B,)`` per-sample losses to maximise.

Push-Pull §3.2 distinguishes the *training-aware* attacker, who maximises the model's full
training loss (for TalkNet ``CE_av + 0.4 CE_a + 0.4 CE_v``, eq. 4), from the *inference-aware*
attacker, who maximises the loss of the inference head alone (eq. 3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_number, describe
from .._types import AVOutput

__all__ = ["CrossEntropyObjective", "Objective", "as_objective", "check_labels", "per_sample_ce"]

Objective = Callable[[AVOutput, Tensor], Tensor]
"""An attack objective: ``(output, labels) -> (B,)`` per-sample losses, maximised by the attack."""


def check_labels(labels: Tensor, logits: Tensor, name: str = "labels") -> Tensor:
    """Check labels against logits; returns labels shaped like ``logits.shape[:-1]``.

    Clip-level labels ``(B,)`` go with clip logits ``(B, C)``; with frame logits ``(B, T, C)``
    they apply to every frame. Frame-level labels ``(B, T)`` need frame logits ``(B, T, C)``.

    Raises:
        TypeError: labels not an integer (or bool) tensor.
        ValueError: a shape that fits neither, or a class index outside ``[0, C)``.
    """
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"{name}: expected integer class indices, got dtype {labels.dtype}")
    target = logits.shape[:-1]
    if labels.shape != target:
        if labels.ndim == 1 and logits.ndim == 3 and labels.shape[0] == logits.shape[0]:
            labels = labels[:, None].expand(target)
        else:
            raise ValueError(
                f"{name}: expected shape {tuple(target)} (frame-level) or "
                f"({target[0]},) (clip-level) to match logits of shape {tuple(logits.shape)}, "
                f"got {tuple(labels.shape)}"
            )
    num_classes = logits.shape[-1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"{name}: class indices must lie in [0, {num_classes - 1}] for logits with "
            f"{num_classes} classes, got min {int(labels.min())}, max {int(labels.max())}"
        )
    return labels.long()


def per_sample_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy per sample: ``(B,)``; frame-level logits are averaged over frames (eq. 3)."""
    ce = F.cross_entropy(logits.movedim(-1, 1), labels, reduction="none")
    return ce if ce.ndim == 1 else ce.flatten(1).mean(dim=1)


class CrossEntropyObjective:
    """Weighted per-sample cross-entropy over the logits and (optionally) every extra head.

    ``loss_i = w_logits * CE(logits_i, y_i) + sum_h w_h * CE(heads[h]_i, y_i)``; frame-level
    cross-entropy is averaged over frames, so every clip counts the same.

    Args:
        head_weights: weight per extra head; a head missing from the mapping weighs
            ``default_head_weight``. ``None`` uses no extra head (the inference-aware objective).
        logits_weight: weight of the inference head.
        default_head_weight: weight for heads not named in ``head_weights``.

    Example:
        >>> import torch
        >>> out = AVOutput(torch.zeros(2, 3), heads={"audio": torch.zeros(2, 3)})
        >>> CrossEntropyObjective({"audio": 0.4})(out, torch.tensor([0, 1]))
        tensor([1.5381, 1.5381])
    """

    def __init__(
        self,
        head_weights: Mapping[str, float] | None = None,
        logits_weight: float = 1.0,
        default_head_weight: float = 1.0,
    ) -> None:
        self.use_heads = head_weights is not None
        self.head_weights = {
            str(k): check_number(v, f"head_weights[{k!r}]", min_value=0.0)
            for k, v in (head_weights or {}).items()
        }
        self.logits_weight = check_number(logits_weight, "logits_weight", min_value=0.0)
        self.default_head_weight = check_number(
            default_head_weight, "default_head_weight", min_value=0.0
        )

    def __call__(self, out: AVOutput, labels: Tensor) -> Tensor:
        loss = self.logits_weight * per_sample_ce(out.logits, labels)
        if self.use_heads:
            for name, head in out.heads.items():
                weight = self.head_weights.get(name, self.default_head_weight)
                if weight:
                    loss = loss + weight * per_sample_ce(head, labels)
        return loss

    def __repr__(self) -> str:
        heads = self.head_weights if self.use_heads else None
        return f"CrossEntropyObjective(head_weights={heads}, logits_weight={self.logits_weight:g})"


def as_objective(objective: Any, model: nn.Module) -> Objective:
    """Resolve the ``objective`` argument of an attack.

    ``"training"``: :class:`CrossEntropyObjective` over the logits and every head, with head
    weights from the model's ``head_weights`` attribute when it has one (TalkNet: 0.4 each) and
    1.0 otherwise. ``"inference"``: cross-entropy of the logits only. A callable is used as is.

    Raises:
        ValueError: an unknown name. TypeError: neither a name nor a callable.
    """
    if callable(objective) and not isinstance(objective, str):
        return objective
    if objective == "training":
        weights = getattr(model, "head_weights", None)
        return CrossEntropyObjective(dict(weights) if isinstance(weights, Mapping) else {})
    if objective == "inference":
        return CrossEntropyObjective(None)
    if isinstance(objective, str):
        raise ValueError(
            f"objective: expected 'training', 'inference' or a callable, got {objective!r}"
        )
    raise TypeError(
        f"objective: expected 'training', 'inference' or a callable "
        f"(AVOutput, labels) -> (B,) losses, got {describe(objective)}"
    )
