"""Streaming twins of the functional metrics: ``update`` per batch, ``compute`` at the end, ``reset``.

Each class keeps only what its functional twin needs (sums and counts, or the scores and labels
for the ranking measures), detached, so it can sit inside an evaluation loop. With ``sync=True``
and an initialised ``torch.distributed`` group, ``compute`` combines the states of all ranks.
A twin shares its functional's name in CamelCase: :class:`ECR`/``ecr``,
:class:`AveragePrecision`/``average_precision``, :class:`ROCAUC`/``roc_auc``,
:class:`Accuracy`/``accuracy``, :class:`SuccessRate`/``success_rate``, and from
:mod:`~avrobust.metrics.perceptibility` :class:`SNR`/``snr``, :class:`PSNR`/``psnr``,
:class:`MaxAbs`/``max_abs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_number, describe
from ..losses._distributed import all_gather_cat, is_distributed
from ._base import StreamingMetric, _comm_device
from ._deprecated import deprecated_attribute
from .functional import (
    ArrayLike,
    _scores_labels,
    _wrong_fraction,
    accuracy,
    average_precision,
    ecr_per_frame,
    roc_auc,
)
from .perceptibility import PSNR, SNR, MaxAbs

__all__ = [
    "ECR",
    "PSNR",
    "ROCAUC",
    "SNR",
    "Accuracy",
    "AveragePrecision",
    "MaxAbs",
    "StreamingMetric",
    "SuccessRate",
]


def _pairs(
    z_clean: Tensor | Mapping[str, Tensor], z_adv: Tensor | Mapping[str, Tensor]
) -> dict[str | None, tuple[Tensor, Tensor]]:
    """``{modality: (clean, adv)}``; a pair of bare tensors is stored under ``None``."""
    if isinstance(z_clean, Mapping) and isinstance(z_adv, Mapping):
        if set(z_clean) != set(z_adv):
            raise ValueError(
                f"z_clean, z_adv: keys differ, got {sorted(z_clean)} and {sorted(z_adv)}"
            )
        return {key: (z_clean[key], z_adv[key]) for key in z_clean}
    if isinstance(z_clean, Mapping) or isinstance(z_adv, Mapping):
        raise TypeError("z_clean, z_adv: expected two tensors or two dicts, got one of each")
    return {None: (z_clean, z_adv)}


class ECR(StreamingMetric):
    r"""Streaming embedding change ratio (:func:`~avrobust.metrics.functional.ecr`), lower is better.

    Feed either tensors (one stream) or dicts ``{modality: (..., D)}`` such as
    ``AVOutput.embeddings`` (one ratio per modality); ``compute`` returns a 0-d tensor or a dict.

    Example:
        >>> import torch
        >>> metric = ECR()
        >>> z = {"audio": torch.ones(2, 3, 4), "visual": torch.ones(2, 3, 4)}
        >>> metric.update(z, {"audio": 2 * z["audio"], "visual": z["visual"]})
        >>> {k: float(v) for k, v in metric.compute().items()}
        {'audio': 1.0, 'visual': 0.0}
    """

    higher_is_better = False

    def reset(self) -> None:
        self._totals: dict[str | None, Tensor] = {}

    def _merge(self, other: ECR) -> None:
        for name, step in other._totals.items():
            before = self._totals.get(name)
            self._totals[name] = step.clone() if before is None else before + step

    def update(
        self,
        z_clean: Tensor | Mapping[str, Tensor],
        z_adv: Tensor | Mapping[str, Tensor],
        mask: Tensor | None = None,
    ) -> None:
        """Add a batch.

        Args:
            z_clean: ``(..., D)`` clean embeddings, or ``{modality: (..., D)}``.
            z_adv: adversarial embeddings, same structure and shapes.
            mask: optional bool ``(...)`` (frames), applied to every modality.

        Raises:
            ValueError: NaN/Inf embeddings (named), shapes or keys that differ, a wrong mask.
        """
        pairs = _pairs(z_clean, z_adv)
        if self._totals and set(self._totals) != set(pairs):
            raise ValueError(
                f"ECR.update: expected the keys {list(self._totals)} as before, got {list(pairs)}"
            )
        for key, (clean, adv) in pairs.items():
            ratios = ecr_per_frame(clean, adv)
            if mask is not None:
                if (
                    not isinstance(mask, Tensor)
                    or mask.shape != ratios.shape
                    or mask.dtype != torch.bool
                ):
                    raise ValueError(
                        f"mask: expected a bool tensor of shape {tuple(ratios.shape)}, "
                        f"got {describe(mask)}"
                    )
                ratios = ratios[mask]
            step = torch.tensor([float(ratios.sum()), ratios.numel()], dtype=torch.float64)
            self._totals[key] = self._totals.get(key, torch.zeros(2, dtype=torch.float64)) + step

    def compute(self) -> Tensor | dict[str, Tensor]:
        """Mean ratio over every frame seen: a 0-d tensor, or ``{modality: 0-d tensor}``."""
        if not self._totals:
            raise ValueError("ECR.compute: no frame seen yet; call update first")
        out = {}
        for key, total in self._totals.items():
            total = self._reduce_sum(total)
            if total[1] == 0:
                raise ValueError("ECR.compute: every frame was masked out")
            out[key] = total[0] / total[1]
        return out[None] if None in out else out  # type: ignore[return-value]


class _ScoreBuffer(StreamingMetric):
    """Keeps every (score, label) pair; ranking measures need them all."""

    def reset(self) -> None:
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def _merge(self, other: _ScoreBuffer) -> None:
        self._scores += other._scores
        self._labels += other._labels

    def update(self, scores: ArrayLike, labels: ArrayLike, mask: Tensor | None = None) -> None:
        """Add a batch (kept on the CPU).

        Args:
            scores: any shape, the positive class's score (e.g. P(speaking)).
            labels: 0/1 or bool, same number of elements.
            mask: optional bool, same number of elements; ``False`` frames are left out.

        Raises:
            TypeError: scores that are not real numbers (e.g. strings), non-integer labels.
            ValueError: NaN/Inf scores, labels other than 0/1, sizes that differ, a wrong mask.
        """
        s, y = _scores_labels(scores, labels)
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.numel() != s.size or mask.dtype != torch.bool:
                raise ValueError(
                    f"mask: expected a bool tensor with {s.size} elements, got {describe(mask)}"
                )
            keep = mask.reshape(-1).cpu().numpy()
            s, y = s[keep], y[keep]
        self._scores.append(s)
        self._labels.append(y)

    def _all(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._scores:
            raise ValueError(f"{type(self).__name__}.compute: no frame seen yet; call update first")
        s, y = np.concatenate(self._scores), np.concatenate(self._labels)
        if self.sync and is_distributed():
            local = torch.from_numpy(np.stack([s.astype(np.float64), y, np.ones_like(y)], axis=1))
            rows = all_gather_cat(local.to(_comm_device())).cpu().numpy()
            rows = rows[rows[:, 2] == 1]
            s, y = rows[:, 0], rows[:, 1].astype(bool)
        return s, y


class AveragePrecision(_ScoreBuffer):
    """Streaming AVA-ActiveSpeaker frame mAP (:func:`~avrobust.metrics.average_precision`).

    Args:
        ties: ``"group"`` or ``"stable"``, see :func:`~avrobust.metrics.average_precision`.
        sync: combine all ``torch.distributed`` ranks in ``compute``.

    Example:
        >>> import torch
        >>> metric = AveragePrecision()
        >>> metric.update(torch.tensor([0.9, 0.8]), torch.tensor([1, 0]))
        >>> metric.update(torch.tensor([0.7, 0.6]), torch.tensor([1, 0]))
        >>> metric.compute()
        tensor(0.8333, dtype=torch.float64)
    """

    higher_is_better = True

    def __init__(self, ties: str = "group", *, sync: bool = False) -> None:
        self.ties = check_choice(ties, "ties", ("group", "stable"))
        super().__init__(sync=sync)

    def compute(self) -> Tensor:
        """AP over every frame seen, 0-d float64 in [0, 1]."""
        return average_precision(*self._all(), ties=self.ties)


class ROCAUC(_ScoreBuffer):
    """Streaming ROC-AUC (:func:`~avrobust.metrics.roc_auc`) over every frame seen."""

    higher_is_better = True

    def compute(self) -> Tensor:
        """ROC-AUC over every frame seen, 0-d float64 in [0, 1]."""
        return roc_auc(*self._all())


class _Fraction(StreamingMetric):
    """A count over a total (both float64, summed over batches and ranks) of thresholded scores:
    the shared machinery of :class:`Accuracy` and :class:`SuccessRate`."""

    _unit = "frame"  # what the total counts, for the message of an empty metric

    def __init__(self, threshold: float = 0.5, *, sync: bool = False) -> None:
        self.threshold = check_number(threshold, "threshold", allow_inf=True)
        super().__init__(sync=sync)

    def reset(self) -> None:
        self._total = torch.zeros(2, dtype=torch.float64)

    def _merge(self, other: Any) -> None:
        self._total = self._total + other._total

    def _add(self, count: float, total: float) -> None:
        self._total += torch.tensor([count, total], dtype=torch.float64)

    def compute(self) -> Tensor:
        """The count over the total seen, 0-d float64 in [0, 1]."""
        total = self._reduce_sum(self._total)
        if total[1] == 0:
            raise ValueError(
                f"{type(self).__name__}.compute: no {self._unit} seen yet; call update first"
            )
        return total[0] / total[1]


class Accuracy(_Fraction):
    """Streaming frame accuracy (:func:`~avrobust.metrics.accuracy`): correct frames over the frames
    seen (masked frames left out); :meth:`compute` returns the fraction, 0-d float64 in [0, 1].

    Args:
        threshold: decision threshold for positive-class scores (0.5 for probabilities).
        sync: combine all ``torch.distributed`` ranks in ``compute``.
    """

    higher_is_better = True

    def update(self, scores: ArrayLike, labels: ArrayLike, mask: Tensor | None = None) -> None:
        """Add a batch; arguments as :func:`~avrobust.metrics.accuracy` (NaN/Inf scores and
        strings are refused, as there)."""
        acc = accuracy(scores, labels, threshold=self.threshold, mask=mask)
        frames = int(mask.sum()) if mask is not None else torch.as_tensor(labels).numel()
        self._add(round(float(acc) * frames), frames)


class SuccessRate(_Fraction):
    """Streaming attack success rate (:func:`~avrobust.metrics.success_rate`): the fraction of
    samples seen that were predicted wrongly (more than half of their frames); :meth:`compute`
    returns it, 0-d float64 in [0, 1].

    Args:
        threshold: decision threshold for positive-class scores (0.5 for probabilities).
        sync: combine all ``torch.distributed`` ranks in ``compute``.
    """

    higher_is_better = None  # better for the attacker, worse for the model
    _unit = "sample"

    def update(self, scores: ArrayLike, labels: ArrayLike) -> None:
        """Add a batch of attacked samples; arguments as :func:`~avrobust.metrics.success_rate`."""
        wrong = _wrong_fraction(scores, labels, self.threshold)
        self._add(int((wrong > 0.5).sum()), wrong.numel())


def __getattr__(name: str) -> object:
    """The old name ``MeanAveragePrecision``, with a ``DeprecationWarning``."""
    return deprecated_attribute(__name__, name, ("MeanAveragePrecision",))
