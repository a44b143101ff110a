"""One demo model row trained from several seeds: the reports of its runs side by side
(:class:`SeededReport`), each cell the mean over the runs (:class:`SeedCell`), and the names of a
run's files (:func:`run_name`).

Every run of a row is trained from its own seed (:func:`avrobust.demo.training.train_model`'s
``run``) on the same training clips, and attacked on the same held-out clips with the same attack
seeds: the runs differ only by the training seed. A number of the row is the mean over its runs;
its interval comes from the two-level bootstrap of :class:`avrobust.demo.intervals.Intervals`
(runs, then clips).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..evaluation import CellResult, EvaluationReport

__all__ = ["SeedCell", "SeededReport", "run_name"]


def run_name(key: str, run: int) -> str:
    """The name of run ``run`` of model ``key`` in file names: ``"A"`` for the first run (the
    name of a one-seed demo's files, so their caches stay valid), ``"A-seed2"`` for the
    second, ..."""
    return key if run == 0 else f"{key}-seed{run + 1}"


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None]
    return math.fsum(finite) / len(finite) if len(finite) == len(values) and finite else math.nan


@dataclass(frozen=True)
class SeedCell:
    """One cell of a row over its runs: every number the mean over the runs' cells.

    Attributes:
        runs: the runs' cells (:class:`~avrobust.evaluation.CellResult`), in run order, all of
            the same rule, budget and attacked set, on the same clips.
        rule: the rule's name.
        eps: the budget (``eps_av``).
        modalities: the attacked modalities.
        map_clean: mean clean frame mAP in [0, 1] over the runs.
        map_adv: mean frame mAP in [0, 1] under attack over the runs.
        accuracy_clean: mean clean frame accuracy in [0, 1] over the runs.
        accuracy_adv: mean frame accuracy in [0, 1] under attack over the runs.
        ecr: ``{modality: mean ECR}`` over the runs (unitless).
        per_clip: the first run's per-clip values: their ``labels`` are the clips' labels,
            the same in every run (the scores differ: use :attr:`runs`).
        broken_by: of a worst-case cell, ``{attack: clips it broke first}`` summed over the
            runs (``None`` when a run has none).
        samples: clips attacked, summed over the runs (the total of :attr:`broken_by`).
    """

    runs: tuple[CellResult, ...]
    rule: str = ""
    eps: float = 0.0
    modalities: tuple[str, ...] = ()
    map_clean: float = math.nan
    map_adv: float = math.nan
    accuracy_clean: float = math.nan
    accuracy_adv: float = math.nan
    ecr: dict[str, float] = field(default_factory=dict)
    per_clip: dict[str, Any] | None = None
    broken_by: dict[str, int] | None = None
    samples: int = 0
    classes: int = 2

    @classmethod
    def of(cls, runs: Sequence[CellResult]) -> SeedCell:
        """The cell of ``runs`` (one cell per run, at least one)."""
        first = runs[0]
        broken = None
        if all(c.broken_by is not None for c in runs):
            broken = {
                n: sum((c.broken_by or {}).get(n, 0) for c in runs) for n in first.broken_by or {}
            }
        return cls(
            tuple(runs),
            first.rule,
            first.eps,
            first.modalities,
            _mean([c.map_clean for c in runs]),
            _mean([c.map_adv for c in runs]),
            _mean([c.accuracy_clean for c in runs]),
            _mean([c.accuracy_adv for c in runs]),
            {m: _mean([c.ecr.get(m, math.nan) for c in runs]) for m in first.ecr},
            first.per_clip,
            broken,
            sum(c.samples for c in runs),
            first.classes,
        )

    @property
    def key(self) -> str:
        """``"rule|eps|modality+modality"``, as :attr:`CellResult.key`."""
        return self.runs[0].key

    @property
    def attacked(self) -> str:
        """The attacked modalities joined with ``+``, e.g. ``"audio+visual"``."""
        return "+".join(self.modalities)


@dataclass(frozen=True)
class SeededReport:
    """The reports of one model row's runs (one per training seed), read as one report.

    :meth:`cell` and :attr:`cells` give :class:`SeedCell` (means over the runs) where an
    :class:`~avrobust.evaluation.EvaluationReport` gives a cell of one run; a cell is there
    only when every run has it.

    Attributes:
        runs: the runs' reports, in run order (at least one).
    """

    runs: tuple[EvaluationReport, ...]

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError("runs: expected the report of at least one run, got none")

    @property
    def config(self) -> dict[str, Any]:
        """The first run's grid settings (the same in every run)."""
        return self.runs[0].config

    @property
    def cells(self) -> list[SeedCell]:
        """The cells every run has, in the first run's order."""
        found = []
        for cell in self.runs[0].cells:
            try:
                found.append(self.cell(cell.rule, cell.eps, cell.modalities))
            except KeyError:
                continue
        return found

    def cell(self, rule: str, eps: float, modalities: str | Sequence[str]) -> SeedCell:
        """The mean over the runs of the cell of ``rule`` at ``eps`` attacking ``modalities``.

        Raises:
            KeyError: a run lacks the cell (the message names the run).
        """
        runs = []
        for i, report in enumerate(self.runs):
            try:
                runs.append(report.cell(rule, eps, modalities))
            except KeyError as exc:
                raise KeyError(f"run {i + 1} of {len(self.runs)}: {exc.args[0]}") from None
        return SeedCell.of(runs)

    def rows(self) -> list[dict[str, Any]]:
        """Every run's :meth:`EvaluationReport.rows`, each row with its ``run`` (1, 2, ...)."""
        return [{"run": i + 1, **row} for i, r in enumerate(self.runs) for row in r.rows()]

    def to_dict(self) -> dict[str, Any]:
        """``{"runs": [each run's EvaluationReport.to_dict()]}``."""
        return {"runs": [r.to_dict() for r in self.runs]}
