"""The MFCC of python_speech_features 0.6 in PyTorch: :func:`mfcc` and the module :class:`MFCC`."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from ..._checks import check_int, check_number, check_tensor
from .filterbanks import dct_matrix, lifter_weights, mel_filterbank
from .framing import FramedFrontEnd, frame_signal, power_spectrum, preemphasis, round_half_up

__all__ = ["LOG_FLOOR", "MFCC", "mfcc"]

LOG_FLOOR = float(np.finfo(float).eps)
"""The guard python_speech_features puts under ``log()``: exact zeros become machine epsilon."""


def _log_floor(x: Tensor) -> Tensor:
    """``log(x)`` with exact zeros replaced by machine epsilon first (as the reference does)."""
    return torch.log(torch.where(x == 0, torch.full_like(x, LOG_FLOOR), x))


def mfcc(
    waveform: Tensor,
    sample_rate: float = 16000,
    winlen: float = 0.025,
    winstep: float = 0.01,
    numcep: int = 13,
    nfilt: int = 26,
    nfft: int = 512,
    lowfreq: float = 0.0,
    highfreq: float | None = None,
    preemph: float = 0.97,
    ceplifter: float = 22,
    append_energy: bool = True,
    window: Tensor | None = None,
) -> Tensor:
    """MFCC of ``python_speech_features.mfcc`` (version 0.6), differentiable in the waveform.

    Same arguments and defaults as the reference. Units follow the input: TalkNet feeds int16-scale
    samples (the waveform in [-1, 1] times 32768); scaling the input by ``k`` shifts ``c0`` by
    ``2 ln k`` and leaves ``c1..`` unchanged.

    Args:
        waveform: ``(..., S)`` real samples; every leading index is its own signal.
        sample_rate: in Hz.
        winlen: window length in seconds (rounded half-up to samples).
        winstep: hop in seconds (rounded half-up to samples).
        numcep: number of cepstral coefficients kept.
        nfilt: number of mel filters.
        nfft: FFT size; longer frames are truncated to it (with a warning).
        lowfreq: lowest mel band edge in Hz.
        highfreq: highest mel band edge in Hz (default ``sample_rate / 2``).
        preemph: pre-emphasis coefficient (0 disables it).
        ceplifter: lifter parameter (``<= 0`` disables it).
        append_energy: replace ``c0`` by the log frame energy.
        window: ``(L,)`` analysis window; ``None`` is rectangular (the reference default).

    Returns:
        ``(..., F, numcep)`` with ``F = num_frames(S, L, H)``, in the input's dtype.

    Example:
        >>> import torch
        >>> mfcc(torch.randn(2, 16000)).shape
        torch.Size([2, 99, 13])
    """
    frame_len = round_half_up(winlen * sample_rate)
    frame_step = round_half_up(winstep * sample_rate)
    fbank = mel_filterbank(nfilt, nfft, sample_rate, lowfreq, highfreq)
    return _mfcc_from_constants(
        waveform,
        frame_len=frame_len,
        frame_step=frame_step,
        nfft=nfft,
        preemph=preemph,
        filterbank=fbank.to(waveform),
        dct=dct_matrix(nfilt, numcep).to(waveform),
        lifter=lifter_weights(numcep, ceplifter).to(waveform),
        append_energy=append_energy,
        window=window,
    )


def _mfcc_from_constants(
    waveform: Tensor,
    *,
    frame_len: int,
    frame_step: int,
    nfft: int,
    preemph: float,
    filterbank: Tensor,
    dct: Tensor,
    lifter: Tensor,
    append_energy: bool,
    window: Tensor | None,
) -> Tensor:
    """The MFCC pipeline with its constant matrices precomputed (shared by :func:`mfcc`/:class:`MFCC`)."""
    if frame_len > nfft:
        warnings.warn(
            f"mfcc: frame length ({frame_len} samples) is greater than the FFT size ({nfft}); "
            "frames are truncated, as python_speech_features does. Increase nfft to avoid it.",
            stacklevel=3,
        )
    frames = frame_signal(preemphasis(waveform, preemph), frame_len, frame_step)
    if window is not None:
        frames = frames * window.to(frames)
    pspec = power_spectrum(frames, nfft)
    feat = _log_floor(pspec @ filterbank.T) @ dct
    feat = feat * lifter
    if append_energy:
        energy = _log_floor(pspec.sum(-1, keepdim=True))
        feat = torch.cat([energy, feat[..., 1:]], dim=-1)
    return feat


class MFCC(FramedFrontEnd):
    """``nn.Module`` over :func:`mfcc`: python_speech_features 0.6 MFCC, differentiable.

    The defaults are TalkNet's call ``mfcc(audio, 16000, numcep=13, winlen=0.025, winstep=0.010)``
    (26 filters, nfft 512, pre-emphasis 0.97, lifter 22, energy in c0, rectangular window).
    ``input_scale`` multiplies the waveform first: TalkNet uses 32768 so that a waveform in
    [-1, 1] gives the features of the int16 samples the official code reads.

    Args:
        sample_rate: in Hz.
        winlen: window length in seconds.
        winstep: hop in seconds.
        numcep: number of coefficients.
        nfilt: number of mel filters.
        nfft: FFT size.
        lowfreq: lowest mel band edge in Hz.
        highfreq: highest band edge in Hz (default ``sample_rate / 2``).
        preemph: pre-emphasis coefficient.
        ceplifter: lifter parameter.
        append_energy: replace ``c0`` by the log frame energy.
        input_scale: factor applied to the waveform before anything else.
        compute_dtype: dtype of the internal computation (``None``: the input's, float32 for
            float16 and bfloat16 inputs); the result is cast back to the input's dtype. float32
            already matches the NumPy reference to about 1e-4 at int16 scale; float64 tightens
            that to about 1e-6.

    Shape:
        ``(..., S)`` waveform -> ``(..., F, numcep)``, ``F = self.num_frames(S)``.

    Example:
        >>> import torch
        >>> MFCC(input_scale=32768.0)(torch.zeros(1, 6640)).shape
        torch.Size([1, 40, 13])
    """

    filterbank: Tensor
    dct: Tensor
    lifter: Tensor

    def __init__(
        self,
        sample_rate: float = 16000,
        winlen: float = 0.025,
        winstep: float = 0.01,
        numcep: int = 13,
        nfilt: int = 26,
        nfft: int = 512,
        lowfreq: float = 0.0,
        highfreq: float | None = None,
        preemph: float = 0.97,
        ceplifter: float = 22,
        append_energy: bool = True,
        input_scale: float = 1.0,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(sample_rate, winlen, winstep)
        self.nfilt = check_int(nfilt, "nfilt", min_value=1)
        self.numcep = check_int(numcep, "numcep", min_value=1)
        if numcep > nfilt:
            raise ValueError(f"numcep: must be <= nfilt = {nfilt}, got {numcep}")
        self.nfft = check_int(nfft, "nfft", min_value=2)
        self.preemph = check_number(preemph, "preemph")
        self.append_energy = bool(append_energy)
        self.input_scale = check_number(input_scale, "input_scale", min_value=0, strict=True)
        self.compute_dtype = compute_dtype
        self.register_buffer(
            "filterbank",
            mel_filterbank(nfilt, nfft, sample_rate, lowfreq, highfreq),
            persistent=False,
        )
        self.register_buffer("dct", dct_matrix(nfilt, numcep), persistent=False)
        self.register_buffer("lifter", lifter_weights(numcep, ceplifter), persistent=False)

    @property
    def num_features(self) -> int:
        """Coefficients per frame (``numcep``)."""
        return self.numcep

    def forward(self, waveform: Tensor) -> Tensor:
        """Compute the MFCC.

        Args:
            waveform: ``(..., S)`` floating-point samples (in the unit ``input_scale`` expects).

        Returns:
            ``(..., F, numcep)`` in the input's dtype.
        """
        check_tensor(waveform, "waveform", floating=True)
        half = waveform.dtype in (torch.float16, torch.bfloat16)  # no FFT: compute in float32
        dtype = self.compute_dtype or (torch.float32 if half else waveform.dtype)
        x = waveform.to(dtype)
        if self.input_scale != 1.0:
            x = x * self.input_scale
        out = _mfcc_from_constants(
            x,
            frame_len=self.frame_len,
            frame_step=self.frame_step,
            nfft=self.nfft,
            preemph=self.preemph,
            filterbank=self.filterbank.to(dtype),
            dct=self.dct.to(dtype),
            lifter=self.lifter.to(dtype),
            append_energy=self.append_energy,
            window=None,
        )
        return out.to(waveform.dtype)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate:g}, frame_len={self.frame_len}, "
            f"frame_step={self.frame_step}, numcep={self.numcep}, nfilt={self.nfilt}, "
            f"nfft={self.nfft}, input_scale={self.input_scale:g}"
        )
