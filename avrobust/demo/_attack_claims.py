"""The attack-side claims of Push-Pull, checked on the undefended model (A): how much white-box
attacks take off, which modality hurts most, the budget curve, and the extras (inference-aware
and transferred attacks). Each claim is one function of :class:`~.verdicts.Evidence`."""

from __future__ import annotations

import itertools

import numpy as np

from .intervals import AV, Report, diff, map_percent
from .verdicts import (
    BARELY_CHANGES_POINTS,
    SERIOUS_LOSS_POINTS,
    TRANSFER_HARM_SHARE,
    Claim,
    Evidence,
    Finding,
    count_verdict,
)

__all__ = ["ATTACK_CLAIMS", "EXTRA_CLAIMS"]


def white_box_degrades(ev: Evidence) -> Finding | None:
    """(A) loses more than :data:`SERIOUS_LOSS_POINTS` of mAP under every audio-visual attack."""
    a, ci = ev.reports.get("A"), ev.ci
    if a is None:
        return None
    eps, outcomes, text, numbers = ev.config.table_eps, [], [], []
    for r in ev.config.rules:
        adv, clean = ci.cell(a, r, eps), ci.cell(a, r, eps, which="clean")
        value = map_percent(a, r, eps)
        if value is not None:
            drop = 100 * a.cell(r, eps, AV).map_clean - value
            outcomes.append(ci.outcome(diff(clean, adv), SERIOUS_LOSS_POINTS))
            text.append(f"{r.upper()} {ci.text(drop, diff(clean, adv))}")
            numbers.append(
                ev.number(f"{r.upper()} mAP lost", drop, diff(clean, adv), SERIOUS_LOSS_POINTS)
            )
    return Finding(
        "White-box attacks seriously degrade the undefended model (A).",
        count_verdict(outcomes),
        ", ".join(text) + f" points of mAP lost at eps_av={eps:g} (audio-visual; serious: "
        f"more than {SERIOUS_LOSS_POINTS:g} points)",
        tuple(numbers),
        "white_box_degrades",
    )


def _single_modality_pgd(ev: Evidence) -> tuple[Report, float, float] | None:
    """(A), its PGD audio-only and visual-only mAP (%), when the grid has them."""
    a, config = ev.reports.get("A"), ev.config
    if a is None or "pgd" not in config.rules:
        return None
    if not {"audio", "visual", AV} <= set(config.modalities):
        return None
    va, vv = (map_percent(a, "pgd", config.table_eps, m) for m in ("audio", "visual"))
    return None if va is None or vv is None else (a, va, vv)


def audio_only_barely(ev: Evidence) -> Finding | None:
    """A PGD audio-only attack takes off fewer than :data:`BARELY_CHANGES_POINTS` of mAP."""
    found = _single_modality_pgd(ev)
    if found is None:
        return None
    (a, va, _), eps, ci = found, ev.config.table_eps, ev.ci
    pa = ci.cell(a, "pgd", eps, "audio")
    clean = ci.cell(a, "pgd", eps, "audio", which="clean")
    lost = 100 * a.cell("pgd", eps, "audio").map_clean - va
    return Finding(
        "Audio-only attacks barely change mAP.",
        ci.outcome(diff(pa, clean), -BARELY_CHANGES_POINTS),
        f"PGD audio-only mAP {ci.text(va, pa)}% at eps_av={eps:g}, "
        f"{ci.text(lost, diff(clean, pa))} points lost (barely: fewer than "
        f"{BARELY_CHANGES_POINTS:g})",
        (ev.number("PGD audio-only mAP change", -lost, diff(pa, clean), -BARELY_CHANGES_POINTS),),
        "audio_only_barely",
    )


def visual_beats_audio(ev: Evidence) -> Finding | None:
    """PGD on the video alone takes off more than on the audio alone, by ``tie_margin``."""
    found = _single_modality_pgd(ev)
    if found is None:
        return None
    (a, va, vv), eps, ci = found, ev.config.table_eps, ev.ci
    pa, pv = (ci.cell(a, "pgd", eps, m) for m in ("audio", "visual"))
    margin = ev.config.tie_margin
    return Finding(
        "Visual-only attacks do more harm than audio-only ones.",
        ci.outcome(diff(pa, pv), margin),
        f"PGD visual-only {ci.text(vv, pv)}% vs audio-only {ci.text(va, pa)}%, "
        f"audio minus visual {ci.text(va - vv, diff(pa, pv), '+')} points",
        (ev.number("PGD audio-only minus visual-only mAP", va - vv, diff(pa, pv), margin),),
        "visual_beats_audio",
    )


def joint_at_least_as_strong(ev: Evidence) -> Finding | None:
    """The audio-visual attack leaves no more mAP than the stronger single-modality one
    (within ``tie_margin``)."""
    a, ci = ev.reports.get("A"), ev.ci
    if a is None:
        return None
    eps, outcomes, text, numbers = ev.config.table_eps, [], [], []
    for r in ev.config.rules:
        values = [map_percent(a, r, eps, m) for m in ("audio", "visual", AV)]
        if any(v is None for v in values):
            continue
        va, vv, vj = (float(v or 0.0) for v in values)
        sa, sv, sj = (ci.cell(a, r, eps, m) for m in ("audio", "visual", AV))
        best = None if sa is None or sv is None else np.minimum(sa, sv)
        margin = diff(best, sj)  # > 0: the joint attack did more harm
        outcomes.append(ci.outcome(margin, -ev.config.tie_margin))
        text.append(
            f"{r.upper()} {ci.text(vj, sj)}% vs best single {ci.text(min(va, vv), best)}% "
            f"({ci.text(min(va, vv) - vj, margin, '+')} points)"
        )
        numbers.append(
            ev.number(
                f"{r.upper()} best single minus joint mAP",
                min(va, vv) - vj,
                margin,
                -ev.config.tie_margin,
            )
        )
    return Finding(
        "Audio-visual attacks do at least as much harm as the stronger single-modality one.",
        count_verdict(outcomes),
        "; ".join(text) or "-",
        tuple(numbers),
        "joint_at_least_as_strong",
    )


def falls_with_budget(ev: Evidence) -> Finding | None:
    """(A)'s mAP never rises by more than ``tie_margin`` from one budget to the next, and falls
    by more than that overall."""
    a, ci, config = ev.reports.get("A"), ev.ci, ev.config
    if a is None:
        return None
    rule = "pgd" if "pgd" in config.rules else config.rules[0]
    cells = sorted((c for c in a.cells if c.rule == rule and c.attacked == AV), key=lambda c: c.eps)
    claim = "mAP falls as the budget eps_av grows."
    if len(cells) < 2:
        return Finding(
            claim, "not tested", "fewer than two budgets in the grid", (), "falls_with_budget"
        )
    values = [100 * cells[0].map_clean] + [100 * c.map_adv for c in cells]
    samples = [ci.cell(a, rule, cells[0].eps, which="clean")]
    samples += [ci.cell(a, rule, c.eps) for c in cells]
    outcomes = [ci.outcome(diff(x, y), -config.tie_margin) for x, y in itertools.pairwise(samples)]
    outcomes.append(ci.outcome(diff(samples[0], samples[-1]), config.tie_margin))
    budgets = [0.0] + [c.eps for c in cells]
    return Finding(
        claim,
        count_verdict(outcomes),
        f"{rule.upper()} audio-visual: "
        + " -> ".join(ci.text(v, s) for v, s in zip(values, samples))
        + " (eps_av 0, "
        + ", ".join(f"{c.eps:g}" for c in cells)
        + ")",
        tuple(ev.number(f"mAP at eps_av={e:g}", v, s) for e, v, s in zip(budgets, values, samples)),
        "falls_with_budget",
    )


def training_beats_inference(ev: Evidence) -> Finding | None:
    """Training-aware attacks leave no more mAP than inference-aware ones (within
    ``tie_margin``; Fig. 4)."""
    a, ci, config = ev.reports.get("A"), ev.ci, ev.config
    if a is None or "inference" not in ev.extras:
        return None
    eps, inference = config.table_eps, ev.extras["inference"]
    outcomes, text, numbers = [], [], []
    for r in config.rules:
        train_map, inf_map = map_percent(a, r, eps), map_percent(inference, r, eps)
        if train_map is None or inf_map is None:
            continue
        st, si = ci.cell(a, r, eps), ci.cell(inference, r, eps)
        outcomes.append(ci.outcome(diff(si, st), -config.tie_margin))
        text.append(
            f"{r.upper()} training-aware {ci.text(train_map, st)}% vs inference-aware "
            f"{ci.text(inf_map, si)}%"
        )
        numbers.append(
            ev.number(
                f"{r.upper()} inference- minus training-aware mAP",
                inf_map - train_map,
                diff(si, st),
                -config.tie_margin,
            )
        )
    return Finding(
        "Training-aware attacks do at least as much harm as inference-aware ones (Fig. 4).",
        count_verdict(outcomes),
        "; ".join(text),
        tuple(numbers),
        "training_beats_inference",
    )


def transfer_barely_works(ev: Evidence) -> Finding | None:
    """PGD crafted on the surrogate (S) and scored on (A) takes off at most :data:`TRANSFER_HARM_SHARE` of
    what the white-box PGD takes off (Fig. 3a)."""
    a, ci, config = ev.reports.get("A"), ev.ci, ev.config
    if a is None or "transfer" not in ev.extras or "pgd" not in config.rules:
        return None
    eps, transfer = config.table_eps, ev.extras["transfer"]
    white, black = map_percent(a, "pgd", eps), map_percent(transfer, "pgd", eps)
    if white is None or black is None:
        return None
    sw, sb = ci.cell(a, "pgd", eps), ci.cell(transfer, "pgd", eps)
    clean = ci.cell(a, "pgd", eps, which="clean")  # the same clips, clean
    spare = None
    if sw is not None and sb is not None and clean is not None:
        spare = TRANSFER_HARM_SHARE * (clean - sw) - (clean - sb)
    share = "half" if TRANSFER_HARM_SHARE == 0.5 else f"{TRANSFER_HARM_SHARE:g} of"
    return Finding(
        "Black-box (transferred) attacks barely work; white-box ones do (Fig. 3a).",
        ci.outcome(spare, 0.0),
        f"PGD at eps_av={eps:g}: crafted on {ev.config.model_label('S')}, scored on (A) "
        f"{ci.text(black, sb)}% "
        f"vs white-box {ci.text(white, sw)}% (barely: at most {share} the white-box "
        "loss of mAP)",
        (ev.number("transfer mAP", black, sb), ev.number("white-box mAP", white, sw)),
        "transfer_barely_works",
    )


#: the claims about attacks on (A), in the summary's order.
ATTACK_CLAIMS: tuple[Claim, ...] = (
    white_box_degrades,
    audio_only_barely,
    visual_beats_audio,
    joint_at_least_as_strong,
    falls_with_budget,
)
#: the claims about the extra attacks on (A), last in the summary.
EXTRA_CLAIMS: tuple[Claim, ...] = (training_beats_inference, transfer_barely_works)
