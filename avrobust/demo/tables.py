"""The demo's tables (Markdown, built with :func:`avrobust.evaluation.reporting.markdown_table`):
Table 1, mAP per attacked modality set, mAP against the budget, and the text of ``table.md``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..evaluation import EvaluationReport
from ..evaluation.reporting import markdown_table
from .config import DemoConfig, ModelSpec
from .intervals import AV, Intervals, bounds, fmt, map_percent

__all__ = ["table_curve", "table_modalities", "table_one", "tables_text"]


def _table_one_row(
    config: DemoConfig,
    spec: ModelSpec,
    clean_map: Mapping[str, float],
    report: EvaluationReport,
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
    return row, record


def table_one(
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, EvaluationReport],
    *,
    intervals: Intervals | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The Table-1-like table: per model, clean mAP and, per rule, A(ECR), V(ECR) and mAP under
    the audio-visual attack at ``eps_av = table_eps``; each mAP with its 95 % bootstrap interval
    over the clips (``"70.6 [62.1, 78.3]"``; the clean mAP's only when its scores were given).

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
    reports: Mapping[str, EvaluationReport],
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


def table_curve(
    config: DemoConfig,
    reports: Mapping[str, EvaluationReport],
    rule: str,
    *,
    intervals: Intervals | None = None,
) -> str:
    """mAP (%) against ``eps_av`` under the audio-visual ``rule`` attack, one row per model, with
    95 % bootstrap intervals over the clips (``eps_av = 0``: the attacked clips' clean mAP)."""
    ci = intervals or Intervals(config)
    head = ["Model", "eps_av = 0"] + [f"{e:g}" for e in config.eps_grid]
    rows = []
    for k, rep in reports.items():
        cells = [c for c in rep.cells if c.rule == rule and c.attacked == AV]
        clean = None
        if cells:
            clean = ci.text(100 * cells[0].map_clean, ci.cell(rep, rule, cells[0].eps, AV, "clean"))
        rows.append(
            [f"({k})", clean or "-"]
            + [ci.text(map_percent(rep, rule, e), ci.cell(rep, rule, e)) for e in config.eps_grid]
        )
    return markdown_table(head, rows)


def tables_text(
    config: DemoConfig,
    table: str,
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
    ci: Intervals,
) -> str:
    """The Markdown of ``table.md``: Table 1, mAP per attacked set, the curves, the extras."""
    eps = config.table_eps
    text = (
        f"### Table 1 (demo): audio-visual attacks at eps_av = {eps:g}\n\n{table}\n\n"
        f"### mAP (%) by attacked modality at eps_av = {eps:g}\n\n"
        f"{table_modalities(config, reports, intervals=ci)}\n\n"
        + "".join(
            f"### mAP (%) against eps_av, audio-visual {r.upper()}\n\n"
            f"{table_curve(config, reports, r, intervals=ci)}\n\n"
            for r in config.rules
        )
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
            "Transfer attack, PGD crafted on (C), scored on (A) (Fig. 3a): "
            + ", ".join(
                f"eps_av {e:g}: {ci.text(map_percent(tr, 'pgd', e), ci.cell(tr, 'pgd', e))}%"
                for e in config.eps_grid
            )
            + ".\n\n"
        )
    return text
