r"""Evaluation measures as pure functions: ECR, AVA-style AP, accuracy, ROC-AUC, attack success,
perceptibility (:mod:`~avrobust.metrics.perceptibility`, re-exported here).

Every function accepts tensors (NumPy arrays and sequences are converted) and returns a tensor:
0-d for a pooled measure, ``(B,)`` for a per-sample one. Scores and labels of any shape are
pooled over all frames. Each has a streaming twin of the same name in CamelCase
(:mod:`avrobust.metrics.streaming`): ``average_precision``/``AveragePrecision``, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_finite_tensor, check_number, check_tensor, describe
from ._deprecated import deprecated_attribute
from .perceptibility import max_abs, psnr, snr

__all__ = [
    "ArrayLike",
    "accuracy",
    "average_precision",
    "ecr",
    "ecr_per_frame",
    "max_abs",
    "psnr",
    "roc_auc",
    "snr",
    "success_rate",
]

ArrayLike = Tensor | np.ndarray | Sequence[float]
"""A tensor, a NumPy array, or a (nested) sequence of numbers."""


def _numbers(value: Any, name: str) -> np.ndarray:
    """A NumPy array or (nested) sequence as an array of numbers: strings, objects (``None``),
    complex values and ragged nesting are refused (``"0.3"`` is not a score)."""
    try:
        array = np.asarray(value)
    except ValueError:
        raise TypeError(
            f"{name}: expected a (nested) sequence of numbers with a regular shape, "
            f"got {describe(value)}"
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name}: expected real numbers (bool, int or float), got {describe(value)}"
        )
    return array


def _as_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (np.ndarray, list, tuple)):
        return torch.as_tensor(_numbers(value, name))
    raise TypeError(f"{name}: expected a tensor, NumPy array or sequence, got {describe(value)}")


def _binary_labels(labels: Any, name: str = "labels") -> Tensor:
    y = _as_tensor(labels, name)
    if y.dtype == torch.bool:
        return y
    if y.is_floating_point() or y.is_complex():
        raise TypeError(f"{name}: expected an integer or bool tensor of 0/1, got dtype {y.dtype}")
    if y.numel() and bool(((y != 0) & (y != 1)).any()):
        found = sorted(int(v) for v in y[(y != 0) & (y != 1)].unique()[:5])
        raise ValueError(f"{name}: expected 0/1 (1 = positive, e.g. speaking), got values {found}")
    return y.bool()


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach()
        if value.is_complex():
            raise TypeError(f"{name}: expected real numbers, got a tensor of dtype {value.dtype}")
        if value.dtype in (torch.float16, torch.bfloat16):
            value = value.float()
        return value.cpu().numpy()
    if isinstance(value, (np.ndarray, list, tuple)):
        return _numbers(value, name)
    raise TypeError(f"{name}: expected a tensor, NumPy array or sequence, got {describe(value)}")


def _scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flatten and check a ``(scores, labels)`` pair into NumPy: same length, finite, 0/1.

    Ranking measures run on the CPU with NumPy, whose vectorised sort is many times faster than
    ``torch.sort`` there; GPU tensors are copied. Scores keep float32/float64 precision.
    """
    s, y = _to_numpy(scores, "scores"), _to_numpy(labels, "labels")
    if y.dtype != np.bool_:
        if not np.issubdtype(y.dtype, np.integer):
            raise TypeError(
                f"labels: expected an integer or bool tensor of 0/1, got dtype {y.dtype}"
            )
        bad = (y != 0) & (y != 1)
        if bad.any():
            found = np.unique(y[bad])[:5].tolist()
            raise ValueError(
                f"labels: expected 0/1 (1 = positive, e.g. speaking), got values {found}"
            )
    if s.size != y.size:
        raise ValueError(
            "scores, labels: expected the same number of frames, got "
            f"{s.size} scores (shape {s.shape}) and {y.size} labels (shape {y.shape})"
        )
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float64)
    if s.size == 0:
        raise ValueError("scores: expected at least one frame, got none")
    if not np.isfinite(s).all():
        bad_scores = int((~np.isfinite(s)).sum())
        raise ValueError(f"scores: expected finite values, got {bad_scores} NaN/Inf scores")
    return s.reshape(-1), y.reshape(-1).astype(bool)


def _reverse_cummax(x: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(x[::-1])[::-1]


def ecr_per_frame(z_clean: Tensor, z_adv: Tensor, *, guard: float = 1e-12) -> Tensor:
    r"""Per-frame embedding change ratio ``‖z_i - z̃_i‖₂ / max(‖z_i‖₂, ε)`` (Push-Pull §4.3).

    Args:
        z_clean: ``(..., D)`` embeddings of the clean input, e.g. ``(B, T, D)`` frames.
        z_adv: the same embeddings of the adversarial input, same shape.
        guard: ``ε``, the floor of the clean norm (an all-zero clean embedding would divide by
            zero), > 0.

    Returns:
        ``(...)`` ratios (>= 0, unitless), one per frame.

    Raises:
        ValueError: shapes differ, a 0-d input, or NaN/Inf embeddings (a ratio of them would be
            NaN or inf, not a measurement).
    """
    z = check_tensor(z_clean, "z_clean", floating=True)
    z_t = check_tensor(z_adv, "z_adv", floating=True)
    if z.shape != z_t.shape:
        raise ValueError(
            f"z_clean, z_adv: shapes must match, got {tuple(z.shape)} and {tuple(z_t.shape)}"
        )
    if z.ndim == 0:
        raise ValueError("z_clean: expected (..., D) embeddings, got a 0-d tensor")
    z, z_t = check_finite_tensor(z.detach(), "z_clean"), check_finite_tensor(z_t.detach(), "z_adv")
    change = torch.linalg.vector_norm(z - z_t, dim=-1)
    floor = check_number(guard, "guard", min_value=0.0, strict=True)
    return change / torch.linalg.vector_norm(z, dim=-1).clamp_min(floor)


def ecr(z_clean: Tensor, z_adv: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Embedding change ratio, ``1/K Σ_i ‖z_i - z̃_i‖₂ / ‖z_i‖₂`` over the ``K`` frames.

    Lower is better (the attack moved the embeddings less).

    Args:
        z_clean: ``(..., D)`` clean embeddings; all leading dims are frames, e.g. ``(B, T, D)``.
        z_adv: adversarial embeddings, same shape.
        mask: optional bool ``(...)``, ``False`` = padded frame, left out.

    Returns:
        0-d tensor (unitless ratio).

    Raises:
        ValueError: shapes differ, NaN/Inf embeddings, a mask of the wrong shape, or no frame.

    Example:
        >>> import torch
        >>> z = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
        >>> ecr(z, z + torch.tensor([[0.0, 5.0], [0.0, 0.0]]))
        tensor(0.5000)
    """
    ratios = ecr_per_frame(z_clean, z_adv)
    if mask is not None:
        m = check_tensor(mask, "mask")
        if m.shape != ratios.shape or m.dtype != torch.bool:
            raise ValueError(
                f"mask: expected a bool tensor of shape {tuple(ratios.shape)}, got {describe(m)}"
            )
        ratios = ratios[m]
    if ratios.numel() == 0:
        raise ValueError("z_clean: expected at least one (unmasked) frame, got none")
    return ratios.mean()


def average_precision(scores: ArrayLike, labels: ArrayLike, *, ties: str = "group") -> Tensor:
    r"""Frame-level AP as the official AVA-ActiveSpeaker evaluation computes it ("mAP").

    One pooled average precision over all frames, in [0, 1] (the AVA script prints it ×100).
    Frames are ranked by score, highest first; precision ``p_k = TP_k / k`` and recall
    ``r_k = TP_k / P``; precision is made non-increasing from the right (VOC interpolation,
    ``p̂_k = max_{j>=k} p_j``) and ``AP = Σ_k (r_k - r_{k-1}) p̂_k``. Unlike scikit-learn's
    ``average_precision_score`` (no interpolation), AP never drops because of a dip in precision
    that a later threshold recovers.

    Args:
        scores: any shape, the score of the positive class (e.g. P(speaking)); higher = positive.
        labels: same number of elements, 0/1 or bool (1 = SPEAKING_AUDIBLE).
        ties: ``"group"`` (default): frames with equal scores form one operating point, so the
            result does not depend on frame order. ``"stable"``: tied frames are ranked in input
            order, one point each, as the official script's sort does when it keeps input order.
            Without ties both give the same value.

    Returns:
        0-d float64 tensor in [0, 1].

    Raises:
        TypeError: scores that are not real numbers (strings such as ``"0.3"`` are refused, not
            converted), labels that are not integers or bools.
        ValueError: different numbers of scores and labels, NaN/Inf scores, no frame, labels other
            than 0/1, no positive frame (AP undefined).

    Example:
        >>> average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
        tensor(0.8333, dtype=torch.float64)
    """
    mode = check_choice(ties, "ties", ("group", "stable"))
    s, y = _scores_labels(scores, labels)
    positives = int(y.sum())
    if positives == 0:
        raise ValueError("labels: AP is undefined without a positive frame, got none")
    if mode == "stable":
        hits = y[np.argsort(-s, kind="stable")]
        precision = np.cumsum(hits) / np.arange(1, s.size + 1)
        return torch.tensor(_reverse_cummax(precision)[hits].sum() / positives, dtype=torch.float64)
    # One operating point per distinct positive score u (a threshold at a score held only by
    # negatives adds no recall, and its precision is below the point before it).
    levels, counts = np.unique(s[y], return_counts=True)
    levels, counts = levels[::-1], counts[::-1]
    negatives = np.sort(s[~y])
    tp = np.cumsum(counts)
    fp = negatives.size - np.searchsorted(negatives, levels, side="left")
    precision = tp / (tp + fp)
    return torch.tensor(
        (_reverse_cummax(precision) * counts).sum() / positives, dtype=torch.float64
    )


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> Tensor:
    """Area under the ROC curve (Mann–Whitney U with mid-ranks for ties), pooled over frames.

    Args:
        scores: any shape, higher = positive.
        labels: same number of elements, 0/1 or bool.

    Returns:
        0-d float64 tensor in [0, 1]; 0.5 is chance.

    Raises:
        ValueError: as :func:`average_precision`, or a single class present.
    """
    s, y = _scores_labels(scores, labels)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError(
            f"labels: ROC-AUC needs both classes, got {positives} positive and "
            f"{negatives} negative frames"
        )
    # P(score_pos > score_neg) + 0.5 P(equal), counted with binary searches.
    neg, pos = np.sort(s[~y]), np.sort(s[y])  # sorted queries keep the searches cache-friendly
    below = np.searchsorted(neg, pos, side="left")
    tied = np.searchsorted(neg, pos, side="right") - below
    return torch.tensor((below + tied / 2).sum() / (positives * negatives), dtype=torch.float64)


def accuracy(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    threshold: float = 0.5,
    mask: Tensor | None = None,
) -> Tensor:
    """Frame accuracy: the fraction of (unmasked) frames whose prediction equals the label.

    Args:
        scores: either ``(...)`` positive-class scores, shaped like ``labels`` (predicted positive
            when ``score >= threshold``), or ``(..., C)`` logits/probabilities (prediction =
            argmax over the last dim).
        labels: ``(...)`` integer or bool class indices (0/1 with thresholded scores).
        threshold: decision threshold for positive-class scores: 0.5 for probabilities, 0 for
            logits or log-odds.
        mask: optional bool ``(...)``; ``False`` frames are left out.

    Returns:
        0-d float64 tensor in [0, 1].

    Raises:
        TypeError: scores or labels that are not numbers (e.g. strings), float labels.
        ValueError: NaN/Inf scores (``NaN >= threshold`` is False and ``argmax`` of NaN is 0, so
            they would look like predictions), shapes that fit neither form, a single logit per
            frame ``(..., 1)``, class indices outside ``[0, C)`` in unmasked frames (an ignore
            index such as -100 needs a ``mask``), a wrong mask, or no frame.
    """
    s, y = _as_tensor(scores, "scores"), _as_tensor(labels, "labels")
    if s.is_floating_point():
        check_finite_tensor(s, "scores")
    if y.is_floating_point():
        raise TypeError(f"labels: expected an integer or bool tensor, got dtype {y.dtype}")
    if mask is not None and (
        not isinstance(mask, Tensor) or mask.shape != y.shape or mask.dtype != torch.bool
    ):
        raise ValueError(
            f"mask: expected a bool tensor of shape {tuple(y.shape)}, got {describe(mask)}"
        )
    if s.shape == y.shape:
        pred = s >= check_number(threshold, "threshold", allow_inf=True)
        y = _binary_labels(y if mask is None else y.where(mask.to(y.device), 0))
    elif s.shape[:-1] == y.shape:
        _check_classes(s.shape[-1], y if mask is None else y[mask.to(y.device)])
        pred = s.argmax(dim=-1)
    else:
        raise ValueError(
            f"scores, labels: expected scores of shape {tuple(y.shape)} or "
            f"{(*tuple(y.shape), 'C')}, got {tuple(s.shape)}"
        )
    correct = pred.long() == y.long().to(pred.device)
    if mask is not None:
        correct = correct[mask.to(correct.device)]
    if correct.numel() == 0:
        raise ValueError("labels: expected at least one (unmasked) frame, got none")
    return correct.to(torch.float64).mean()


def _check_classes(classes: int, labels: Tensor) -> None:
    """Class indices ``labels`` (the unmasked ones) that ``(..., classes)`` logits can predict."""
    if classes == 1:
        raise ValueError(
            "scores: expected (..., C) logits with C >= 2, or scores shaped like the labels; got "
            "one score per frame (last dim 1), whose argmax is always class 0: squeeze it "
            "(scores[..., 0]) and pass threshold=0 for a logit (0.5 for a probability)"
        )
    outside = labels[(labels < 0) | (labels >= classes)]
    if outside.numel():
        found = sorted(int(v) for v in outside.unique()[:5])
        raise ValueError(
            f"labels: expected class indices in [0, {classes}) (the scores' last dim), got "
            f"values {found}; padded frames (an ignore index such as -100)? leave them out "
            "with mask=labels >= 0"
        )


def success_rate(scores: ArrayLike, labels: ArrayLike, *, threshold: float = 0.5) -> Tensor:
    """Attack success rate: the fraction of samples (clips) predicted wrongly under attack.

    A clip with frame labels counts as a success when more than half of its frames are predicted
    wrongly (the score at or above ``threshold`` means positive); a clip label, when it is
    predicted wrongly.

    Args:
        scores: ``(B, ...)`` positive-class scores of the attacked samples, e.g. P(speaking).
        labels: 0/1 or bool, the same shape: frame labels ``(B, T)`` or clip labels ``(B,)``.
        threshold: decision threshold (0.5 for probabilities, 0 for logits).

    Returns:
        0-d float64 tensor in [0, 1].

    Raises:
        TypeError: scores or labels that are not numbers, float labels.
        ValueError: NaN/Inf scores, shapes that differ, labels other than 0/1, no sample.

    Example:
        >>> success_rate([[0.9, 0.2, 0.1], [0.9, 0.8, 0.1]], [[1, 1, 1], [1, 1, 1]])
        tensor(0.5000, dtype=torch.float64)
    """
    wrong = _wrong_fraction(scores, labels, threshold)
    return (wrong > 0.5).to(torch.float64).mean()


def _wrong_fraction(scores: ArrayLike, labels: ArrayLike, threshold: float) -> Tensor:
    """``(B,)`` the fraction of each sample's frames predicted wrongly (clip labels: 0 or 1)."""
    s, y = _as_tensor(scores, "scores"), _binary_labels(labels)
    if s.is_floating_point():
        check_finite_tensor(s, "scores")
    if s.shape != y.shape or s.ndim == 0 or s.shape[0] == 0:
        raise ValueError(
            f"scores, labels: expected the same shape (B, ...) with B >= 1, got {tuple(s.shape)} "
            f"and {tuple(y.shape)}"
        )
    wrong = (s >= check_number(threshold, "threshold", allow_inf=True)) != y.to(s.device)
    return wrong.float().mean(dim=tuple(range(1, wrong.ndim))) if wrong.ndim > 1 else wrong.float()


def __getattr__(name: str) -> object:
    """The old names (``ava_average_precision``, ``snr_db``), with a ``DeprecationWarning``."""
    return deprecated_attribute(__name__, name, ("ava_average_precision", "snr_db"))
