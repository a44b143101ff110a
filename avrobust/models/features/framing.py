"""Framing as python_speech_features 0.6 does it: sample counts, pre-emphasis, frames, power.

The shared base of the audio front-ends (:class:`FramedFrontEnd`) holds the window and hop in
samples; every function works on any leading batch dimensions ``(..., S)``.
"""

from __future__ import annotations

import decimal
import math
import warnings

import torch
from torch import Tensor, nn

from ..._checks import check_number

__all__ = [
    "FramedFrontEnd",
    "frame_signal",
    "num_frames",
    "power_spectrum",
    "preemphasis",
    "round_half_up",
    "samples_for_frames",
    "wrap_to_frames",
]


def round_half_up(value: float) -> int:
    """Round to the nearest integer, halves away from zero, as python_speech_features does.

    Args:
        value: a number of samples such as ``winlen * sample_rate`` (may be fractional).

    Returns:
        The rounded integer (``333.33 -> 333``, ``400.5 -> 401``).
    """
    rounded = decimal.Decimal(value).quantize(decimal.Decimal("1"), rounding=decimal.ROUND_HALF_UP)
    return int(rounded)


def num_frames(num_samples: int, frame_len: int, frame_step: int) -> int:
    """Number of analysis frames python_speech_features cuts from ``num_samples`` samples.

    Args:
        num_samples: signal length ``S`` in samples.
        frame_len: window length ``L`` in samples.
        frame_step: hop ``H`` in samples.

    Returns:
        ``1`` if ``S <= L``, else ``1 + ceil((S - L) / H)`` (e.g. 16000 samples, L=400, H=160:
        99 frames).
    """
    if num_samples <= frame_len:
        return 1
    return 1 + math.ceil((num_samples - frame_len) / frame_step)


def samples_for_frames(frames: int, frame_len: int, frame_step: int) -> tuple[int, int]:
    """The range of signal lengths that give exactly ``frames`` analysis frames.

    Args:
        frames: wanted number of frames (>= 1).
        frame_len: window length ``L`` in samples.
        frame_step: hop ``H`` in samples.

    Returns:
        ``(low, high)``, inclusive, in samples: every length in that range gives ``frames``
        frames (for ``frames == 1``: ``(1, L)``).
    """
    if frames <= 1:
        return 1, frame_len
    return frame_len + (frames - 2) * frame_step + 1, frame_len + (frames - 1) * frame_step


def preemphasis(waveform: Tensor, coeff: float = 0.97) -> Tensor:
    """First-order pre-emphasis along the last axis: ``y[0] = x[0]``, ``y[n] = x[n] - c x[n-1]``.

    Args:
        waveform: ``(..., S)`` samples.
        coeff: the filter coefficient ``c`` (0 disables the filter).

    Returns:
        ``(..., S)``, same dtype and device.
    """
    if coeff == 0:
        return waveform
    return torch.cat([waveform[..., :1], waveform[..., 1:] - coeff * waveform[..., :-1]], dim=-1)


def frame_signal(waveform: Tensor, frame_len: int, frame_step: int) -> Tensor:
    """Cut ``(..., S)`` into overlapping frames, zero-padding the tail as python_speech_features does.

    Args:
        waveform: ``(..., S)`` samples.
        frame_len: window length ``L`` in samples.
        frame_step: hop ``H`` in samples.

    Returns:
        ``(..., F, L)`` with ``F = num_frames(S, L, H)``; frame ``i`` holds samples
        ``[i H, i H + L)``.
    """
    length = waveform.shape[-1]
    frames = num_frames(length, frame_len, frame_step)
    pad = (frames - 1) * frame_step + frame_len - length
    if pad > 0:
        waveform = nn.functional.pad(waveform, (0, pad))
    return waveform.unfold(-1, frame_len, frame_step)


def power_spectrum(frames: Tensor, nfft: int) -> Tensor:
    """Power spectrum ``|rfft(frame, nfft)|^2 / nfft`` (frames longer than ``nfft`` are truncated).

    Written as ``re^2 + im^2`` so that the gradient is defined everywhere, including at 0.

    Args:
        frames: ``(..., F, L)`` real frames.
        nfft: FFT size.

    Returns:
        ``(..., F, nfft // 2 + 1)``, same real dtype.
    """
    spec = torch.view_as_real(torch.fft.rfft(frames, n=nfft, dim=-1))
    return spec.square().sum(-1) / nfft


def wrap_to_frames(
    features: Tensor, rows: int | None = None, *, frames: int | None = None
) -> Tensor:
    """Exactly ``rows`` feature rows: repeat rows from the start when short, cut when long.

    The ASD convention of TalkNet's AVA loader: ``numpy.pad(feats, ((0, shortage), (0, 0)),
    "wrap")[:rows]`` (4 MFCC rows per video frame, ``rows = 4 T``).

    Args:
        features: ``(..., F, C)`` feature rows, ``F >= 1``.
        rows: the number of rows wanted along axis ``-2`` (not video frames: ``4 T`` for ``T``
            video frames in the ASD convention).
        frames: the former name of ``rows`` (it counted rows); deprecated, warns.

    Returns:
        ``(..., rows, C)``; row ``i`` is input row ``i % F`` (gradients flow to every reused row).

    Raises:
        TypeError: both ``rows`` and ``frames``, or neither.
    """
    if frames is not None:
        if rows is not None:
            raise TypeError("wrap_to_frames: give rows= only (frames= is its deprecated name)")
        warnings.warn(
            "wrap_to_frames(frames=...) is deprecated: the argument counts feature rows, not "
            "video frames; pass rows=... (or the count as the second positional argument)",
            DeprecationWarning,
            stacklevel=2,
        )
        rows = frames
    if rows is None:
        raise TypeError("wrap_to_frames: missing rows, the number of feature rows wanted")
    have = features.shape[-2]
    if have < rows:
        index = torch.arange(rows, device=features.device) % have
        features = features.index_select(-2, index)
    return features[..., :rows, :]


class FramedFrontEnd(nn.Module):
    """Shared framing of the audio front-ends: window and hop in samples, and frame counts.

    Args:
        sample_rate: in Hz, > 0.
        winlen: window length in seconds, > 0 (rounded half-up to ``frame_len`` samples).
        winstep: hop in seconds, > 0 (rounded half-up to ``frame_step`` samples).

    Raises:
        ValueError: a value <= 0, or a window or hop shorter than one sample.
    """

    def __init__(self, sample_rate: float, winlen: float, winstep: float) -> None:
        super().__init__()
        self.sample_rate = check_number(sample_rate, "sample_rate", min_value=0, strict=True)
        self.frame_len = round_half_up(
            check_number(winlen, "winlen", min_value=0, strict=True) * sample_rate
        )
        self.frame_step = round_half_up(
            check_number(winstep, "winstep", min_value=0, strict=True) * sample_rate
        )
        if self.frame_len < 1 or self.frame_step < 1:
            raise ValueError(
                f"winlen, winstep: must give at least one sample each at {sample_rate:g} Hz, "
                f"got {self.frame_len} and {self.frame_step} samples"
            )

    def num_frames(self, num_samples: int) -> int:
        """Frames produced from ``num_samples`` samples (see :func:`num_frames`)."""
        return num_frames(num_samples, self.frame_len, self.frame_step)

    def samples_for_frames(self, frames: int) -> tuple[int, int]:
        """Inclusive range of waveform lengths giving exactly ``frames`` frames."""
        return samples_for_frames(frames, self.frame_len, self.frame_step)
