"""The data and score checks of an evaluation: each names the clip (its index in the data) and
the modality or the setting at fault, before the model or a metric sees the values.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .scoring import Scored

__all__ = [
    "check_finite_clips",
    "check_finite_scores",
    "check_floating",
    "check_one_logit",
    "warn_score_range",
]


def check_one_logit(logits: Tensor, labels: Tensor) -> None:
    """Refuse logits shaped like the labels (not one-hot): one logit per label, as a sigmoid
    model gives, whose last dimension would be read as the classes.

    Raises:
        ValueError: naming the model and the 2-class logits to return instead.
    """
    if logits.ndim == 0 or logits.shape != labels.shape:
        return
    one_hot = labels.ndim >= 2 and bool(((labels == 0) | (labels == 1)).all())
    if one_hot and bool((labels.sum(-1) == 1).all()):
        return
    raise ValueError(
        f"model: returns logits of shape {tuple(logits.shape)}, shaped like the labels: one "
        "logit per label (a sigmoid / BCE model)? evaluate reads the last dimension of the "
        "logits as the classes; return 2-class logits torch.stack([-z / 2, z / 2], -1) (their "
        "P(class 1) is sigmoid(z)), e.g. with avrobust.wrap(model, logits=lambda z: "
        "torch.stack([-z / 2, z / 2], -1))"
    )


def warn_score_range(scored: Sequence[Scored]) -> None:
    """Warn once when binary scores (of ``Measures.score_fn``) lie outside [0, 1]: a
    prediction is a score >= 0.5, which assumes probabilities."""
    values = [s.values for s in scored if s.binary and s.values.numel()]
    if not values:
        return
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    if low < 0 or high > 1:
        warnings.warn(
            f"Measures.score_fn: gave scores from {low:g} to {high:g}, outside [0, 1], but "
            "evaluate predicts class 1 where a score is >= 0.5 (the correct clips, the success "
            "rate and the accuracy use that threshold; AP does not): return probabilities, "
            "e.g. torch.sigmoid of a logit margin or softmax(logits)[..., 1]",
            UserWarning,
            stacklevel=4,
        )


def check_floating(
    ids: Sequence[int], inputs: Mapping[str, Tensor], attacked: Sequence[str]
) -> None:
    """Refuse a batch whose ``attacked`` modalities are not floating point (uint8 frames,
    int16 audio), naming the first clip and the modality, before the model sees them.

    Raises:
        TypeError: ``data[i]['modality']: ...``.
    """
    for name in attacked:
        x = inputs.get(name)
        if x is not None and not x.is_floating_point():
            raise TypeError(
                f"data[{ids[0]}][{name!r}]: dtype {x.dtype}, but an attacked modality is "
                "perturbed in floats: pass x.float() in the units of its budget (0-255 frames "
                "and audio in [-1, 1] under the default budgets: int16 audio / 32768)"
            )


def check_finite_clips(ids: Sequence[int], inputs: Mapping[str, Tensor]) -> None:
    """Refuse a batch whose floating inputs hold NaN/Inf, naming the first such clip (by its
    index in the data) and modality.

    Raises:
        ValueError: ``data[i]['modality']: ...``.
    """
    for name, x in inputs.items():
        found = _first_non_finite(x) if x.is_floating_point() else None
        if found is not None:
            row, count = found
            raise ValueError(
                f"data[{ids[row]}][{name!r}]: holds {count} NaN/Inf values (of "
                f"{x[row].numel()}); no attack or measure is defined there: fix or leave out that "
                "clip"
            )


def check_finite_scores(ids: Sequence[int], scored: Scored, where: str) -> None:
    """Refuse NaN/Inf binary scores, naming the first clip (by its index in the data) and
    where they came from (``where``: e.g. "the clean inputs").

    Raises:
        ValueError: naming ``model`` / ``Measures.score_fn`` and the clip.
    """
    found = _first_non_finite(scored.values) if scored.binary else None
    if found is not None:
        row, count = found
        raise ValueError(
            f"model / Measures.score_fn: gave {count} NaN/Inf scores for clip {ids[row]} of the "
            f"data at {where}; the model's output there is not a number (an overflow, a log of "
            "0, a division by 0 in forward or in score_fn?)"
        )


def _first_non_finite(x: Tensor) -> tuple[int, int] | None:
    """``(row, count)``: the first row of ``(B, ...)`` holding NaN/Inf and how many; ``None``."""
    if x.numel() == 0:
        return None
    bad = (~torch.isfinite(x.detach())).reshape(x.shape[0], -1).sum(dim=1)
    if not bool(bad.any()):
        return None
    row = int(torch.nonzero(bad)[0])
    return row, int(bad[row])
