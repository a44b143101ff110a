"""The robustness grid: attacks × budgets × attacked modalities, with a resumable results file.

:func:`evaluate` runs every cell of the grid ``rules × eps × modality sets`` against a model over a
data source and reports, per cell, frame mAP (clean and adversarial, as the AVA evaluation
computes it), the embedding change ratio (ECR) per modality, the attack success rate and how
perceptible the perturbation is (audio SNR, video PSNR, L∞ size), as in Push-Pull §4.

As in the paper, the attacked set can be restricted to correctly predicted clips, balanced between
speaking and not speaking (§4.1: 225 + 225); the perturbation can be crafted on a separate
surrogate model (black-box transfer, Fig. 3a); and the attack can maximise the training loss or
the inference loss (Fig. 4).

Every finished cell is appended to a JSON-lines results file at once; a run interrupted at any
point resumes from that file without recomputing (or losing) a finished cell, and gives the same
numbers as an uninterrupted run (each cell's random start is seeded by the cell itself, not by
the order of the run). Another grid over the same file reuses the cells they share. The file is
never rewritten in place (a temporary file and a rename), is locked while a run uses it, and is
refused when it belongs to another model, other data, other settings or code, or when a line of
it was edited.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import numbers
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ._checks import check_bool, check_choice, check_int, check_number, describe
from ._resultsfile import (
    ResultsLock,
    atomic_write,
    callable_identity,
    check_results_path,
    clip_digests,
    data_digest,
    dump_record,
    read_records,
    record_fields,
    verify_check,
)
from ._types import AVOutput
from .adapters import as_avoutput
from .attacks import Budget, MultimodalAttack, preserve_model_state, push_pull_budgets
from .attacks.rules import StepRule, as_rule
from .metrics import ava_average_precision, max_abs, psnr, snr_db
from .metrics.functional import ecr_per_frame
from .metrics.ri import RobustnessRow

__all__ = [
    "CellResult",
    "EvaluationReport",
    "balanced_subset",
    "correct_samples",
    "evaluate",
]

PathLike = str | os.PathLike[str]
Batch = tuple[dict[str, Tensor], Tensor]
ScoreFn = Callable[[AVOutput], Tensor]
BudgetFn = Callable[[float], Mapping[str, Budget]]

# version of the results-file layout: 1 had the grid in the meta line and no checks; 2 gives
# each cell line what defines the cell, the meta line the selected data's fingerprint, and
# every line a checksum
_FORMAT = 2
_GRID_KEYS = ("rules", "rule_repr", "eps", "budget_repr", "modalities")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CellResult:
    """The measures of one grid cell (one rule, one budget, one set of attacked modalities).

    Attributes:
        rule: the attack rule's name (``"bim"``, ``"mim"``, ``"pgd"``, ...).
        eps: the budget parameter (``eps_av`` of Push-Pull with the default budgets).
        modalities: the attacked modalities, e.g. ``("audio", "visual")``.
        map_clean: frame mAP in [0, 1] of the target model on the clean selected clips.
        map_adv: frame mAP in [0, 1] on the adversarial clips.
        success_rate: fraction of clips where the attack succeeded (more than half of the
            frames predicted wrongly at a 0.5 threshold), in [0, 1].
        frame_error_rate: fraction of frames predicted wrongly under attack, in [0, 1].
        ecr: ``{modality: ECR}`` embedding change ratio (unitless, >= 0; lower = the embeddings
            moved less).
        snr_db: ``{attacked modality: mean SNR in dB}`` (signal-to-perturbation ratio; higher = less
            perceptible).
        psnr_db: ``{attacked modality: mean PSNR in dB}`` for bounded modalities (peak = the
            width of the budget's bounds, 255 for pixels).
        linf: ``{attacked modality: largest absolute change}`` in the input's units.
        samples: clips attacked.
        frames: frames scored.
        seconds: wall time of the cell.
        per_clip: what a bootstrap over the clips needs (:mod:`avrobust.bootstrap`), per
            attacked clip in the order of the report's ``selection``: ``"labels"``,
            ``"clean"`` and ``"adv"`` (one list per clip of its frame labels, clean scores and
            adversarial scores; one element for clip labels; scores at float32 precision) and
            ``"ecr"`` (``{modality: [mean ECR of each clip]}``). ``None`` for cells read from a
            results file written before this field existed.
    """

    rule: str
    eps: float
    modalities: tuple[str, ...]
    map_clean: float
    map_adv: float
    success_rate: float
    frame_error_rate: float
    ecr: dict[str, float] = field(default_factory=dict)
    snr_db: dict[str, float] = field(default_factory=dict)
    psnr_db: dict[str, float] = field(default_factory=dict)
    linf: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    frames: int = 0
    seconds: float = 0.0
    per_clip: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        """``"rule|eps|modality+modality"``, the cell's identity in the results file."""
        return _cell_key(self.rule, self.eps, self.modalities)

    @property
    def attacked(self) -> str:
        """The attacked modalities joined with ``+``, e.g. ``"audio+visual"``."""
        return "+".join(self.modalities)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become ``None``)."""
        return _json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellResult:
        """Inverse of :meth:`to_dict`."""
        values = dict(data)
        values["modalities"] = tuple(values["modalities"])
        for name in ("snr_db", "psnr_db"):
            values[name] = {k: math.inf if v is None else v for k, v in values[name].items()}
        return cls(**values)


def _cell_key(rule: str, eps: float, modalities: Sequence[str]) -> str:
    return f"{rule}|{eps!r}|{'+'.join(modalities)}"


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


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


@dataclass
class EvaluationReport:
    """What :func:`evaluate` returns: the clean baseline and one :class:`CellResult` per cell.

    Attributes:
        config: the grid and settings (rules, eps values, modality sets, steps, objective, ...).
        clean: clean measures: ``map_all`` (mAP over every clip of the data, in [0, 1]),
            ``map_selected`` (over the selected clips), ``samples_total``, ``samples_correct``,
            ``samples_selected``, ``positives_selected`` (speaking clips among them).
        selection: the indices of the attacked clips in the data source.
        cells: the finished cells, in grid order.
        name: what was evaluated, for plot titles (e.g. ``"A-1f2e.model on synthetic:64"``;
            ``""``: the titles name the model by its weights' fingerprint).
    """

    config: dict[str, Any]
    clean: dict[str, Any]
    selection: list[int]
    cells: list[CellResult] = field(default_factory=list)
    name: str = ""

    # ---------------------------------------------------------------- access
    def cell(self, rule: str, eps: float, modalities: str | Sequence[str]) -> CellResult:
        """The cell of ``rule`` at ``eps`` attacking ``modalities`` (``"audio+visual"`` or a tuple).

        Raises:
            KeyError: no such cell; the message lists the cells there are.
        """
        mods = _parse_modality_set(modalities, "modalities")
        key = _cell_key(rule.lower(), float(eps), mods)
        for cell in self.cells:
            if cell.key == key:
                return cell
        raise KeyError(f"no cell {key!r}; the report has {[c.key for c in self.cells]}")

    def robustness_row(
        self, rule: str, eps: float, audio: str = "audio", visual: str = "visual"
    ) -> RobustnessRow:
        """The row of Tian & Xu's robustness table at one rule and budget, in mAP %.

        ``clean`` is the clean mAP of the attacked clips (of the joint cell: the same clips in
        every cell); ``audio``, ``visual`` and ``audiovisual`` are the mAP under the attack on
        the audio only, the video only and both. Compare two models' rows with
        :meth:`RobustnessRow.ri <avrobust.metrics.ri.RobustnessRow.ri>` or print several with
        :func:`avrobust.metrics.ri.robustness_table`. Tian & Xu report accuracy; for
        active-speaker detection the report's measure is frame mAP.

        Args:
            rule: the rule's name, e.g. ``"pgd"``.
            eps: the budget, one of the grid's.
            audio: the name of the audio modality in this report.
            visual: the name of the visual modality in this report.

        Raises:
            KeyError: the grid lacks one of the three cells (the message lists those it has).
        """
        joint = self.cell(rule, eps, (audio, visual))
        return RobustnessRow(
            clean=100 * joint.map_clean,
            audio=100 * self.cell(rule, eps, (audio,)).map_adv,
            visual=100 * self.cell(rule, eps, (visual,)).map_adv,
            audiovisual=100 * joint.map_adv,
        )

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per cell (the CSV rows): mAP in %, ECR, SNR/PSNR per modality."""
        modalities = sorted({m for c in self.cells for m in c.ecr})
        attacked = sorted({m for c in self.cells for m in c.modalities})
        out = []
        for c in self.cells:
            row: dict[str, Any] = {
                "rule": c.rule,
                "eps": c.eps,
                "attacked": c.attacked,
                "map_clean": 100 * c.map_clean,
                "map_adv": 100 * c.map_adv,
                "map_drop": 100 * (c.map_clean - c.map_adv),
                "success_rate": c.success_rate,
                "frame_error_rate": c.frame_error_rate,
            }
            for m in modalities:
                row[f"ecr_{m}"] = c.ecr.get(m)
            for m in attacked:
                row[f"snr_db_{m}"] = c.snr_db.get(m)
                row[f"psnr_db_{m}"] = c.psnr_db.get(m)
                row[f"linf_{m}"] = c.linf.get(m)
            row.update(samples=c.samples, frames=c.frames, seconds=c.seconds)
            out.append(row)
        return out

    def table(self) -> str:
        """The report as a fixed-width text table, one line per cell: mAP in %, success rate, ECR
        per modality, the audio SNR (modalities named ``*audio*``) and the PSNR of the others, in
        dB (the lowest when several are attacked). Every number is in :meth:`rows`."""
        modalities = sorted({m for c in self.cells for m in c.ecr})
        head = ["rule", "eps", "attacked", "mAP clean", "mAP adv", "success"]
        head += [f"ECR {m}" for m in modalities] + ["SNR dB", "PSNR dB"]
        lines = [head]
        for c in self.cells:
            # SNR for audio streams, PSNR for the others (pixels): the units people read
            snr = [v for m, v in c.snr_db.items() if "audio" in m and math.isfinite(v)]
            peak = [v for m, v in c.psnr_db.items() if "audio" not in m and math.isfinite(v)]
            line = [
                c.rule,
                f"{c.eps:g}",
                c.attacked,
                f"{100 * c.map_clean:.2f}",
                f"{100 * c.map_adv:.2f}",
                f"{100 * c.success_rate:.1f}%",
            ]
            line += [f"{c.ecr[m]:.4f}" if m in c.ecr else "-" for m in modalities]
            line += [f"{min(snr):.1f}" if snr else "-", f"{min(peak):.1f}" if peak else "-"]
            lines.append(line)
        widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
        clean = self.clean
        title = (
            f"clean mAP {100 * clean.get('map_all', float('nan')):.2f}% over "
            f"{clean.get('samples_total')} clips; attacked {clean.get('samples_selected')} clips "
            f"({clean.get('positives_selected')} speaking), objective "
            f"{self.config.get('objective')!r}"
            + (", transfer from a surrogate" if self.config.get("surrogate") else "")
        )
        text = [title] + ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in lines]
        return "\n".join(text)

    # ---------------------------------------------------------------- saving
    def to_csv(self, path: PathLike) -> None:
        """Write :meth:`rows` as CSV (header row first)."""
        write_csv_rows(path, self.rows())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole report."""
        return _json_ready(
            {
                "config": self.config,
                "clean": self.clean,
                "selection": self.selection,
                "cells": [c.to_dict() for c in self.cells],
            }
        )

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
        """
        os.makedirs(directory, exist_ok=True)
        base = os.path.join(os.fspath(directory), name)
        self.to_csv(base + ".csv")
        self.to_json(base + ".json")
        with open(base + ".txt", "w") as handle:
            handle.write(self.table() + "\n")
        written = [base + ".csv", base + ".json", base + ".txt"]
        if plots and _matplotlib_available():
            self.plot_map(base + "_map.png")
            self.plot_ecr(base + "_ecr.png")
            written += [base + "_map.png", base + "_ecr.png"]
        return written

    @classmethod
    def from_results_file(cls, path: PathLike) -> EvaluationReport:
        """Read a results file written by :func:`evaluate`: every finished cell in it (of every
        grid run into it), in the order they were written; ``config`` gives that grid.

        Raises:
            FileNotFoundError: no file. ValueError: not an avrobust results file, or a line
                that is not as evaluate wrote it (the message gives the file and line).
        """
        stored = _read_results(os.fspath(path))
        if stored.meta is None:
            raise ValueError(f"{path}: not an avrobust results file (no 'meta' line found)")
        cells = [s.cell for s in stored.cells.values()]
        budget_repr: dict[str, dict[str, str]] = {}
        for s in stored.cells.values():
            budget_repr.setdefault(repr(s.cell.eps), {}).update(s.defines["budgets"])
        grid = {
            "rules": _unique([c.rule for c in cells]),
            "rule_repr": _unique([s.defines["rule"] for s in stored.cells.values()]),
            "eps": _unique([c.eps for c in cells]),
            "budget_repr": budget_repr,
            "modalities": _unique([c.attacked for c in cells]),
        }
        meta = stored.meta
        return cls({**meta["config"], **grid}, meta["clean"], list(meta["selection"]), cells)

    # ---------------------------------------------------------------- plots
    def plot_map(self, path: PathLike, *, title: str | None = None) -> Any:
        """Fig.-3-like plot: mAP (%) against eps, one panel per attacked-modality set, one line
        per rule, eps 0 = the clean mAP of the selected clips. Needs matplotlib
        (``pip install 'avrobust[plots]'``).

        Args:
            path: the image file to write (PNG).
            title: the figure's title; default: what was evaluated (:attr:`name`, else the
                model's weight fingerprint), on which clips, with which attacker.

        Returns:
            The matplotlib ``Figure`` (already written and closed).
        """
        plt = _pyplot()
        title = title if title is not None else self._title()
        sets = _unique([c.attacked for c in self.cells])
        rules = _unique([c.rule for c in self.cells])
        fig, axes = plt.subplots(1, max(1, len(sets)), figsize=(4 * max(1, len(sets)), 3.4))
        axes = np.atleast_1d(axes)
        for ax, attacked in zip(axes, sets):
            for rule in rules:
                cells = sorted(
                    (c for c in self.cells if c.attacked == attacked and c.rule == rule),
                    key=lambda c: c.eps,
                )
                if not cells:
                    continue
                xs = [0.0] + [c.eps for c in cells]
                ys = [100 * cells[0].map_clean] + [100 * c.map_adv for c in cells]
                ax.plot(xs, ys, marker="o", label=rule.upper())
            ax.set_title(f"attacked: {attacked}")
            ax.set_xlabel(str(self.config.get("eps_name", "eps")))
            ax.set_ylabel("mAP (%)")
            ax.set_ylim(0, 102)
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return fig

    def _title(self) -> str:
        """``"<name or model fingerprint>: 24 of 192 clips attacked (12 speaking), ..."``."""
        config, clean = self.config, self.clean
        model = self.name or f"model {str(config.get('model') or '?')[:8]}"
        text = f"{model}: {clean.get('samples_selected', '?')} of {clean.get('samples_total', '?')}"
        text += f" clips attacked ({clean.get('positives_selected', '?')} speaking)"
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
        """
        plt = _pyplot()
        if not self.cells:
            raise ValueError("plot_ecr: the report has no cells")
        at = max(c.eps for c in self.cells) if eps is None else float(eps)
        cells = [c for c in self.cells if c.eps == at]
        if not cells:
            raise ValueError(
                f"eps: no cell at {at:g}; the grid has {_unique([c.eps for c in self.cells])}"
            )
        modalities = sorted({m for c in cells for m in c.ecr})
        fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(cells) + 2), 3.4))
        width = 0.8 / max(1, len(modalities))
        for i, m in enumerate(modalities):
            xs = np.arange(len(cells)) + i * width
            ax.bar(xs, [c.ecr.get(m, 0.0) for c in cells], width, label=f"{m} ECR")
        ax.set_xticks(np.arange(len(cells)) + width * (len(modalities) - 1) / 2)
        ax.set_xticklabels([f"{c.rule.upper()}\n{c.attacked}" for c in cells], fontsize=8)
        ax.set_ylabel("embedding change ratio")
        eps_name = self.config.get("eps_name", "eps")
        ax.set_title(title or f"ECR at {eps_name} = {at:g}\n{self._title()}", fontsize=9)
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return fig


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
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


# ----------------------------------------------------------------------------- data sources


class _Source:
    """A data source seen as numbered clips, handed out in batches of selected clips."""

    def __init__(self, data: Any, batch_size: int) -> None:
        self.batch_size = batch_size
        self.stacked: Batch | None = None
        self.dataset: Dataset[Any] | None = None
        self.iterable: Iterable[Any] | None = None
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Mapping):
            inputs, labels = data
            self.stacked = (_check_inputs(inputs, "data[0]"), _check_labels(labels, "data[1]"))
            sizes = {int(x.shape[0]) for x in self.stacked[0].values()}
            if sizes != {int(self.stacked[1].shape[0])}:
                raise ValueError(
                    f"data: inputs and labels must share the batch size, got inputs "
                    f"{ {k: tuple(v.shape) for k, v in inputs.items()} } and labels "
                    f"{tuple(labels.shape)}"
                )
        elif (
            isinstance(data, Dataset) and hasattr(data, "__getitem__") and hasattr(data, "__len__")
        ):
            self.dataset = data
        elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
            self.iterable = data
        else:
            raise TypeError(
                "data: expected a map-style Dataset of (inputs, labels) items, an iterable of "
                "(inputs, labels) batches (e.g. a DataLoader without shuffling), or a pair "
                f"(inputs dict, labels) of stacked tensors, got {type(data).__name__} "
                f"{describe(data)}"
            )

    def size(self) -> int | None:
        """Number of clips (``None`` for a plain iterable of batches: unknown until iterated)."""
        if self.stacked is not None:
            return int(self.stacked[1].shape[0])
        if self.dataset is not None:
            return len(self.dataset)  # type: ignore[arg-type]
        return None

    def batches(self, ids: Sequence[int] | None) -> Iterator[tuple[list[int], Batch]]:
        """Yield ``(clip ids, (inputs, labels))``; ``ids=None`` means every clip."""
        if self.stacked is not None:
            inputs, labels = self.stacked
            chosen = list(range(int(labels.shape[0]))) if ids is None else list(ids)
            for start in range(0, len(chosen), self.batch_size):
                part = chosen[start : start + self.batch_size]
                index = torch.tensor(part, dtype=torch.long)
                yield part, ({k: v[index] for k, v in inputs.items()}, labels[index])
        elif self.dataset is not None:
            yield from self._dataset_batches(ids)
        else:
            yield from self._iterable_batches(ids)

    def _dataset_batches(self, ids: Sequence[int] | None) -> Iterator[tuple[list[int], Batch]]:
        dataset = self.dataset
        chosen = list(range(len(dataset))) if ids is None else list(ids)  # type: ignore[arg-type]
        group: list[int] = []
        items: list[Batch] = []
        shapes: Any = None
        for i in chosen:
            item = dataset[i]  # type: ignore[index]
            inputs, labels = _split_item(item, f"data[{i}]")
            item_shapes = ({k: tuple(v.shape) for k, v in inputs.items()}, tuple(labels.shape))
            if items and (item_shapes != shapes or len(items) == self.batch_size):
                yield group, _stack(items)
                group, items = [], []
            shapes = item_shapes
            group.append(i)
            items.append((inputs, labels))
        if items:
            yield group, _stack(items)

    def _iterable_batches(self, ids: Sequence[int] | None) -> Iterator[tuple[list[int], Batch]]:
        wanted = None if ids is None else set(ids)
        offset = 0
        for number, batch in enumerate(self.iterable or ()):
            inputs, labels = _split_item(batch, f"data batch {number}")
            inputs = _check_inputs(inputs, f"data batch {number} inputs")
            size = int(labels.shape[0])
            rows = [r for r in range(size) if wanted is None or offset + r in wanted]
            if rows:
                index = torch.tensor(rows, dtype=torch.long)
                picked = ({k: v[index] for k, v in inputs.items()}, labels[index])
                yield [offset + r for r in rows], picked
            offset += size


def _split_item(item: Any, name: str) -> Batch:
    if not (isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], Mapping)):
        raise TypeError(
            f"{name}: expected (inputs, labels) with inputs a dict of tensors, got {describe(item)}"
        )
    labels = item[1]
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels)
    return dict(item[0]), labels


def _stack(items: list[Batch]) -> Batch:
    inputs = {k: torch.stack([x[k] for x, _ in items]) for k in items[0][0]}
    return inputs, torch.stack([y for _, y in items])


def _check_inputs(inputs: Any, name: str) -> dict[str, Tensor]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise TypeError(f"{name}: expected a non-empty dict of tensors, got {describe(inputs)}")
    for key, value in inputs.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}[{key!r}]: expected a tensor, got {describe(value)}")
    return dict(inputs)


def _check_labels(labels: Any, name: str) -> Tensor:
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.ndim not in (1, 2):
        raise TypeError(
            f"{name}: expected integer labels (B,) or frame labels (B, T), got {describe(labels)}"
        )
    return labels


# ----------------------------------------------------------------------------- scoring


def _default_score(out: AVOutput) -> Tensor:
    logits = out.logits
    if logits.shape[-1] != 2:
        raise ValueError(
            f"model: returns logits of shape {tuple(logits.shape)}, but the default score "
            "(no score_fn given) is P(class 1) of 2-class logits (..., 2); pass "
            "score_fn=... that turns the model's output into scores shaped like the labels"
        )
    return torch.softmax(logits.float(), dim=-1)[..., 1]


def _checked_scores(scores: Any, labels: Tensor, scorer: ScoreFn) -> Tensor:
    """``scores`` (what ``scorer`` gave), refused unless a tensor shaped like the labels."""
    if scorer is _default_score and scores.shape != labels.shape:
        raise ValueError(
            f"data: the labels have shape {tuple(labels.shape)}, but the default score (no "
            f"score_fn given: P(class 1) of the model's logits) has shape {tuple(scores.shape)}; "
            "frame labels (B, T) go with frame logits (B, T, 2) and clip labels (B,) with clip "
            "logits (B, 2), or pass score_fn=... that gives scores shaped like the labels"
        )
    if not isinstance(scores, Tensor):
        raise TypeError(f"score_fn: expected it to return a tensor, got {describe(scores)}")
    if scores.shape != labels.shape:
        raise ValueError(
            f"score_fn: expected scores shaped like the labels {tuple(labels.shape)}, got "
            f"{tuple(scores.shape)}"
        )
    return scores.detach().cpu()


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _forward(model: nn.Module, inputs: Mapping[str, Tensor]) -> AVOutput:
    with torch.no_grad(), preserve_model_state(model, "eval"):
        return as_avoutput(model(**inputs))


def _to(inputs: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in inputs.items()}


def _frame_correct(scores: Tensor, labels: Tensor) -> Tensor:
    """``(B, ...)`` bool: prediction (score >= 0.5) equals the label."""
    return (scores >= 0.5).long() == labels.long()


def _clip_positive(labels: Tensor) -> Tensor:
    """``(B,)`` bool: the clip is speaking (clip label 1, or more than half of its frames are)."""
    if labels.ndim == 1:
        return labels.bool()
    return labels.float().mean(dim=tuple(range(1, labels.ndim))) > 0.5


@dataclass(frozen=True)
class _CleanPass:
    """Per clip (in data order): index, correct?, speaking?, flat scores and labels."""

    ids: list[int]
    correct: list[bool]
    positive: list[bool]
    scores: list[Tensor]
    labels: list[Tensor]
    digests: list[bytes]  # of each clip's content (see _resultsfile.clip_digests)


def _clean_pass(
    model: nn.Module, source: _Source, score_fn: ScoreFn, min_accuracy: float
) -> _CleanPass:
    device = _device_of(model)
    ids: list[int] = []
    correct: list[bool] = []
    positive: list[bool] = []
    scores: list[Tensor] = []
    labels: list[Tensor] = []
    digests: list[bytes] = []
    for part, (inputs, y) in source.batches(None):
        digests += clip_digests(inputs, y)
        y = y.cpu()
        s = _checked_scores(score_fn(_forward(model, _to(inputs, device))), y, score_fn)
        acc = _frame_correct(s, y).float()
        acc = acc.mean(dim=tuple(range(1, acc.ndim))) if acc.ndim > 1 else acc
        ids += part
        correct += (acc >= min_accuracy - 1e-12).tolist()
        positive += _clip_positive(y).tolist()
        scores += list(s.reshape(s.shape[0], -1))
        labels += list(y.reshape(y.shape[0], -1))
    if not ids:
        raise ValueError("data: expected at least one clip, got none")
    return _CleanPass(ids, correct, positive, scores, labels, digests)


def correct_samples(
    model: nn.Module,
    data: Any,
    *,
    min_accuracy: float = 1.0,
    score_fn: ScoreFn | None = None,
    batch_size: int = 32,
) -> tuple[list[int], list[bool], list[bool]]:
    """Which clips a model predicts correctly (to intersect over several models, as Push-Pull does).

    Args:
        model: called as ``model(**inputs)``, returning :class:`~avrobust.AVOutput` or logits.
        data: as :func:`evaluate`.
        min_accuracy: a clip is correct when at least this fraction of its frames is predicted
            right (score >= 0.5 means speaking); 1.0 = every frame.
        score_fn: ``AVOutput -> scores`` shaped like the labels (default: P(class 1)).
        batch_size: clips per forward.

    Returns:
        ``(ids, correct, positive)``: the clip indices, whether each is correct, and whether each
        is a speaking clip (clip label 1, or more than half of its frames speaking).
    """
    accuracy = _check_fraction(min_accuracy, "min_accuracy")
    source = _Source(data, check_int(batch_size, "batch_size", min_value=1))
    found = _clean_pass(model, source, score_fn or _default_score, accuracy)
    return found.ids, found.correct, found.positive


def balanced_subset(
    ids: Sequence[int],
    positive: Sequence[bool],
    *,
    per_class: int | None = None,
    seed: int = 0,
) -> list[int]:
    """Draw the same number of speaking and not-speaking clips (Push-Pull §4.1: 225 + 225).

    Args:
        ids: candidate clip indices.
        positive: for each candidate, whether it is a speaking clip.
        per_class: clips per class; ``None`` takes as many as the smaller class has.
        seed: seed of the draw.

    Returns:
        The chosen indices, sorted.

    Raises:
        ValueError: a class without any candidate, or fewer than ``per_class`` in one.

    Example:
        >>> balanced_subset([0, 1, 2, 3, 4], [True, False, False, True, False], per_class=2)
        [0, 1, 3, 4]
    """
    if len(ids) != len(positive):
        raise ValueError(
            f"ids, positive: expected equal lengths, got {len(ids)} and {len(positive)}"
        )
    pos = [i for i, p in zip(ids, positive) if p]
    neg = [i for i, p in zip(ids, positive) if not p]
    available = min(len(pos), len(neg))
    if available == 0:
        raise ValueError(
            f"cannot balance speaking and not-speaking clips: {len(pos)} speaking and {len(neg)} "
            "not-speaking candidates (correctly predicted ones, if select='correct')"
        )
    count = available if per_class is None else check_int(per_class, "per_class", min_value=1)
    if count > available:
        raise ValueError(
            f"per_class: asked for {count} clips per class, but only {len(pos)} speaking and "
            f"{len(neg)} not-speaking candidates exist"
        )
    gen = torch.Generator().manual_seed(check_int(seed, "seed", min_value=0))
    chosen = []
    for group in (pos, neg):
        order = torch.randperm(len(group), generator=gen)[:count].tolist()
        chosen += [group[j] for j in order]
    return sorted(chosen)


def _check_fraction(value: Any, name: str) -> float:
    number = check_number(value, name, min_value=0.0)
    if number > 1:
        raise ValueError(f"{name}: must be a number in [0, 1], got {number:g}")
    return number


# ----------------------------------------------------------------------------- grid


def _parse_modality_set(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = tuple(p.strip() for p in value.replace(",", "+").split("+"))
    elif isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        parts = tuple(value)
    else:
        raise TypeError(
            f"{name}: expected a modality set such as 'audio', 'visual', 'audio+visual' or "
            f"('audio', 'visual'), got {describe(value)}"
        )
    if not parts or any(not p for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"{name}: expected distinct, non-empty modality names, got {value!r}")
    return parts


def _parse_rules(rules: Any) -> list[tuple[str, StepRule]]:
    if isinstance(rules, (str, StepRule)):
        rules = [rules]
    if not isinstance(rules, Sequence) or not rules:
        raise TypeError(
            f"rules: expected a non-empty list such as ['bim', 'mim', 'pgd'], got {describe(rules)}"
        )
    out: list[tuple[str, StepRule]] = []
    for i, rule in enumerate(rules):
        if isinstance(rule, str):
            name = check_choice(rule, f"rules[{i}]", ("fgsm", "bim", "mim", "pgd"))
            out.append((name, as_rule(name)))
        elif isinstance(rule, StepRule):
            out.append((rule.name, rule))
        else:
            raise TypeError(f"rules[{i}]: expected a rule name or a StepRule, got {describe(rule)}")
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise ValueError(f"rules: each rule may appear once, got {names}")
    return out


def _parse_eps(eps: Any) -> list[float]:
    values = [eps] if isinstance(eps, numbers.Real) and not isinstance(eps, bool) else eps
    if isinstance(values, np.ndarray) and values.ndim == 1:
        values = values.tolist()
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise TypeError(
            f"eps: expected a non-empty list of budgets such as [1, 2, 5], got {describe(eps)}"
        )
    values = [v.item() if isinstance(v, np.generic) else v for v in values]  # NumPy scalars
    out = [check_number(v, f"eps[{i}]", min_value=0.0, strict=True) for i, v in enumerate(values)]
    if len(set(out)) != len(out):
        raise ValueError(f"eps: expected distinct values, got {out}")
    return out


def _model_fingerprint(model: nn.Module | None) -> str | None:
    if model is None:
        return None
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(str(tuple(tensor.shape)).encode() + str(data.dtype).encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


def _budget_table(
    budgets: BudgetFn, eps: list[float], sets: list[tuple[str, ...]]
) -> dict[str, dict[str, str]]:
    """``{repr(eps): {modality: repr(budget)}}``: what the budgets are, whatever the function's
    name. Refuses ``budgets(eps)`` that is not a dict of Budgets or lacks an attacked modality."""
    out = {}
    attacked = _unique([m for mods in sets for m in mods])
    for e in eps:
        given = budgets(e)
        if not isinstance(given, Mapping) or not all(isinstance(b, Budget) for b in given.values()):
            raise TypeError(
                f"budgets: expected budgets(eps) to return a dict {{modality: Budget}}, got "
                f"{describe(given)} at eps={e:g}"
            )
        missing = [m for m in attacked if m not in given]
        if missing:
            raise ValueError(
                f"modalities: no budget for {missing} at eps={e:g}; budgets(eps) gives "
                f"{sorted(given)}"
            )
        out[repr(e)] = {str(m): repr(b) for m, b in given.items()}
    return out


def _cell_definitions(
    rule_list: list[tuple[str, StepRule]],
    eps_list: list[float],
    sets: list[tuple[str, ...]],
    table: Mapping[str, Mapping[str, str]],
) -> dict[str, dict[str, Any]]:
    """``{cell key: what defines the cell}``, in grid order (rule, eps, modality set): the
    rule's repr and the budgets of the attacked modalities, as each cell line of the file
    stores them."""
    return {
        _cell_key(name, e, mods): {
            "rule": repr(rule),
            "budgets": {m: table[repr(e)][m] for m in mods},
        }
        for name, rule in rule_list
        for e in eps_list
        for mods in sets
    }


def _cell_seed(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:12], 16)


def _name_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    return getattr(value, "__qualname__", None) or type(value).__name__


# ----------------------------------------------------------------------------- results file


@dataclass
class _StoredCell:
    """A finished cell read from a results file: the cell, what defines it, its line."""

    cell: CellResult
    defines: dict[str, Any]
    line: int
    record: dict[str, Any]


@dataclass
class _Stored:
    """What a results file holds: its meta record (``None`` if none yet) and cells by key."""

    meta: dict[str, Any] | None
    cells: dict[str, _StoredCell]
    format: int = _FORMAT
    tidy: bool = True  # the text is exactly its records, one line each


def _read_results(path: str) -> _Stored:
    """Read and check every line (format 1 or 2); format 1 is converted to format 2 in memory.

    Raises:
        ValueError: a line that is not as evaluate wrote it: not JSON (but a last line cut short
            by a kill, which is skipped), edited (its check does not match), a missing or
            unknown field, a wrong type, a second meta line, a cell written twice; the message
            gives ``path:line``.
    """
    records, tidy = read_records(path)
    metas = [(n, r) for n, r in records if r["kind"] == "meta"]
    if len(metas) > 1:
        raise ValueError(
            f"{path}:{metas[1][0]}: a second meta line (the first is line {metas[0][0]}); "
            "a results file holds one evaluation"
        )
    if not metas:
        cells = [n for n, r in records if r["kind"] == "cell"]
        if cells:
            raise ValueError(f"results_file: {path} has cells but no 'meta' line; delete it")
        return _Stored(None, {}, tidy=tidy)
    line, meta = metas[0]
    version = _meta_format(meta, f"{path}:{line}")
    if version == 1:
        meta = _meta_from_v1(meta)
    stored = _Stored(meta, {}, version, tidy)
    for number, record in records:
        where = f"{path}:{number}"
        if record["kind"] == "cell":
            _add_cell(stored, number, record, where, metas[0][1])
        if version > 1:
            verify_check(record, where)
    return stored


def _meta_format(meta: Mapping[str, Any], where: str) -> int:
    config = meta.get("config")
    version = config.get("format") if isinstance(config, dict) else None
    if type(version) is not int or version not in (1, _FORMAT):
        raise ValueError(
            f"{where}: expected a meta line of results-file format 1 or {_FORMAT}, got format "
            f"{version!r} (written by another avrobust version?)"
        )
    wanted = {"config": dict, "clean": dict, "selection": list}
    if version > 1:
        wanted["data"] = str
    wrong = [k for k, kind in wanted.items() if not isinstance(meta.get(k), kind)]
    if wrong or not all(isinstance(i, int) for i in meta["selection"]):
        raise ValueError(f"{where}: the meta line lacks or garbles {wrong or ['selection']}")
    return int(version)


def _meta_from_v1(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A format-1 meta record as format 2: the grid leaves the config (each cell line gets what
    defines it); the data and the callables' code were not recorded (``None``)."""
    config = {k: v for k, v in meta["config"].items() if k not in _GRID_KEYS}
    config.update(format=_FORMAT, objective_code=None, score_fn_code=None)
    kept = {k: meta[k] for k in ("clean", "selection")}
    return {"kind": "meta", "config": config, **kept, "data": None}


def _v1_defines(meta: Mapping[str, Any], cell: CellResult, where: str) -> dict[str, Any]:
    """What defines a format-1 cell, from the grid of its meta line."""
    config = meta["config"]
    try:
        rule = config["rule_repr"][config["rules"].index(cell.rule)]
        budgets = {m: config["budget_repr"][repr(cell.eps)][m] for m in cell.modalities}
    except (KeyError, ValueError, IndexError, TypeError):
        raise ValueError(
            f"{where}: cell {cell.key} is not in the grid of the meta line of this format-1 file"
        ) from None
    return {"rule": rule, "budgets": budgets}


def _add_cell(
    stored: _Stored, number: int, record: dict[str, Any], where: str, raw_meta: Mapping[str, Any]
) -> None:
    result = record_fields(record.get("result"), CellResult, where)
    try:
        cell = CellResult.from_dict(result)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where}: the cell's result is not valid: {exc}") from None
    if record.get("key") != cell.key:
        raise ValueError(
            f"{where}: the line's key {record.get('key')!r} is not its cell's {cell.key!r}"
        )
    if cell.key in stored.cells:
        first = stored.cells[cell.key].line
        raise ValueError(f"{where}: cell {cell.key} again (it is on line {first} already)")
    defines: Any = (
        _v1_defines(raw_meta, cell, where) if stored.format == 1 else record.get("defines")
    )
    if not (
        isinstance(defines, dict)
        and isinstance(defines.get("rule"), str)
        and isinstance(defines.get("budgets"), dict)
    ):
        raise ValueError(f"{where}: the cell line lacks what defines it ('defines')")
    stored.cells[cell.key] = _StoredCell(cell, defines, number, record)


def _cell_record(key: str, defines: Mapping[str, Any], cell_dict: Mapping[str, Any]) -> dict:
    return {"kind": "cell", "key": key, "defines": defines, "result": cell_dict}


def _append(path: str, record: Mapping[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(dump_record(_json_ready(record)))
        handle.flush()
        os.fsync(handle.fileno())


def _rewrite(path: str, stored: _Stored) -> None:
    """Write the file anew, at once (temporary file and rename), as format 2: drops a line cut
    short by an interruption and upgrades a format-1 file."""
    assert stored.meta is not None
    lines = [dump_record(_json_ready(stored.meta))]
    for key, s in stored.cells.items():
        lines.append(dump_record(_cell_record(key, s.defines, s.record["result"])))
    atomic_write(path, "".join(lines))


# ----------------------------------------------------------------------------- evaluate


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    rules: Sequence[str | StepRule] = ("bim", "mim", "pgd"),
    eps: float | Sequence[float] = (1.0, 2.0, 5.0),
    modalities: Sequence[str | Sequence[str]] = ("audio", "visual", "audio+visual"),
    budgets: BudgetFn = push_pull_budgets,
    steps: int = 10,
    objective: str | Callable[[AVOutput, Tensor], Tensor] = "training",
    surrogate: nn.Module | None = None,
    select: str | Sequence[int] = "correct",
    balance: bool = True,
    per_class: int | None = None,
    min_accuracy: float = 1.0,
    score_fn: ScoreFn | None = None,
    ecr_embeddings: Mapping[str, str] | None = None,
    batch_size: int = 32,
    seed: int = 0,
    results_file: PathLike | None = None,
    resume: bool = True,
    progress: bool = True,
    on_cell: Callable[[CellResult], None] | None = None,
) -> EvaluationReport:
    r"""Attack a model over a grid of rules × budgets × attacked modalities and measure the harm.

    For each cell ``(rule, eps, modality set)`` the selected clips are attacked batch by batch with
    :class:`~avrobust.MultimodalAttack` (only the modalities of the set get a budget; the others
    stay bit-identical), then the target model scores the adversarial clips. Cells are computed in
    grid order (rule, then eps, then modality set); each is appended to ``results_file`` as soon
    as it is finished, and ``on_cell`` is called after that.

    Args:
        model: the target, called as ``model(**inputs)``; returns :class:`~avrobust.AVOutput` (or
            logits) with 2-class logits ``(B, T, 2)`` or ``(B, 2)``. Its train/eval flags and
            buffers are left as they were.
        data: a map-style ``Dataset`` whose items are ``(inputs, labels)`` (clips of equal shape
            are batched together, in index order), an iterable of ``(inputs, labels)`` batches
            that gives the same batches each time it is iterated (a ``DataLoader`` without
            shuffling), or one pair ``(inputs, labels)`` of stacked tensors. ``inputs`` maps
            modality names to tensors (TalkNet: ``audio`` ``(B, S)`` in [-1, 1] and ``visual``
            ``(B, T, H, W)`` in 0–255); labels are frame labels ``(B, T)`` or clip labels ``(B,)``,
            1 = speaking.
        rules: rule names (``"fgsm"``, ``"bim"``, ``"mim"``, ``"pgd"``) or
            :class:`~avrobust.StepRule` objects (named by their ``name``).
        eps: the budget grid (> 0); each value is passed to ``budgets``.
        modalities: the attacked-modality sets: ``"audio"``, ``"visual"``, ``"audio+visual"``
            (or tuples of names).
        budgets: ``eps -> {modality: Budget}``; default :func:`~avrobust.push_pull_budgets`
            (``eps`` is Push-Pull's ``eps_av``: audio ``eps·1e-4`` on [-1, 1], video ``eps·0.1``
            pixel levels).
        steps: attack iterations per cell.
        objective: ``"training"`` (the training loss over every head: Push-Pull's training-aware
            attack), ``"inference"`` (the inference head only: inference-aware), or a callable
            ``(AVOutput, labels) -> (B,)``.
        surrogate: craft the perturbation on this model instead (black-box transfer, Fig. 3a);
            the target ``model`` is only scored.
        select: ``"correct"`` (clips whose frames the target predicts right, see
            ``min_accuracy``; Push-Pull §4.1), ``"all"``, or explicit clip indices (e.g. the
            intersection of the correct clips of several models, from :func:`correct_samples`).
        balance: draw as many speaking as not-speaking clips (:func:`balanced_subset`).
        per_class: clips per class when balancing (default: as many as the smaller class has).
        min_accuracy: with ``select="correct"``, the fraction of a clip's frames that must be right.
        score_fn: ``AVOutput -> scores`` shaped like the labels (default: ``softmax(logits)[..., 1]``,
            P(speaking), the AVA evaluation's score).
        ecr_embeddings: ``{modality: embedding name}`` whose ECR to report; default: for each input
            modality ``m``, the embedding ``f"{m}_cross"`` if the model returns one (TalkNet's
            ``z_a, z_v``, as in Push-Pull Table 1), else ``m`` if it returns that.
        batch_size: clips per attack batch (datasets and stacked tensors).
        seed: seed of the balanced draw and of every cell's random start (each cell's seed comes
            from ``seed`` and the cell, so a resumed run gives the same numbers).
        results_file: a JSON-lines file; the run's settings, selection and a fingerprint of the
            selected clips' content are written first, then one line per finished cell, with
            what defines it (rule, eps, modalities, budgets) and a checksum. With ``resume``, an
            existing file of the same evaluation is read and its cells are not recomputed: a
            cell of this grid found there is reused, the others are computed and appended; cells
            of another grid stay in the file, unreported. ``<results_file>.lock`` marks a run in
            progress: a second run on the same file stops at once.
        resume: read ``results_file`` if it exists (``False``: start it afresh; the old file is
            replaced, at once, when the new one's first line is ready).
        progress: show a tqdm progress bar over the cells (on stderr).
        on_cell: called with each newly computed :class:`CellResult`, after it is saved.

    Returns:
        :class:`EvaluationReport` with every cell of the grid.

    Raises:
        TypeError, ValueError: bad arguments (the message names the argument); a results file of
            a different evaluation (other model weights, data, settings, objective or score_fn
            code, or a cell of this grid computed with other budgets or rule settings), or one
            whose lines are not as evaluate wrote them (the message gives the line); no clip to
            attack.
        RuntimeError: ``results_file`` is in use by another run (its lock file exists).

    Example:
        >>> import torch
        >>> from avrobust.evaluation import evaluate
        >>> from avrobust.testing import TinyAV
        >>> _ = torch.manual_seed(0)
        >>> model = TinyAV(frames=4, frame_level=True)
        >>> inputs = {"audio": torch.rand(8, 640) * 2 - 1, "visual": torch.rand(8, 4, 16, 16) * 255}
        >>> labels = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 1]]).repeat(4, 1)
        >>> report = evaluate(model, (inputs, labels), rules=["bim"], eps=[50.0],
        ...     modalities=["audio+visual"], steps=2, select="all", progress=False)
        >>> cell = report.cell("bim", 50.0, "audio+visual")
        >>> 0.0 <= cell.map_adv <= 1.0, sorted(cell.ecr)
        (True, ['audio', 'visual'])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {describe(model)}")
    if surrogate is not None and not isinstance(surrogate, nn.Module):
        raise TypeError(f"surrogate: expected a torch.nn.Module or None, got {describe(surrogate)}")
    rule_list = _parse_rules(rules)
    eps_list = _parse_eps(eps)
    sets = _parse_modality_sets(modalities)
    if not callable(budgets):
        raise TypeError(
            f"budgets: expected a function eps -> {{modality: Budget}}, got {describe(budgets)}"
        )
    _check_optional_callables(score_fn=score_fn, on_cell=on_cell)
    check_int(steps, "steps", min_value=1)
    objective = _check_objective(objective)
    accuracy = _check_fraction(min_accuracy, "min_accuracy")
    check_int(seed, "seed", min_value=0)
    select = _check_select(select)
    if per_class is not None:
        check_int(per_class, "per_class", min_value=1)
    for name, flag in (("balance", balance), ("resume", resume), ("progress", progress)):
        check_bool(flag, name)
    embeddings = _check_embeddings(ecr_embeddings)
    path = check_results_path(results_file)
    source = _Source(data, check_int(batch_size, "batch_size", min_value=1))
    scorer = score_fn or _default_score
    table = _budget_table(budgets, eps_list, sets)
    defines = _cell_definitions(rule_list, eps_list, sets, table)
    config = _file_config(
        model=model,
        source=source,
        budgets=budgets,
        steps=steps,
        objective=objective,
        surrogate=surrogate,
        select=select,
        balance=balance,
        per_class=per_class,
        min_accuracy=accuracy,
        seed=seed,
        score_fn=score_fn,
        ecr_embeddings=embeddings,
    )
    with ResultsLock(path):
        meta, done = _open_results(path, config, resume, source)
        if meta is None:
            meta = _first_pass(model, source, scorer, config, select, per_class, path)
        _check_reuse(path, done, defines)
        selection = [int(i) for i in meta["selection"]]
        runner = _CellRunner(model, surrogate or model, source, selection, scorer, embeddings)
        grid = [(n, rule, e, mods) for n, rule in rule_list for e in eps_list for mods in sets]
        attack = (budgets, steps, objective, seed)
        cells = _run_grid(grid, done, runner, path, defines, attack, progress, on_cell)
    grid_config = {
        "rules": [n for n, _ in rule_list],
        "rule_repr": [repr(r) for _, r in rule_list],
        "eps": eps_list,
        "budget_repr": table,
        "modalities": ["+".join(s) for s in sets],
    }
    report_config = {"format": _FORMAT, **grid_config, **config}
    return EvaluationReport(report_config, meta["clean"], selection, cells)


def _parse_modality_sets(modalities: Any) -> list[tuple[str, ...]]:
    if isinstance(modalities, str) or not isinstance(modalities, Sequence) or not modalities:
        raise TypeError(
            "modalities: expected a list of modality sets such as ['audio', 'visual', "
            f"'audio+visual'], got {describe(modalities)}"
        )
    sets = [_parse_modality_set(m, f"modalities[{i}]") for i, m in enumerate(modalities)]
    if len(set(sets)) != len(sets):
        raise ValueError(f"modalities: each set may appear once, got {['+'.join(s) for s in sets]}")
    return sets


def _check_optional_callables(**functions: Any) -> None:
    for name, function in functions.items():
        if function is not None and not callable(function):
            raise TypeError(f"{name}: expected a function or None, got {describe(function)}")


def _check_objective(objective: Any) -> Any:
    if isinstance(objective, str):
        return check_choice(objective, "objective", ("training", "inference"))
    if not callable(objective):
        raise TypeError(
            f"objective: expected 'training', 'inference' or a callable, got {describe(objective)}"
        )
    return objective


def _check_select(select: Any) -> str | Sequence[int]:
    if isinstance(select, str):
        return check_choice(select, "select", ("correct", "all"))
    if not isinstance(select, Sequence) or not all(
        isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in select
    ):
        raise TypeError(
            f"select: expected 'correct', 'all' or a list of clip indices, got {describe(select)}"
        )
    return [int(i) for i in select]


def _check_embeddings(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(
            "ecr_embeddings: expected a dict {modality: embedding name} or None, got "
            f"{describe(value)}"
        )
    return dict(value)


def _file_config(
    *,
    model: nn.Module,
    source: _Source,
    budgets: BudgetFn,
    steps: int,
    objective: Any,
    surrogate: nn.Module | None,
    select: str | Sequence[int],
    balance: bool,
    per_class: int | None,
    min_accuracy: float,
    seed: int,
    score_fn: ScoreFn | None,
    ecr_embeddings: dict[str, str] | None,
) -> dict[str, Any]:
    """What a results file must share with a run to resume it: everything but the grid (rules,
    eps, modalities and their budgets, which each cell line carries)."""
    return {
        "format": _FORMAT,
        "eps_name": "eps_av" if budgets is push_pull_budgets else "eps",
        "budgets": _name_of(budgets),
        "steps": steps,
        "objective": _name_of(objective),
        "objective_code": callable_identity(objective),
        "surrogate": surrogate is not None,
        "select": select if isinstance(select, str) else "indices",
        "select_indices": None if isinstance(select, str) else sorted(select),
        "balance": balance,
        "per_class": per_class,
        "min_accuracy": min_accuracy,
        "seed": seed,
        "score_fn": None if score_fn is None else _name_of(score_fn),
        "score_fn_code": callable_identity(score_fn),
        "ecr_embeddings": ecr_embeddings,
        "samples": source.size(),
        "model": _model_fingerprint(model),
        "surrogate_model": _model_fingerprint(surrogate),
    }


def _run_grid(
    grid: list[tuple[str, StepRule, float, tuple[str, ...]]],
    done: Mapping[str, _StoredCell],
    runner: _CellRunner,
    path: str | None,
    defines: Mapping[str, Mapping[str, Any]],
    attack: tuple[BudgetFn, int, Any, int],
    progress: bool,
    on_cell: Callable[[CellResult], None] | None,
) -> list[CellResult]:
    """Every cell of ``grid`` in order: read from ``done`` or computed and appended to ``path``."""
    budgets, steps, objective, seed = attack
    bar = _progress_bar(len(grid), sum(_cell_key(n, e, m) in done for n, _, e, m in grid), progress)
    cells: list[CellResult] = []
    try:
        for name, rule, e, mods in grid:
            key = _cell_key(name, e, mods)
            if key in done:
                cells.append(done[key].cell)
                continue
            if bar is not None:
                bar.set_postfix_str(key)
            cell = runner.run(name, rule, e, mods, budgets, steps, objective, _cell_seed(seed, key))
            if path is not None:
                _append(path, _cell_record(key, defines[key], cell.to_dict()))
            cells.append(cell)
            if bar is not None:
                bar.update(1)
            if on_cell is not None:
                on_cell(cell)
    finally:
        if bar is not None:
            bar.close()
    return cells


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="attack cells", unit="cell", leave=False)


def _open_results(
    path: str | None, config: dict[str, Any], resume: bool, source: _Source
) -> tuple[dict[str, Any] | None, dict[str, _StoredCell]]:
    """The meta record and finished cells of ``path`` when it resumes this run (``None, {}``
    when there is nothing to resume); refuses a file of another evaluation or other data."""
    if path is None or not resume or not os.path.exists(path):
        return None, {}
    stored = _read_results(path)
    if stored.meta is None:
        return None, {}
    meta = stored.meta
    unchecked = {"objective_code", "score_fn_code"} if stored.format == 1 else set()
    # the budgets' name only labels them: each cell line holds the budgets themselves
    compared = (set(config) | set(meta["config"])) - unchecked - {"budgets", "eps_name"}
    differs = sorted(k for k in compared if config.get(k) != meta["config"].get(k))
    if differs:
        raise ValueError(
            f"results_file: {path} holds results of a different evaluation (it differs in "
            f"{differs}); pass another results_file, delete it, or use resume=False to overwrite"
        )
    digest = _selection_digest(source, [int(i) for i in meta["selection"]])
    if stored.format == 1:
        meta["config"].update({k: config[k] for k in unchecked})
        meta["data"] = digest
        warnings.warn(
            f"results_file: {path} was written by an earlier avrobust (results-file format 1), "
            "which did not record the data or the code of a callable objective or score_fn, so "
            "they cannot be checked: they are taken to be this run's, and recorded now (the "
            f"file is upgraded to format {_FORMAT})",
            stacklevel=3,
        )
    elif meta["data"] != digest:
        raise ValueError(
            f"data: the selected clips differ from those results_file {path} was computed on "
            f"(content fingerprint {digest}, the file's {meta['data']}): other data of the same "
            "size? Pass the data of that run, another results_file, or resume=False to overwrite"
        )
    if stored.format == 1 or not stored.tidy:
        _rewrite(path, stored)
    return meta, stored.cells


def _selection_digest(source: _Source, selection: list[int]) -> str:
    """The content fingerprint of the selected clips, read from the data (no model call)."""
    found: dict[int, bytes] = {}
    for part, (inputs, labels) in source.batches(selection):
        found.update(zip(part, clip_digests(inputs, labels)))
    if set(found) != set(selection):
        raise ValueError(
            f"data: gave {len(found)} of the {len(selection)} clips the results file selected; "
            "pass data that gives the same clips every time it is iterated (a Dataset, a list of "
            "batches, a DataLoader without shuffling), not a one-shot iterator such as a generator"
        )
    return data_digest([found[i] for i in selection])


def _check_reuse(
    path: str | None, done: Mapping[str, _StoredCell], defines: Mapping[str, Mapping[str, Any]]
) -> None:
    """Refuse a finished cell of this grid that was computed with other budgets or rule
    settings than this run's (the same key, another cell)."""
    for key, wanted in defines.items():
        stored = done.get(key)
        if stored is None or stored.defines == wanted:
            continue
        if stored.defines["rule"] != wanted["rule"]:
            field_name = "rule_repr"
            what = f"the rule {stored.defines['rule']}, where rules gives {wanted['rule']}"
        else:
            field_name = "budget_repr"
            what = (
                f"the budgets {stored.defines['budgets']}, where budgets gives {wanted['budgets']}"
            )
        raise ValueError(
            f"results_file: {path} holds results of a different evaluation (it differs in "
            f"['{field_name}']): line {stored.line} holds cell {key} computed with {what}; "
            "delete that line to compute the cell anew, pass another results_file, or use "
            "resume=False to overwrite the file"
        )


def _first_pass(
    model: nn.Module,
    source: _Source,
    scorer: ScoreFn,
    config: dict[str, Any],
    select: str | Sequence[int],
    per_class: int | None,
    path: str | None,
) -> dict[str, Any]:
    """The clean pass and the selection; their meta record starts ``path`` (replacing any old
    file at once, with a temporary file and a rename)."""
    clean, selection, digest = _select(model, source, scorer, config, select, per_class)
    meta = {"kind": "meta", "config": config, "clean": clean, "selection": selection}
    meta["data"] = digest
    if path is not None:
        atomic_write(path, dump_record(_json_ready(meta)))
    return meta


def _select(
    model: nn.Module,
    source: _Source,
    scorer: ScoreFn,
    config: Mapping[str, Any],
    select: str | Sequence[int],
    per_class: int | None,
) -> tuple[dict[str, Any], list[int], str]:
    """The clean measures, the selected clip indices and their content fingerprint."""
    found = _clean_pass(model, source, scorer, float(config["min_accuracy"]))
    all_scores, all_labels = torch.cat(found.scores), torch.cat(found.labels)
    clean: dict[str, Any] = {
        "map_all": float(ava_average_precision(all_scores, all_labels)),
        "samples_total": len(found.ids),
        "samples_correct": int(sum(found.correct)),
    }
    position = {i: j for j, i in enumerate(found.ids)}
    if isinstance(select, str):
        keep = [c for c in found.correct] if select == "correct" else [True] * len(found.ids)
        candidates = [i for i, k in zip(found.ids, keep) if k]
    else:
        unknown = sorted(set(int(i) for i in select) - set(position))
        if unknown:
            raise ValueError(
                f"select: clip indices {unknown[:5]} are not in the data ({len(found.ids)} clips)"
            )
        candidates = sorted(set(int(i) for i in select))
    positive = [found.positive[position[i]] for i in candidates]
    if config["balance"]:
        selection = balanced_subset(
            candidates, positive, per_class=per_class, seed=int(config["seed"])
        )
    else:
        selection = candidates if per_class is None else candidates[: 2 * per_class]
    if not selection:
        raise ValueError(
            f"select: no clip to attack ({len(found.ids)} clips, {clean['samples_correct']} "
            "predicted correctly)"
        )
    rows = [position[i] for i in selection]
    picked_scores = torch.cat([found.scores[j] for j in rows])
    picked_labels = torch.cat([found.labels[j] for j in rows])
    clean["map_selected"] = float(ava_average_precision(picked_scores, picked_labels))
    clean["samples_selected"] = len(selection)
    clean["positives_selected"] = int(sum(found.positive[position[i]] for i in selection))
    return clean, selection, data_digest([found.digests[j] for j in rows])


class _CellRunner:
    """Computes one cell: attack the selected clips batch by batch, then measure."""

    def __init__(
        self,
        model: nn.Module,
        attacker: nn.Module,
        source: _Source,
        selection: list[int],
        scorer: ScoreFn,
        ecr_embeddings: Mapping[str, str] | None,
    ) -> None:
        self.model = model
        self.attacker = attacker
        self.source = source
        self.selection = selection
        self.scorer = scorer
        self.ecr_embeddings = None if ecr_embeddings is None else dict(ecr_embeddings)
        self.device = _device_of(model)
        self.attack_device = _device_of(attacker)
        self._clean: dict[int, tuple[Tensor, dict[str, Tensor]]] = {}

    def _embedding_names(self, out: AVOutput, inputs: Mapping[str, Tensor]) -> dict[str, str]:
        if self.ecr_embeddings is not None:
            missing = sorted(set(self.ecr_embeddings.values()) - set(out.embeddings))
            if missing:
                raise ValueError(
                    f"ecr_embeddings: the model returns no embeddings {missing}; it returns "
                    f"{sorted(out.embeddings)}"
                )
            return self.ecr_embeddings
        names = {}
        for m in inputs:
            if f"{m}_cross" in out.embeddings:
                names[m] = f"{m}_cross"
            elif m in out.embeddings:
                names[m] = m
        return names

    def _clean_out(
        self, number: int, inputs: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if number not in self._clean:
            out = _forward(self.model, inputs)
            names = self._embedding_names(out, inputs)
            emb = {m: out.embeddings[e].detach() for m, e in names.items()}
            self._clean[number] = (self.scorer(out).detach(), emb)
        return self._clean[number]

    def run(
        self,
        name: str,
        rule: StepRule,
        eps: float,
        mods: tuple[str, ...],
        budgets: BudgetFn,
        steps: int,
        objective: Any,
        seed: int,
    ) -> CellResult:
        start = time.perf_counter()
        all_budgets = budgets(eps)
        missing = [m for m in mods if m not in all_budgets]
        if missing:
            raise ValueError(
                f"modalities: no budget for {missing} at eps={eps:g}; budgets(eps) gives "
                f"{sorted(all_budgets)}"
            )
        chosen = {m: all_budgets[m] for m in mods}
        attack = MultimodalAttack(self.attacker, rule, chosen, steps, objective, seed=seed)
        tally = _Tally(mods)
        seen: list[int] = []
        for number, (part, (inputs, labels)) in enumerate(self.source.batches(self.selection)):
            seen += part
            missing_inputs = [m for m in mods if m not in inputs]
            if missing_inputs:
                raise ValueError(
                    f"modalities: the data has no input {missing_inputs}; its inputs are "
                    f"{sorted(inputs)}"
                )
            inputs = _to(inputs, self.device)
            labels = labels.to(self.device)
            clean_s, clean_emb = self._clean_out(number, inputs)
            result = attack(_to(inputs, self.attack_device), labels.to(self.attack_device))
            adv = _to(result.inputs, self.device)
            out = _forward(self.model, adv)
            tally.add_scores(clean_s, self.scorer(out).detach(), labels)
            for m, e in self._embedding_names(out, inputs).items():
                if m in clean_emb:
                    tally.add_ecr(m, ecr_per_frame(clean_emb[m], out.embeddings[e].detach()))
            for m in mods:
                tally.add_change(m, inputs[m].float(), adv[m].float(), chosen[m].bounds)
        if seen != self.selection:
            raise ValueError(
                f"data: a second pass over it gave {len(seen)} of the {len(self.selection)} "
                "selected clips; pass data that gives the same clips every time it is iterated "
                "(a Dataset, a list of batches, a DataLoader without shuffling), not a one-shot "
                "iterator such as a generator"
            )
        return tally.result(name, eps, time.perf_counter() - start)


def _flat(values: list[Tensor]) -> Tensor:
    return torch.cat([v.reshape(-1) for v in values])


def _float32_rows(values: list[Tensor]) -> list[list[float]]:
    """Per-clip rows of ``(B, F)`` tensors as lists of floats at float32 precision: the shortest
    decimals that give the float32 back, so a results file stays small."""
    rows = [row for batch in values for row in batch.to(torch.float32).numpy()]
    return [[float(str(v)) for v in row] for row in rows]


class _Tally:
    """What one cell adds up over its batches; :meth:`result` makes the :class:`CellResult`."""

    def __init__(self, mods: tuple[str, ...]) -> None:
        self.mods = mods
        self.clean: list[Tensor] = []  # (B, frames) per batch, on the CPU
        self.adv: list[Tensor] = []
        self.labels: list[Tensor] = []
        self.ecr_sum: dict[str, float] = {}
        self.ecr_count: dict[str, int] = {}
        self.ecr_clip: dict[str, list[float]] = {}
        self.snr: dict[str, list[Tensor]] = {m: [] for m in mods}
        self.peak: dict[str, list[Tensor]] = {m: [] for m in mods}
        self.linf: dict[str, float] = dict.fromkeys(mods, 0.0)
        self.success = self.errors = self.clips = self.frames = 0

    def add_scores(self, clean: Tensor, adv: Tensor, labels: Tensor) -> None:
        wrong = ~_frame_correct(adv, labels)
        frac = (
            wrong.float().mean(dim=tuple(range(1, wrong.ndim))) if wrong.ndim > 1 else wrong.float()
        )
        self.success += int((frac > 0.5).sum())
        self.errors += int(wrong.sum())
        batch = int(labels.shape[0])
        self.clips += batch
        self.frames += int(labels.numel())
        self.clean.append(clean.reshape(batch, -1).cpu())
        self.adv.append(adv.reshape(batch, -1).cpu())
        self.labels.append(labels.reshape(batch, -1).cpu())

    def add_ecr(self, modality: str, ratios: Tensor) -> None:
        self.ecr_sum[modality] = self.ecr_sum.get(modality, 0.0) + float(ratios.sum())
        self.ecr_count[modality] = self.ecr_count.get(modality, 0) + ratios.numel()
        per_clip = ratios.reshape(ratios.shape[0] if ratios.ndim else 1, -1).double().mean(1)
        self.ecr_clip.setdefault(modality, []).extend(per_clip.cpu().tolist())

    def add_change(
        self, modality: str, x: Tensor, x_adv: Tensor, bounds: tuple[float, float] | None
    ) -> None:
        self.snr[modality].append(snr_db(x, x_adv).cpu())
        if bounds is not None and math.isfinite(bounds[1] - bounds[0]):
            self.peak[modality].append(psnr(x, x_adv, data_range=bounds[1] - bounds[0]).cpu())
        self.linf[modality] = max(self.linf[modality], float(max_abs(x, x_adv).max()))

    def result(self, rule: str, eps: float, seconds: float) -> CellResult:
        truth = torch.cat([y.reshape(-1) for y in self.labels])  # clips may differ in length
        per_clip = {
            "labels": [[int(v) for v in row] for y in self.labels for row in y.tolist()],
            "clean": _float32_rows(self.clean),
            "adv": _float32_rows(self.adv),
            "ecr": {m: [float(v) for v in values] for m, values in self.ecr_clip.items()},
        }
        return CellResult(
            rule=rule,
            eps=eps,
            modalities=self.mods,
            map_clean=float(ava_average_precision(_flat(self.clean), truth)),
            map_adv=float(ava_average_precision(_flat(self.adv), truth)),
            success_rate=self.success / self.clips,
            frame_error_rate=self.errors / self.frames,
            ecr={m: s / self.ecr_count[m] for m, s in self.ecr_sum.items() if self.ecr_count[m]},
            snr_db={m: _finite_mean(v) for m, v in self.snr.items() if v},
            psnr_db={m: _finite_mean(v) for m, v in self.peak.items() if v},
            linf=self.linf,
            samples=self.clips,
            frames=self.frames,
            seconds=seconds,
            per_clip=per_clip,
        )


def _finite_mean(values: list[Tensor]) -> float:
    x = torch.cat(values).double()
    x = x[torch.isfinite(x)]
    return float(x.mean()) if x.numel() else math.inf
