"""The constant matrices of the MFCC: mel filter bank, DCT-II and the cepstral lifter (float64)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["dct_matrix", "lifter_weights", "mel_filterbank"]


def mel_filterbank(
    nfilt: int = 26,
    nfft: int = 512,
    sample_rate: float = 16000,
    lowfreq: float = 0.0,
    highfreq: float | None = None,
) -> Tensor:
    """Triangular mel filters on integer FFT bins, exactly as python_speech_features builds them.

    Mel scale ``2595 log10(1 + f / 700)``; ``nfilt + 2`` points evenly spaced in mel between
    ``lowfreq`` and ``highfreq``; edges at FFT bin ``floor((nfft + 1) hz / sample_rate)``.

    Args:
        nfilt: number of filters.
        nfft: FFT size.
        sample_rate: in Hz.
        lowfreq: lowest band edge in Hz.
        highfreq: highest band edge in Hz (default ``sample_rate / 2``).

    Returns:
        ``(nfilt, nfft // 2 + 1)`` float64 filter weights.

    Raises:
        ValueError: ``highfreq`` above the Nyquist frequency.
    """
    highfreq = highfreq or sample_rate / 2
    if highfreq > sample_rate / 2:
        raise ValueError(
            f"highfreq: must be <= sample_rate / 2 = {sample_rate / 2:g} Hz, got {highfreq:g}"
        )
    low_mel = 2595 * np.log10(1 + lowfreq / 700.0)
    high_mel = 2595 * np.log10(1 + highfreq / 700.0)
    mel_points = np.linspace(low_mel, high_mel, nfilt + 2)
    bins = np.floor((nfft + 1) * (700 * (10 ** (mel_points / 2595.0) - 1)) / sample_rate)
    bank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        left, centre, right = int(bins[j]), int(bins[j + 1]), int(bins[j + 2])
        for i in range(left, centre):
            bank[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(centre, right):
            bank[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return torch.from_numpy(bank)


def dct_matrix(n_in: int, n_out: int) -> Tensor:
    """Orthonormal DCT-II as a matrix, keeping the first ``n_out`` coefficients.

    ``x @ dct_matrix(N, K)`` equals ``scipy.fftpack.dct(x, type=2, norm="ortho")[..., :K]``.

    Args:
        n_in: input length ``N``.
        n_out: number of coefficients kept ``K <= N``.

    Returns:
        ``(N, K)`` float64.
    """
    n = torch.arange(n_in, dtype=torch.float64)[:, None]
    k = torch.arange(n_out, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    basis[:, 0] = 1.0 / math.sqrt(n_in)
    return basis


def lifter_weights(numcep: int, lifter: float = 22) -> Tensor:
    """Sinusoidal cepstral lifter ``1 + (L / 2) sin(pi n / L)`` (all ones when ``L <= 0``).

    Args:
        numcep: number of cepstral coefficients.
        lifter: the lifter parameter ``L``.

    Returns:
        ``(numcep,)`` float64.
    """
    n = torch.arange(numcep, dtype=torch.float64)
    if lifter <= 0:
        return torch.ones_like(n)
    return 1 + (lifter / 2.0) * torch.sin(math.pi * n / lifter)
