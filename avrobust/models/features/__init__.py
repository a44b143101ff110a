"""Differentiable audio front-ends: the MFCC of python_speech_features 0.6 and a linear spectrogram.

TalkNet's official code computes its MFCC with ``python_speech_features`` in NumPy, which an attack
cannot pass through. :func:`mfcc` recomputes the same features in PyTorch, step for step, so
gradients flow from the features back to the waveform samples:

1. pre-emphasis ``y[0] = x[0]``, ``y[n] = x[n] - 0.97 x[n-1]``;
2. framing: ``L = round_half_up(winlen * sr)``, ``H = round_half_up(winstep * sr)``,
   ``1 + ceil((N - L) / H)`` frames (one frame when ``N <= L``), zeros appended at the end;
3. a window (rectangular, i.e. none, by default), power spectrum ``|rfft(frame, nfft)|^2 / nfft``;
4. frame energy = sum of the power spectrum (``0 ->`` machine epsilon, :data:`LOG_FLOOR`);
5. triangular mel filter bank on integer FFT bins, ``log`` (``0 -> LOG_FLOOR``), orthonormal DCT-II,
   the first ``numcep`` coefficients, the sinusoidal lifter, and ``c0 <- log(energy)``.

The pure functions work on any leading batch dimensions ``(..., S)``; :class:`MFCC` and
:class:`LinearSpectrogram` are thin ``nn.Module`` wrappers holding the constant matrices as
non-persistent buffers (they never appear in a state dict).

Layout: :mod:`.framing` (sample counts, pre-emphasis, frames, power spectrum, the shared
front-end base), :mod:`.filterbanks` (mel filters, DCT, lifter), :mod:`.cepstral` (the MFCC),
:mod:`.spectrogram` (the linear spectrogram). Everything is importable from here.
"""

from __future__ import annotations

from .cepstral import LOG_FLOOR, MFCC, mfcc
from .filterbanks import dct_matrix, lifter_weights, mel_filterbank
from .framing import (
    frame_signal,
    num_frames,
    power_spectrum,
    preemphasis,
    round_half_up,
    samples_for_frames,
    wrap_to_frames,
)
from .spectrogram import LinearSpectrogram

__all__ = [
    "LOG_FLOOR",
    "MFCC",
    "LinearSpectrogram",
    "dct_matrix",
    "frame_signal",
    "lifter_weights",
    "mel_filterbank",
    "mfcc",
    "num_frames",
    "power_spectrum",
    "preemphasis",
    "round_half_up",
    "samples_for_frames",
    "wrap_to_frames",
]
