"""Computes the cells of an evaluation: attack the selected clips batch by batch, then measure.

Every measure of a cell is a streaming metric of :mod:`avrobust.metrics`, updated once per batch
(:class:`CellMeasures`): the clean and adversarial frame mAP (:class:`~avrobust.metrics.
AveragePrecision`), the attack success rate (:class:`~avrobust.metrics.SuccessRate`), the frame
error rate (1 - :class:`~avrobust.metrics.Accuracy`), the embedding change ratio
(:class:`~avrobust.metrics.ECR`) and, per attacked modality, how perceptible the change is
(:class:`~avrobust.metrics.SNR`, :class:`~avrobust.metrics.PSNR` for budgets with finite bounds,
:class:`~avrobust.metrics.MaxAbs`). A multi-class task (top-1 classes instead of scores,
:meth:`CellMeasures.add_predictions`) is counted directly: top-1 accuracy clean and adversarial,
and the clips with more than half of their frames wrong; it has no mAP.

A cell of a step rule attacks with :class:`~avrobust.MultimodalAttack`; a worst-case cell
(:class:`~avrobust.evaluation.WorstCase`) with the ensemble it builds, called the same way
batch by batch, whose per-attack breakdown (``broken_by``) is summed over the batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .._types import AttackResult
from ..attacks import Budget, EnsembleResult, MultimodalAttack
from ..metrics import (
    ECR,
    PSNR,
    SNR,
    Accuracy,
    AveragePrecision,
    MaxAbs,
    SuccessRate,
    ecr_per_frame,
)
from .grid import Grid, GridCell
from .ranks import Ranks, gather_measures
from .recipes import WorstCase
from .results import CellResult
from .scoring import Measures, Scored, device_of, forward, to_device
from .sources import Source

__all__ = ["CellMeasures", "CellRunner"]

Attack = Callable[[Mapping[str, Tensor], Tensor], AttackResult]


class CellMeasures:
    """The streaming measures of one cell; :meth:`result` makes its :class:`CellResult`.

    To add a measure: create its metric in ``__init__``, update it in the ``add_*`` method that
    receives what it needs, read it in :meth:`result` (and give :class:`CellResult` a field).

    Args:
        budgets: ``{attacked modality: Budget}`` of the cell (PSNR for finite bounds).
        measure: the cell's headline measure for a binary task, ``"ap"`` or ``"accuracy"``
            (a multi-class task is always measured by accuracy).
    """

    def __init__(self, budgets: Mapping[str, Budget], *, measure: str = "ap") -> None:
        self.modalities = tuple(budgets)
        self.measure, self.classes, self.binary = measure, 2, True
        self.map_clean, self.map_adv = AveragePrecision(), AveragePrecision()
        self.success, self.accuracy, self.accuracy_clean = SuccessRate(), Accuracy(), Accuracy()
        self.top1 = {"clean": 0, "adv": 0, "broken": 0}
        self.ecr = ECR()
        self.snr = {m: SNR() for m in budgets}
        peaks = {m: _width(b) for m, b in budgets.items()}
        self.psnr = {m: PSNR(data_range=peak) for m, peak in peaks.items() if peak}
        self.linf = {m: MaxAbs() for m in budgets}
        self.per_clip: dict[str, Any] = {"labels": [], "clean": [], "adv": [], "ecr": {}}
        self.clips = self.frames = 0
        self.broken_by: dict[str, int] | None = None

    def add(self, clean: Scored, adv: Scored) -> None:
        """A batch's clean and adversarial outputs, scored (:meth:`Measures.score`)."""
        if clean.binary:
            self.add_scores(clean.values, adv.values, clean.labels, classes=clean.classes)
        else:
            self.add_predictions(clean.values, adv.values, clean.labels, classes=clean.classes)

    def add_scores(self, clean: Tensor, adv: Tensor, labels: Tensor, *, classes: int = 2) -> None:
        """A batch's clean and adversarial scores and its labels, all ``(B, ...)`` on the CPU
        (a binary task; ``classes`` is the logits' class count)."""
        self.classes = classes
        self.map_clean.update(clean, labels)
        self.map_adv.update(adv, labels)
        self.success.update(adv, labels)
        self.accuracy.update(adv, labels)
        self.accuracy_clean.update(clean, labels)
        self._keep(clean, adv, labels)

    def add_predictions(self, clean: Tensor, adv: Tensor, labels: Tensor, *, classes: int) -> None:
        """A batch of a multi-class task: the clean and adversarial top-1 classes and the
        labels, all ``(B, ...)`` int64 on the CPU; ``classes`` is the logits' class count."""
        self.binary, self.classes = False, classes
        right = adv == labels
        self.top1["clean"] += int((clean == labels).sum())
        self.top1["adv"] += int(right.sum())
        wrong = (~right).reshape(right.shape[0], -1).float().mean(dim=1)
        self.top1["broken"] += int((wrong > 0.5).sum())
        self._keep(clean, adv, labels)

    def _keep(self, clean: Tensor, adv: Tensor, labels: Tensor) -> None:
        """Count the batch and keep its per-clip labels and scores (or classes)."""
        batch = int(labels.shape[0])
        self.clips += batch
        self.frames += int(labels.numel())
        self.per_clip["labels"] += [
            [int(v) for v in row] for row in labels.reshape(batch, -1).tolist()
        ]
        rows = _float32_rows if self.binary else _int_rows
        self.per_clip["clean"] += rows(clean.reshape(batch, -1))
        self.per_clip["adv"] += rows(adv.reshape(batch, -1))

    def add_embeddings(self, clean: Mapping[str, Tensor], adv: Mapping[str, Tensor]) -> None:
        """A batch's clean and adversarial embeddings ``{modality: (B, ..., D)}``."""
        if not clean:
            return
        self.ecr.update(dict(clean), {m: adv[m] for m in clean})
        for m in clean:
            ratios = ecr_per_frame(clean[m], adv[m])
            per_clip = ratios.reshape(ratios.shape[0] if ratios.ndim else 1, -1).double().mean(1)
            self.per_clip["ecr"].setdefault(m, []).extend(per_clip.cpu().tolist())

    def add_broken_by(self, counts: Mapping[str, int]) -> None:
        """A batch's clips broken per attack of an ensemble (``EnsembleResult.broken_by``)."""
        total = {} if self.broken_by is None else self.broken_by
        for name, count in counts.items():
            total[name] = total.get(name, 0) + int(count)
        self.broken_by = total

    def add_change(self, modality: str, x: Tensor, x_adv: Tensor) -> None:
        """A batch of one attacked modality, clean and adversarial, ``(B, ...)``."""
        self.snr[modality].update(x, x_adv)
        if modality in self.psnr:
            self.psnr[modality].update(x, x_adv)
        self.linf[modality].update(x, x_adv)

    def result(self, rule: str, eps: float, seconds: float) -> CellResult:
        """The cell's measures over every batch added."""
        ecr = self.ecr.compute() if self.per_clip["ecr"] else {}
        if self.binary:
            scores = {
                "map_clean": float(self.map_clean.compute()),
                "map_adv": float(self.map_adv.compute()),
                "success_rate": float(self.success.compute()),
                "frame_error_rate": float(1 - self.accuracy.compute()),
                "accuracy_clean": float(self.accuracy_clean.compute()),
                "accuracy_adv": float(self.accuracy.compute()),
            }
        else:
            frames, clips = max(self.frames, 1), max(self.clips, 1)
            scores = {
                "map_clean": math.nan,
                "map_adv": math.nan,
                "success_rate": self.top1["broken"] / clips,
                "frame_error_rate": 1 - self.top1["adv"] / frames,
                "accuracy_clean": self.top1["clean"] / frames,
                "accuracy_adv": self.top1["adv"] / frames,
            }
        return CellResult(
            rule=rule,
            eps=eps,
            modalities=self.modalities,
            ecr={m: float(v) for m, v in ecr.items()},  # type: ignore[union-attr]
            snr_db={m: float(v.compute()) for m, v in self.snr.items()},
            psnr_db={m: float(v.compute()) for m, v in self.psnr.items()},
            linf={m: float(v.compute()) for m, v in self.linf.items()},
            samples=self.clips,
            frames=self.frames,
            seconds=seconds,
            per_clip=self.per_clip,
            measure="accuracy" if not self.binary else self.measure,
            classes=self.classes,
            broken_by=None if self.broken_by is None else dict(self.broken_by),
            **scores,
        )


def _width(budget: Budget) -> float | None:
    """The width of a budget's bounds (the PSNR peak); ``None`` without finite bounds."""
    if budget.bounds is None or not math.isfinite(budget.bounds[1] - budget.bounds[0]):
        return None
    return float(budget.bounds[1] - budget.bounds[0])


def _int_rows(values: Tensor) -> list[list[int]]:
    """The rows of a ``(B, F)`` integer tensor as lists of ints."""
    return [[int(v) for v in row] for row in values.tolist()]


def _float32_rows(values: Tensor) -> list[list[float]]:
    """The rows of a ``(B, F)`` tensor as lists of floats at float32 precision: the shortest
    decimals that give the float32 back, so a results file stays small."""
    return [[float(str(v)) for v in row] for row in values.float().numpy()]


class CellRunner:
    """Computes cells: attacks the selected clips batch by batch, then measures.

    Args:
        model: the target (scored).
        attacker: the model the perturbation is crafted on (the target, or a surrogate).
        source: the data.
        selection: the attacked clip indices.
        measures: how outputs are scored and which embeddings ECR compares.
        grid: the grid (its budgets, steps and objective; a worst-case cell builds its attack
            from the budgets and steps, :class:`~avrobust.evaluation.WorstCase`).
        measure: the headline measure of a binary task (``"ap"`` or ``"accuracy"``).
        ranks: this process's place among ``torch.distributed`` ranks: it attacks only the
            batches :meth:`Ranks.mine` gives it, and every rank gets the merged measures
            (:mod:`~avrobust.evaluation.ranks`); default one rank, every batch.
    """

    def __init__(
        self,
        model: nn.Module,
        attacker: nn.Module,
        source: Source,
        selection: list[int],
        measures: Measures,
        grid: Grid,
        *,
        measure: str = "ap",
        ranks: Ranks = Ranks(),  # noqa: B008 - frozen
    ) -> None:
        self.model, self.attacker, self.source = model, attacker, source
        self.measure, self.ranks = measure, ranks
        self.selection, self.measures, self.grid = selection, measures, grid
        self.device, self.attack_device = device_of(model), device_of(attacker)
        self._clean: dict[int, tuple[Scored, dict[str, Tensor]]] = {}

    def check_task(self, cells: Sequence[GridCell]) -> None:
        """Refuse, before any attack, worst-case cells of a task the ensemble would not attack:
        it attacks the model's ``C``-class task (cross-entropy and margin, the labels as class
        indices), so a ``C > 2`` model scored as a binary task (one score per label) is refused.

        Raises:
            ValueError: naming ``Grid.rules``.
        """
        worst = [c.key for c in cells if isinstance(c.rule, WorstCase)]
        if not worst:
            return
        for _, (inputs, labels) in self.source.batches(self.selection):
            inputs, labels = to_device(inputs, self.device), labels.to(self.device)
            scored, _ = self._clean_out(0, inputs, labels)
            break
        else:
            return
        if scored.binary and scored.classes > 2:
            raise ValueError(
                f"Grid.rules: the worst-case cells {worst} attack the model's {scored.classes}-"
                "class task (cross-entropy and margin with the labels as class indices), but "
                "Measures.score_fn scores a binary task (one score per label): they would "
                "measure another task than the one attacked. Use step rules with a callable "
                "Grid.objective of that task, or wrap the model to return 2-class logits"
            )

    def _clean_out(
        self, number: int, inputs: dict[str, Tensor], labels: Tensor
    ) -> tuple[Scored, dict[str, Tensor]]:
        """Batch ``number``'s clean scores and embeddings (computed once for every cell)."""
        if number not in self._clean:
            out = forward(self.model, inputs)
            names = self.measures.embedding_names(out, inputs)
            emb = {m: out.embeddings[e].detach() for m, e in names.items()}
            self._clean[number] = (self.measures.score(out, labels.cpu()), emb)
        return self._clean[number]

    def run(self, cell: GridCell, seed: int) -> CellResult:
        """Attack the selected clips as ``cell`` says (random start seeded by ``seed``) and
        measure.

        Raises:
            ValueError: the data lacks an attacked modality, or gives other clips on this pass.
        """
        start = time.perf_counter()
        budgets = self.grid.budgets_at(cell.eps, cell.modalities)
        attack = self._attack(cell, budgets, seed)
        measures = CellMeasures(budgets, measure=self.measure)
        parts: list[tuple[int, CellMeasures]] = []
        seen: list[int] = []
        failure: Exception | None = None
        for number, (part, (inputs, labels)) in enumerate(self.source.batches(self.selection)):
            seen += part
            missing = [m for m in cell.modalities if m not in inputs]
            if missing:
                raise ValueError(
                    f"Grid.modalities: the data has no input {missing}; its inputs are "
                    f"{sorted(inputs)}"
                )
            if not self.ranks.mine(number) or failure is not None:
                continue
            if self.ranks.world > 1:  # one measures per batch, merged in batch order
                measures = CellMeasures(budgets, measure=self.measure)
                parts.append((number, measures))
            try:
                self._attack_batch(attack, cell, number, inputs, labels, measures)
            except Exception as error:  # with ranks: raised on every rank after the gather
                if self.ranks.world == 1:
                    raise
                failure = error
        if seen != self.selection:
            raise ValueError(
                f"data: a second pass over it gave {len(seen)} of the {len(self.selection)} "
                "selected clips; pass data that gives the same clips every time it is iterated "
                "(a Dataset, a list of batches, a DataLoader without shuffling), not a one-shot "
                "iterator such as a generator"
            )
        seconds = time.perf_counter() - start
        if self.ranks.world > 1:
            measures, seconds = gather_measures(self.ranks, parts, seconds, failure=failure)
        return measures.result(cell.rule_name, cell.eps, seconds)

    def _attack(self, cell: GridCell, budgets: dict[str, Budget], seed: int) -> Attack:
        """The cell's attack on the attacker: its recipe's, or a step rule's."""
        if isinstance(cell.rule, WorstCase):
            return cell.rule.build(self.attacker, budgets, steps=self.grid.steps, seed=seed)
        return MultimodalAttack(
            self.attacker,
            budgets=budgets,
            rule=cell.rule,
            steps=self.grid.steps,
            objective=self.grid.objective,
            seed=seed,
        )

    def _attack_batch(
        self,
        attack: Attack,
        cell: GridCell,
        number: int,
        inputs: dict[str, Tensor],
        labels: Tensor,
        measures: CellMeasures,
    ) -> None:
        """Attack batch ``number`` and add its clean and adversarial measures to ``measures``."""
        inputs, labels = to_device(inputs, self.device), labels.to(self.device)
        clean_scores, clean_emb = self._clean_out(number, inputs, labels)
        result = attack(to_device(inputs, self.attack_device), labels.to(self.attack_device))
        adv = to_device(result.inputs, self.device)
        out = forward(self.model, adv)
        measures.add(clean_scores, self.measures.score(out, labels.cpu()))
        if isinstance(result, EnsembleResult):
            measures.add_broken_by(result.broken_by)
        names = self.measures.embedding_names(out, inputs)
        adv_emb = {m: out.embeddings[e].detach() for m, e in names.items() if m in clean_emb}
        measures.add_embeddings({m: clean_emb[m] for m in adv_emb}, adv_emb)
        for m in cell.modalities:
            measures.add_change(m, inputs[m].float(), adv[m].float())
