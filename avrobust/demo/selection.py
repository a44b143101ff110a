"""Which held-out clips the demo attacks (Push-Pull §4.1): correct for every model, balanced."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..evaluation import balanced_subset
from ..evaluation.scoring import clip_positive, frame_correct
from ..models import TalkNet, speaking_probability
from .config import DemoConfig

__all__ = ["attacked_clips", "clean_scores", "clips_from_scores"]

Clips = tuple[dict[str, Tensor], Tensor]


def attacked_clips(
    config: DemoConfig, trained: Mapping[str, TalkNet], data: Clips
) -> tuple[list[int], str]:
    """Held-out clips every model predicts correctly, balanced (Push-Pull §4.1 and Table 1):
    :func:`clips_from_scores` of each model's clean scores.

    Returns:
        ``(clip indices, how they were chosen, for the summary)``.
    """
    scores = {key: clean_scores(model, data) for key, model in trained.items()}
    return clips_from_scores(config, scores, data[1])


def clips_from_scores(
    config: DemoConfig, scores: Mapping[str, Tensor], labels: Tensor
) -> tuple[list[int], str]:
    """Held-out clips every model predicts correctly, balanced, from their clean scores.

    Every frame must be right (P(speaking) >= 0.5 is speaking); if that leaves a class empty (a
    barely trained model, as in the ``test`` preset), most frames must be right; failing that,
    every clip is a candidate.

    Args:
        config: the demo settings (``per_class``, ``seed``).
        scores: ``{model name: (N, T) clean P(speaking)}``, e.g. every run of every model.
        labels: ``(N, T)`` frame labels of the held-out clips.

    Returns:
        ``(clip indices, how they were chosen, for the summary)``.

    Raises:
        RuntimeError: the held-out clips lack a class.
    """
    positive = clip_positive(labels).tolist()
    for accuracy, what in ((1.0, "every frame"), (0.5, "most frames")):
        ok = [True] * int(labels.shape[0])
        for s in scores.values():
            right = frame_correct(s, labels).float().mean(dim=1) >= accuracy - 1e-12
            ok = [a and bool(b) for a, b in zip(ok, right)]
        candidates = [i for i, k in enumerate(ok) if k]
        cand_pos = [positive[i] for i in candidates]
        per_class = min(config.per_class, sum(cand_pos), len(cand_pos) - sum(cand_pos))
        if per_class > 0:
            chosen = balanced_subset(candidates, cand_pos, per_class=per_class, seed=config.seed)
            return chosen, (
                f"{per_class} speaking + {per_class} not speaking, {what} predicted correctly by "
                f"all {_models(len(scores))} ({len(candidates)} of {labels.shape[0]} clips are)"
            )
    per_class = min(config.per_class, sum(positive), len(positive) - sum(positive))
    if per_class == 0:
        raise RuntimeError("demo: the held-out clips lack a class; use more test_clips")
    chosen = balanced_subset(
        list(range(len(positive))), positive, per_class=per_class, seed=config.seed
    )
    return chosen, (
        f"{per_class} speaking + {per_class} not speaking, drawn from all clips (no clip of "
        "each class is predicted correctly by every model: the models are barely trained)"
    )


def _models(count: int) -> str:
    return f"{count} model" + ("" if count == 1 else "s")


def clean_scores(model: TalkNet, data: Clips) -> Tensor:
    """P(speaking) of every frame of every clip, ``(N, T)``, clean."""
    inputs, labels = data
    scores = []
    with torch.no_grad():
        for start in range(0, labels.shape[0], 64):
            part = {k: v[start : start + 64] for k, v in inputs.items()}
            scores.append(speaking_probability(model(**part)))
    return torch.cat(scores)
