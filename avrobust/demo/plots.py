"""The demo's plots, drawn by :mod:`avrobust.evaluation.reporting` (the functions the evaluation
report draws with): ``fig3_model_A.png`` (:meth:`EvaluationReport.plot_map` of (A)),
``fig3_models.png`` (every model under the audio-visual attack, with bootstrap bands) and
``ecr.png`` (ECR bars at the table's budget)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from ..evaluation import EvaluationReport
from ..evaluation.reporting import Curve, plot_ecr_bars, plot_map_curves, save_figure
from .config import DemoConfig
from .intervals import AV, BOOTSTRAP_LEVEL, Intervals

__all__ = ["ecr_figure", "models_figure", "write_plots"]

_RULE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
_MODALITY_HATCHES = {"audio": "", "visual": "///"}
_TRANSFER_STYLE = {"marker": "x", "linestyle": "--", "color": "gray"}


def write_plots(
    out: str,
    config: DemoConfig,
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
    *,
    intervals: Intervals | None = None,
) -> list[str]:
    """Write ``fig3_model_A.png``, ``fig3_models.png`` and ``ecr.png`` into ``out``.

    Returns:
        The paths written.

    Raises:
        ImportError: matplotlib is not installed.
    """
    files = []
    if "A" in reports:
        path = os.path.join(out, "fig3_model_A.png")
        reports["A"].plot_map(
            path, title=f"{config.model_label('A')} under white-box attacks (Fig. 3b/c)"
        )
        files.append(path)
    for name, fig in (
        ("fig3_models.png", models_figure(config, reports, extras, intervals)),
        ("ecr.png", ecr_figure(config, reports)),
    ):
        path = os.path.join(out, name)
        save_figure(fig, path, dpi=110)
        files.append(path)
    return files


def _curve(
    rep: EvaluationReport, rule: str, label: str, ci: Intervals, style: Mapping[str, Any]
) -> Curve | None:
    """One model's mAP (%) against ``eps_av`` (0: the attacked clips clean), with its band
    when every cell has per-clip scores."""
    cells = sorted(
        (c for c in rep.cells if c.rule == rule and c.attacked == AV), key=lambda c: c.eps
    )
    if not cells:
        return None
    xs = [0.0] + [c.eps for c in cells]
    ys = [100 * cells[0].map_clean] + [100 * c.map_adv for c in cells]
    bands = [ci.interval(ci.cell(rep, rule, cells[0].eps, which="clean"))]
    bands += [ci.interval(ci.cell(rep, rule, c.eps)) for c in cells]
    band = None
    if all(math.isfinite(low) for low, _ in bands):  # cells with per-clip scores
        low, high = zip(*bands)
        band = (list(low), list(high))
    return Curve(label, xs, ys, band, style)


def models_figure(
    config: DemoConfig,
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
    intervals: Intervals | None = None,
) -> Any:
    """Fig. 3a-like: every model (and the transfer attack) under the audio-visual PGD attack,
    each line named by its recipe, with its 95 % bootstrap band over the clips.

    Returns:
        The matplotlib ``Figure`` (not written).
    """
    ci = intervals or Intervals(config)
    rule = "pgd" if "pgd" in config.rules else config.rules[0]
    lines: list[tuple[EvaluationReport, str, Mapping[str, Any]]] = [
        (rep, config.model_label(k), {}) for k, rep in reports.items()
    ]
    if "transfer" in extras and rule == "pgd":
        lines.append((extras["transfer"], "(S) -> (A) transfer (black box)", _TRANSFER_STYLE))
    curves = [_curve(rep, rule, label, ci, style) for rep, label, style in lines]
    title = (
        f"audio-visual {rule.upper()} attack, every model "
        f"(bands: {100 * BOOTSTRAP_LEVEL:g} % bootstrap intervals over the clips)"
    )
    return plot_map_curves(
        {title: [c for c in curves if c is not None]},
        xlabel="eps_av",
        legend_size=7,
        panel_size=(6.5, 3.8),
    )


def ecr_figure(config: DemoConfig, reports: Mapping[str, EvaluationReport]) -> Any:
    """ECR bars at the table's budget: one colour per rule, one hatching per modality.

    Returns:
        The matplotlib ``Figure`` (not written).
    """
    series: dict[str, list[float]] = {}
    styles: dict[str, dict[str, Any]] = {}
    for j, r in enumerate(config.rules):
        for m, hatch in _MODALITY_HATCHES.items():
            label = f"{r.upper()} {m[0].upper()}(ECR)"
            series[label] = []
            for rep in reports.values():
                try:
                    series[label].append(rep.cell(r, config.table_eps, AV).ecr.get(m, 0.0))
                except KeyError:
                    series[label].append(0.0)
            colour = _RULE_COLOURS[j % len(_RULE_COLOURS)]
            styles[label] = {
                "color": colour,
                "hatch": hatch,
                "edgecolor": "black",
                "linewidth": 0.5,
            }
    return plot_ecr_bars(
        [f"({k})" for k in reports],
        series,
        styles=styles,
        title=f"ECR under audio-visual attacks, eps_av = {config.table_eps:g} "
        "(colour: rule; hatched: visual)",
        legend_columns=len(config.rules),
        headroom=1.35,
        figsize=(6.5, 3.6),
    )
