"""The defence-side claims of Push-Pull: models compared pairwise under attack (:class:`Comparison`),
the embedding change ratio, and the cost in clean mAP. Each claim is one callable of
:class:`~.verdicts.Evidence`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .intervals import AV, WORST, accuracy_percent, diff, map_percent
from .verdicts import (
    CLEAN_COST_POINTS,
    Claim,
    Evidence,
    Finding,
    Number,
    compare_verdict,
    count_verdict,
)

__all__ = ["MODEL_CLAIMS", "Comparison"]


@dataclass(frozen=True)
class Comparison:
    """The claim "model ``better`` keeps more mAP under attack than each of ``worse``", by more
    than ``tie_margin`` points at ``table_eps``: under the worst case over the strong ensemble
    when the run has it (:attr:`Evidence.judged_rules`), else under every rule of the grid.

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
        eps, intervals, text, numbers = config.table_eps, [], [], []
        for r in ev.judged_rules:
            mb, sb = (
                map_percent(reports[self.better], r, eps),
                ci.cell(reports[self.better], r, eps),
            )
            parts = []
            for w in self.worse:
                mw, sw = map_percent(reports[w], r, eps), ci.cell(reports[w], r, eps)
                if mb is None or mw is None:
                    continue
                intervals.append(ci.interval(diff(sb, sw)))
                numbers.append(
                    ev.number(
                        f"{_label(r)} gain of ({self.better}) over ({w})",
                        mb - mw,
                        diff(sb, sw),
                        config.tie_margin,
                    )
                )
                parts.append(
                    f"({w}) {ci.text(mw, sw)}%, gain {ci.text(mb - mw, diff(sb, sw), '+')}"
                    + _accuracy_note(ev, r, self.better, w, numbers)
                )
            if parts:
                text.append(
                    f"{_label(r)}: ({self.better}) {ci.text(mb, sb)}% vs " + "; ".join(parts)
                )
        return Finding(
            self.claim.format(single=_terms(config.avil_single), pair=_terms(config.avil_pair)),
            compare_verdict(intervals, config.tie_margin),
            "; ".join(text),
            tuple(numbers),
            self.name,
        )


def _accuracy_note(ev: Evidence, rule: str, better: str, worse: str, numbers: list) -> str:
    """Under the worst case: the frame accuracy gain of ``better`` over ``worse``, reported
    beside the mAP (a :class:`Number` without threshold: the verdict rests on mAP, the paper's
    measure). mAP saturates at the share of speaking frames once the scores carry no ranking,
    and frame accuracy still separates models there."""
    if rule != WORST:
        return ""
    ci, eps, reports = ev.ci, ev.config.table_eps, ev.reports
    ab, aw = (accuracy_percent(reports[k], rule, eps) for k in (better, worse))
    if ab is None or aw is None:
        return ""
    sb, sw = (ci.cell(reports[k], rule, eps, measure="accuracy") for k in (better, worse))
    gain = diff(sb, sw)
    numbers.append(ev.number(f"worst case frame accuracy gain of ({better}) over ({worse})",
                             ab - aw, gain))  # fmt: skip
    return (
        f" (frame accuracy {ci.text(ab, sb)}% vs {ci.text(aw, sw)}%, {ci.text(ab - aw, gain, '+')})"
    )


def _label(rule: str) -> str:
    """``"PGD"``, or ``"worst case"`` for the ensemble's cells."""
    return "worst case" if rule == WORST else rule.upper()


def _terms(terms: Sequence[str]) -> str:
    return " + ".join(t.upper() for t in terms)


def avil_lowers_ecr(ev: Evidence) -> Finding | None:
    """The mean of A(ECR) and V(ECR) under PGD at ``table_eps`` is lower for (C) and (D) than
    for (A)."""
    if not {"A", "C", "D"} <= set(ev.reports) or "pgd" not in ev.config.rules:
        return None
    ci = ev.ci
    cells = {k: ev.reports[k].cell("pgd", ev.config.table_eps, AV) for k in ("A", "C", "D")}
    points = {k: sum(c.ecr.values()) / 2 for k, c in cells.items()}
    samples: dict[str, np.ndarray | None] = {}
    for k, c in cells.items():
        parts = [ci.boot.ecr(c, m) for m in c.ecr]
        found = [p for p in parts if p is not None]
        samples[k] = np.stack(found).sum(0) / 2 if found and len(found) == len(parts) else None
    outcomes = [ci.outcome(diff(samples["A"], samples[k]), 0.0) for k in ("C", "D")]
    text = []
    for k, v in points.items():
        low, high = ci.interval(samples[k])
        text.append(f"({k}) {v:.4f}" + (f" [{low:.4f}, {high:.4f}]" if math.isfinite(low) else ""))
    return Finding(
        "AVIL lowers the embedding change ratio (ECR).",
        count_verdict(outcomes),
        "mean of A(ECR), V(ECR) under PGD: " + ", ".join(text),
        tuple(ev.number(f"({k}) mean ECR", points[k], samples[k]) for k in points),
        "avil_lowers_ecr",
    )


def defences_cost_little(ev: Evidence) -> Finding | None:
    """Every model's clean mAP is within :data:`CLEAN_COST_POINTS` of (A)'s (over every
    held-out clip)."""
    clean_map, ci = ev.clean_map, ev.ci
    if "A" not in clean_map or len(clean_map) <= 1:
        return None
    others = [k for k in clean_map if k != "A"]
    outcomes = [ci.outcome(diff(ci.clean(k), ci.clean("A")), -CLEAN_COST_POINTS) for k in others]
    numbers: list[Number] = [
        ev.number(f"({k}) clean mAP", 100 * v, ci.clean(k)) for k, v in clean_map.items()
    ]
    return Finding(
        f"Defences cost little clean mAP: within {CLEAN_COST_POINTS:g} points of (A) "
        "(Table 1: within 1.3).",
        count_verdict(outcomes),
        ", ".join(f"({k}) {ci.text(100 * v, ci.clean(k))}%" for k, v in clean_map.items())
        + " over every held-out clip",
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
