"""How an evaluation scores a model's outputs (:class:`Measures`) and runs the model on clips.

The task is told by the logits' class count ``C``. With ``C = 2`` (binary, e.g. speaking / not
speaking) the default score is the AVA evaluation's: P(class 1) (``softmax(logits)[..., 1]``,
P(speaking)), shaped like the labels, measured by AP; a prediction is a score >= 0.5. With
``C > 2`` (multi-class, e.g. 29 event classes) the prediction is the top-1 class
(``argmax(logits)``), measured by accuracy: clip-level for ``(B, C)`` logits with ``(B,)``
labels, frame-level for ``(B, T, C)`` with ``(B, T)``. :meth:`Measures.score` gives both as a
:class:`Scored` batch. The embeddings whose change (ECR) is reported are, by default, for each
input modality ``m``, ``f"{m}_cross"`` when the model returns one (TalkNet's ``z_a, z_v``),
else ``m``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_choice, describe
from .._types import AVOutput
from ..adapters import as_avoutput
from ..attacks import preserve_model_state
from ..attacks._call_checks import check_forward_keywords
from .data_checks import check_one_logit

__all__ = ["MEASURES", "SPEAKING_CLASSES", "Measures", "ScoreFn", "Scored", "default_score"]

SPEAKING_CLASSES = ("not speaking", "speaking")
"""``Measures.class_names`` of active speaker detection (class 1 = speaking, as AVA labels)."""

MEASURES = ("auto", "ap", "accuracy")

ScoreFn = Callable[[AVOutput], Tensor]


def default_score(out: AVOutput) -> Tensor:
    """P(class 1) of 2-class logits ``(..., 2)``: the AVA evaluation's score.

    Raises:
        ValueError: logits of another number of classes (the message names the model).
    """
    logits = out.logits
    if logits.ndim == 0 or logits.shape[-1] != 2:
        raise ValueError(
            f"model: returns logits of shape {tuple(logits.shape)}, but the default score "
            "(no Measures.score_fn given) is P(class 1) of 2-class logits (..., 2); pass "
            "Measures(score_fn=...) that turns the model's output into scores shaped like the "
            "labels"
        )
    return torch.softmax(logits.float(), dim=-1)[..., 1]


@dataclass(frozen=True)
class Scored:
    """One batch of outputs scored against its labels, on the CPU: what a cell's measures need.

    Attributes:
        values: ``(B, ...)``, shaped like ``labels``: for a binary task the scores (P(class 1),
            or what ``score_fn`` gives), for a multi-class task the top-1 class (int64).
        labels: ``(B, ...)`` the labels (int64 class indices for a multi-class task).
        classes: ``C``, the class count of the model's logits.
        binary: ``values`` are scores of a binary task (measured by AP) rather than classes.
    """

    values: Tensor
    labels: Tensor
    classes: int
    binary: bool

    @property
    def predictions(self) -> Tensor:
        """``(B, ...)`` int64 predicted classes: score >= 0.5 (binary) or the top-1 class."""
        return (self.values >= 0.5).long() if self.binary else self.values


@dataclass(frozen=True)
class Measures:
    """How the model's outputs are scored and which embeddings ECR compares.

    Attributes:
        score_fn: ``AVOutput -> scores``. For a binary task, one score per label, shaped like
            the labels (default ``None``: ``softmax(logits)[..., 1]``, P(speaking), the AVA
            evaluation's score). For a multi-class task (logits of ``C > 2`` classes), class
            scores shaped like the logits ``(..., C)``, whose top-1 is the prediction (default
            ``None``: the logits); a score per label with ``C > 2`` classes is a binary task
            (AP) the attack must be told about with a callable ``Grid.objective``.
        ecr_embeddings: ``{modality: embedding name}`` whose ECR to report (default ``None``: for
            each input modality ``m``, the embedding ``f"{m}_cross"`` if the model returns one, as
            in Push-Pull Table 1, else ``m`` if it returns that).
        measure: keyword-only; the cells' headline measure: ``"auto"`` (AP for a binary task,
            top-1 accuracy for ``C > 2`` classes; refused when the labels of a ``C > 2`` model
            are all 0/1), ``"ap"`` (refused for a ``C > 2`` model without a score per label) or
            ``"accuracy"`` (top-1 accuracy; for a binary task, at the 0.5 threshold).
        class_names: keyword-only; the classes' names in index order, for the reports' words
            (``("not speaking", "speaking")`` for active speaker detection, ``("out of sync",
            "in sync")`` for a synchronisation task); default ``None``: neutral words ("of class
            1"). Names only: no number depends on them, and a results file resumes whatever they
            are.
    """

    score_fn: ScoreFn | None = None
    ecr_embeddings: Mapping[str, str] | None = None
    _: KW_ONLY
    measure: str = "auto"
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.score_fn is not None and not callable(self.score_fn):
            raise TypeError(
                f"Measures.score_fn: expected a function or None, got {describe(self.score_fn)}"
            )
        value = self.ecr_embeddings
        if value is not None:
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise TypeError(
                    "Measures.ecr_embeddings: expected a dict {modality: embedding name} or None, "
                    f"got {describe(value)}"
                )
            object.__setattr__(self, "ecr_embeddings", dict(value))
        object.__setattr__(
            self, "measure", check_choice(self.measure, "Measures.measure", MEASURES)
        )
        names = self.class_names
        if names is not None:
            if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
                raise TypeError(
                    "Measures.class_names: expected the classes' names in index order, e.g. "
                    f"('not speaking', 'speaking'), got {describe(names)}"
                )
            if len(names) < 2:
                raise ValueError(
                    f"Measures.class_names: expected a name for each class (at least 2), got "
                    f"{list(names)}"
                )
            object.__setattr__(self, "class_names", tuple(names))

    @property
    def scorer(self) -> ScoreFn:
        """``score_fn``, or :func:`default_score` when none is given."""
        return self.score_fn or default_score

    def scores(self, out: AVOutput, labels: Tensor) -> Tensor:
        """The binary scores of ``out``, on the CPU, refused unless a tensor shaped like
        ``labels``.

        Raises:
            TypeError: ``score_fn`` returned something other than a tensor.
            ValueError: scores not shaped like the labels (naming the data for the default
                score, else ``score_fn``).
        """
        return self._binary_scores(self.scorer(out), labels)

    def _binary_scores(self, scores: Any, labels: Tensor) -> Tensor:
        if self.score_fn is None and scores.shape != labels.shape:
            raise ValueError(
                f"data: the labels have shape {tuple(labels.shape)}, but the default score (no "
                f"Measures.score_fn given: P(class 1) of the model's logits) has shape "
                f"{tuple(scores.shape)}; frame labels (B, T) go with frame logits (B, T, 2) and "
                "clip labels (B,) with clip logits (B, 2), or pass Measures(score_fn=...) that "
                "gives scores shaped like the labels"
            )
        if not isinstance(scores, Tensor):
            raise TypeError(
                f"Measures.score_fn: expected it to return a tensor, got {describe(scores)}"
            )
        if scores.shape != labels.shape:
            raise ValueError(
                f"Measures.score_fn: expected scores shaped like the labels "
                f"{tuple(labels.shape)}, got {tuple(scores.shape)}"
            )
        return scores.detach().cpu()

    def score(self, out: AVOutput, labels: Tensor) -> Scored:
        """A batch scored: binary scores for 2-class logits (or a ``score_fn`` giving one score
        per label), top-1 classes for ``C > 2`` classes.

        Raises:
            TypeError: float labels for a multi-class task (naming the data); ``score_fn``
                returned something other than a tensor.
            ValueError: labels outside ``[0, C)`` or not shaped like the logits' leading dims
                (naming the data); scores of the wrong shape.
        """
        logits = out.logits
        classes = int(logits.shape[-1]) if logits.ndim else 0
        labels = labels.cpu()
        if self.score_fn is None:
            check_one_logit(logits, labels)
        if classes == 2 or (classes < 2 and self.score_fn is not None):
            scores = self.scores(out, labels)
            if classes == 2:
                check_class_range(labels, classes)
            return Scored(scores, labels, classes, binary=True)
        if classes < 2:
            default_score(out)  # refuses it, naming the model
        given = None if self.score_fn is None else self.score_fn(out)
        if given is not None and not isinstance(given, Tensor):
            raise TypeError(
                f"Measures.score_fn: expected it to return a tensor, got {describe(given)}"
            )
        if given is not None and given.shape == labels.shape:  # one score per label: binary
            return Scored(self._binary_scores(given, labels), labels, classes, binary=True)
        class_scores = logits if given is None else given
        if class_scores.shape != logits.shape:
            raise ValueError(
                f"Measures.score_fn: expected class scores shaped like the logits "
                f"{tuple(logits.shape)} (top-1 over their {classes} classes) or one score per "
                f"label {tuple(labels.shape)}, got shape {tuple(class_scores.shape)}"
            )
        labels = check_class_labels(labels, logits)
        return Scored(class_scores.detach().argmax(-1).cpu(), labels, classes, binary=False)

    def embedding_names(self, out: AVOutput, modalities: Any) -> dict[str, str]:
        """``{modality: embedding name}`` whose ECR to report for an output ``out``.

        Raises:
            ValueError: a named embedding the model does not return.
        """
        if self.ecr_embeddings is not None:
            missing = sorted(set(self.ecr_embeddings.values()) - set(out.embeddings))
            if missing:
                raise ValueError(
                    f"Measures.ecr_embeddings: the model returns no embeddings {missing}; it "
                    f"returns {sorted(out.embeddings)}"
                )
            return dict(self.ecr_embeddings)
        names = {}
        for m in modalities:
            if f"{m}_cross" in out.embeddings:
                names[m] = f"{m}_cross"
            elif m in out.embeddings:
                names[m] = m
        return names


def check_class_range(labels: Tensor, classes: int) -> None:
    """Refuse labels outside ``[0, classes)``, naming the data and the model's class count.

    Raises:
        ValueError: a label below 0 or at or above ``classes``.
    """
    if labels.numel() == 0:
        return
    low, high = float(labels.min()), float(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(
            f"data: the labels hold class indices from {low:g} to {high:g}, but the model returns "
            f"logits over {classes} classes (indices 0 to {classes - 1}); pass labels of the "
            "model's task, or the model whose logits have one class per label value"
        )


def check_class_labels(labels: Tensor, logits: Tensor) -> Tensor:
    """The labels of a multi-class batch as int64, checked against the logits ``(..., C)``.

    Raises:
        TypeError: floating-point labels. ValueError: labels not shaped like the logits'
            leading dims, or outside ``[0, C)``. Each message names the data.
    """
    classes = int(logits.shape[-1])
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(
            f"data: expected integer class indices as labels for a model with {classes}-class "
            f"logits, got dtype {labels.dtype}"
        )
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"data: the labels have shape {tuple(labels.shape)}, but the model's logits "
            f"{tuple(logits.shape)} need labels of shape {tuple(logits.shape[:-1])}: frame labels "
            f"(B, T) go with frame logits (B, T, {classes}), clip labels (B,) with clip logits "
            f"(B, {classes})"
        )
    check_class_range(labels, classes)
    return labels.long()


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def forward(model: nn.Module, inputs: Mapping[str, Tensor]) -> AVOutput:
    """``model(**inputs)`` without gradients, in eval mode (its flags restored after).

    Raises:
        TypeError: a model whose forward does not take the modality names as keywords
            (:func:`~avrobust.attacks._call_checks.check_forward_keywords`).
    """
    check_forward_keywords(model, list(inputs))
    with torch.no_grad(), preserve_model_state(model, "eval"):
        return as_avoutput(model(**inputs))


def to_device(inputs: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Every tensor of ``inputs`` on ``device``."""
    return {k: v.to(device) for k, v in inputs.items()}


def frame_correct(scores: Tensor, labels: Tensor) -> Tensor:
    """``(B, ...)`` bool: prediction (score >= 0.5) equals the label."""
    return (scores >= 0.5).long() == labels.long()


def clip_positive(labels: Tensor) -> Tensor:
    """``(B,)`` bool: the clip is speaking (clip label 1, or more than half of its frames are)."""
    if labels.ndim == 1:
        return labels.bool()
    return labels.float().mean(dim=tuple(range(1, labels.ndim))) > 0.5
