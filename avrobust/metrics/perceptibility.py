r"""How perceptible a perturbation is: SNR, PSNR and the largest change, per sample and streamed.

Functional (``(B,)`` float64 per sample): :func:`snr` (signal-to-perturbation ratio in dB),
:func:`psnr` (peak SNR in dB), :func:`max_abs` (the L∞ size, in the input's units). Streaming
twins (:class:`SNR`, :class:`PSNR`, :class:`MaxAbs`): ``update(clean, adversarial)`` per batch,
``compute()`` pooled over every sample seen; for SNR and PSNR the mean in dB over the perturbed
samples (an untouched sample's ``+inf`` is left out; ``+inf`` when none was perturbed), for
MaxAbs the largest change of any sample.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from .._checks import check_finite_tensor, check_number, check_tensor
from ..attacks.units import units_disagree
from ._base import StreamingMetric

__all__ = ["PSNR", "SNR", "MaxAbs", "max_abs", "psnr", "snr"]


def _perturbation(clean: Tensor, adversarial: Tensor) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    x = check_tensor(clean, "clean", floating=True)
    x_adv = check_tensor(adversarial, "adversarial", floating=True)
    if x.shape != x_adv.shape:
        raise ValueError(
            f"clean, adversarial: shapes must match, got {tuple(x.shape)} and {tuple(x_adv.shape)}"
        )
    if x.ndim < 2:
        raise ValueError(f"clean: expected a batch (B, ...) with ndim >= 2, got {tuple(x.shape)}")
    check_finite_tensor(x.detach(), "clean")
    check_finite_tensor(x_adv.detach(), "adversarial")
    x = x.detach().to(torch.float64)
    return x, x_adv.detach().to(torch.float64) - x, tuple(range(1, x.ndim))


def snr(clean: Tensor, adversarial: Tensor) -> Tensor:
    r"""Signal-to-perturbation ratio per sample, ``10 log10(Σ x² / Σ δ²)`` in dB (audio SNR).

    Higher = less audible. ``δ = adversarial - clean``; an untouched sample gives ``+inf``.

    Args:
        clean: ``(B, ...)`` signals, e.g. waveforms ``(B, S)`` in [-1, 1] or int16 scale (any
            unit: the ratio is scale-free).
        adversarial: the attacked signals, same shape.

    Returns:
        ``(B,)`` float64, dB.

    Raises:
        ValueError: shapes differ, fewer than 2 dims, or NaN/Inf values in either input.

    Example:
        >>> import torch
        >>> x = torch.ones(1, 100)
        >>> snr(x, x + 0.1).round()
        tensor([20.], dtype=torch.float64)
    """
    x, delta, dims = _perturbation(clean, adversarial)
    noise = delta.square().sum(dims)
    ratio = 10 * (torch.log10(x.square().sum(dims)) - torch.log10(noise))
    return torch.where(noise == 0, math.inf, ratio)


def psnr(clean: Tensor, adversarial: Tensor, data_range: float = 255.0) -> Tensor:
    r"""Peak signal-to-noise ratio per sample, ``10 log10(R² / mean(δ²))`` in dB (video PSNR).

    Higher = less visible. An untouched sample gives ``+inf``.

    Args:
        clean: ``(B, ...)`` frames, e.g. ``(B, T, H, W)`` with pixels in [0, 255].
        adversarial: the attacked frames, same shape.
        data_range: ``R``, the value range (255 for 0–255 pixels, 1 for [0, 1]).

    Returns:
        ``(B,)`` float64, dB.

    Raises:
        ValueError: shapes differ, fewer than 2 dims, or NaN/Inf values in either input.

    Warns:
        UserWarning: the frames are in other units than ``data_range`` (frames in [0, 1] with
            the default 255, or 0-255 frames with ``data_range=1``): the PSNR would be off by
            about 48 dB.
    """
    values, problem = _psnr(clean, adversarial, data_range)
    if problem is not None:
        warnings.warn(problem, UserWarning, stacklevel=2)
    return values


def _psnr(clean: Tensor, adversarial: Tensor, data_range: float) -> tuple[Tensor, str | None]:
    """:func:`psnr`'s values, and its warning (``None`` when there is none)."""
    peak = check_number(data_range, "data_range", min_value=0.0, strict=True)
    x, delta, dims = _perturbation(clean, adversarial)
    mse = delta.square().mean(dims)
    values = torch.where(mse == 0, math.inf, 10 * (2 * math.log10(peak) - torch.log10(mse)))
    return values, _peak_problem(x, peak)


def _peak_problem(clean: Tensor, peak: float) -> str | None:
    """Why ``peak`` is not the value range of frames ``clean`` (they are in other units:
    :func:`~avrobust.attacks.units.units_disagree` with bounds ``(0, peak)``), or ``None``."""
    low, high = float(clean.min()), float(clean.max())
    if not units_disagree(low, high, (0.0, peak)):
        return None
    off = 20 * math.log10(peak / max(abs(low), abs(high)))
    return (
        f"psnr: the frames' values lie in [{low:.4g}, {high:.4g}], but data_range is {peak:g}: "
        f"they look like they are in other units, and the PSNR is off by about {off:+.0f} dB; "
        "pass the frames' value range as data_range (1.0 for frames in [0, 1], 255 for 0-255)"
    )


def max_abs(clean: Tensor, adversarial: Tensor) -> Tensor:
    """Largest absolute change per sample, ``max |adversarial - clean|`` (the L∞ size).

    Args:
        clean: ``(B, ...)`` any modality, in its own units (waveform samples, pixel levels).
        adversarial: same shape.

    Returns:
        ``(B,)`` float64, in the input's units.

    Raises:
        ValueError: shapes differ, fewer than 2 dims, or NaN/Inf values in either input.
    """
    _, delta, dims = _perturbation(clean, adversarial)
    return delta.abs().amax(dim=dims)


class _PerturbedMean(StreamingMetric):
    """The mean of a per-sample ratio in dB over the perturbed samples (finite values).

    Keeps one number per sample (the pooled mean then equals the functional twin's, to the
    last bit, however the samples were batched).
    """

    higher_is_better = True

    def reset(self) -> None:
        self._values: list[Tensor] = []

    def _merge(self, other: _PerturbedMean) -> None:
        self._values += other._values

    def _per_sample(self, clean: Tensor, adversarial: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, clean: Tensor, adversarial: Tensor) -> None:
        """Add a batch: ``clean`` and ``adversarial`` ``(B, ...)``, as the functional twin.

        Raises:
            ValueError: shapes differ, fewer than 2 dims, or NaN/Inf values in either input.
        """
        self._values.append(self._per_sample(clean, adversarial).detach().cpu())

    def compute(self) -> Tensor:
        """The mean in dB over the perturbed samples seen, 0-d float64 (``+inf``: none was
        perturbed).

        Raises:
            ValueError: no sample seen yet.
        """
        if not self._values:
            raise ValueError(
                f"{type(self).__name__}.compute: no sample seen yet; call update first"
            )
        values = self._gather_rows(torch.cat(self._values)[:, None])[:, 0]
        finite = values[torch.isfinite(values)]
        return finite.mean() if finite.numel() else torch.tensor(math.inf, dtype=torch.float64)


class SNR(_PerturbedMean):
    """Streaming :func:`snr`: the mean SNR in dB over the perturbed samples seen.

    Example:
        >>> import torch
        >>> metric = SNR()
        >>> x = torch.ones(2, 100)
        >>> metric.update(x, x + 0.1)
        >>> metric.update(x, x)  # untouched: left out of the mean
        >>> metric.compute().round()
        tensor(20., dtype=torch.float64)
    """

    def _per_sample(self, clean: Tensor, adversarial: Tensor) -> Tensor:
        return snr(clean, adversarial)


class PSNR(_PerturbedMean):
    """Streaming :func:`psnr`: the mean PSNR in dB over the perturbed samples seen.

    Args:
        data_range: ``R``, the value range (255 for 0–255 pixels; a budget's ``high - low``).
        sync: combine all ``torch.distributed`` ranks in ``compute``.
    """

    def __init__(self, data_range: float = 255.0, *, sync: bool = False) -> None:
        self.data_range = check_number(data_range, "data_range", min_value=0.0, strict=True)
        self._warned = False  # frames in other units than data_range, said once
        super().__init__(sync=sync)

    def __repr__(self) -> str:
        return f"PSNR(data_range={self.data_range:g}, sync={self.sync})"

    def _per_sample(self, clean: Tensor, adversarial: Tensor) -> Tensor:
        values, problem = _psnr(clean, adversarial, self.data_range)
        if problem is not None and not self._warned:  # said once per metric, not per batch
            self._warned = True
            warnings.warn(problem, UserWarning, stacklevel=3)
        return values


class MaxAbs(StreamingMetric):
    """Streaming :func:`max_abs`: the largest absolute change of any sample seen (the L∞ size).

    Example:
        >>> import torch
        >>> metric = MaxAbs()
        >>> metric.update(torch.zeros(2, 3), torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.0, -2.0]]))
        >>> metric.compute()
        tensor(2., dtype=torch.float64)
    """

    higher_is_better = False

    def reset(self) -> None:
        self._largest: Tensor | None = None

    def _merge(self, other: MaxAbs) -> None:
        theirs, kept = other._largest, self._largest
        if theirs is not None:
            self._largest = theirs if kept is None else torch.maximum(kept, theirs)

    def update(self, clean: Tensor, adversarial: Tensor) -> None:
        """Add a batch: ``clean`` and ``adversarial`` ``(B, ...)``, as :func:`max_abs`."""
        largest = max_abs(clean, adversarial).max().cpu()
        self._largest = largest if self._largest is None else torch.maximum(self._largest, largest)

    def compute(self) -> Tensor:
        """The largest change seen, 0-d float64, in the input's units.

        Raises:
            ValueError: no sample seen yet.
        """
        if self._largest is None:
            raise ValueError("MaxAbs.compute: no sample seen yet; call update first")
        return self._gather_rows(self._largest.reshape(1, 1)).max()
