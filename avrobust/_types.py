"""The two data types every part of avrobust speaks: :class:`AVOutput` and :class:`AttackResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["AVOutput", "AttackResult"]


@dataclass(frozen=True)
class AVOutput:
    """What a model returns under the avrobust contract.

    Every model, shipped or wrapped with :func:`avrobust.wrap`, is called as ``model(**inputs)``
    with ``inputs: dict[str, Tensor]`` keyed by modality name and returns an ``AVOutput``.

    Attributes:
        logits: the inference head, unnormalised scores: clip-level ``(B, C)`` or frame-level
            ``(B, T, C)``.
        heads: extra training heads by name, each shaped like ``logits`` (e.g. TalkNet's
            ``{"audio": (B, T, 2), "visual": (B, T, 2)}``). The ``"training"`` attack objective
            adds a weighted cross-entropy over every head.
        embeddings: per-modality (or per-stage) embeddings by name, e.g. frame embeddings
            ``(B, T, D)`` or clip embeddings ``(B, D)``; used by AVIL, ECR and the defenses.

    Example:
        >>> import torch
        >>> out = AVOutput(torch.zeros(4, 2), embeddings={"audio": torch.zeros(4, 8)})
        >>> out.logits.shape, sorted(out.embeddings)
        (torch.Size([4, 2]), ['audio'])
    """

    logits: Tensor
    heads: Mapping[str, Tensor] = field(default_factory=dict)
    embeddings: Mapping[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class AttackResult:
    """What :class:`avrobust.MultimodalAttack` returns.

    Attributes:
        inputs: the adversarial inputs, one tensor per modality given, with the same shapes,
            dtypes and devices as the clean inputs. A modality that was not attacked is a
            bit-identical copy of the clean tensor.
        success: ``(B,)`` bool. Untargeted: the prediction on ``inputs`` differs from the label;
            targeted: it equals the target. For frame-level logits ``(B, T, C)`` a clip counts as a
            success when more than half of its frames do (see ``frame_success``). A sample whose
            returned logits hold NaN/Inf is never a success (the argmax of NaN means nothing).
        logits: ``(B, C)`` or ``(B, T, C)``, the model's logits on ``inputs`` (detached).
        loss: ``(B,)`` the attack objective on ``inputs`` (untargeted: the loss the attack
            raised; targeted: the loss towards the target, which the attack lowered).
        clean_loss: ``(B,)`` the same objective on the clean inputs (the attack always
            evaluates them, to refuse NaN/Inf logits there); ``None`` only for results built
            by other code.
        frame_success: ``(B, T)`` bool for frame-level logits, else ``None``.
        perturbations: per attacked modality, ``inputs[m] - clean[m]`` (same shape as the input).
    """

    inputs: dict[str, Tensor]
    success: Tensor
    logits: Tensor
    loss: Tensor
    clean_loss: Tensor | None = None
    frame_success: Tensor | None = None
    perturbations: dict[str, Tensor] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        """Fraction of samples in the batch for which the attack succeeded, in [0, 1]."""
        return float(self.success.float().mean()) if self.success.numel() else 0.0
