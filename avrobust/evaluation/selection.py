"""Which clips an evaluation attacks: the clean pass, correct clips, balancing, explicit indices.

:func:`clean_pass` scores every clip once with the target model (no attack) and records, per
clip, whether it is predicted correctly and whether it is speaking. :func:`choose` then picks the
attacked clips from that record alone (so it is tested with hand-made records), as
:class:`Selection` says: the correct clips (Push-Pull §4.1), every clip, or explicit indices;
balanced between speaking and not speaking (225 + 225 in the paper) or not. For a multi-class
task (logits over ``C > 2`` classes) a clip is correct when its top-1 class is right, and
balancing draws the same number of clips of every class of the data (:mod:`~avrobust.
evaluation.tasks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._checks import check_bool, check_choice, check_fraction, check_int, describe
from ..metrics import average_precision
from .data_checks import (
    check_finite_clips,
    check_finite_scores,
    check_floating,
    warn_score_range,
)
from .fingerprints import clip_digests
from .scoring import (
    Measures,
    Scored,
    ScoreFn,
    clip_positive,
    device_of,
    forward,
    frame_correct,
    to_device,
)
from .sources import Source
from .tasks import balanced_per_class, balanced_subset, clip_classes, task_measure

__all__ = [
    "CleanPass",
    "Selection",
    "balanced_subset",
    "choose",
    "clean_pass",
    "correct_samples",
    "select",
]


@dataclass(frozen=True)
class Selection:
    """Which clips are attacked.

    Attributes:
        clips: ``"correct"`` (clips whose frames the target predicts right, see
            ``min_accuracy``; Push-Pull §4.1; top-1 right for a multi-class task), ``"all"``,
            or explicit clip indices (e.g. the intersection of the correct clips of several
            models, from :func:`correct_samples`); indices are stored as a tuple of ints.
        balance: draw as many speaking as not-speaking clips (:func:`balanced_subset`); for a
            multi-class task, as many clips of each class of the data
            (:func:`~avrobust.evaluation.balanced_per_class`).
        per_class: clips per class when balancing (default: as many as the smallest class has);
            without balancing, the first ``per_class`` × (number of classes) candidates.
        min_accuracy: with ``clips="correct"``, the fraction of a clip's frames that must be
            right, in [0, 1].
    """

    clips: str | Sequence[int] = "correct"
    balance: bool = True
    per_class: int | None = None
    min_accuracy: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "clips", _check_clips(self.clips))
        check_bool(self.balance, "Selection.balance")
        if self.per_class is not None:
            per_class = check_int(self.per_class, "Selection.per_class", min_value=1)
            object.__setattr__(self, "per_class", per_class)
        accuracy = check_fraction(self.min_accuracy, "Selection.min_accuracy")
        object.__setattr__(self, "min_accuracy", accuracy)


def _check_clips(clips: Any) -> str | tuple[int, ...]:
    if isinstance(clips, str):
        return check_choice(clips, "Selection.clips", ("correct", "all"))
    if isinstance(clips, (Tensor, np.ndarray)) and clips.ndim == 1:
        flags = clips.dtype == torch.bool if isinstance(clips, Tensor) else clips.dtype == bool
        clips = clips if flags else clips.tolist()  # a mask is refused below
    if not isinstance(clips, Sequence) or not all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in clips
    ):
        raise TypeError(
            "Selection.clips: expected 'correct', 'all' or a list of clip indices, got "
            f"{describe(clips)}"
        )
    return tuple(int(i) for i in clips)


@dataclass(frozen=True)
class CleanPass:
    """What the clean pass found, per clip in data order.

    Attributes:
        ids: the clip indices.
        correct: whether each clip is predicted correctly (at ``min_accuracy``).
        positive: whether each clip is speaking (False for every clip of a multi-class task).
        scores: each clip's flat clean scores (binary task) or top-1 classes (multi-class).
        labels: each clip's flat labels.
        digests: each clip's content digest (:func:`~avrobust.evaluation.fingerprints.clip_digests`).
        classes: each clip's class for a multi-class task (:func:`~avrobust.evaluation.tasks.
            clip_classes`); ``None`` for a binary task.
        num_classes: the class count ``C`` of the model's logits.
        ranges: ``{modality: (min, max)}`` of every clip's finite values, in the input's units
            (what the data's units are, to compare with the budgets' bounds).
    """

    ids: list[int]
    correct: list[bool]
    positive: list[bool]
    scores: list[Tensor]
    labels: list[Tensor]
    digests: list[bytes]
    classes: list[int] | None = None
    num_classes: int = 2
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


def clean_pass(
    model: nn.Module,
    source: Source,
    measures: Measures,
    min_accuracy: float,
    *,
    attacked: Sequence[str] = (),
) -> CleanPass:
    """Score every clip of ``source`` once with ``model`` (no attack); warn once when binary
    scores lie outside [0, 1] (:func:`~avrobust.evaluation.data_checks.warn_score_range`).

    Raises:
        ValueError: no clip, or scores not shaped like the labels.
        TypeError: an ``attacked`` modality whose data is not floating point (before the
            model sees it).
    """
    device = device_of(model)
    found: dict[str, list[Any]] = {k: [] for k in ("ids", "correct", "positive", "scores")}
    found.update(labels=[], digests=[])
    classes: list[int] = []
    kinds: set[tuple[bool, int]] = set()
    ranges: dict[str, tuple[float, float]] = {}
    batches: list[Scored] = []
    for part, (inputs, y) in source.batches(None):
        check_floating(part, inputs, attacked)
        check_finite_clips(part, inputs)
        found["digests"] += clip_digests(inputs, y)
        _widen(ranges, inputs)
        scored = measures.score(forward(model, to_device(inputs, device)), y.cpu())
        check_finite_scores(part, scored, "the clean inputs")
        batches.append(scored)
        s, y = scored.values, scored.labels
        kinds.add((scored.binary, scored.classes))
        right = frame_correct(s, y) if scored.binary else s == y
        acc = right.float()
        acc = acc.mean(dim=tuple(range(1, acc.ndim))) if acc.ndim > 1 else acc
        found["ids"] += part
        found["correct"] += (acc >= min_accuracy - 1e-12).tolist()
        found["positive"] += clip_positive(y).tolist() if scored.binary else [False] * len(part)
        classes += [] if scored.binary else clip_classes(y)
        found["scores"] += list(s.reshape(s.shape[0], -1))
        found["labels"] += list(y.reshape(y.shape[0], -1))
    if not found["ids"]:
        raise ValueError("data: expected at least one clip, got none")
    if len(kinds) > 1:
        raise ValueError(
            f"model: its logits changed task between batches (binary, classes): {sorted(kinds)}"
        )
    binary, count = kinds.pop()
    warn_score_range(batches)
    return CleanPass(**found, ranges=ranges, classes=None if binary else classes, num_classes=count)


def _widen(ranges: dict[str, tuple[float, float]], inputs: dict[str, Tensor]) -> None:
    """Widen ``{modality: (min, max)}`` to the finite values of a batch's floating inputs."""
    for name, x in inputs.items():
        if not x.is_floating_point() or x.numel() == 0:
            continue
        values = x.detach()
        values = values[torch.isfinite(values)]
        if values.numel() == 0:
            continue
        low, high = (float(v) for v in torch.aminmax(values))
        if name in ranges:
            low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
        ranges[name] = (low, high)


def correct_samples(
    model: nn.Module,
    data: Any,
    *,
    min_accuracy: float = 1.0,
    score_fn: ScoreFn | None = None,
    batch_size: int = 32,
) -> tuple[list[int], list[bool], list[bool]]:
    """Which clips a model predicts correctly (to intersect over several models, as Push-Pull does).

    Args:
        model: called as ``model(**inputs)``, returning :class:`~avrobust.AVOutput` or logits.
        data: as :func:`~avrobust.evaluation.evaluate`.
        min_accuracy: a clip is correct when at least this fraction of its frames is predicted
            right (score >= 0.5 means speaking; the top-1 class for a multi-class model);
            1.0 = every frame.
        score_fn: ``AVOutput -> scores`` as :attr:`Measures.score_fn` (default: P(class 1) of
            2-class logits, the logits' top-1 for more classes).
        batch_size: clips per forward.

    Returns:
        ``(ids, correct, positive)``: the clip indices, whether each is correct (top-1 right
        for a multi-class model), and whether each is a speaking clip (clip label 1, or more
        than half of its frames speaking; False for every clip of a multi-class task).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {describe(model)}")
    accuracy = check_fraction(min_accuracy, "min_accuracy")
    source = Source(data, check_int(batch_size, "batch_size", min_value=1))
    found = clean_pass(model, source, Measures(score_fn=score_fn), accuracy)
    return found.ids, found.correct, found.positive


def choose(found: CleanPass, selection: Selection, seed: int) -> list[int]:
    """The attacked clips: the candidates ``selection.clips`` names, balanced or cut to
    ``per_class`` as it says, sorted.

    Raises:
        ValueError: explicit indices that are not in the data; no clip left to attack; a class
            without enough candidates to balance.
    """
    clips = selection.clips
    if isinstance(clips, str):
        keep = found.correct if clips == "correct" else [True] * len(found.ids)
        candidates = [i for i, k in zip(found.ids, keep) if k]
    else:
        unknown = sorted(set(clips) - set(found.ids))
        if unknown:
            raise ValueError(
                f"Selection.clips: clip indices {unknown[:5]} are not in the data "
                f"({len(found.ids)} clips)"
            )
        candidates = sorted(set(clips))
    position = {i: j for j, i in enumerate(found.ids)}
    per_class = selection.per_class
    kinds = 2 if found.classes is None else len(set(found.classes))
    if selection.balance and found.classes is not None:
        classes = [found.classes[position[i]] for i in candidates]
        chosen = balanced_per_class(
            candidates, classes, per_class=per_class, seed=seed, all_classes=found.classes
        )
    elif selection.balance:
        positive = [found.positive[position[i]] for i in candidates]
        chosen = balanced_subset(candidates, positive, per_class=per_class, seed=seed)
    else:
        chosen = candidates if per_class is None else candidates[: kinds * per_class]
    if not chosen:
        raise ValueError(
            f"Selection.clips: no clip to attack ({len(found.ids)} clips, "
            f"{sum(found.correct)} predicted correctly)"
        )
    return chosen


def select(
    model: nn.Module,
    source: Source,
    measures: Measures,
    selection: Selection,
    seed: int,
    *,
    objective: Any = "training",
    attacked: Sequence[str] = (),
) -> tuple[dict[str, Any], list[int], list[bytes]]:
    """The clean pass and the choice: the report's clean measures, the attacked clips and their
    content digests (:func:`~avrobust.evaluation.fingerprints.clip_digests`, in the clips'
    order).

    The clean measures of a binary task measured by AP: ``map_all``, ``samples_total``,
    ``samples_correct``, ``map_selected``, ``samples_selected``, ``positives_selected``. With
    accuracy as the measure, also ``measure`` (``"accuracy"``), ``classes`` (``C``),
    ``accuracy_all`` and ``accuracy_selected`` (top-1, over frames for frame labels); a
    multi-class task has those instead of mAP, and ``classes_selected`` (``{class: clips}``)
    instead of ``positives_selected``. Every task: ``ranges`` (``{modality: [min, max]}`` of
    the data's values, for the PSNR peak and the check of the data's units).

    Args:
        model: the target.
        source: the data.
        measures: how outputs are scored.
        selection: which clips are attacked.
        seed: seed of the balanced draw.
        objective: the grid's objective (for :func:`~avrobust.evaluation.tasks.task_measure`).
        attacked: the modalities the grid attacks (refused unless floating point).

    Raises:
        ValueError: as :func:`clean_pass`, :func:`choose` and
            :func:`~avrobust.evaluation.tasks.task_measure`; AP undefined (no speaking frame).
    """
    found = clean_pass(model, source, measures, selection.min_accuracy, attacked=attacked)
    measure = task_measure(found, measures.measure, objective)
    binary = found.classes is None
    chosen = choose(found, selection, seed)
    position = {i: j for j, i in enumerate(found.ids)}
    rows = [position[i] for i in chosen]
    clean: dict[str, Any] = {}
    if binary:
        clean["map_all"] = float(
            average_precision(torch.cat(found.scores), torch.cat(found.labels))
        )
    clean.update(samples_total=len(found.ids), samples_correct=int(sum(found.correct)))
    if measure == "accuracy":
        clean.update(measure=measure, classes=found.num_classes)
        clean["accuracy_all"] = _accuracy(found, range(len(found.ids)))
        clean["accuracy_selected"] = _accuracy(found, rows)
    if binary:
        picked = [torch.cat([getattr(found, k)[j] for j in rows]) for k in ("scores", "labels")]
        clean["map_selected"] = float(average_precision(*picked))
    clean["samples_selected"] = len(chosen)
    if binary:
        clean["positives_selected"] = int(sum(found.positive[j] for j in rows))
    else:
        counts = np.bincount([found.classes[j] for j in rows], minlength=found.num_classes)  # type: ignore[index]
        clean["classes_selected"] = {str(k): int(n) for k, n in enumerate(counts) if n}
    clean["ranges"] = {m: list(r) for m, r in sorted(found.ranges.items())}
    return clean, chosen, [found.digests[j] for j in rows]


def _accuracy(found: CleanPass, rows: Any) -> float:
    """Top-1 (multi-class) or 0.5-threshold (binary) accuracy over the frames of ``rows``."""
    right = total = 0
    for j in rows:
        s, y = found.scores[j], found.labels[j]
        hits = frame_correct(s, y) if found.classes is None else s == y
        right, total = right + int(hits.sum()), total + int(hits.numel())
    return right / total if total else float("nan")
