"""The defence-side claims of Push-Pull: models compared pairwise under attack (:class:`Comparison`),
the embedding change ratio, and the cost in clean mAP. Each claim is one callable of
:class:`~.verdicts.Evidence`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .intervals import AV, WORST, Intervals, accuracy_percent, diff, floor_percent, map_percent
from .verdicts import (
    CLEAN_COST_POINTS,
    Claim,
    Evidence,
    Finding,
    Number,
    at_floor,
    count_verdict,
    gain_outcome,
)

__all__ = ["MODEL_CLAIMS", "Comparison"]


@dataclass(frozen=True)
class Comparison:
    """The claim "model ``better`` keeps more mAP under attack than each of ``worse``", by more
    than ``tie_margin`` points at ``table_eps``: under the worst case over the strong ensemble
    when the run has it (:attr:`Evidence.judged_rules`), else under every rule of the grid.
    Where both models sit at the mAP floor, frame accuracy decides (rule 2 of
    :mod:`avrobust.demo.verdicts`).

    Attributes:
        name: the claim's identifier.
        claim: the claim's text; ``{single}`` and ``{pair}`` stand for the AVIL terms of C and D.
        better: the model expected to do better.
        worse: the models it is compared with.
    """

    name: str
    claim: str
    better: str
    worse: tuple[str, ...]

    def __call__(self, ev: Evidence) -> Finding | None:
        reports, config, ci = ev.reports, ev.config, ev.ci
        if self.better not in reports or not all(w in reports for w in self.worse):
            return None
        eps, outcomes, text, numbers = config.table_eps, [], [], []
        for r in ev.judged_rules:
            pairs = [p for w in self.worse if (p := _pair(ev, r, self.better, w)) is not None]
            for result, _, found in pairs:
                outcomes.append(result)
                numbers += found
            if pairs:
                mb, sb = (
                    map_percent(reports[self.better], r, eps),
                    ci.cell(reports[self.better], r, eps),
                )
                text.append(
                    f"{_label(r)}: ({self.better}) {ci.text(mb, sb)}% vs "
                    + "; ".join(part for _, part, _ in pairs)
                )
        return Finding(
            self.claim.format(single=_terms(config.avil_single), pair=_terms(config.avil_pair)),
            count_verdict(outcomes),
            "; ".join(text),
            tuple(numbers),
            self.name,
        )


def _pair(ev: Evidence, rule: str, better: str, worse: str) -> tuple[str, str, list[Number]] | None:
    """The outcome of "``better`` > ``worse``" under ``rule``, its text and its numbers (rules 1
    and 2 of :mod:`avrobust.demo.verdicts`); ``None`` without both cells. The frame accuracy
    gain is reported under the worst case, and decides where both mAPs sit at the floor."""
    reports, ci, eps, margin = ev.reports, ev.ci, ev.config.table_eps, ev.config.tie_margin
    mb, mw = (map_percent(reports[k], rule, eps) for k in (better, worse))
    if mb is None or mw is None:
        return None
    gain = diff(*(ci.cell(reports[k], rule, eps) for k in (better, worse)))
    floor = floor_percent(reports[better], rule, eps)
    floored = at_floor(mb, floor, margin=margin) and at_floor(mw, floor, margin=margin)
    accuracy = _accuracy(ev, rule, better, worse) if floored or rule == WORST else None
    result, measure = gain_outcome(
        ci.interval(gain),
        None if accuracy is None else ci.interval(accuracy[1]),
        margin=margin,
        floored=floored,
    )
    numbers = [
        ev.number(f"{_label(rule)} gain of ({better}) over ({worse})", mb - mw, gain,
                  None if floored else margin)
    ]  # fmt: skip
    text = f"({worse}) {ci.text(mw, ci.cell(reports[worse], rule, eps))}%, gain " + ci.text(
        mb - mw, gain, "+"
    )
    if accuracy is not None:
        (ab, aw, sb, sw), samples = accuracy
        numbers.append(ev.number(f"{_label(rule)} frame accuracy gain of ({better}) over ({worse})",
                                 ab - aw, samples, margin if floored else None))  # fmt: skip
        text += (
            f" (frame accuracy {ci.text(ab, sb)}% vs {ci.text(aw, sw)}%, "
            f"{ci.text(ab - aw, samples, '+')})"
        )
    if floored:
        decided = "frame accuracy decides" if measure == "frame accuracy" else measure
        text += f", both at the mAP floor ({floor:.1f}%): {decided}"
    return result, text, numbers


def _accuracy(
    ev: Evidence, rule: str, better: str, worse: str
) -> tuple[tuple[float, float, np.ndarray | None, np.ndarray | None], np.ndarray | None] | None:
    """``((accuracy of better, of worse, their samples), samples of the gain)`` in %, ``None``
    without the accuracies. mAP saturates at the share of speaking frames once the scores carry
    no ranking; frame accuracy still separates models there."""
    ci, eps, reports = ev.ci, ev.config.table_eps, ev.reports
    ab, aw = (accuracy_percent(reports[k], rule, eps) for k in (better, worse))
    if ab is None or aw is None:
        return None
    sb, sw = (ci.cell(reports[k], rule, eps, measure="accuracy") for k in (better, worse))
    return (ab, aw, sb, sw), diff(sb, sw)


def _label(rule: str) -> str:
    """``"PGD"``, or ``"worst case"`` for the ensemble's cells."""
    return "worst case" if rule == WORST else rule.upper()


def _terms(terms: Sequence[str]) -> str:
    return " + ".join(t.upper() for t in terms)


def avil_lowers_ecr(ev: Evidence) -> Finding | None:
    """The mean of A(ECR) and V(ECR) under PGD at ``table_eps`` is lower for (C) and (D) than
    for (A): the paired interval of (A) minus each lies above 0."""
    if not {"A", "C", "D"} <= set(ev.reports) or "pgd" not in ev.config.rules:
        return None
    ci = ev.ci
    cells = {k: ev.reports[k].cell("pgd", ev.config.table_eps, AV) for k in ("A", "C", "D")}
    points = {k: sum(c.ecr.values()) / 2 for k, c in cells.items()}
    samples: dict[str, np.ndarray | None] = {}
    for k, c in cells.items():
        parts = [ci.ecr(c, m) for m in c.ecr]
        found = [p for p in parts if p is not None]
        samples[k] = np.stack(found).sum(0) / 2 if found and len(found) == len(parts) else None
    lowered = {k: diff(samples["A"], samples[k]) for k in ("C", "D")}
    numbers = [ev.number(f"({k}) mean ECR", points[k], samples[k]) for k in points]
    numbers += [
        ev.number(f"(A) minus ({k}) mean ECR", points["A"] - points[k], lowered[k], 0.0)
        for k in lowered
    ]
    means = ", ".join(f"({k}) {_ecr_text(ci, points[k], samples[k])}" for k in points)
    paired = ", ".join(
        f"(A) minus ({k}) {_ecr_text(ci, points['A'] - points[k], lowered[k], '+')}"
        for k in lowered
    )
    return Finding(
        "AVIL lowers the embedding change ratio (ECR).",
        count_verdict([ci.outcome(lowered[k], 0.0) for k in lowered]),
        f"mean of A(ECR), V(ECR) under PGD: {means}; paired {paired} (lower: the difference's "
        "interval above the threshold 0)",
        tuple(numbers),
        "avil_lowers_ecr",
    )


def _ecr_text(ci: Intervals, value: float, samples: np.ndarray | None, sign: str = "") -> str:
    """``"0.6289 [0.5684, 0.6972]"``: an ECR with its interval, four decimals."""
    low, high = ci.interval(samples)
    bracket = f" [{low:{sign}.4f}, {high:{sign}.4f}]" if math.isfinite(low) else ""
    return f"{value:{sign}.4f}" + bracket


def defences_cost_little(ev: Evidence) -> Finding | None:
    """Every model's clean mAP is within :data:`CLEAN_COST_POINTS` of (A)'s (over every
    held-out clip): the paired interval of each model minus (A) lies above
    ``-CLEAN_COST_POINTS``."""
    clean_map, ci = ev.clean_map, ev.ci
    if "A" not in clean_map or len(clean_map) <= 1:
        return None
    others = [k for k in clean_map if k != "A"]
    cost = {k: diff(ci.clean(k), ci.clean("A")) for k in others}
    points = {k: 100 * (clean_map[k] - clean_map["A"]) for k in others}
    numbers: list[Number] = [
        ev.number(f"({k}) clean mAP", 100 * v, ci.clean(k)) for k, v in clean_map.items()
    ]
    numbers += [
        ev.number(f"({k}) minus (A) clean mAP", points[k], cost[k], -CLEAN_COST_POINTS)
        for k in others
    ]
    return Finding(
        f"Defences cost little clean mAP: within {CLEAN_COST_POINTS:g} points of (A) "
        "(Table 1: within 1.3).",
        count_verdict([ci.outcome(cost[k], -CLEAN_COST_POINTS) for k in others]),
        ", ".join(f"({k}) {ci.text(100 * v, ci.clean(k))}%" for k, v in clean_map.items())
        + " over every held-out clip; paired "
        + ", ".join(f"({k}) minus (A) {ci.text(points[k], cost[k], '+')}" for k in others)
        + f" points (threshold -{CLEAN_COST_POINTS:g}: little when the interval lies above it)",
        tuple(numbers),
        "defences_cost_little",
    )


#: the defence-side claims, in the summary's order.
MODEL_CLAIMS: tuple[Claim, ...] = (
    Comparison(
        "adversarial_training_helps", "Adversarial training raises robust mAP (B > A).", "B", ("A",)
    ),
    Comparison("avil_single_helps", "AVIL ({single}) raises robust mAP (C > A).", "C", ("A",)),
    Comparison("avil_pair_helps", "AVIL ({pair}) raises robust mAP (D > A).", "D", ("A",)),
    Comparison(
        "avil_beats_adversarial_training",
        "AVIL does better than adversarial training (D > B).",
        "D",
        ("B",),
    ),
    Comparison(
        "pair_beats_single",
        "The pair {pair} does better than the single term {single} (D > C).",
        "D",
        ("C",),
    ),
    Comparison(
        "avil_and_adversarial_training_complement",
        "AVIL and adversarial training complement each other (E > B and E > D).",
        "E",
        ("B", "D"),
    ),
    avil_lowers_ecr,
    defences_cost_little,
)
