"""Tables and plots of evaluation results, written once for the report and the demo.

Text: :func:`text_table` (fixed-width columns), :func:`markdown_table`, :func:`format_interval`
(``"70.6 [62.1, 78.3]"``) and :func:`write_csv_rows`. Plots (matplotlib, ``pip install
'avrobust[plots]'``, imported only when a plot is drawn, through :func:`pyplot`):
:func:`plot_map_curves` (mAP against the budget, one panel per group of curves, optional bands) and
:func:`plot_ecr_bars` (grouped bars). Each plot function returns the figure; :func:`save_figure`
writes and closes it.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .results import CellResult

__all__ = [
    "Curve",
    "counted",
    "db",
    "format_interval",
    "markdown_table",
    "matplotlib_available",
    "plot_ecr_bars",
    "plot_map_curves",
    "psnr_head",
    "psnr_peaks_of",
    "psnr_value",
    "pyplot",
    "save_figure",
    "text_table",
    "unique",
    "write_csv_rows",
]

PathLike = str | os.PathLike[str]


# ----------------------------------------------------------------------------- text


def unique(values: Iterable[Any]) -> list[Any]:
    """``values`` without repeats, in first-seen order."""
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def counted(count: int, one: str, many: str) -> str:
    """``"1 class"``, ``"4 classes"``: a count with the word in its number.

    Example:
        >>> counted(1, "class", "classes"), counted(0, "clip", "clips")
        ('1 class', '0 clips')
    """
    return f"{count} {one if count == 1 else many}"


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Right-aligned fixed-width columns separated by two spaces, the head first."""
    lines = [list(head), *[list(r) for r in rows]]
    widths = [max(len(str(row[i])) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(row, widths)) for row in lines)


def markdown_table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown (GitHub) table: ``head`` as header, one line per row, columns padded."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(row: Sequence[Any]) -> str:
        return "| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in rows)])


def format_interval(
    value: float | None, interval: tuple[float, float] | None = None, *, sign: str = ""
) -> str:
    """``"70.6 [62.1, 78.3]"``: a value with its interval, one decimal.

    Args:
        value: the point estimate (``None`` or not finite: ``"-"``).
        interval: ``(low, high)``; ``None`` or not finite: the value alone, two decimals.
        sign: ``"+"`` to sign every number (differences), else ``""``; a number that rounds
            to zero is an unsigned ``0.0`` either way (never ``-0.0``).
    """
    if value is None or not math.isfinite(value):
        return "-"
    if interval is None or not all(math.isfinite(v) for v in interval):
        return _signed(value, sign, 2)
    low, high = interval
    return f"{_signed(value, sign, 1)} [{_signed(low, sign, 1)}, {_signed(high, sign, 1)}]"


def _signed(value: float, sign: str, digits: int) -> str:
    """``value`` with ``digits`` decimals; one that rounds to zero is an unsigned ``0.0`` (no
    ``-0.0`` nor ``+0.0``: zero has no direction)."""
    text = f"{value:{sign}.{digits}f}"
    return text.lstrip("+-") if float(text) == 0 else text


def write_csv_rows(path: PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write dict rows as CSV: the union of their keys (first-seen order) as header, ``None`` as ''."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})


# ----------------------------------------------------------------------------- plots


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (the plots need it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def pyplot() -> Any:
    """``matplotlib.pyplot`` with the file-only ``Agg`` backend.

    Raises:
        ImportError: matplotlib is not installed (the message says how to install it).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "plots need matplotlib, which is not installed: pip install 'avrobust[plots]' "
            "(or pip install matplotlib)"
        ) from exc
    return plt


def save_figure(fig: Any, path: PathLike, *, dpi: int = 110) -> Any:
    """Write ``fig`` to ``path`` (the format from its extension), close it and return it."""
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return fig


@dataclass(frozen=True)
class Curve:
    """One line of :func:`plot_map_curves`.

    Attributes:
        label: the legend entry.
        xs: the budgets (x values), e.g. ``[0, 1, 2, 5]`` with 0 the clean point.
        ys: the measure at each x (mAP in %).
        band: ``(low, high)`` per x, drawn as a shaded band (e.g. bootstrap intervals);
            ``None``: no band.
        style: extra matplotlib ``plot`` keywords (``marker``, ``linestyle``, ``color``, ...).
    """

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    band: tuple[Sequence[float], Sequence[float]] | None = None
    style: Mapping[str, Any] = field(default_factory=dict)


def plot_map_curves(
    panels: Mapping[str, Sequence[Curve]],
    *,
    xlabel: str = "eps",
    ylabel: str = "mAP (%)",
    title: str | None = None,
    ylim: tuple[float, float] | None = (0, 102),
    legend_size: float | None = None,
    panel_size: tuple[float, float] = (4.0, 3.4),
) -> Any:
    """mAP against the budget (Push-Pull Fig. 3): one panel per entry of ``panels``.

    Args:
        panels: ``{panel title: curves}``, drawn left to right.
        xlabel: the x axis' label (the budget's name).
        ylabel: the y axis' label.
        title: the figure's title (``None`` or ``""``: none).
        ylim: the y range (``None``: matplotlib's choice).
        legend_size: the legend's font size (``None``: matplotlib's default).
        panel_size: ``(width, height)`` of one panel in inches.

    Returns:
        The matplotlib ``Figure`` (not written: see :func:`save_figure`).
    """
    plt = pyplot()
    count = max(1, len(panels))
    fig, axes = plt.subplots(1, count, figsize=(panel_size[0] * count, panel_size[1]))
    for ax, (name, curves) in zip(np.atleast_1d(axes), panels.items()):
        for curve in curves:
            style = {"marker": "o", "label": curve.label, **curve.style}
            line = ax.plot(list(curve.xs), list(curve.ys), **style)[0]
            if curve.band is not None:
                low, high = curve.band
                ax.fill_between(
                    list(curve.xs), low, high, color=line.get_color(), alpha=0.12, linewidth=0
                )
        ax.set_title(name, fontsize=9 if len(name) > 40 else None)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=legend_size)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_ecr_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    ylabel: str = "embedding change ratio",
    title: str = "",
    legend_columns: int = 1,
    headroom: float = 1.0,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Grouped bars (ECR per modality and cell): one group per entry of ``groups``, one bar of
    each series in every group.

    Args:
        groups: the x tick labels, one per group.
        series: ``{legend label: one value per group}``.
        styles: ``{legend label: matplotlib bar keywords}`` (``color``, ``hatch``, ...).
        ylabel: the y axis' label.
        title: the axes' title.
        legend_columns: columns of the legend.
        headroom: the y axis reaches ``headroom`` times the tallest bar (room for the legend);
            1.0: matplotlib's choice.
        figsize: the figure size in inches (default: wide enough for the groups).

    Returns:
        The matplotlib ``Figure`` (not written: see :func:`save_figure`).
    """
    plt = pyplot()
    size = figsize or (max(5.0, 0.9 * len(groups) + 2), 3.4)
    fig, ax = plt.subplots(figsize=size)
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = np.arange(len(groups)) + i * width
        ax.bar(xs, list(values), width, label=label, **dict((styles or {}).get(label, {})))
    ax.set_xticks(np.arange(len(groups)) + width * (len(series) - 1) / 2)
    ax.set_xticklabels(list(groups), fontsize=8)
    if headroom != 1.0:
        tallest = max([1e-6] + [float(v) for values in series.values() for v in values])
        ax.set_ylim(0, headroom * tallest)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7 if legend_columns > 1 else None, ncol=legend_columns)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def db(value: float | None) -> str:
    """A value in dB with one decimal, ``"-"`` for none or a non-finite one."""
    return f"{value:.1f}" if value is not None and math.isfinite(value) else "-"


def psnr_peaks_of(cells: Sequence[CellResult], m: str) -> set[float]:
    """The PSNR peaks the cells used for modality ``m`` (those that recorded one)."""
    return {c.psnr_peak[m] for c in cells if m in c.psnr_db and m in c.psnr_peak}


def psnr_head(cells: Sequence[CellResult], m: str) -> str:
    """``"PSNR visual (R=255)"`` when every cell used one peak, else ``"PSNR visual"`` (each
    value then gives its own)."""
    peaks = psnr_peaks_of(cells, m)
    return f"PSNR {m} (R={peaks.pop():g})" if len(peaks) == 1 else f"PSNR {m}"


def psnr_value(cell: CellResult, m: str, *, mixed: bool) -> str:
    """A cell's PSNR, with its peak when the column has several (``mixed``)."""
    value = db(cell.psnr_db.get(m))
    peak = cell.psnr_peak.get(m)
    return f"{value} (R={peak:g})" if mixed and peak is not None else value
