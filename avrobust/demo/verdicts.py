"""What a checked claim of the paper looks like (:class:`Finding`), the named thresholds of the
claims, and how the outcomes of a claim's comparisons make one verdict.

Every verdict compares mAP under attack at ``eps_av = table_eps`` (audio-visual attack unless the
claim is about modalities) through paired 95 % bootstrap intervals over the attacked clips
(:class:`~avrobust.demo.intervals.Intervals`). A comparison "X > Y by at least ``t``" is *held*
when the interval of ``X - Y`` lies above ``t``, *did not hold* when it lies below, and
*inconclusive* when it straddles ``t``; a claim resting on several comparisons is *partly* held
when some clearly hold and some clearly do not. Differences between two mAPs count only beyond
``config.tie_margin`` points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..evaluation import EvaluationReport
from .config import DemoConfig
from .intervals import AV, WORST, Intervals, outcome

__all__ = [
    "BARELY_CHANGES_POINTS",
    "CLEAN_COST_POINTS",
    "SERIOUS_LOSS_POINTS",
    "TRANSFER_HARM_SHARE",
    "VERDICTS",
    "Claim",
    "Evidence",
    "Finding",
    "Number",
    "compare_verdict",
    "count_verdict",
]

#: mAP points an attack must take off (A) to "seriously degrade" it.
SERIOUS_LOSS_POINTS = 10.0
#: an audio-only attack "barely changes" mAP when it takes off fewer points than this.
BARELY_CHANGES_POINTS = 5.0
#: a defence "costs little clean mAP" when it stays within this many points of (A).
CLEAN_COST_POINTS = 2.0
#: a transferred attack "barely works" when it takes off at most this share of the white-box loss.
TRANSFER_HARM_SHARE = 0.5
#: the verdicts a :class:`Finding` can have.
VERDICTS = ("held", "did not hold", "partly", "inconclusive", "not tested")


@dataclass(frozen=True)
class Number:
    """One measured quantity behind a verdict.

    Attributes:
        label: what it is, e.g. ``"BIM mAP lost (points)"``.
        value: the point estimate (``None``: not measured).
        low: the lower end of its 95 % bootstrap interval (``None`` without one).
        high: the upper end of that interval (``None`` without one).
        threshold: the value the claim needs it to exceed (``None``: reported, not compared).
    """

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Finding:
    """One of the paper's claims checked on the demo's numbers.

    Attributes:
        claim: the claim, as the paper makes it.
        verdict: ``"held"`` (the 95 % bootstrap interval of every compared quantity lies on the
            claim's side of its threshold), ``"did not hold"`` (every one on the other side),
            ``"partly"`` (some clearly one way, some clearly the other), ``"inconclusive"``
            (an interval straddles its threshold, or there is none) or ``"not tested"``.
        evidence: the measured numbers behind the verdict, with their intervals, as text.
        numbers: the compared quantities, each with its interval and threshold.
        name: a short identifier of the claim (e.g. ``"white_box_degrades"``).
    """

    claim: str
    verdict: str
    evidence: str
    numbers: tuple[Number, ...] = ()
    name: str = ""

    def line(self) -> str:
        """``"held: <claim> <evidence>."``: the finding in one line of text."""
        return f"{self.verdict}: {self.claim} {self.evidence}."


@dataclass(frozen=True)
class Evidence:
    """What the claims look at: the demo's settings, measurements and their intervals.

    Attributes:
        config: the demo settings.
        clean_map: ``{model key: clean mAP in [0, 1]}``.
        reports: ``{model key: white-box grid report}``.
        extras: ``{"inference": ..., "transfer": ...}`` reports.
        ci: the bootstrap intervals.
    """

    config: DemoConfig
    clean_map: Mapping[str, float]
    reports: Mapping[str, EvaluationReport]
    extras: Mapping[str, EvaluationReport]
    ci: Intervals

    @property
    def judged_rules(self) -> tuple[str, ...]:
        """The rules the comparisons of models rest on: the worst case over the strong
        ensemble (``"worst-case"``) when every report has its audio-visual cell at
        ``table_eps``, else the grid's rules. A defence is judged by the strongest attack
        tried, not by the paper's 5-step attacks (issue 13)."""
        eps = self.config.table_eps
        for report in self.reports.values():
            try:
                report.cell(WORST, eps, AV)
            except KeyError:
                return tuple(self.config.rules)
        return (WORST,) if self.reports else tuple(self.config.rules)

    def number(
        self,
        label: str,
        value: float | None,
        samples: np.ndarray | None,
        threshold: float | None = None,
    ) -> Number:
        """A :class:`Number` with the interval of ``samples``."""
        low, high = self.ci.interval(samples)
        finite = math.isfinite(low) and math.isfinite(high)
        return Number(
            label,
            value,
            low if finite else None,
            high if finite else None,
            threshold,
        )


#: a claim function: the finding, or ``None`` where the run cannot test the claim at all.
Claim = Callable[[Evidence], "Finding | None"]


def count_verdict(outcomes: Sequence[str]) -> str:
    """One verdict from the outcomes of a claim's comparisons (see :class:`Finding`)."""
    kinds = set(outcomes)
    if not kinds:
        return "not tested"
    if len(kinds) == 1 and kinds <= {"held", "did not hold"}:
        return outcomes[0]
    return "partly" if {"held", "did not hold"} <= kinds else "inconclusive"


def compare_verdict(intervals: Sequence[tuple[float, float]], margin: float) -> str:
    """Verdict on "better > worse" from the bootstrap intervals of each comparison's gain (mAP
    points): held when every gain's interval lies above ``margin``, did not hold when every one
    lies below it (no gain of ``margin`` points: a tie or a loss)."""
    return count_verdict([outcome(i, margin) for i in intervals])
