"""How an evaluation scores a model's outputs (:class:`Measures`) and runs the model on clips.

The default score is the AVA evaluation's: P(class 1) of 2-class logits (``softmax(logits)[..., 1]``,
P(speaking)), shaped like the labels; the embeddings whose change (ECR) is reported are, by
default, for each input modality ``m``, ``f"{m}_cross"`` when the model returns one (TalkNet's
``z_a, z_v``), else ``m``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import describe
from .._types import AVOutput
from ..adapters import as_avoutput
from ..attacks import preserve_model_state

__all__ = ["Measures", "ScoreFn", "default_score"]

ScoreFn = Callable[[AVOutput], Tensor]


def default_score(out: AVOutput) -> Tensor:
    """P(class 1) of 2-class logits ``(..., 2)``: the AVA evaluation's score.

    Raises:
        ValueError: logits of another number of classes (the message names the model).
    """
    logits = out.logits
    if logits.shape[-1] != 2:
        raise ValueError(
            f"model: returns logits of shape {tuple(logits.shape)}, but the default score "
            "(no Measures.score_fn given) is P(class 1) of 2-class logits (..., 2); pass "
            "Measures(score_fn=...) that turns the model's output into scores shaped like the "
            "labels"
        )
    return torch.softmax(logits.float(), dim=-1)[..., 1]


@dataclass(frozen=True)
class Measures:
    """How the model's outputs are scored and which embeddings ECR compares.

    Attributes:
        score_fn: ``AVOutput -> scores`` shaped like the labels (default ``None``:
            ``softmax(logits)[..., 1]``, P(speaking), the AVA evaluation's score).
        ecr_embeddings: ``{modality: embedding name}`` whose ECR to report (default ``None``: for
            each input modality ``m``, the embedding ``f"{m}_cross"`` if the model returns one, as
            in Push-Pull Table 1, else ``m`` if it returns that).
    """

    score_fn: ScoreFn | None = None
    ecr_embeddings: Mapping[str, str] | None = None

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

    @property
    def scorer(self) -> ScoreFn:
        """``score_fn``, or :func:`default_score` when none is given."""
        return self.score_fn or default_score

    def scores(self, out: AVOutput, labels: Tensor) -> Tensor:
        """The scores of ``out``, on the CPU, refused unless a tensor shaped like ``labels``.

        Raises:
            TypeError: ``score_fn`` returned something other than a tensor.
            ValueError: scores not shaped like the labels (naming the data for the default
                score, else ``score_fn``).
        """
        scores = self.scorer(out)
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


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def forward(model: nn.Module, inputs: Mapping[str, Tensor]) -> AVOutput:
    """``model(**inputs)`` without gradients, in eval mode (its flags restored after)."""
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
