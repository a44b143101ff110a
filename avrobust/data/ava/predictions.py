"""Scoring every frame of every track and writing the scores as an AVA predictions CSV."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...metrics import ava_csv as _ava_csv
from ...metrics.ava_csv import AVARows, read_ava_ground_truth, write_ava_predictions
from .batching import collate_clips, length_batches
from .dataset import AVAActiveSpeaker
from .tracks import PathLike

__all__ = ["predict_entities", "write_predictions"]


def predict_entities(
    model: nn.Module,
    dataset: AVAActiveSpeaker,
    *,
    score_fn: Callable[[Any], Tensor] | None = None,
    max_frames: int = 2500,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Score every frame of every track: ``{entity_id: (T,) scores}`` (P(speaking) by default).

    Tracks of equal length and frame rate are scored together (:func:`length_batches` with
    ``equal_lengths``), each as its own sequence, so the scores equal TalkNet's one-track-at-a-time
    evaluation.
    """
    from ...adapters import as_avoutput
    from ...attacks import preserve_model_state

    scorer = score_fn or (lambda out: torch.softmax(out.logits.float(), dim=-1)[..., 1])
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    by_fps: dict[float, list[int]] = {}
    for i, entry in enumerate(dataset.entries):
        by_fps.setdefault(entry.fps, []).append(i)
    lengths = dataset.lengths
    batches = [
        [group[j] for j in batch]
        for group in by_fps.values()
        for batch in length_batches([lengths[i] for i in group], max_frames)
    ]
    out: dict[str, Tensor] = {}
    iterator: Iterator[list[int]] | Any = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="scoring tracks", leave=False)
    with torch.no_grad(), preserve_model_state(model, "eval"):
        for batch in iterator:
            inputs, _ = collate_clips([dataset[i] for i in batch])
            scores = scorer(as_avoutput(model(**{k: v.to(device) for k, v in inputs.items()})))
            for i, s in zip(batch, scores.cpu()):
                out[dataset.entries[i].entity_id] = s.reshape(-1)
    return out


def write_predictions(
    path: PathLike,
    ground_truth: PathLike | AVARows,
    scores: Mapping[str, Sequence[float] | Tensor | np.ndarray],
    *,
    header: bool = True,
) -> int:
    """Write predictions in the AVA CSV format, one row per ground-truth frame.

    The ``k``-th ground-truth row of an entity (in timestamp order) gets the entity's ``k``-th
    score: TalkNet's rule (its face crops are the ground-truth rows, in order), but matched per
    entity instead of by global row position. Columns and label as the AVA evaluation expects
    (:func:`~avrobust.metrics.write_ava_predictions`).

    Args:
        path: the output CSV.
        ground_truth: the ground-truth CSV (e.g. ``csv/val_orig.csv``) or its rows.
        scores: ``{entity_id: (T,) scores}``, e.g. from :func:`predict_entities`.
        header: write the header row (TalkNet); ``False`` for an AVA server submission.

    Returns:
        The number of rows written.

    Raises:
        ValueError: an entity of the ground truth without scores, or with fewer scores than
            ground-truth rows (the message names it).
    """
    rows = (
        ground_truth if isinstance(ground_truth, AVARows) else read_ava_ground_truth(ground_truth)
    )
    by_entity: dict[str, list[int]] = {}
    for i, entity in enumerate(rows.entity_id):
        by_entity.setdefault(entity, []).append(i)
    values = np.full(len(rows), np.nan)
    missing = [e for e in by_entity if e not in scores]
    if missing:
        raise ValueError(
            f"scores: {len(missing)} entities of the ground truth have no scores (e.g. {missing[:3]})"
        )
    for entity, where in by_entity.items():
        ranked = sorted(where, key=lambda i: rows.frame_timestamp[i])
        s = _ava_csv._score_array(scores[entity], f"scores[{entity!r}]")
        if s.size < len(ranked):
            raise ValueError(
                f"scores[{entity!r}]: expected {len(ranked)} scores (one per ground-truth row), "
                f"got {s.size}"
            )
        values[ranked] = s[: len(ranked)]
    write_ava_predictions(path, rows, values, header=header)
    return len(rows)
