"""The bootstrap intervals behind every number of the demo (:mod:`avrobust.bootstrap`), in mAP
points, and the small accessors the tables, plots and findings share.

**Two levels: training runs, then clips.** A model row trained from several seeds
(:class:`~avrobust.demo.runs.SeededReport`) is resampled at two levels: each resample draws the
runs with replacement (as many as there are), then the attacked clips with replacement (the same
draw for every run, as every run is attacked on the same clips), and averages the drawn runs'
measures. An interval then covers another choice of training seeds as well as another choice of
clips; with one run it is the clip bootstrap alone. Every row draws the same runs' positions and
the same clips in a resample, so two rows are compared paired, as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import Tensor

from ..bootstrap import CellBootstrap, bootstrap_map
from ..evaluation import EvaluationReport
from ..evaluation.reporting import format_interval
from .config import DemoConfig
from .runs import SeedCell, SeededReport

Report = EvaluationReport | SeededReport  # a row of one run, or of several
ScoresOfRuns = tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]]

__all__ = [
    "AV",
    "BOOTSTRAP_LEVEL",
    "BOOTSTRAP_RESAMPLES",
    "WORST",
    "Intervals",
    "accuracy_percent",
    "bounds",
    "diff",
    "floor_percent",
    "fmt",
    "map_percent",
]

BOOTSTRAP_RESAMPLES = 1000  # resamples of the attacked clips behind every interval
BOOTSTRAP_LEVEL = 0.95  # coverage of the intervals
AV = "audio+visual"  # the joint attack's modality set (the demo's model is TalkNet)
WORST = "worst-case"  # the rule name of the worst-case ensemble's cells


def accuracy_percent(
    report: Report, rule: str, eps: float, attacked: str = AV, which: str = "adv"
) -> float | None:
    """The cell's frame accuracy (``"adv"``: under attack, ``"clean"``: on the clean clips)
    in %, ``None`` when the report has no such cell or it holds no accuracy."""
    try:
        cell = report.cell(rule, eps, attacked)
    except KeyError:
        return None
    value = cell.accuracy_adv if which == "adv" else cell.accuracy_clean
    return None if math.isnan(value) else 100 * value


def map_percent(report: Report, rule: str, eps: float, attacked: str = AV) -> float | None:
    """The cell's mAP under attack in %, ``None`` when the report has no such cell."""
    try:
        return 100 * report.cell(rule, eps, attacked).map_adv
    except KeyError:
        return None


def floor_percent(report: Report, rule: str, eps: float, attacked: str = AV) -> float | None:
    """The mAP floor of the cell in %: the mAP of a score that carries no ranking on its attacked
    clips, which is their share of speaking (class-1) frames; ``None`` without the cell or its
    per-clip labels."""
    try:
        per = report.cell(rule, eps, attacked).per_clip
    except KeyError:
        return None
    frames = [float(y) for clip in (per or {}).get("labels", ()) for y in clip]
    return 100 * sum(frames) / len(frames) if frames else None


def fmt(value: float | None, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; ``"-"`` for ``None`` or not finite."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def diff(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """Paired bootstrap samples of ``a - b`` (``None`` when either is missing)."""
    return None if a is None or b is None else a - b


def outcome(interval: tuple[float, float], threshold: float) -> str:
    """``"held"`` if the interval lies above ``threshold``, ``"did not hold"`` if below,
    else (straddling, or NaN: no interval) ``"inconclusive"``."""
    low, high = interval
    if low > threshold:
        return "held"
    if high < threshold:
        return "did not hold"
    return "inconclusive"


class Intervals:
    """Bootstrap samples, in mAP points, of the demo's measures (:mod:`avrobust.bootstrap`).

    Every cell is resampled over its attacked clips with the same seeded counts; every report
    of the demo attacks the same clips, so two models (or two budgets, or clean and attacked)
    are compared *paired*, on the same resampled clips. A row of several training runs
    (:class:`~avrobust.demo.runs.SeededReport`) is resampled at two levels: runs, then clips
    (the module's docstring). The clean mAP over every held-out clip is resampled over those
    clips when their frame scores are given.

    Args:
        config: the demo settings (``config.seed`` seeds the resamples).
        clean_scores: ``{model key: ((N, T) frame scores, (N, T) labels)}`` of every held-out
            clip, or a list of such pairs, one per training run.
    """

    def __init__(
        self, config: DemoConfig, clean_scores: Mapping[str, ScoresOfRuns] | None = None
    ) -> None:
        self.boot = CellBootstrap(
            resamples=BOOTSTRAP_RESAMPLES, seed=config.seed, level=BOOTSTRAP_LEVEL
        )
        self.seed = config.seed
        self.clean_scores = {
            k: [v] if isinstance(v, tuple) else list(v) for k, v in (clean_scores or {}).items()
        }
        self._clean: dict[str, np.ndarray] = {}
        self._draws: dict[int, np.ndarray] = {}

    def runs(self, samples: np.ndarray) -> np.ndarray:
        """``(resamples,)`` from ``(runs, resamples)`` per-run samples (resampled on the same
        clips): each resample the mean of as many runs drawn with replacement (the same draws
        for every row, so rows stay paired); one run's samples unchanged."""
        count = samples.shape[0]
        if count == 1:
            return samples[0]
        if count not in self._draws:
            rng = np.random.default_rng([self.seed, count, 2])
            self._draws[count] = rng.integers(0, count, size=(samples.shape[1], count))
        draws = self._draws[count]
        return samples[draws, np.arange(samples.shape[1])[:, None]].mean(axis=1)

    def cell(
        self,
        report: Report,
        rule: str,
        eps: float,
        attacked: str = AV,
        which: str = "adv",
        measure: str = "map",
    ) -> np.ndarray | None:
        """``(resamples,)`` of a cell's ``"adv"`` or ``"clean"`` scores in points: their mAP
        (``measure="map"``) or their frame accuracy (``measure="accuracy"``), over the runs
        and the clips; ``None`` without the cell or its per-clip scores."""
        boot = self.boot.map if measure == "map" else self.boot.accuracy
        try:
            found = report.cell(rule, eps, attacked)
        except KeyError:
            return None
        parts = [boot(c, which) for c in _runs_of(found)]
        kept = [p for p in parts if p is not None]
        return 100 * self.runs(np.stack(kept)) if len(kept) == len(parts) else None

    def ecr(self, cell: Any, modality: str) -> np.ndarray | None:
        """``(resamples,)`` mean ECR of ``modality`` (unitless) over the runs and the clips;
        ``None`` without per-clip values."""
        parts = [self.boot.ecr(c, modality) for c in _runs_of(cell)]
        kept = [p for p in parts if p is not None]
        return self.runs(np.stack(kept)) if len(kept) == len(parts) else None

    def clean(self, key: str) -> np.ndarray | None:
        """``(resamples,)`` clean mAP in points of model ``key`` over every held-out clip, over
        its runs and the clips."""
        if key not in self.clean_scores:
            return None
        if key not in self._clean:
            parts = []
            for pair in self.clean_scores[key]:
                scores, labels = (t.reshape(t.shape[0], -1).tolist() for t in pair)
                parts.append(bootstrap_map(scores, labels, self.boot.counts(len(scores))))
            self._clean[key] = 100 * self.runs(np.stack(parts))
        return self._clean[key]

    def interval(self, samples: np.ndarray | None) -> tuple[float, float]:
        """The percentile interval of ``samples`` (``(nan, nan)`` for ``None``)."""
        return self.boot.interval(samples)

    def text(self, value: float | None, samples: np.ndarray | None, sign: str = "") -> str:
        """``"70.6 [62.1, 78.3]"`` (``sign="+"``: signed), or the value alone without samples."""
        return format_interval(value, self.boot.interval(samples), sign=sign)

    def outcome(self, samples: np.ndarray | None, threshold: float) -> str:
        """The verdict of one comparison: see :func:`outcome`."""
        return outcome(self.boot.interval(samples), threshold)


def _runs_of(cell: Any) -> tuple[Any, ...]:
    """The cells of each run: a :class:`SeedCell`'s runs, or the one cell."""
    return cell.runs if isinstance(cell, SeedCell) else (cell,)


def bounds(name: str, ci: Intervals, samples: np.ndarray | None) -> dict[str, float | None]:
    """``{name_low, name_high}``: the interval's bounds for a CSV record (``None`` without one)."""
    low, high = ci.interval(samples)
    finite = math.isfinite(low) and math.isfinite(high)
    return {f"{name}_low": low if finite else None, f"{name}_high": high if finite else None}
