"""Computes the cells of an evaluation: attack the selected clips batch by batch, then measure.

Every measure of a cell is a streaming metric of :mod:`avrobust.metrics`, updated once per batch
(:class:`CellMeasures`): the clean and adversarial frame mAP (:class:`~avrobust.metrics.
AveragePrecision`), the attack success rate (:class:`~avrobust.metrics.SuccessRate`), the frame
error rate (1 - :class:`~avrobust.metrics.Accuracy`), the embedding change ratio
(:class:`~avrobust.metrics.ECR`) and, per attacked modality, how perceptible the change is
(:class:`~avrobust.metrics.SNR`, :class:`~avrobust.metrics.PSNR` for budgets with finite bounds,
:class:`~avrobust.metrics.MaxAbs`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from ..attacks import Budget, MultimodalAttack
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
from .results import CellResult
from .scoring import Measures, device_of, forward, to_device
from .sources import Source

__all__ = ["CellMeasures", "CellRunner"]


class CellMeasures:
    """The streaming measures of one cell; :meth:`result` makes its :class:`CellResult`.

    To add a measure: create its metric in ``__init__``, update it in the ``add_*`` method that
    receives what it needs, read it in :meth:`result` (and give :class:`CellResult` a field).

    Args:
        budgets: ``{attacked modality: Budget}`` of the cell (PSNR for finite bounds).
    """

    def __init__(self, budgets: Mapping[str, Budget]) -> None:
        self.modalities = tuple(budgets)
        self.map_clean, self.map_adv = AveragePrecision(), AveragePrecision()
        self.success, self.accuracy = SuccessRate(), Accuracy()
        self.ecr = ECR()
        self.snr = {m: SNR() for m in budgets}
        peaks = {m: _width(b) for m, b in budgets.items()}
        self.psnr = {m: PSNR(data_range=peak) for m, peak in peaks.items() if peak}
        self.linf = {m: MaxAbs() for m in budgets}
        self.per_clip: dict[str, Any] = {"labels": [], "clean": [], "adv": [], "ecr": {}}
        self.clips = self.frames = 0

    def add_scores(self, clean: Tensor, adv: Tensor, labels: Tensor) -> None:
        """A batch's clean and adversarial scores and its labels, all ``(B, ...)`` on the CPU."""
        self.map_clean.update(clean, labels)
        self.map_adv.update(adv, labels)
        self.success.update(adv, labels)
        self.accuracy.update(adv, labels)
        batch = int(labels.shape[0])
        self.clips += batch
        self.frames += int(labels.numel())
        self.per_clip["labels"] += [
            [int(v) for v in row] for row in labels.reshape(batch, -1).tolist()
        ]
        self.per_clip["clean"] += _float32_rows(clean.reshape(batch, -1))
        self.per_clip["adv"] += _float32_rows(adv.reshape(batch, -1))

    def add_embeddings(self, clean: Mapping[str, Tensor], adv: Mapping[str, Tensor]) -> None:
        """A batch's clean and adversarial embeddings ``{modality: (B, ..., D)}``."""
        if not clean:
            return
        self.ecr.update(dict(clean), {m: adv[m] for m in clean})
        for m in clean:
            ratios = ecr_per_frame(clean[m], adv[m])
            per_clip = ratios.reshape(ratios.shape[0] if ratios.ndim else 1, -1).double().mean(1)
            self.per_clip["ecr"].setdefault(m, []).extend(per_clip.cpu().tolist())

    def add_change(self, modality: str, x: Tensor, x_adv: Tensor) -> None:
        """A batch of one attacked modality, clean and adversarial, ``(B, ...)``."""
        self.snr[modality].update(x, x_adv)
        if modality in self.psnr:
            self.psnr[modality].update(x, x_adv)
        self.linf[modality].update(x, x_adv)

    def result(self, rule: str, eps: float, seconds: float) -> CellResult:
        """The cell's measures over every batch added."""
        ecr = self.ecr.compute() if self.per_clip["ecr"] else {}
        return CellResult(
            rule=rule,
            eps=eps,
            modalities=self.modalities,
            map_clean=float(self.map_clean.compute()),
            map_adv=float(self.map_adv.compute()),
            success_rate=float(self.success.compute()),
            frame_error_rate=float(1 - self.accuracy.compute()),
            ecr={m: float(v) for m, v in ecr.items()},  # type: ignore[union-attr]
            snr_db={m: float(v.compute()) for m, v in self.snr.items()},
            psnr_db={m: float(v.compute()) for m, v in self.psnr.items()},
            linf={m: float(v.compute()) for m, v in self.linf.items()},
            samples=self.clips,
            frames=self.frames,
            seconds=seconds,
            per_clip=self.per_clip,
        )


def _width(budget: Budget) -> float | None:
    """The width of a budget's bounds (the PSNR peak); ``None`` without finite bounds."""
    if budget.bounds is None or not math.isfinite(budget.bounds[1] - budget.bounds[0]):
        return None
    return float(budget.bounds[1] - budget.bounds[0])


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
        grid: the grid (its budgets, steps and objective).
    """

    def __init__(
        self,
        model: nn.Module,
        attacker: nn.Module,
        source: Source,
        selection: list[int],
        measures: Measures,
        grid: Grid,
    ) -> None:
        self.model, self.attacker, self.source = model, attacker, source
        self.selection, self.measures, self.grid = selection, measures, grid
        self.device, self.attack_device = device_of(model), device_of(attacker)
        self._clean: dict[int, tuple[Tensor, dict[str, Tensor]]] = {}

    def _clean_out(
        self, number: int, inputs: dict[str, Tensor], labels: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Batch ``number``'s clean scores and embeddings (computed once for every cell)."""
        if number not in self._clean:
            out = forward(self.model, inputs)
            names = self.measures.embedding_names(out, inputs)
            emb = {m: out.embeddings[e].detach() for m, e in names.items()}
            self._clean[number] = (self.measures.scores(out, labels.cpu()), emb)
        return self._clean[number]

    def run(self, cell: GridCell, seed: int) -> CellResult:
        """Attack the selected clips as ``cell`` says (random start seeded by ``seed``) and
        measure.

        Raises:
            ValueError: the data lacks an attacked modality, or gives other clips on this pass.
        """
        start = time.perf_counter()
        budgets = self.grid.budgets_at(cell.eps, cell.modalities)
        attack = MultimodalAttack(
            self.attacker,
            budgets=budgets,
            rule=cell.rule,
            steps=self.grid.steps,
            objective=self.grid.objective,
            seed=seed,
        )
        measures = CellMeasures(budgets)
        seen: list[int] = []
        for number, (part, (inputs, labels)) in enumerate(self.source.batches(self.selection)):
            seen += part
            missing = [m for m in cell.modalities if m not in inputs]
            if missing:
                raise ValueError(
                    f"Grid.modalities: the data has no input {missing}; its inputs are "
                    f"{sorted(inputs)}"
                )
            inputs, labels = to_device(inputs, self.device), labels.to(self.device)
            clean_scores, clean_emb = self._clean_out(number, inputs, labels)
            result = attack(to_device(inputs, self.attack_device), labels.to(self.attack_device))
            adv = to_device(result.inputs, self.device)
            out = forward(self.model, adv)
            measures.add_scores(clean_scores, self.measures.scores(out, labels.cpu()), labels.cpu())
            names = self.measures.embedding_names(out, inputs)
            adv_emb = {m: out.embeddings[e].detach() for m, e in names.items() if m in clean_emb}
            measures.add_embeddings({m: clean_emb[m] for m in adv_emb}, adv_emb)
            for m in cell.modalities:
                measures.add_change(m, inputs[m].float(), adv[m].float())
        if seen != self.selection:
            raise ValueError(
                f"data: a second pass over it gave {len(seen)} of the {len(self.selection)} "
                "selected clips; pass data that gives the same clips every time it is iterated "
                "(a Dataset, a list of batches, a DataLoader without shuffling), not a one-shot "
                "iterator such as a generator"
            )
        return measures.result(cell.rule_name, cell.eps, time.perf_counter() - start)
