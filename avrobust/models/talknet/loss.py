"""TalkNet's training loss (Push-Pull eq. 4) and its two inference scores."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from ..._checks import check_choice, check_number, check_tensor, describe
from ..._types import AVOutput

__all__ = ["speaking_logit", "speaking_probability", "talknet_loss", "talknet_objective"]


def _frame_labels(labels: Tensor, logits: Tensor) -> Tensor:
    check_tensor(labels, "labels", ndims=(1, 2))
    batch, steps = logits.shape[:2]
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(
            f"labels: expected integer class indices (0 or 1), got dtype {labels.dtype}"
        )
    if labels.ndim == 1:
        labels = labels[:, None].expand(-1, steps)
    if tuple(labels.shape) != (batch, steps):
        raise ValueError(
            f"labels: expected shape ({batch}, {steps}) (frame labels) or ({batch},) (one label per "
            f"clip) to match logits {tuple(logits.shape)}, got {tuple(labels.shape)}"
        )
    return labels


def _frame_ce(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-clip mean over frames of the cross-entropy: ``(B, T, C), (B, T) -> (B,)``."""
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    return ce.view(labels.shape).mean(dim=1)


def talknet_loss(
    out: AVOutput,
    labels: Tensor,
    *,
    audio_weight: float = 0.4,
    visual_weight: float = 0.4,
    reduction: str = "mean",
) -> Tensor:
    """TalkNet's training loss ``L = CE_av + 0.4 CE_a + 0.4 CE_v`` (Push-Pull eq. 4), to minimise.

    Each term is the 2-class cross-entropy averaged over the frames; ``CE_a`` and ``CE_v`` use the
    audio-only and visual-only heads on the cross-attended embeddings. With
    ``reduction="mean"`` it equals the official loss (mean over all ``B T`` frames, every clip
    having ``T`` frames).

    Args:
        out: TalkNet's output: ``logits`` ``(B, T, 2)`` and ``heads["audio"]``,
            ``heads["visual"]`` ``(B, T, 2)``.
        labels: ``(B, T)`` frame labels (1 = speaking) or ``(B,)`` one label for all frames.
        audio_weight: weight of ``CE_a``.
        visual_weight: weight of ``CE_v``.
        reduction: ``"mean"`` (scalar, for training) or ``"none"`` (``(B,)`` per clip).

    Returns:
        A scalar, or ``(B,)`` with ``reduction="none"``.

    Raises:
        ValueError: labels that do not fit the logits; a missing head; unknown ``reduction``.

    Example:
        >>> import torch
        >>> z = torch.zeros(2, 3, 2)
        >>> out = AVOutput(z, heads={"audio": z, "visual": z})
        >>> round(float(talknet_loss(out, torch.ones(2, 3, dtype=torch.long))), 4)  # 1.8 ln 2
        1.2477
    """
    reduction = check_choice(reduction, "reduction", ("mean", "none"))
    a_weight = check_number(audio_weight, "audio_weight", min_value=0)
    v_weight = check_number(visual_weight, "visual_weight", min_value=0)
    logits = check_tensor(out.logits, "out.logits", ndims=(3,))
    labels = _frame_labels(labels, logits)
    total = _frame_ce(logits, labels)
    for name, weight in (("audio", a_weight), ("visual", v_weight)):
        if weight == 0:
            continue
        if name not in out.heads:
            raise ValueError(
                f"out.heads: expected a {name!r} head for the TalkNet loss (weight {weight:g}), "
                f"got heads {sorted(out.heads)}"
            )
        total = total + weight * _frame_ce(out.heads[name], labels)
    return total.mean() if reduction == "mean" else total


def talknet_objective(out: AVOutput, labels: Tensor) -> Tensor:
    """The TalkNet training loss per clip, as an attack objective: ``(out, labels) -> (B,)``.

    ``CE_av + 0.4 CE_a + 0.4 CE_v``, each averaged over the clip's frames (Push-Pull eq. 4, the
    "training-aware" attack). Pass it as ``objective=talknet_objective``; ``objective="training"``
    computes the same from :attr:`TalkNet.head_weights`.

    Args:
        out: TalkNet's output.
        labels: ``(B, T)`` or ``(B,)`` integer labels.

    Returns:
        ``(B,)`` losses (an attack maximises them).
    """
    return talknet_loss(out, labels, reduction="none")


def _logits(x: AVOutput | Tensor) -> Tensor:
    logits = x.logits if isinstance(x, AVOutput) else x
    if not isinstance(logits, Tensor) or logits.shape[-1:] != (2,):
        raise ValueError(f"logits: expected 2-class scores (..., 2), got {describe(logits)}")
    return logits


def speaking_probability(x: AVOutput | Tensor) -> Tensor:
    """P(speaking) per frame, ``softmax(logits)[..., 1]``: the score of the official AVA evaluation.

    Args:
        x: TalkNet's output or its logits ``(..., 2)``.

    Returns:
        ``(...)`` probabilities in [0, 1] (e.g. ``(B, T)``).
    """
    return torch.softmax(_logits(x), dim=-1)[..., 1]


def speaking_logit(x: AVOutput | Tensor) -> Tensor:
    """The class-1 logit per frame: the score of the official demo (speaking when ``>= 0``).

    Not a probability and not a logit difference: ``sigmoid`` of it is not P(speaking).

    Args:
        x: TalkNet's output or its logits ``(..., 2)``.

    Returns:
        ``(...)`` raw scores (e.g. ``(B, T)``).
    """
    return _logits(x)[..., 1]
