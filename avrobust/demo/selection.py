"""Which held-out clips the demo attacks (Push-Pull §4.1): correct for every model, balanced."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ..evaluation import balanced_subset, correct_samples
from ..models import TalkNet, speaking_probability
from .config import DemoConfig

__all__ = ["attacked_clips", "clean_scores"]

Clips = tuple[dict[str, Tensor], Tensor]


def attacked_clips(
    config: DemoConfig, trained: Mapping[str, TalkNet], data: Clips
) -> tuple[list[int], str]:
    """Held-out clips every model predicts correctly, balanced (Push-Pull §4.1 and Table 1).

    Every frame must be right; if that leaves a class empty (a barely trained model, as in the
    ``test`` preset), most frames must be right; failing that, every clip is a candidate.

    Returns:
        ``(clip indices, how they were chosen, for the summary)``.

    Raises:
        RuntimeError: the held-out clips lack a class.
    """
    for accuracy, what in ((1.0, "every frame"), (0.5, "most frames")):
        ids: list[int] = []
        positive: list[bool] = []
        ok = [True] * config.test_clips
        for model in trained.values():
            ids, correct, positive = correct_samples(model, data, min_accuracy=accuracy)
            ok = [a and b for a, b in zip(ok, correct)]
        candidates = [i for i, k in zip(ids, ok) if k]
        cand_pos = [p for p, k in zip(positive, ok) if k]
        per_class = min(config.per_class, sum(cand_pos), len(cand_pos) - sum(cand_pos))
        if per_class > 0:
            chosen = balanced_subset(candidates, cand_pos, per_class=per_class, seed=config.seed)
            return chosen, (
                f"{per_class} speaking + {per_class} not speaking, {what} predicted correctly by "
                f"all {len(trained)} models ({len(candidates)} of {config.test_clips} clips are)"
            )
    positive = correct_samples(next(iter(trained.values())), data, min_accuracy=0.0)[2]
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


def clean_scores(model: TalkNet, data: Clips) -> Tensor:
    """P(speaking) of every frame of every clip, ``(N, T)``, clean."""
    inputs, labels = data
    scores = []
    with torch.no_grad():
        for start in range(0, labels.shape[0], 64):
            part = {k: v[start : start + 64] for k, v in inputs.items()}
            scores.append(speaking_probability(model(**part)))
    return torch.cat(scores)
