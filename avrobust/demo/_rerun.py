"""What a rerun of the demo states about itself: the wall times of the first run that did the
work (a rerun that reads the trained models or the attack results from the caches keeps them,
and says so), and the files of the XAB folder it wrote."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

__all__ = ["STAGES", "folder_files", "kept_seconds", "recorded_seconds"]

#: the stages whose wall times the summary states: training/loading, and the attacks
STAGES = ("train", "evaluate")


def recorded_seconds(out: str) -> dict[str, float]:
    """``{stage: s}`` recorded by the last run in ``out/results.json`` (empty without one, or
    when it is unreadable)."""
    try:
        with open(os.path.join(out, "results.json")) as handle:
            seconds = json.load(handle).get("seconds", {})
    except (OSError, ValueError, AttributeError):
        return {}
    if not isinstance(seconds, dict):
        return {}
    return {
        k: float(v)
        for k, v in seconds.items()
        if k in STAGES and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
    }


def kept_seconds(
    measured: Mapping[str, float], recorded: Mapping[str, float], *, fresh: Mapping[str, bool]
) -> tuple[dict[str, float], dict[str, float]]:
    """The wall times to state and those of this run that read its stage from the caches.

    Args:
        measured: ``{stage: s}`` this run took.
        recorded: ``{stage: s}`` an earlier run recorded (:func:`recorded_seconds`).
        fresh: ``{stage: whether this run did any of the stage's work}`` (trained a model,
            computed an attack cell or a masking check).

    Returns:
        ``(seconds, reused)``: ``seconds`` the recorded time of each stage this run read from the
        caches (where one is recorded), else the measured one; ``reused`` this run's own time of
        each stage whose recorded time is kept.
    """
    seconds, reused = dict(measured), {}
    for stage, value in measured.items():
        if not fresh.get(stage, True) and stage in recorded:
            seconds[stage], reused[stage] = recorded[stage], value
    return seconds, reused


def folder_files(folder: str) -> list[str]:
    """Every file under ``folder`` (sorted; none when it does not exist)."""
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)
