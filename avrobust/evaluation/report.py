"""What an evaluation returns: :class:`EvaluationReport` (results, access, rows, save and load).

Its text table and plots are drawn by :mod:`~avrobust.evaluation.reporting` (shared with the
demo); its rows are one flat dict per cell (the CSV); :meth:`EvaluationReport.from_results_file`
reads a results file back through :mod:`~avrobust.evaluation.store`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._checks import check_bool, check_number, describe
from ..metrics.ri import RobustnessRow
from .grid import parse_modality_set
from .reporting import (
    Curve,
    counted,
    db,
    matplotlib_available,
    plot_ecr_bars,
    plot_map_curves,
    psnr_head,
    psnr_peaks_of,
    psnr_value,
    save_figure,
    text_table,
    unique,
    write_csv_rows,
)
from .results import CellResult, cell_key, json_ready
from .store import read_results

__all__ = ["EvaluationReport"]

PathLike = str | os.PathLike[str]


@dataclass
class EvaluationReport:
    """What :func:`~avrobust.evaluation.evaluate` returns: the clean baseline and one
    :class:`~avrobust.evaluation.CellResult` per cell.

    Attributes:
        config: the grid and settings (rules, eps values, modality sets, steps, objective, ...).
        clean: clean measures: ``map_all`` (mAP over every clip of the data, in [0, 1]),
            ``map_selected`` (over the selected clips), ``samples_total``, ``samples_correct``,
            ``samples_selected``, ``positives_selected`` (clips of class 1 among them, e.g.
            speaking).
        selection: the indices of the attacked clips in the data source.
        cells: the finished cells, in grid order.
        name: what was evaluated, for titles (:func:`~avrobust.evaluation.evaluate`'s
            ``name``, default the model's class name; e.g. ``"A-1f2e.model on synthetic:64"``;
            ``""``, as in a report read from a results file: the model's weights' fingerprint).
        class_names: the classes' names in index order, for the titles' words
            (``Measures.class_names``; ``None``: neutral words, "12 of class 1").
    """

    config: dict[str, Any]
    clean: dict[str, Any]
    selection: list[int]
    cells: list[CellResult] = field(default_factory=list)
    name: str = ""
    class_names: tuple[str, ...] | None = None

    # ---------------------------------------------------------------- access
    def cell(self, rule: str, eps: float, modalities: str | Sequence[str]) -> CellResult:
        """The cell of ``rule`` at ``eps`` attacking ``modalities`` (``"audio+visual"`` or a tuple).

        Raises:
            KeyError: no such cell (the message lists them). TypeError: a ``rule`` or ``eps``
                that is not a name or a number.
        """
        if not isinstance(rule, str):
            raise TypeError(f"rule: expected a rule name such as 'pgd', got {describe(rule)}")
        mods = parse_modality_set(modalities, "modalities")
        key = cell_key(rule.lower(), _eps(eps), mods)
        for cell in self.cells:
            if cell.key == key:
                return cell
        raise KeyError(f"no cell {key!r}; the report has {[c.key for c in self.cells]}")

    def robustness_row(
        self,
        rule: str,
        eps: float,
        audio: str | None = None,
        visual: str | None = None,
        *,
        measure: str | None = None,
    ) -> RobustnessRow:
        """The row of Tian & Xu's robustness table at one rule and budget, in %.

        ``clean`` is the clean measure of the attacked clips (of the joint cell: the same clips
        in every cell); ``audio``, ``visual`` and ``audiovisual`` are the measure under the
        attack on the first modality only, the second only and both. Compare two models' rows
        with :meth:`RobustnessRow.ri <avrobust.metrics.ri.RobustnessRow.ri>` or print several
        with :func:`avrobust.metrics.ri.robustness_table`. Tian & Xu report top-1 accuracy, the
        measure of a multi-class task (e.g. event classification); for a binary task
        (active-speaker detection) the report's measure is frame mAP.

        Args:
            rule: the rule's name, e.g. ``"pgd"``.
            eps: the budget, one of the grid's.
            audio: the modality of the row's ``audio`` column; with ``visual``, default
                (``None``): the two modalities of the only two-modality set of the grid at
                this rule and eps, in the order it names them (``"audio+visual"``: ``audio``
                and ``visual``; no modality name is assumed).
            visual: the modality of the row's ``visual`` column (see ``audio``).
            measure: ``"ap"`` (mAP) or ``"accuracy"`` (top-1; 0.5 threshold for a binary task);
                default ``None``: the cells' own (:attr:`CellResult.measure`).

        Raises:
            KeyError: the grid lacks one of the three cells (the message lists those it has).
            ValueError: only one of ``audio`` and ``visual`` given, or none and not exactly one
                two-modality set to take them from; a ``measure`` the cells lack (naming it).
        """
        if (audio is None) != (visual is None):
            raise ValueError(
                f"audio, visual: pass both modality names or neither, got {audio!r}, {visual!r}"
            )
        if audio is None or visual is None:
            audio, visual = self._pair(rule, eps)
        try:
            joint = self.cell(rule, eps, (audio, visual))
        except KeyError:  # the grid names the joint set the other way round
            joint = self.cell(rule, eps, (visual, audio))
        clean, attacked = joint.values(measure)
        return RobustnessRow(
            clean=100 * clean,
            audio=100 * self.cell(rule, eps, (audio,)).values(measure)[1],
            visual=100 * self.cell(rule, eps, (visual,)).values(measure)[1],
            audiovisual=100 * attacked,
        )

    def _pair(self, rule: str, eps: float) -> tuple[str, str]:
        at = (rule.lower(), float(eps))
        pairs = unique(c.modalities for c in self.cells if (c.rule, c.eps) == at)
        pairs = [p for p in pairs if len(p) == 2]
        if len(pairs) != 1:
            raise ValueError(
                f"audio, visual: cannot tell the two modalities of the row at {rule} {eps:g}: "
                f"the grid has {len(pairs)} two-modality sets there ({pairs}); name them, e.g. "
                "robustness_row(rule, eps, 'audio', 'visual')"
            )
        return pairs[0][0], pairs[0][1]

    @property
    def measure(self) -> str:
        """The cells' headline measure, ``"ap"`` (mAP) or ``"accuracy"`` (top-1)."""
        return "accuracy" if any(c.measure == "accuracy" for c in self.cells) else "ap"

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per cell (the CSV rows): mAP in % (``map_*``; ``accuracy_*`` for a
        report measured by accuracy), ECR, SNR/PSNR per modality and, when the report has
        worst-case cells, ``broken_by_<attack>`` (clips each attack of the ensemble broke;
        ``None`` for the other cells)."""
        modalities = sorted({m for c in self.cells for m in c.ecr})
        attacked = sorted({m for c in self.cells for m in c.modalities})
        attacks = unique(a for c in self.cells for a in c.broken_by or {})
        name = "map" if self.measure == "ap" else "accuracy"
        out = []
        for c in self.cells:
            clean, adv = c.values(self.measure)
            row: dict[str, Any] = {
                "rule": c.rule,
                "eps": c.eps,
                "attacked": c.attacked,
                f"{name}_clean": 100 * clean,
                f"{name}_adv": 100 * adv,
                f"{name}_drop": 100 * (clean - adv),
                "success_rate": c.success_rate,
                "frame_error_rate": c.frame_error_rate,
            }
            for m in modalities:
                row[f"ecr_{m}"] = c.ecr.get(m)
            for m in attacked:
                row[f"snr_db_{m}"] = c.snr_db.get(m)
                row[f"psnr_db_{m}"] = c.psnr_db.get(m)
                row[f"psnr_peak_{m}"] = c.psnr_peak.get(m)
                row[f"linf_{m}"] = c.linf.get(m)
            for a in attacks:
                row[f"broken_by_{a}"] = None if c.broken_by is None else c.broken_by.get(a)
            row.update(samples=c.samples, frames=c.frames, seconds=c.seconds)
            out.append(row)
        return out

    def table(self) -> str:
        """The report as a fixed-width text table, one line per cell: mAP in %, success rate, ECR
        per modality, and per attacked modality its SNR and, where it was measured (a budget
        with finite bounds), its PSNR, in dB. Every number is in :meth:`rows`."""
        modalities = sorted({m for c in self.cells for m in c.ecr})
        attacked = unique(m for c in self.cells for m in c.modalities)
        peaked = [m for m in attacked if any(m in c.psnr_db for c in self.cells)]
        short = "mAP" if self.measure == "ap" else "acc"
        head = ["rule", "eps", "attacked", f"{short} clean", f"{short} adv", "success"]
        head += [f"ECR {m}" for m in modalities]
        head += [f"SNR {m}" for m in attacked] + [psnr_head(self.cells, m) for m in peaked]
        lines = []
        for c in self.cells:
            before, after = c.values(self.measure)
            line = [c.rule, f"{c.eps:g}", c.attacked, f"{100 * before:.2f}"]
            line += [f"{100 * after:.2f}", f"{100 * c.success_rate:.1f}%"]
            line += [f"{c.ecr[m]:.4f}" if m in c.ecr else "-" for m in modalities]
            line += [db(c.snr_db.get(m)) for m in attacked]
            line += [psnr_value(c, m, mixed=len(psnr_peaks_of(self.cells, m)) > 1) for m in peaked]
            lines.append(line)
        clean = self.clean
        measure = "mAP" if self.measure == "ap" else "top-1 accuracy"
        key = "map_all" if self.measure == "ap" else "accuracy_all"
        title = (
            f"clean {measure} {100 * clean.get(key, float('nan')):.2f}% over "
            f"{clean.get('samples_total')} clips; attacked {clean.get('samples_selected')} clips "
            f"({self._attacked_kinds(None)}), objective "
            f"{self.config.get('objective')!r}"
            + (", transfer from a surrogate" if self.config.get("surrogate") else "")
            + "; SNR and PSNR in dB (PSNR peak R in the input's units)"
        )
        return title + "\n" + text_table(head, lines)

    def _attacked_kinds(self, missing: Any = "?") -> str:
        """``"12 speaking"`` or ``"12 of class 1"`` (binary task: the word of class 1 from
        ``Measures.class_names``, else neutral) or ``"4 classes"`` (multi-class) of the attacked
        clips; ``missing`` stands for an unknown count."""
        if "classes_selected" in self.clean:
            return counted(len(self.clean["classes_selected"]), "class", "classes")
        count = self.clean.get("positives_selected", missing)
        names = self.class_names
        return f"{count} {names[1]}" if names else f"{count} of class 1"

    def to_csv(self, path: PathLike) -> None:
        """Write :meth:`rows` as CSV (header row first)."""
        write_csv_rows(path, self.rows())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        whole = {"config": self.config, "clean": self.clean, "selection": self.selection}
        return json_ready({**whole, "cells": [c.to_dict() for c in self.cells]})  # type: ignore[no-any-return]

    def to_json(self, path: PathLike) -> None:
        """Write :meth:`to_dict` as indented JSON."""
        with open(path, "w") as handle:
            json.dump(self.to_dict(), handle, indent=2)
            handle.write("\n")

    def save(self, directory: PathLike, name: str = "report", *, plots: bool = True) -> list[str]:
        """Write ``<name>.csv``, ``<name>.json``, ``<name>.txt`` and, with matplotlib installed and
        ``plots``, ``<name>_map.png`` and ``<name>_ecr.png`` into ``directory`` (created).

        Returns:
            The paths written.

        Raises:
            TypeError: ``plots`` not a bool. ValueError: a ``name`` with folders in it.
        """
        check_bool(plots, "plots")
        if not isinstance(name, str) or not name or os.path.basename(name) != name:
            raise ValueError(
                f"name: expected a file name without folders (in directory), got {name!r}"
            )
        os.makedirs(directory, exist_ok=True)
        base = os.path.join(os.fspath(directory), name)
        self.to_csv(base + ".csv")
        self.to_json(base + ".json")
        with open(base + ".txt", "w") as handle:
            handle.write(self.table() + "\n")
        written = [base + ".csv", base + ".json", base + ".txt"]
        if plots and matplotlib_available():
            self.plot_map(base + "_map.png")
            self.plot_ecr(base + "_ecr.png")
            written += [base + "_map.png", base + "_ecr.png"]
        return written

    @classmethod
    def from_results_file(cls, path: PathLike) -> EvaluationReport:
        """Read a results file written by :func:`~avrobust.evaluation.evaluate`: every finished
        cell in it (of every grid run into it), in the order they were written; ``config``
        gives that grid.

        Raises:
            FileNotFoundError: no file. ValueError: not an avrobust results file, or a line
                that is not as evaluate wrote it (the message gives the file and line).
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a results file path, got {describe(path)}")
        stored = read_results(path)
        if stored.meta is None:
            raise ValueError(f"{path}: not an avrobust results file (no 'meta' line found)")
        cells = [s.cell for s in stored.cells.values()]
        budget_repr: dict[str, dict[str, str]] = {}
        for s in stored.cells.values():
            budget_repr.setdefault(repr(s.cell.eps), {}).update(s.defines["budgets"])
        grid = {
            "rules": unique(c.rule for c in cells),
            "rule_repr": unique(s.defines["rule"] for s in stored.cells.values()),
            "eps": unique(c.eps for c in cells),
            "budget_repr": budget_repr,
            "modalities": unique(c.attacked for c in cells),
        }
        meta = stored.meta
        return cls({**meta["config"], **grid}, meta["clean"], list(meta["selection"]), cells)

    def plot_map(self, path: PathLike, *, title: str | None = None) -> Any:
        """Fig.-3-like plot: mAP (%; top-1 accuracy for a report measured by accuracy) against
        eps, one panel per attacked-modality set, one line per rule, eps 0 = the clean value of
        the selected clips. Needs matplotlib (``pip install 'avrobust[plots]'``).

        Args:
            path: the image file to write (PNG).
            title: the figure's title; default: what was evaluated (:attr:`name`, else the
                model's weight fingerprint), on which clips, with which attacker.

        Returns:
            The matplotlib ``Figure`` (already written and closed).
        """
        panels: dict[str, list[Curve]] = {}
        for attacked in unique(c.attacked for c in self.cells):
            curves = panels.setdefault(f"attacked: {attacked}", [])
            for rule in unique(c.rule for c in self.cells):
                cells = sorted(
                    (c for c in self.cells if c.attacked == attacked and c.rule == rule),
                    key=lambda c: c.eps,
                )
                if cells:
                    xs = [0.0] + [c.eps for c in cells]
                    ys = [100 * cells[0].values(self.measure)[0]]
                    ys += [100 * c.values(self.measure)[1] for c in cells]
                    curves.append(Curve(rule.upper(), xs, ys))
        fig = plot_map_curves(
            panels,
            xlabel=str(self.config.get("eps_name", "eps")),
            ylabel="mAP (%)" if self.measure == "ap" else "top-1 accuracy (%)",
            title=title if title is not None else self._title(),
        )
        return save_figure(fig, path)

    def _title(self) -> str:
        """``"<name or model fingerprint>: 24 of 192 clips attacked (12 speaking), ..."``."""
        config, clean = self.config, self.clean
        model = self.name or f"model {str(config.get('model') or '?')[:8]}"
        text = f"{model}: {clean.get('samples_selected', '?')} of {clean.get('samples_total', '?')}"
        text += f" clips attacked ({self._attacked_kinds()})"
        text += f", {config.get('objective', '?')} objective, {config.get('steps', '?')} steps"
        return text + (", crafted on a surrogate" if config.get("surrogate") else "")

    def plot_ecr(
        self, path: PathLike, *, eps: float | None = None, title: str | None = None
    ) -> Any:
        """ECR bars per modality for every rule × attacked set at ``eps`` (default: the largest).
        Needs matplotlib.

        Args:
            path: the image file to write (PNG).
            eps: the budget whose cells to show (default: the largest of the grid).
            title: the axes' title; default: the budget and what was evaluated (as
                :meth:`plot_map`).

        Returns:
            The matplotlib ``Figure`` (already written and closed).

        Raises:
            ValueError: no cell (at ``eps``).
        """
        if not self.cells:
            raise ValueError("plot_ecr: the report has no cells")
        at = max(c.eps for c in self.cells) if eps is None else _eps(eps)
        cells = [c for c in self.cells if c.eps == at]
        if not cells:
            raise ValueError(
                f"eps: no cell at {at:g}; the grid has {unique(c.eps for c in self.cells)}"
            )
        modalities = sorted({m for c in cells for m in c.ecr})
        eps_name = self.config.get("eps_name", "eps")
        fig = plot_ecr_bars(
            [f"{c.rule.upper()}\n{c.attacked}" for c in cells],
            {f"{m} ECR": [c.ecr.get(m, 0.0) for c in cells] for m in modalities},
            title=title or f"ECR at {eps_name} = {at:g}\n{self._title()}",
        )
        return save_figure(fig, path)


def _eps(eps: Any) -> float:
    """A budget value given to a lookup (a string of a number too, as a command line gives)."""
    if isinstance(eps, str) and eps.strip().lstrip("+-").replace(".", "", 1).isdigit():
        eps = float(eps)
    return check_number(eps, "eps")
