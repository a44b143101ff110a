"""The measures of one grid cell, streamed batch by batch (:class:`CellMeasures`).

Every measure of a cell is a streaming metric of :mod:`avrobust.metrics`, updated once per batch:
the clean and adversarial frame mAP (:class:`~avrobust.metrics.AveragePrecision`), the attack
success rate (:class:`~avrobust.metrics.SuccessRate`), the frame error rate (1 -
:class:`~avrobust.metrics.Accuracy`), the embedding change ratio (:class:`~avrobust.metrics.ECR`)
and, per attacked modality, how perceptible the change is (:class:`~avrobust.metrics.SNR`,
:class:`~avrobust.metrics.PSNR` for budgets with finite bounds, with the peak of
:func:`psnr_peaks`, :class:`~avrobust.metrics.MaxAbs`). A multi-class task (top-1 classes instead
of scores, :meth:`CellMeasures.add_predictions`) is counted directly: top-1 accuracy clean and
adversarial, and the clips with more than half of their frames wrong; it has no mAP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor

from ..attacks import Budget
from ..attacks.units import units_disagree
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
from .results import CellResult
from .scoring import Scored

__all__ = ["CellMeasures", "psnr_peaks"]


class CellMeasures:
    """The streaming measures of one cell; :meth:`result` makes its :class:`CellResult`.

    To add a measure: create its metric in ``__init__``, update it in the ``add_*`` method that
    receives what it needs, read it in :meth:`result` (and give :class:`CellResult` a field).

    Args:
        budgets: ``{attacked modality: Budget}`` of the cell (PSNR for finite bounds).
        measure: the cell's headline measure for a binary task, ``"ap"`` or ``"accuracy"``
            (a multi-class task is always measured by accuracy).
        peaks: ``{attacked modality: PSNR peak}`` in the input's units (default: the width of
            each budget's bounds, for the budgets with finite bounds; :func:`psnr_peaks`).
    """

    def __init__(
        self,
        budgets: Mapping[str, Budget],
        *,
        measure: str = "ap",
        peaks: Mapping[str, float] | None = None,
    ) -> None:
        self.modalities = tuple(budgets)
        self.measure, self.classes, self.binary = measure, 2, True
        self.map_clean, self.map_adv = AveragePrecision(), AveragePrecision()
        self.success, self.accuracy, self.accuracy_clean = SuccessRate(), Accuracy(), Accuracy()
        self.top1 = {"clean": 0, "adv": 0, "broken": 0}
        self.ecr = ECR()
        self.snr = {m: SNR() for m in budgets}
        if peaks is None:
            peaks = {m: p for m, p in ((m, _width(b)) for m, b in budgets.items()) if p}
        self.psnr = {m: PSNR(data_range=peak) for m, peak in peaks.items()}
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
            psnr_peak={m: v.data_range for m, v in self.psnr.items()},
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


def psnr_peaks(
    budgets: Mapping[str, Budget], ranges: Mapping[str, Sequence[float]] | None
) -> dict[str, float]:
    """The PSNR peak of each attacked modality whose budget has finite bounds, in the input's
    units: the bounds' width (255 for 0–255 pixels), unless the data's values (``ranges``,
    ``{modality: (min, max)}`` from the clean pass) are in other units than the bounds
    (:func:`~avrobust.attacks.units.units_disagree`: frames in [0, 1] under 0–255 bounds), where
    a peak of 255 would report a destroyed frame at 55 dB. Then the peak is the span of the
    data's range widened to include 0, ``max(max, 0) - min(min, 0)`` (about 1 for [0, 1] frames,
    65535 for int16-scale audio: the width of the bounds the data would fit). ``ranges=None``
    (a results file of an older avrobust): the widths."""
    peaks: dict[str, float] = {}
    for m, budget in budgets.items():
        width = _width(budget)
        if not width:
            continue
        seen = None if ranges is None else ranges.get(m)
        if seen is not None and budget.bounds is not None:
            low, high = float(seen[0]), float(seen[1])
            if units_disagree(low, high, budget.bounds):
                width = max(high, 0.0) - min(low, 0.0)
        peaks[m] = width
    return peaks


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
