"""The demo's tables (Markdown, built with :func:`avrobust.evaluation.reporting.markdown_table`):
Table 1, mAP per attacked modality set, mAP against the budget, and the text of ``table.md``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..evaluation.reporting import markdown_table
from .config import DemoConfig, ModelSpec
from .intervals import AV, WORST, Intervals, Report, accuracy_percent, bounds, fmt, map_percent

__all__ = [
    "floor_note",
    "mean_floor",
    "table_accuracy",
    "table_broken_by",
    "table_curve",
    "table_modalities",
    "table_one",
    "tables_text",
]


def _table_one_row(
    config: DemoConfig,
    spec: ModelSpec,
    clean_map: Mapping[str, float],
    report: Report,
    ci: Intervals,
) -> tuple[list[str], dict[str, Any]]:
    """One model's row of Table 1 and its CSV record."""
    eps = config.table_eps
    loss = "CE_all" + "".join(f" + {t.upper()}" for t in spec.avil_terms)
    adv = config.adv_rule.upper() if spec.adversarial else "no"
    clean = ci.clean(spec.key)
    row = [f"({spec.key})", loss, adv, ci.text(100 * clean_map[spec.key], clean)]
    record: dict[str, Any] = {
        "model": spec.key,
        "loss": loss,
        "adversarial_training": adv,
        "clean_map": 100 * clean_map[spec.key],
        **bounds("clean_map", ci, clean),
        "eps_av": eps,
    }
    for rule in config.rules:
        try:
            cell = report.cell(rule, eps, AV)
        except KeyError:
            row += ["-", "-", "-"]
            continue
        a, v = cell.ecr.get("audio"), cell.ecr.get("visual")
        samples = ci.cell(report, rule, eps)
        row += [fmt(a, 4), fmt(v, 4), ci.text(100 * cell.map_adv, samples)]
        record.update(
            {f"{rule}_ecr_audio": a, f"{rule}_ecr_visual": v, f"{rule}_map": 100 * cell.map_adv}
        )
        record.update(bounds(f"{rule}_map", ci, samples))
    row += _worst_columns(report, eps, ci, record)
    return row, record


def _worst_columns(report: Report, eps: float, ci: Intervals, record: dict[str, Any]) -> list[str]:
    """Table 1's worst-case mAP and frame accuracy (``"-"`` without the cell); the CSV record
    gains ``worst_case_map`` and ``worst_case_accuracy`` with their bounds."""
    value, samples = map_percent(report, WORST, eps), ci.cell(report, WORST, eps)
    acc, acc_samples = (
        accuracy_percent(report, WORST, eps),
        ci.cell(report, WORST, eps, measure="accuracy"),
    )
    record.update({"worst_case_map": value, **bounds("worst_case_map", ci, samples)})
    record.update({"worst_case_accuracy": acc, **bounds("worst_case_accuracy", ci, acc_samples)})
    return [
        "-" if value is None else ci.text(value, samples),
        "-" if acc is None else ci.text(acc, acc_samples),
    ]


def table_one(
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, Report],
    *,
    intervals: Intervals | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The Table-1-like table: per model, clean mAP and, per rule, A(ECR), V(ECR) and mAP under
    the audio-visual attack at ``eps_av = table_eps``, then the worst case over the strong
    ensemble (:class:`avrobust.evaluation.WorstCase`): its mAP and frame accuracy; each with
    its 95 % bootstrap interval over the clips (``"70.6 [62.1, 78.3]"``; the clean mAP's only
    when its scores were given).

    Args:
        config: the demo settings.
        clean_map: ``{model key: clean mAP in [0, 1]}``.
        reports: ``{model key: white-box grid report}``.
        intervals: the bootstrap behind the intervals (default: a fresh one for ``config``).

    Returns:
        ``(markdown, rows)`` with one dict per model (the CSV rows; ``*_low`` and ``*_high``
        are the interval's bounds, ``None`` without per-clip scores).
    """
    ci = intervals or Intervals(config)
    head = ["Model", "Training loss", "Adv. training", "Clean mAP (%)"]
    for rule in config.rules:
        head += [f"{rule.upper()} A(ECR)", f"{rule.upper()} V(ECR)", f"{rule.upper()} mAP (%)"]
    head += ["Worst-case mAP (%)", "Worst-case frame acc. (%)"]
    rows: list[list[str]] = []
    records: list[dict[str, Any]] = []
    for spec in config.models:
        if spec.key in reports:
            row, record = _table_one_row(config, spec, clean_map, reports[spec.key], ci)
            rows.append(row)
            records.append(record)
    return markdown_table(head, rows), records


def _short(modalities: str) -> str:
    """``"audio+visual"`` -> ``"AV"``, ``"audio"`` -> ``"A"``, ``"visual"`` -> ``"V"``."""
    return modalities.replace("audio+visual", "AV").replace("audio", "A").replace("visual", "V")


def table_modalities(
    config: DemoConfig,
    reports: Mapping[str, Report],
    *,
    intervals: Intervals | None = None,
) -> str:
    """mAP (%) per model under every rule × attacked modality set at ``eps_av = table_eps``,
    with 95 % bootstrap intervals over the clips."""
    ci = intervals or Intervals(config)
    head = ["Model"] + [f"{r.upper()} {_short(m)}" for r in config.rules for m in config.modalities]
    eps = config.table_eps
    rows = [
        [f"({k})"]
        + [
            ci.text(map_percent(rep, r, eps, m), ci.cell(rep, r, eps, m))
            for r in config.rules
            for m in config.modalities
        ]
        for k, rep in reports.items()
    ]
    return markdown_table(head, rows)


def table_accuracy(
    config: DemoConfig,
    reports: Mapping[str, Report],
    *,
    intervals: Intervals | None = None,
) -> str:
    """Frame accuracy (%) per model on the attacked clips, clean and under every audio-visual
    attack at ``eps_av = table_eps`` (the rules, then the worst case), with 95 % bootstrap
    intervals over the clips. Accuracy reads plainly where mAP does not: 0 % is every frame
    wrong, while mAP bottoms out near the share of speaking frames (:func:`mean_floor`)."""
    ci = intervals or Intervals(config)
    eps = config.table_eps
    rules = [*config.rules, WORST]
    head = ["Model", "Clean"] + [r.upper() if r != WORST else "Worst case" for r in rules]
    rows = []
    for k, rep in reports.items():
        first = next((c for c in rep.cells if c.eps == eps and c.attacked == AV), None)
        clean = "-"
        if first is not None:
            value = accuracy_percent(rep, first.rule, eps, which="clean")
            samples = ci.cell(rep, first.rule, eps, which="clean", measure="accuracy")
            clean = "-" if value is None else ci.text(value, samples)
        cells = [
            (accuracy_percent(rep, r, eps), ci.cell(rep, r, eps, measure="accuracy")) for r in rules
        ]
        rows.append([f"({k})", clean] + ["-" if v is None else ci.text(v, s) for v, s in cells])
    return markdown_table(head, rows)


def table_broken_by(config: DemoConfig, reports: Mapping[str, Report]) -> str:
    """Per model, the attacked clips each attack of the worst-case ensemble broke first (more
    than half of the frames wrong) at ``eps_av = table_eps``, and those none broke; ``""``
    when no report has a worst-case cell with its breakdown."""
    found = {}
    for k, rep in reports.items():
        try:
            cell = rep.cell(WORST, config.table_eps, AV)
        except KeyError:
            continue
        if cell.broken_by is not None:
            found[k] = (cell.broken_by, cell.samples)
    if not found:
        return ""
    names = list(next(iter(found.values()))[0])
    rows = [
        [f"({k})", *(str(counts.get(n, 0)) for n in names), str(total - sum(counts.values()))]
        for k, (counts, total) in found.items()
    ]
    return markdown_table(["Model", *names, "unbroken"], rows)


def mean_floor(reports: Mapping[str, Report]) -> float | None:
    """The share (%) of speaking frames among the attacked clips: the mAP of a constant score,
    where a detector that has lost all information lands (one that ranks every frame the
    wrong way scores below it); ``None`` without per-clip labels."""
    for rep in reports.values():
        for cell in rep.cells:
            if cell.per_clip:
                labels = [y for clip in cell.per_clip["labels"] for y in clip]
                return 100 * sum(labels) / len(labels) if labels else None
    return None


def table_curve(
    config: DemoConfig,
    reports: Mapping[str, Report],
    rule: str,
    *,
    intervals: Intervals | None = None,
    measure: str = "map",
) -> str:
    """mAP (%) (``measure="accuracy"``: frame accuracy, %) against ``eps_av`` under the
    audio-visual ``rule`` attack (``"worst-case"``: the worst case over the strong ensemble),
    one row per model, with 95 % bootstrap intervals (``eps_av = 0``: the attacked clips clean;
    ``"-"`` where the cell was not computed)."""
    ci = intervals or Intervals(config)
    head = ["Model", "eps_av = 0"] + [f"{e:g}" for e in config.eps_grid]
    rows = []
    for k, rep in reports.items():
        cells = [c for c in rep.cells if c.rule == rule and c.attacked == AV]
        clean = None
        if cells:
            first = cells[0]
            value = 100 * (first.map_clean if measure == "map" else first.accuracy_clean)
            clean = ci.text(value, ci.cell(rep, rule, first.eps, AV, "clean", measure))
        row = [f"({k})", clean or "-"]
        for e in config.eps_grid:
            v = (map_percent if measure == "map" else accuracy_percent)(rep, rule, e)
            row.append("-" if v is None else ci.text(v, ci.cell(rep, rule, e, measure=measure)))
        rows.append(row)
    return markdown_table(head, rows)


def floor_note(floor: float | None) -> str:
    """The paragraph under Table 1 on the mAP floor (``floor``: :func:`mean_floor`; ``None``:
    none): not 0 %, and not 50 % unless the clips speak in exactly half of their frames."""
    if floor is None:
        return ""
    chance = "not 0 %" if f"{floor:.2f}" == "50.00" else "not 0 or 50 %"
    return (
        f"On these clips {floor:.2f} % of the frames are speaking: a detector that has lost "
        f"every cue scores an mAP of about {floor:.2f} % (a constant score: the mAP floor), "
        f"{chance}, and one that ranks the frames the wrong way scores below that. Frame "
        "accuracy (0 %: every frame wrong) reads plainly.\n\n"
    )


def _worst_curves(config: DemoConfig, reports: Mapping[str, Report], ci: Intervals) -> str:
    """The worst case along the budget curve: its mAP and frame accuracy at every budget of the
    grid where it was computed (``""`` where no report has a worst-case cell)."""
    if not any(c.rule == WORST for rep in reports.values() for c in rep.cells):
        return ""
    return "".join(
        f"## {what} against eps_av, the worst case over the strong ensemble\n\n"
        f"{table_curve(config, reports, WORST, intervals=ci, measure=measure)}\n\n"
        for what, measure in (("mAP (%)", "map"), ("Frame accuracy (%)", "accuracy"))
    )


def _broken_by_text(config: DemoConfig, reports: Mapping[str, Report]) -> str:
    table = table_broken_by(config, reports)
    if not table:
        return ""
    runs = (
        ""
        if config.seeds == 1
        else f" The counts are over the {config.seeds} training runs: each run's attacked clips "
        "once."
    )
    return (
        f"## Worst case at eps_av = {config.table_eps:g}: clips broken first by each attack\n\n"
        f"{table}\n\n{ensemble_text(config)}{runs}\n\n"
    )


def ensemble_text(config: DemoConfig) -> str:
    """What the worst case runs, in words (the summary's and ``table.md``'s)."""
    runs = config.worst_case_restarts
    first = "APGD" if runs == 1 else f"{runs} runs of APGD (from other random starts)"
    curve = ""
    others = [f"{e:g}" for e in config.eps_grid if e != config.table_eps]
    if config.worst_curve_steps and others:
        curve = (
            f" At the other budgets ({', '.join(others)}) a lighter one draws the worst case "
            f"along the budget curve: one APGD run on the clamped margin, then APGD-CE, "
            f"{config.worst_curve_steps} steps each, then Square."
        )
    return (
        f"The worst case at eps_av = {config.table_eps:g} runs {first} on the per-frame margin "
        f"clamped at {config.worst_case_kappa:g} logit (frames already that wrong stop pulling, "
        f"so the steps go to the frames still right), then APGD with cross-entropy, "
        f"{config.worst_case_steps} steps each, then Square ({config.worst_case_queries} "
        "queries), each on the clips the earlier ones have not finished (every frame wrong); "
        "per clip it keeps the candidate with the most frames wrong (`avrobust.default_ensemble` "
        f"with `kappa`).{curve}"
    )


def tables_text(
    config: DemoConfig,
    table: str,
    reports: Mapping[str, Report],
    extras: Mapping[str, Report],
    ci: Intervals,
) -> str:
    """The Markdown of ``table.md``: Table 1, mAP per attacked set, the curves, the extras."""
    eps = config.table_eps
    note = floor_note(mean_floor(reports))
    text = (
        f"## Table 1 (demo): audio-visual attacks at eps_av = {eps:g}\n\n{table}\n\n{note}"
        f"## Frame accuracy (%) under audio-visual attacks at eps_av = {eps:g}\n\n"
        f"{table_accuracy(config, reports, intervals=ci)}\n\n"
        + _broken_by_text(config, reports)
        + f"## mAP (%) by attacked modality at eps_av = {eps:g}\n\n"
        f"{table_modalities(config, reports, intervals=ci)}\n\n"
        + "".join(
            f"## mAP (%) against eps_av, audio-visual {r.upper()}\n\n"
            f"{table_curve(config, reports, r, intervals=ci)}\n\n"
            for r in config.rules
        )
        + _worst_curves(config, reports, ci)
    )
    if "inference" in extras:
        inf = extras["inference"]
        text += (
            f"Inference-aware attack on (A) at eps_av = {eps:g} (Fig. 4): "
            + ", ".join(
                f"{r.upper()} {ci.text(map_percent(inf, r, eps), ci.cell(inf, r, eps))}%"
                for r in config.rules
            )
            + ".\n\n"
        )
    if "transfer" in extras:
        tr = extras["transfer"]
        text += (
            f"Transfer attack, PGD crafted on {config.model_label('S')}, scored on (A) "
            "(Fig. 3a): "
            + ", ".join(
                f"eps_av {e:g}: {ci.text(map_percent(tr, 'pgd', e), ci.cell(tr, 'pgd', e))}%"
                for e in config.eps_grid
            )
            + ".\n\n"
        )
    return text
