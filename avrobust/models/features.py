"""Differentiable audio front-ends: the MFCC of python_speech_features 0.6 and a linear spectrogram.

TalkNet's official code computes its MFCC with ``python_speech_features`` in NumPy, which an attack
cannot pass through. :func:`mfcc` recomputes the same features in PyTorch, step for step, so
gradients flow from the features back to the waveform samples:

1. pre-emphasis ``y[0] = x[0]``, ``y[n] = x[n] - 0.97 x[n-1]``;
2. framing: ``L = round_half_up(winlen * sr)``, ``H = round_half_up(winstep * sr)``,
   ``1 + ceil((N - L) / H)`` frames (one frame when ``N <= L``), zeros appended at the end;
3. a window (rectangular, i.e. none, by default), power spectrum ``|rfft(frame, nfft)|^2 / nfft``;
4. frame energy = sum of the power spectrum (``0 -> eps``);
5. triangular mel filter bank on integer FFT bins, ``log`` (``0 -> eps``), orthonormal DCT-II,
   the first ``numcep`` coefficients, the sinusoidal lifter, and ``c0 <- log(energy)``.

The pure functions work on any leading batch dimensions ``(..., S)``; :class:`MFCC` and
:class:`LinearSpectrogram` are thin ``nn.Module`` wrappers holding the constant matrices as
non-persistent buffers (they never appear in a state dict).
"""

from __future__ import annotations

import decimal
import math
import warnings

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor, nn

from .._checks import check_int, check_number, check_tensor

__all__ = [
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
]

_EPS = float(np.finfo(float).eps)  # the floor python_speech_features puts under log()


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


def _log_floor(x: Tensor) -> Tensor:
    """``log(x)`` with exact zeros replaced by machine epsilon first (as the reference does)."""
    return torch.log(torch.where(x == 0, torch.full_like(x, _EPS), x))


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


class _FramedFrontEnd(nn.Module):
    """Shared framing of the audio front-ends: window and hop in samples, and frame counts."""

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


class MFCC(_FramedFrontEnd):
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
        compute_dtype: dtype of the internal computation (``None``: the input's); the result
            is cast back to the input's dtype. float32 already matches the NumPy reference to
            about 1e-4 at int16 scale; float64 tightens that to about 1e-6.

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
        dtype = self.compute_dtype or waveform.dtype
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


class LinearSpectrogram(_FramedFrontEnd):
    """Log power spectrogram on a linear frequency axis (specTalkNet's audio features).

    Built on :func:`torchaudio.functional.spectrogram` (Hann window, ``center=False``). The
    waveform's tail is zero-padded as python_speech_features pads it, so frame ``i`` covers samples
    ``[i H, i H + L)`` and a waveform gives exactly as many frames as :class:`MFCC` with the same
    ``winlen``/``winstep`` (4 per video frame for TalkNet). Output: ``log(power + eps)`` with the
    waveform in its own unit ([-1, 1] for TalkNet), ``nfft // 2 + 1`` bins.

    Args:
        sample_rate: in Hz.
        winlen: window length in seconds (also the FFT size unless ``nfft`` is given).
        winstep: hop in seconds.
        nfft: FFT size, ``>=`` the window length (default: the window length).
        eps: added to the power before the log.

    Shape:
        ``(..., S)`` waveform -> ``(..., F, nfft // 2 + 1)``.

    Example:
        >>> import torch
        >>> LinearSpectrogram()(torch.zeros(1, 6640)).shape
        torch.Size([1, 40, 201])
    """

    window: Tensor

    def __init__(
        self,
        sample_rate: float = 16000,
        winlen: float = 0.025,
        winstep: float = 0.01,
        nfft: int | None = None,
        eps: float = 1e-10,
    ) -> None:
        super().__init__(sample_rate, winlen, winstep)
        self.nfft = self.frame_len if nfft is None else check_int(nfft, "nfft", min_value=1)
        if self.nfft < self.frame_len:
            raise ValueError(
                f"nfft: must be >= the window length ({self.frame_len} samples), got {self.nfft}"
            )
        self.eps = check_number(eps, "eps", min_value=0, strict=True)
        self.register_buffer("window", torch.hann_window(self.frame_len), persistent=False)

    @property
    def num_features(self) -> int:
        """Frequency bins per frame (``nfft // 2 + 1``)."""
        return self.nfft // 2 + 1

    def forward(self, waveform: Tensor) -> Tensor:
        """Compute the log power spectrogram.

        Args:
            waveform: ``(..., S)`` floating-point samples.

        Returns:
            ``(..., F, nfft // 2 + 1)``, same dtype.
        """
        check_tensor(waveform, "waveform", floating=True)
        length = waveform.shape[-1]
        frames = self.num_frames(length)
        # torch.stft centres a short window inside each nfft-long frame: shift the signal so the
        # window covers [i H, i H + L) and pad the tail to the python_speech_features length.
        front = (self.nfft - self.frame_len) // 2
        back = (frames - 1) * self.frame_step + self.nfft - length - front
        x = nn.functional.pad(waveform, (front, back))
        spec = AF.spectrogram(
            x,
            pad=0,
            window=self.window.to(x.dtype),
            n_fft=self.nfft,
            hop_length=self.frame_step,
            win_length=self.frame_len,
            power=None,
            normalized=False,
            center=False,
        )
        power = torch.view_as_real(spec).square().sum(-1)
        return torch.log(power + self.eps).transpose(-1, -2)

    def extra_repr(self) -> str:
        return f"frame_len={self.frame_len}, frame_step={self.frame_step}, nfft={self.nfft}"
