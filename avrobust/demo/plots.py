"""The demo's plots, drawn with :mod:`avrobust.evaluation.reporting` (the helpers the evaluation
report draws with): ``fig3_model_A.png`` (mAP of (A) against the budget under every rule, one
panel per attacked modality set), ``fig3_models.png`` (every model under the audio-visual attack,
one panel each, with bootstrap bands) and ``ecr.png`` (ECR bars at the table's budget, with
their intervals). Every mAP panel marks the mAP floor (the share of speaking frames,
:func:`~avrobust.demo.tables.mean_floor`) and draws the worst case over the strong ensemble as
markers (joined, with their intervals) at the budgets where it was computed: every budget of the
grid in the demo, none in between nor at 0."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from ..evaluation.reporting import Curve, plot_ecr_bars, pyplot, save_figure
from .config import DemoConfig
from .intervals import AV, BOOTSTRAP_LEVEL, WORST, Intervals, Report
from .tables import mean_floor

__all__ = ["EPS_LABEL", "ecr_figure", "model_figure", "models_figure", "write_plots"]

#: the x axis of the mAP plots, with the units of the budget
EPS_LABEL = "eps_av (audio eps = eps_av·1e-4, video eps = eps_av·0.1 pixel levels)"
_RULE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
_MODALITY_HATCHES = {"audio": "", "visual": "///"}
_TRANSFER_STYLE = {"marker": "x", "linestyle": "--", "color": "gray"}
_WORST_STYLE = {"marker": "*", "markersize": 10, "linestyle": "-", "color": "black"}


def write_plots(
    out: str,
    config: DemoConfig,
    reports: Mapping[str, Report],
    extras: Mapping[str, Report],
    *,
    intervals: Intervals | None = None,
) -> list[str]:
    """Write ``fig3_model_A.png``, ``fig3_models.png`` and ``ecr.png`` into ``out``.

    Returns:
        The paths written.

    Raises:
        ImportError: matplotlib is not installed.
    """
    figures = []
    if "A" in reports:
        figures.append(("fig3_model_A.png", model_figure(config, reports, "A", intervals)))
    figures.append(("fig3_models.png", models_figure(config, reports, extras, intervals)))
    figures.append(("ecr.png", ecr_figure(config, reports, intervals)))
    files = []
    for name, fig in figures:
        files.append(os.path.join(out, name))
        save_figure(fig, files[-1], dpi=110)
    return files


def _curve(
    rep: Report,
    rule: str,
    label: str,
    ci: Intervals,
    style: Mapping[str, Any],
    *,
    attacked: str = AV,
    band: bool = True,
) -> Curve | None:
    """One mAP (%) curve against ``eps_av`` (0: the attacked clips clean), with its band when
    asked and every cell has per-clip scores."""
    cells = sorted(
        (c for c in rep.cells if c.rule == rule and c.attacked == attacked), key=lambda c: c.eps
    )
    if not cells:
        return None
    xs = [0.0] + [c.eps for c in cells]
    ys = [100 * cells[0].map_clean] + [100 * c.map_adv for c in cells]
    if not band:
        return Curve(label, xs, ys, None, style)
    bands = [ci.interval(ci.cell(rep, rule, cells[0].eps, attacked, which="clean"))]
    bands += [ci.interval(ci.cell(rep, rule, c.eps, attacked)) for c in cells]
    lows_highs = None
    if all(math.isfinite(low) for low, _ in bands):  # cells with per-clip scores
        low, high = zip(*bands)
        lows_highs = (list(low), list(high))
    return Curve(label, xs, ys, lows_highs, style)


def _worst(rep: Report, ci: Intervals) -> list[tuple[float, float, tuple[float, float]]]:
    """``(eps, mAP %, interval)`` of each worst-case cell (audio-visual): the budgets where the
    ensemble was run, and only those."""
    cells = sorted((c for c in rep.cells if c.rule == WORST and c.attacked == AV),
                   key=lambda c: c.eps)  # fmt: skip
    return [(c.eps, 100 * c.map_adv, ci.interval(ci.cell(rep, WORST, c.eps))) for c in cells]


def _draw(ax: Any, curves: Sequence[Curve], worst: Sequence[Any], floor: float | None) -> None:
    """One mAP panel: the curves (with their bands), the worst case as joined markers (with their
    intervals) at the budgets where it was computed, the mAP floor as a labelled line."""
    for curve in curves:
        line = ax.plot(list(curve.xs), list(curve.ys), **{"marker": "o", "label": curve.label,
                                                         **curve.style})[0]  # fmt: skip
        if curve.band is not None:
            ax.fill_between(list(curve.xs), *curve.band, color=line.get_color(), alpha=0.15,
                            linewidth=0)  # fmt: skip
    if worst:
        xs, ys, spans = zip(*worst)
        ax.plot(list(xs), list(ys), label="worst case (strong ensemble)", **_WORST_STYLE)
        finite = [(x, lo, hi) for x, (lo, hi) in zip(xs, spans) if math.isfinite(lo)]
        if finite:
            ax.vlines(*zip(*finite), color="black", linewidth=1)
    if floor is not None:
        ax.axhline(floor, color="dimgray", linestyle=":", linewidth=1.2,
                   label=f"mAP floor {floor:.1f} % (share of speaking frames)")  # fmt: skip
    ax.set_xlabel(EPS_LABEL, fontsize=7)
    ax.set_ylabel("mAP (%)")
    ax.set_ylim(0, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def _grid(count: int, columns: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    """A figure of ``count`` panels, ``columns`` a row (the spare ones hidden)."""
    rows = max(1, math.ceil(count / columns))
    cols = max(1, min(columns, count))
    fig, axes = pyplot().subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows),
                                  squeeze=False)  # fmt: skip
    flat = list(axes.ravel())
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def model_figure(
    config: DemoConfig,
    reports: Mapping[str, Report],
    key: str = "A",
    intervals: Intervals | None = None,
) -> Any:
    """Fig. 3b/c-like: model ``key`` under every rule, one panel per attacked modality set;
    the worst case at the budget where it was computed (audio-visual panel).

    Returns:
        The matplotlib ``Figure`` (not written).
    """
    ci, rep, floor = intervals or Intervals(config), reports[key], mean_floor(reports)
    sets = list(dict.fromkeys(c.attacked for c in rep.cells if c.rule != WORST))
    fig, axes = _grid(len(sets), 3, (4.2, 3.6))
    for ax, attacked in zip(axes, sets):
        curves = [
            _curve(rep, r, r.upper(), ci, {}, attacked=attacked, band=False) for r in config.rules
        ]
        worst = _worst(rep, ci) if attacked == AV else []
        _draw(ax, [c for c in curves if c is not None], worst, floor)
        ax.set_title(f"attacked: {attacked}", fontsize=9)
    fig.suptitle(f"{config.model_label(key)} under white-box attacks (Fig. 3b/c)", fontsize=10)
    fig.tight_layout()
    return fig


def models_figure(
    config: DemoConfig,
    reports: Mapping[str, Report],
    extras: Mapping[str, Report],
    intervals: Intervals | None = None,
) -> Any:
    """Fig. 3a-like small multiples: one panel per model under the audio-visual PGD attack (the
    first rule without PGD), with its bootstrap band, its worst case and the mAP floor; the
    transfer attack (S) -> (A) in (A)'s panel.

    Returns:
        The matplotlib ``Figure`` (not written).
    """
    ci, floor = intervals or Intervals(config), mean_floor(reports)
    rule = "pgd" if "pgd" in config.rules else config.rules[0]
    fig, axes = _grid(len(reports), 3, (4.2, 3.4))
    for ax, (key, rep) in zip(axes, reports.items()):
        curves = [_curve(rep, rule, f"{rule.upper()}, white box", ci, {})]
        if key == "A" and "transfer" in extras and rule == "pgd":
            curves.append(_curve(extras["transfer"], rule, "(S) -> (A) transfer (black box)",
                                 ci, _TRANSFER_STYLE))  # fmt: skip
        _draw(ax, [c for c in curves if c is not None], _worst(rep, ci), floor)
        ax.set_title(textwrap.fill(config.model_label(key), 45), fontsize=8)
    fig.suptitle(
        f"audio-visual {rule.upper()} attack, every model (bands: {100 * BOOTSTRAP_LEVEL:g} % "
        "bootstrap intervals over the clips)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def ecr_figure(
    config: DemoConfig,
    reports: Mapping[str, Report],
    intervals: Intervals | None = None,
) -> Any:
    """ECR bars at the table's budget: one colour per rule, one hatching per modality, each bar
    with its bootstrap interval over the clips; the models named by their recipes.

    Returns:
        The matplotlib ``Figure`` (not written).
    """
    ci = intervals or Intervals(config)
    series: dict[str, list[float]] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    styles: dict[str, dict[str, Any]] = {}
    for j, r in enumerate(config.rules):
        for m, hatch in _MODALITY_HATCHES.items():
            label = f"{r.upper()} {m[0].upper()}(ECR)"
            series[label], spans[label] = [], []
            for rep in reports.values():
                try:
                    cell = rep.cell(r, config.table_eps, AV)
                except KeyError:
                    series[label].append(0.0)
                    spans[label].append((math.nan, math.nan))
                    continue
                series[label].append(cell.ecr.get(m, 0.0))
                spans[label].append(ci.interval(ci.ecr(cell, m) if m in cell.ecr else None))
            colour = _RULE_COLOURS[j % len(_RULE_COLOURS)]
            styles[label] = {"color": colour, "hatch": hatch, "edgecolor": "black",
                             "linewidth": 0.5}  # fmt: skip
    fig = plot_ecr_bars(
        [textwrap.fill(config.model_label(k), 18) for k in reports],
        series,
        styles=styles,
        ylabel="embedding change ratio (ECR)",
        title=f"ECR under audio-visual attacks, eps_av = {config.table_eps:g} "
        f"(colour: rule; hatched: visual; bars: {100 * BOOTSTRAP_LEVEL:g} % bootstrap intervals)",
        legend_columns=len(config.rules),
        headroom=1.35,
        figsize=(max(6.5, 1.6 * len(reports) + 1), 4.2),
    )
    ax = fig.axes[0]
    for container, label in zip(ax.containers, series):
        _error_bars(ax, container.patches, series[label], spans[label])
    ax.set_xlabel("model (training recipe)")
    fig.tight_layout()
    return fig


def _error_bars(
    ax: Any, patches: Sequence[Any], values: Sequence[float], spans: Sequence[tuple[float, float]]
) -> None:
    """Each bar's interval as a vertical line through its centre (none without an interval)."""
    shown = [(p.get_x() + p.get_width() / 2, v, s) for p, v, s in zip(patches, values, spans)
             if math.isfinite(s[0])]  # fmt: skip
    if not shown:
        return
    xs, _, bounds = zip(*shown)
    ax.vlines(xs, [b[0] for b in bounds], [b[1] for b in bounds], color="black", linewidth=0.8,
              label="_intervals")  # fmt: skip
