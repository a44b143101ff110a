"""Batching tracks by length as TalkNet does (:func:`length_batches`) and stacking them (:func:`collate_clips`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..._checks import check_int

__all__ = ["collate_clips", "length_batches"]


def length_batches(
    lengths: Sequence[int],
    max_frames: int = 2500,
    *,
    equal_lengths: bool = True,
    max_clips: int | None = None,
) -> list[list[int]]:
    """Group tracks into batches of about ``max_frames`` frames (TalkNet's batching by length).

    Tracks are taken longest first; a batch starting at a track of ``L`` frames takes up to
    ``max(max_frames // L, 1)`` tracks. With ``equal_lengths`` (for evaluation) a batch only
    holds tracks of exactly ``L`` frames, so nothing is cut; without it (TalkNet's training
    loader) it takes the next tracks whatever their length and :func:`collate_clips` cuts them to
    the shortest.

    Args:
        lengths: frames per track (e.g. :attr:`AVAActiveSpeaker.lengths`).
        max_frames: frames per batch (TalkNet's ``--batchSize``: 2500).
        equal_lengths: only batch tracks of the same length.
        max_clips: at most this many tracks per batch.

    Returns:
        Lists of track indices, usable as a ``DataLoader``'s ``batch_sampler``.

    Example:
        >>> length_batches([3, 5, 5, 3, 3], max_frames=10)
        [[1, 2], [0, 3, 4]]
        >>> length_batches([5, 4, 3], max_frames=10), length_batches([5, 4, 3], 10, equal_lengths=False)
        ([[0], [1], [2]], [[0, 1], [2]])
    """
    budget = check_int(max_frames, "max_frames", min_value=1)
    cap = None if max_clips is None else check_int(max_clips, "max_clips", min_value=1)
    for i, n in enumerate(lengths):
        if int(n) < 1:
            raise ValueError(f"lengths[{i}]: expected >= 1 frame, got {n}")
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    batches: list[list[int]] = []
    start = 0
    while start < len(order):
        length = int(lengths[order[start]])
        size = max(budget // length, 1)
        if cap is not None:
            size = min(size, cap)
        end = min(start + size, len(order))
        if equal_lengths:
            same = start
            while same < end and int(lengths[order[same]]) == length:
                same += 1
            end = same
        batches.append(order[start:end])
        start = end
    return batches


def collate_clips(
    items: Sequence[tuple[Mapping[str, Tensor], Tensor]],
) -> tuple[dict[str, Tensor], Tensor]:
    """Stack tracks into a batch, cutting each to the shortest (frames and matching samples).

    Args:
        items: ``(inputs, labels)`` pairs from :class:`AVAActiveSpeaker` (or any clips whose
            ``visual`` is ``(T, ...)``, ``audio`` ``(S,)`` and labels ``(T,)``).

    Returns:
        ``({"audio": (B, S), "visual": (B, T, H, W)}, labels (B, T))``.

    Raises:
        ValueError: no items, or clips whose audio has different samples per video frame (tracks
            at different frame rates: no common cut keeps them all aligned).
    """
    if not items:
        raise ValueError("items: expected at least one clip, got none")
    frames = min(int(y.shape[0]) for _, y in items)
    rates = [
        x.shape[-1] / int(y.shape[0])
        for inputs, y in items
        for x in inputs.values()
        if x.ndim == 1 and y.shape[0] > 0
    ]
    if rates and max(rates) > 1.01 * min(rates):  # beyond rounding: 24, 25, 30 fps differ by 4 %+
        raise ValueError(
            "items: expected clips with the same audio samples per video frame (one frame rate "
            f"per batch), got {sorted({round(r, 1) for r in rates})} samples per frame"
        )
    out: dict[str, list[Tensor]] = {}
    for inputs, labels in items:
        total = int(labels.shape[0])
        for name, x in inputs.items():
            if x.ndim >= 2 and x.shape[0] == total:  # frame-indexed (visual)
                out.setdefault(name, []).append(x[:frames])
            else:  # sample-indexed (audio): keep the same share of the clip
                keep = math.floor(x.shape[-1] * frames / total + 0.5)
                out.setdefault(name, []).append(x[..., :keep])
    stacked = {}
    for name, parts in out.items():
        shortest = min(p.shape[-1] for p in parts) if parts[0].ndim == 1 else None
        stacked[name] = torch.stack([p[..., :shortest] if shortest else p for p in parts])
    return stacked, torch.stack([y[:frames] for _, y in items])
