"""What a checked claim of the paper looks like (:class:`Finding`), the named thresholds of the
claims, and the verdict rules: how the intervals of a claim's comparisons make one verdict.

Every verdict compares mAP under attack at ``eps_av = table_eps`` (audio-visual attack unless the
claim is about modalities) through paired 95 % bootstrap intervals over the attacked clips
(:class:`~avrobust.demo.intervals.Intervals`). The rules, stated here once (:func:`verdict_rules`
gives them as text for the summary) and applied by :func:`outcome`, :func:`gain_outcome` and
:func:`count_verdict`:

1. **One comparison** "X exceeds t": *held* when the interval of X lies above ``t``, *did not
   hold* when it lies below, *inconclusive* when it straddles ``t`` (or there is no interval).
   Two mAPs count as different only beyond ``config.tie_margin`` points: "X > Y" needs the
   interval of ``X - Y`` above ``tie_margin``.
2. **The mAP floor.** A score that carries no ranking has the mAP of the share of speaking
   frames of the attacked clips (the *floor*); an mAP within ``tie_margin`` of it is *at the
   floor*, where it can no longer move. When both sides of a comparison of models are at the
   floor, the gain of frame accuracy decides instead, against the same margin: *held* above
   ``tie_margin``, *did not hold* below ``-tie_margin``, and otherwise *saturated* (the
   evidence says "saturated: cannot separate"): neither measure can separate the two, and a
   tie there is no evidence either way. The evidence names frame accuracy where it decided.
3. **A claim of several comparisons** holds only if every one holds: *held* when all held; *did
   not hold* when one did not hold and none held, *partly* when some held and some did not
   (whatever the others straddle); else *inconclusive* when one is inconclusive, *saturated*
   when one is saturated (and the rest held); *not tested* without comparisons. A claim with
   an interval clearly on the wrong side is never *inconclusive*.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .config import DemoConfig
from .intervals import AV, WORST, Intervals, Report, outcome

__all__ = [
    "BARELY_CHANGES_POINTS",
    "CLEAN_COST_POINTS",
    "SATURATED",
    "SERIOUS_LOSS_POINTS",
    "TRANSFER_HARM_SHARE",
    "VERDICTS",
    "Claim",
    "Evidence",
    "Finding",
    "Number",
    "at_floor",
    "compare_verdict",
    "count_verdict",
    "gain_outcome",
    "verdict_rules",
]

#: mAP points an attack must take off (A) to "seriously degrade" it.
SERIOUS_LOSS_POINTS = 10.0
#: an audio-only attack "barely changes" mAP when it takes off fewer points than this.
BARELY_CHANGES_POINTS = 5.0
#: a defence "costs little clean mAP" when it stays within this many points of (A).
CLEAN_COST_POINTS = 2.0
#: a transferred attack "barely works" when it takes off at most this share of the white-box loss.
TRANSFER_HARM_SHARE = 0.5
#: the verdicts a :class:`Finding` can have (the rules: the module's docstring).
VERDICTS = ("held", "did not hold", "partly", "inconclusive", "saturated", "not tested")
#: the evidence of a comparison where both sides sit at the mAP floor and frame accuracy ties.
SATURATED = "saturated: cannot separate"


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
        verdict: one of :data:`VERDICTS`, by the rules of :mod:`avrobust.demo.verdicts`.
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
    reports: Mapping[str, Report]
    extras: Mapping[str, Report]
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


def verdict_rules(*, tie_margin: float) -> str:
    """The verdict rules (the module's docstring) as one paragraph of the summary."""
    m = f"{tie_margin:g}"
    return (
        'A comparison "held" when the 95 % interval of what it compares lies on the claim\'s '
        'side of its threshold, "did not hold" when it lies on the other side, and '
        '"inconclusive" when it straddles it; two mAPs must differ by more than '
        f"{m} points (`tie_margin`) to count as different. When both models sit at the mAP "
        "floor (within the margin of the share of speaking frames, the mAP of a score with no "
        f"ranking), their frame accuracy decides instead (above +{m}: held, below -{m}: did "
        'not hold), else the pair is "saturated" (cannot separate). A claim of several '
        'comparisons is "held" when all held, "did not hold" when one did not and none held, '
        '"partly" when some held and some did not, else "inconclusive" or "saturated".'
    )


def at_floor(value: float | None, floor: float | None, *, margin: float) -> bool:
    """Whether an mAP (points) is within ``margin`` of the ``floor`` (points): rule 2."""
    return value is not None and floor is not None and abs(value - floor) <= margin


def gain_outcome(
    map_gain: tuple[float, float],
    accuracy_gain: tuple[float, float] | None,
    *,
    margin: float,
    floored: bool,
) -> tuple[str, str]:
    """The outcome of "better > worse" and the measure that decided it (rules 1 and 2):
    ``(outcome of the mAP gain's interval, "mAP")``, or with both sides at the mAP floor
    (``floored``) the frame accuracy gain's: ``("held" | "did not hold", "frame accuracy")``,
    else ``("saturated", SATURATED)``."""
    if not floored:
        return outcome(map_gain, margin), "mAP"
    low, high = accuracy_gain or (math.nan, math.nan)
    if low > margin:
        return "held", "frame accuracy"
    if high < -margin:
        return "did not hold", "frame accuracy"
    return "saturated", SATURATED


def count_verdict(outcomes: Sequence[str]) -> str:
    """One verdict from the outcomes of a claim's comparisons (rule 3 of the module)."""
    kinds = set(outcomes)
    if not kinds:
        return "not tested"
    if "did not hold" in kinds:
        return "partly" if "held" in kinds else "did not hold"
    if kinds == {"held"}:
        return "held"
    return "inconclusive" if "inconclusive" in kinds else "saturated"


def compare_verdict(intervals: Sequence[tuple[float, float]], margin: float) -> str:
    """Verdict on "better > worse" from the bootstrap intervals of each comparison's gain (mAP
    points, rules 1 and 3): held when every gain's interval lies above ``margin``, did not hold
    when one lies below it (no gain of ``margin`` points: a tie or a loss) and none above."""
    return count_verdict([outcome(i, margin) for i in intervals])
