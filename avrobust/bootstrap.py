"""Bootstrap intervals over clips: how much a frame mAP measured on a few clips can be trusted.

The attacked set of an evaluation is small (Push-Pull: 450 clips; the demo: 24), so two runs
that differ only in floating-point rounding can move an mAP by several points. Resampling the
clips with replacement (the *bootstrap*) shows that spread: each resample draws ``n`` of the
``n`` clips, the measure is recomputed on the drawn clips (a clip drawn twice counts twice), and
the 2.5th and 97.5th percentiles of the resampled values are a 95 % interval.

A *paired* bootstrap compares two measures on the same clips (two models, or one model clean
and attacked): both are recomputed on the same resamples (the same ``counts``) and the interval
is taken over the resampled differences, which is much narrower than the two intervals suggest
when the measures move together.

Typical use::

    counts = clip_counts(len(selection), resamples=1000, seed=0)
    a = bootstrap_map(scores_a, labels, counts)   # (1000,) mAP of model A per resample
    b = bootstrap_map(scores_b, labels, counts)   # the same resamples for model B
    low, high = percentile_interval(100 * (b - a))  # 95 % interval of the gain, in points
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._checks import check_choice, check_int, check_number, describe

__all__ = ["CellBootstrap", "bootstrap_map", "bootstrap_mean", "clip_counts", "percentile_interval"]

_CHUNK = 4_000_000  # resample x score-group values held at once
_WHICH = ("adv", "clean")
_MAX_COUNTS = 2**30  # resamples x clips of clip_counts (8 GiB of int64)


def clip_counts(clips: int, *, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """How often each clip is drawn in each bootstrap resample.

    Args:
        clips: the number of clips ``n`` (>= 1).
        resamples: the number of resamples ``R`` (>= 1).
        seed: seed of NumPy's default generator; the same arguments give the same counts.

    Returns:
        ``(R, n)`` int64 counts; each row sums to ``n`` (``n`` draws with replacement).

    Raises:
        ValueError: ``clips`` or ``resamples`` below 1, or more than 2**30 counts in all.
    """
    n = check_int(clips, "clips", min_value=1)
    r = check_int(resamples, "resamples", min_value=1)
    if r * n > _MAX_COUNTS:
        raise ValueError(
            f"resamples, clips: {r} resamples of {n} clips need {r * n:.3g} counts "
            f"({8 * r * n / 2**30:.3g} GiB), more than the {_MAX_COUNTS:.3g} held at once; use "
            "fewer resamples (1000 is usual)"
        )
    drawn = np.random.default_rng(check_int(seed, "seed", min_value=0)).integers(0, n, (r, n))
    flat = (drawn + n * np.arange(r)[:, None]).ravel()
    return np.bincount(flat, minlength=r * n).reshape(r, n)


def _check_counts(counts: object, clips: int) -> np.ndarray:
    if not isinstance(counts, np.ndarray) or counts.ndim != 2 or counts.shape[1] != clips:
        raise ValueError(
            f"counts: expected an (R, {clips}) array from clip_counts (one column per clip), "
            f"got {describe(counts) if not isinstance(counts, np.ndarray) else counts.shape}"
        )
    if not (np.isfinite(counts).all() and (counts >= 0).all() and (counts % 1 == 0).all()):
        raise ValueError(
            "counts: expected whole numbers >= 0 (how often each clip is drawn), from clip_counts"
        )
    if not counts.sum(axis=1).all():
        raise ValueError("counts: a resample draws no clip (a row of zeros); use clip_counts")
    return counts


def _floats(values: object, name: str) -> np.ndarray:
    """``values`` as a flat float64 array, or ``TypeError`` naming ``name``."""
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected numbers, got {describe(values)}") from None


def _flatten(
    scores: Sequence[Sequence[float]], labels: Sequence[Sequence[float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame scores, frame labels (bool) and each frame's clip, checked."""
    if len(scores) != len(labels) or not len(scores):
        raise ValueError(
            f"scores, labels: expected one entry per clip in each (at least one clip), got "
            f"{len(scores)} and {len(labels)}"
        )
    s_parts, y_parts = [], []
    for i, (s, y) in enumerate(zip(scores, labels)):
        s_arr, y_arr = _floats(s, f"scores[{i}]"), _floats(y, f"labels[{i}]")
        if s_arr.shape != y_arr.shape:
            raise ValueError(
                f"scores[{i}], labels[{i}]: expected as many scores as labels, got "
                f"{s_arr.size} and {y_arr.size}"
            )
        s_parts.append(s_arr)
        y_parts.append(y_arr)
    s_all, y_all = np.concatenate(s_parts), np.concatenate(y_parts)
    if not np.isfinite(s_all).all():
        raise ValueError("scores: expected finite numbers, got NaN or Inf")
    if not np.isin(y_all, (0.0, 1.0)).all():
        raise ValueError("labels: expected 0/1 frame labels")
    clip = np.repeat(np.arange(len(s_parts)), [p.size for p in s_parts])
    return s_all, y_all.astype(bool), clip


def bootstrap_map(
    scores: Sequence[Sequence[float]], labels: Sequence[Sequence[float]], counts: np.ndarray
) -> np.ndarray:
    """Frame mAP of each bootstrap resample of the clips.

    The measure is :func:`avrobust.metrics.average_precision` (pooled over frames, VOC
    interpolation, tied scores grouped) of the frames of the drawn clips, a clip drawn ``k``
    times counting ``k`` times; it is computed for every resample at once by weighting each
    frame with its clip's count.

    Args:
        scores: per clip, its frame scores (higher = speaking), e.g. ``(n, T)`` nested lists.
        labels: per clip, its 0/1 frame labels, the same lengths.
        counts: ``(R, n)`` draws per clip from :func:`clip_counts`.

    Returns:
        ``(R,)`` float64 mAP in [0, 1]; NaN for a resample without a speaking frame (AP is
        undefined there; :func:`percentile_interval` leaves them out).

    Raises:
        ValueError: clip numbers or lengths that differ, non-finite scores, labels other than 0/1.
    """
    s, y, clip = _flatten(scores, labels)
    counts = _check_counts(counts, len(scores))
    order = np.argsort(-s, kind="stable")
    s, y, clip = s[order], y[order], clip[order]
    group = np.cumsum(np.r_[False, s[1:] != s[:-1]])  # one group per distinct score, best first
    out = np.empty(counts.shape[0])
    weights = _GroupWeights(y, clip, group, len(scores))
    for first in range(0, counts.shape[0], weights.step):
        positive, negative = weights(counts[first : first + weights.step].astype(np.float64))
        tp, fp = np.cumsum(positive, axis=1), np.cumsum(negative, axis=1)
        precision = np.where(positive > 0, tp / np.maximum(tp + fp, 1.0), 0.0)
        best = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # VOC interpolation
        total = tp[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[first : first + weights.step] = np.where(
                total > 0, (best * positive).sum(axis=1) / total, np.nan
            )
    return out


class _GroupWeights:
    """Per resample, the weight of positive and of negative frames in each score group.

    With few clips x groups, a product of the counts with each clip's frames per group; else
    each frame weighted by its clip's count and summed per group (memory: resamples x frames).
    """

    def __init__(self, y: np.ndarray, clip: np.ndarray, group: np.ndarray, clips: int) -> None:
        self.y, self.clip, groups = y, clip, int(group[-1]) + 1
        self.dense = clips * groups <= _CHUNK
        if self.dense:
            self.per_group = np.zeros((2, clips, groups))  # positive, negative frames
            np.add.at(self.per_group, (y.astype(int) ^ 1, clip, group), 1.0)
        self.starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        self.step = max(1, _CHUNK // (groups if self.dense else y.size))

    def __call__(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.dense:
            return counts @ self.per_group[0], counts @ self.per_group[1]
        weight = counts[:, self.clip]
        return (
            np.add.reduceat(weight * self.y, self.starts, axis=1),
            np.add.reduceat(weight * ~self.y, self.starts, axis=1),
        )


def bootstrap_mean(values: Sequence[float], counts: np.ndarray) -> np.ndarray:
    """The mean of one value per clip (e.g. a clip's mean ECR) on each bootstrap resample.

    Args:
        values: ``(n,)`` finite numbers, one per clip.
        counts: ``(R, n)`` draws per clip from :func:`clip_counts`.

    Returns:
        ``(R,)`` float64 means.

    Raises:
        ValueError: no value, values not 1-D or not finite; ``counts`` not from
            :func:`clip_counts` for ``n`` clips.
    """
    v = _floats(values, "values")
    if np.ndim(values) != 1 or not v.size:
        raise ValueError(
            f"values: expected one number per clip, (n,) with n >= 1, got shape {np.shape(values)}"
        )
    if not np.isfinite(v).all():
        raise ValueError("values: expected finite numbers, got NaN or Inf")
    counts = _check_counts(counts, v.size)
    return (counts @ v) / counts.sum(axis=1)


def percentile_interval(samples: np.ndarray, *, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of bootstrap samples (NaN samples left out).

    Args:
        samples: ``(R,)`` resampled values (of a measure, or of a paired difference).
        level: the coverage in (0, 1); 0.95 takes the 2.5th and 97.5th percentiles.

    Returns:
        ``(low, high)``; ``(nan, nan)`` when no sample is a number.

    Raises:
        TypeError: samples that are not numbers. ValueError: an infinite sample; ``level``
            outside (0, 1).
    """
    p = check_number(level, "level", min_value=0.0, strict=True)
    if p >= 1:
        raise ValueError(f"level: must be a fraction < 1 (0.95 for 95 %), got {p:g}")
    x = _floats(samples, "samples")
    x = x[~np.isnan(x)]
    if np.isinf(x).any():
        raise ValueError("samples: expected finite numbers (NaN are left out), got Inf")
    if not x.size:
        return float("nan"), float("nan")
    low, high = np.percentile(x, [50 * (1 - p), 50 * (1 + p)])
    return float(low), float(high)


def _per_clip(cell: object) -> dict[str, Any]:
    """A cell's ``per_clip`` values (``{}`` for a cell without them); refuses what is not a
    :class:`~avrobust.evaluation.CellResult`."""
    if not hasattr(cell, "per_clip") or not hasattr(cell, "classes"):
        raise TypeError(
            f"cell: expected an avrobust.evaluation.CellResult, got {describe(cell)} (a "
            "cell's dict goes through CellResult.from_dict first)"
        )
    return cell.per_clip or {}


class CellBootstrap:
    """Bootstrap resamples of evaluation cells (:class:`~avrobust.evaluation.CellResult`) over
    their attacked clips, from the per-clip scores the cells keep (``CellResult.per_clip``).

    Every cell with ``n`` clips is resampled with the same counts (:func:`clip_counts` with this
    object's ``resamples`` and ``seed``), so cells over the same clips (two models attacked on one
    selection, one model's clean and adversarial scores, two budgets) are *paired*: subtract their
    samples to bootstrap a difference. Each cell's samples are computed once and kept.

    Args:
        resamples: resamples per cell (>= 1).
        seed: seed of the counts.
        level: coverage of :meth:`interval`, in (0, 1).
    """

    def __init__(self, *, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> None:
        self.resamples = check_int(resamples, "resamples", min_value=1)
        self.seed = check_int(seed, "seed", min_value=0)
        percentile_interval(np.zeros(1), level=level)  # checks level
        self.level = float(level)
        self._counts: dict[int, np.ndarray] = {}
        self._kept: dict[tuple[int, str], tuple[object, np.ndarray | None]] = {}

    def counts(self, clips: int) -> np.ndarray:
        """``(resamples, clips)`` draws per clip, the same for every cell of ``clips`` clips."""
        if clips not in self._counts:
            self._counts[clips] = clip_counts(clips, resamples=self.resamples, seed=self.seed)
        return self._counts[clips]

    def _keep(self, cell: object, what: str, make: Callable[[], np.ndarray]) -> np.ndarray | None:
        key = (id(cell), what)
        if key not in self._kept:  # the cell is kept too, so its id is not reused meanwhile
            per = getattr(cell, "per_clip", None)
            self._kept[key] = (cell, None if per is None else make())
        return self._kept[key][1]

    def map(self, cell: object, which: str = "adv") -> np.ndarray | None:
        """``(resamples,)`` frame mAP in [0, 1] of the cell's ``"adv"`` or ``"clean"`` scores;
        ``None`` for a cell without per-clip scores (read from an older results file)."""
        per = _per_clip(cell)
        which = check_choice(which, "which", _WHICH)
        if getattr(cell, "classes", 2) > 2:
            raise ValueError(
                f"cell: {getattr(cell, 'key', '')} is of a {cell.classes}-class task (its "  # type: ignore[attr-defined]
                "per-clip values are top-1 classes), which has no AP; use accuracy(cell)"
            )
        return self._keep(
            cell,
            f"map:{which}",
            lambda: bootstrap_map(per[which], per["labels"], self.counts(len(per["labels"]))),
        )

    def accuracy(self, cell: object, which: str = "adv") -> np.ndarray | None:
        """``(resamples,)`` frame accuracy in [0, 1] of the cell's ``"adv"`` or ``"clean"``
        predictions over the resampled clips (frames pooled, as the cell's own accuracy):
        scores at the 0.5 threshold for a binary task (``score >= 0.5`` is class 1), top-1
        classes for a multi-class one; ``None`` without per-clip values."""
        per = _per_clip(cell)
        which = check_choice(which, "which", _WHICH)
        binary = getattr(cell, "classes", 2) == 2

        def make() -> np.ndarray:
            right = [
                sum(int((s >= 0.5) == bool(y)) if binary else int(s == y) for s, y in zip(p, ys))
                for p, ys in zip(per[which], per["labels"])
            ]
            frames = np.array([len(ys) for ys in per["labels"]], dtype=np.float64)
            counts = self.counts(len(frames))
            return (counts @ np.array(right, dtype=np.float64)) / (counts @ frames)

        return self._keep(cell, f"accuracy:{which}", make)

    def ecr(self, cell: object, modality: str) -> np.ndarray | None:
        """``(resamples,)`` mean ECR of ``modality`` over the resampled clips; ``None`` without
        per-clip values."""
        per = _per_clip(cell)
        if modality not in per.get("ecr", {}):
            return None
        values = per["ecr"][modality]
        return self._keep(
            cell, f"ecr:{modality}", lambda: bootstrap_mean(values, self.counts(len(values)))
        )

    def interval(self, samples: np.ndarray | None) -> tuple[float, float]:
        """The percentile interval at this object's ``level``; ``(nan, nan)`` for ``None``."""
        if samples is None:
            return float("nan"), float("nan")
        return percentile_interval(samples, level=self.level)
