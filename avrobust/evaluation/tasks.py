"""Binary and multi-class tasks: which measure an evaluation reports, and per-class balancing.

The task is told by the model's logits ``(..., C)`` and what :class:`~avrobust.evaluation.
Measures` scores (:meth:`~avrobust.evaluation.Measures.score`):

* a **binary** task (``C = 2``, or a ``score_fn`` giving one score per label) is measured by
  AP, as the AVA evaluation does (``Measures(measure="accuracy")``: accuracy at the 0.5
  threshold instead); its clips are balanced between positive and negative;
* a **multi-class** task (``C > 2`` classes, the prediction is the top-1 class) is measured by
  top-1 accuracy (clip-level for ``(B, C)`` logits, frame-level for ``(B, T, C)``); a clip is
  "correct" when its top-1 is right (at ``Selection.min_accuracy`` of its frames) and its class
  is its label (frame labels: the most frequent, ties to the smaller class index); balancing
  draws the same number of clips of every class of the data.

The attack's objectives (``"training"``, ``"inference"``, ...) are the cross-entropy over the
``C`` classes with the labels as class indices, so :func:`task_measure` refuses the mixes where
the attack would work on another task than the one measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_int, describe

if TYPE_CHECKING:
    from .selection import CleanPass

__all__ = [
    "balanced_per_class",
    "balanced_subset",
    "clip_classes",
    "clip_ids",
    "listed",
    "task_measure",
]


def clip_classes(labels: Tensor) -> list[int]:
    """Each clip's class: its label ``(B,)``, or the most frequent of its frame labels
    ``(B, T)`` (ties go to the smaller class index).

    Example:
        >>> clip_classes(torch.tensor([[2, 2, 1], [0, 3, 3], [1, 0, 0]]))
        [2, 3, 0]
    """
    flat = labels.reshape(labels.shape[0], -1).long()
    size = int(flat.max()) + 1 if flat.numel() else 1
    return [int(torch.bincount(row, minlength=size).argmax()) for row in flat]


def balanced_subset(
    ids: Sequence[int],
    positive: Sequence[bool],
    *,
    per_class: int | None = None,
    seed: int = 0,
) -> list[int]:
    """Draw the same number of speaking and not-speaking clips (Push-Pull §4.1: 225 + 225).

    Args:
        ids: candidate clip indices.
        positive: for each candidate, whether it is a speaking clip.
        per_class: clips per class; ``None`` takes as many as the smaller class has.
        seed: seed of the draw.

    Returns:
        The chosen indices, sorted.

    Raises:
        TypeError: ``ids`` that are not integers, ``positive`` entries that are not flags
            (``True``/``False`` or 0/1: not probabilities).
        ValueError: repeated ids; a class without any candidate, or fewer than ``per_class``
            in one.

    Example:
        >>> balanced_subset([0, 1, 2, 3, 4], [True, False, False, True, False], per_class=2)
        [0, 1, 3, 4]
    """
    ids = clip_ids(ids, "ids")
    flags = [_flag(p, f"positive[{i}]") for i, p in enumerate(listed(positive, "positive"))]
    if len(ids) != len(flags):
        raise ValueError(f"ids, positive: expected equal lengths, got {len(ids)} and {len(flags)}")
    positive = flags
    pos = [i for i, p in zip(ids, positive) if p]
    neg = [i for i, p in zip(ids, positive) if not p]
    available = min(len(pos), len(neg))
    if available == 0:
        raise ValueError(
            f"cannot balance speaking and not-speaking clips: {len(pos)} speaking and {len(neg)} "
            "not-speaking candidates (correctly predicted ones, with Selection(clips='correct')); "
            "pass Selection(balance=False) (avrobust evaluate: --no-balance) to attack the "
            "candidates as they come, or give data with clips of both kinds"
        )
    count = available if per_class is None else check_int(per_class, "per_class", min_value=1)
    if count > available:
        raise ValueError(
            f"per_class: asked for {count} clips per class, but only {len(pos)} speaking and "
            f"{len(neg)} not-speaking candidates exist"
        )
    gen = torch.Generator().manual_seed(check_int(seed, "seed", min_value=0))
    chosen = []
    for group in (pos, neg):
        order = torch.randperm(len(group), generator=gen)[:count].tolist()
        chosen += [group[j] for j in order]
    return sorted(chosen)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, (int, np.integer)) and value in (0, 1)
    ):
        return bool(value)
    raise TypeError(
        f"{name}: expected True/False (or 0/1), whether the clip is speaking, got "
        f"{describe(value)}; scores or probabilities go through a threshold first (p >= 0.5)"
    )


def balanced_per_class(
    ids: Sequence[int],
    classes: Sequence[int],
    *,
    per_class: int | None = None,
    seed: int = 0,
    all_classes: Sequence[int] | None = None,
) -> list[int]:
    """Draw the same number of clips of every class (multi-class twin of
    :func:`~avrobust.evaluation.balanced_subset`).

    Args:
        ids: candidate clip indices.
        classes: each candidate's class.
        per_class: clips per class; ``None`` takes as many as the smallest class has.
        seed: seed of the draw (one generator, the classes in increasing order).
        all_classes: the classes to balance over (default: those of the candidates); each
            needs a candidate.

    Returns:
        The chosen indices, sorted.

    Raises:
        TypeError: ids or classes that are not integers (naming ``classes[i]``).
        ValueError: ``ids`` and ``classes`` of different lengths, repeated ids, a class
            without a candidate (naming ``classes``), fewer than ``per_class`` in one
            (``per_class``).

    Example:
        >>> balanced_per_class([0, 1, 2, 3, 4], [2, 0, 2, 1, 0], per_class=1)
        [1, 2, 3]
    """
    ids = clip_ids(ids, "ids")
    classes = [check_int(c, f"classes[{i}]") for i, c in enumerate(listed(classes, "classes"))]
    if len(ids) != len(classes):
        raise ValueError(
            f"classes: expected one class per clip id ({len(ids)}), got {len(classes)}"
        )
    wanted = sorted(set(classes) if all_classes is None else set(all_classes))
    groups = {k: [i for i, c in zip(ids, classes) if c == k] for k in wanted}
    empty = [k for k, group in groups.items() if not group]
    if empty or not wanted:
        raise ValueError(
            f"classes: cannot balance the classes: class(es) {empty} have no candidate (the "
            "correctly predicted clips, with Selection(clips='correct')); pass "
            "Selection(balance=False) (avrobust evaluate: --no-balance) to attack the "
            "candidates as they come, or give data with clips of every class"
        )
    available = min(len(group) for group in groups.values())
    count = available if per_class is None else check_int(per_class, "per_class", min_value=1)
    if count > available:
        sizes = {k: len(group) for k, group in groups.items()}
        raise ValueError(
            f"per_class: asked for {count} clips per class, but the classes have {sizes} candidates"
        )
    gen = torch.Generator().manual_seed(check_int(seed, "seed", min_value=0))
    chosen: list[int] = []
    for k in wanted:
        order = torch.randperm(len(groups[k]), generator=gen)[:count].tolist()
        chosen += [groups[k][j] for j in order]
    return sorted(chosen)


def listed(values: Any, name: str) -> list[Any]:
    """``values`` (a sequence, a 1-D array or tensor) as a list."""
    if isinstance(values, (Tensor, np.ndarray)):
        return list(values.tolist()) if values.ndim == 1 else [values]
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name}: expected a list, got {describe(values)}")
    return list(values)


def clip_ids(ids: Any, name: str) -> list[int]:
    """Distinct clip indices (ints, NumPy integers, a 1-D integer array or tensor) as ints.

    Raises:
        TypeError: not a sequence of integers. ValueError: an index given twice.
    """
    out = [check_int(i, f"{name}[{j}]") for j, i in enumerate(listed(ids, name))]
    if len(set(out)) != len(out):
        twice = sorted({i for i in out if out.count(i) > 1})
        raise ValueError(f"{name}: expected distinct clip indices, got {twice} more than once")
    return out


def task_measure(found: CleanPass, measure: str, objective: Any) -> str:
    """The headline measure of an evaluation, ``"ap"`` or ``"accuracy"``, from the clean pass.

    Args:
        found: the clean pass (:class:`~avrobust.evaluation.selection.CleanPass`): ``classes``
            is ``None`` for a binary task; ``num_classes`` is the logits' ``C``.
        measure: ``Measures.measure`` (``"auto"``, ``"ap"`` or ``"accuracy"``).
        objective: ``Grid.objective``; a name is a cross-entropy over the ``C`` classes.

    Raises:
        ValueError: naming the model: a binary score of a ``C > 2`` model attacked with a
            named objective (the attack would work on the ``C``-class task, not the scored
            one); AP asked of a multi-class task; with ``"auto"``, a ``C > 2`` model whose
            labels are all 0/1 (a binary task on the wrong model, or class indices: say so
            with ``measure="accuracy"``).
    """
    classes = found.num_classes
    if found.classes is None:
        if classes > 2 and isinstance(objective, str):
            raise ValueError(
                f"model: returns logits over {classes} classes, and the attack's objective "
                f"{objective!r} is the cross-entropy over those {classes} classes with the "
                "labels as class indices, but Measures.score_fn scores a binary task (one score "
                "per label): the attack would work on another task than the one measured. Give "
                f"score_fn class scores shaped like the logits (..., {classes}) or no score_fn "
                "(top-1 accuracy), wrap the model to return 2-class logits, or pass a callable "
                "Grid.objective of the binary task"
            )
        return "accuracy" if measure == "accuracy" else "ap"
    if measure == "ap":
        raise ValueError(
            f"model: returns logits over {classes} classes, so its task is measured by top-1 "
            "accuracy; AP (Measures(measure='ap')) needs one score per label: pass "
            "Measures(score_fn=...) of a binary task with a callable Grid.objective of that "
            "task, or measure='accuracy'"
        )
    if measure == "auto" and max((int(y.max()) for y in found.labels if y.numel()), default=0) <= 1:
        raise ValueError(
            f"model: returns logits over {classes} classes, but every label of the data is 0 "
            "or 1: a binary task (e.g. speaking / not speaking) on a model of another task? "
            "For AP pass a model with 2-class logits, or Measures(score_fn=...) giving one "
            "score per label with a callable Grid.objective; if the labels are class indices "
            f"of the {classes}-class task, pass Measures(measure='accuracy')"
        )
    return "accuracy"
