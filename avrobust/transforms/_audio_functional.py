"""Audio front-end functions (waveform -> features), differentiable in the waveform.

Exported through :mod:`avrobust.transforms.functional`; the modules of :mod:`.audio` wrap them.
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_int, check_number, check_tensor, describe
from ..attacks.units import units_disagree
from ..models.features import mfcc, round_half_up, wrap_to_frames

__all__ = [
    "ASD_FEATURES_PER_FRAME",
    "KALDI_FBANK_DEFAULTS",
    "asd_mfcc",
    "asd_video_frames",
    "kaldi_fbank",
    "vggish_log_mel",
    "vggish_mel_matrix",
    "vggish_patches",
    "wrap_to_frames",
]

ASD_FEATURES_PER_FRAME = 4
"""MFCC frames per video frame in the ASD convention (10 ms hop at 25 fps; TalkNet's encoder
halves time twice)."""

KALDI_FBANK_DEFAULTS: dict[str, Any] = {
    "blackman_coeff": 0.42,
    "channel": -1,
    "dither": 0.0,
    "energy_floor": 1.0,
    "frame_length": 25.0,
    "frame_shift": 10.0,
    "high_freq": 0.0,
    "htk_compat": False,
    "low_freq": 20.0,
    "min_duration": 0.0,
    "num_mel_bins": 23,
    "preemphasis_coefficient": 0.97,
    "raw_energy": True,
    "remove_dc_offset": True,
    "round_to_power_of_two": True,
    "sample_frequency": 16000.0,
    "snip_edges": True,
    "subtract_mean": False,
    "use_energy": False,
    "use_log_fbank": True,
    "use_power": True,
    "vtln_high": -500.0,
    "vtln_low": 100.0,
    "vtln_warp": 1.0,
    "window_type": "povey",
}
"""The options of :func:`torchaudio.compliance.kaldi.fbank` and their defaults (``dither=0.0``,
``window_type="povey"``, ``preemphasis_coefficient=0.97``, ``remove_dc_offset=True``,
``snip_edges=True``, ``use_energy=False``, ``num_mel_bins=23``, ...), written out so that
reading them needs no torchaudio (a test compares them with torchaudio's signature)."""

TORCHAUDIO_FIX = (
    "install torchaudio from the same index as torch, e.g. "
    "`pip install torch torchaudio --index-url https://download.pytorch.org/whl/cpu` "
    "(or the CUDA index your torch came from)"
)
"""How to repair a torchaudio that cannot load: a build matching the installed torch."""


def kaldi_module() -> ModuleType:
    """``torchaudio.compliance.kaldi``, imported on first use (the only front-end that needs
    torchaudio's native library).

    Raises:
        ImportError: torchaudio is missing or its extension cannot load (a build for another
            torch raises an ``OSError``), naming the cause and the fix.
    """
    try:
        import torchaudio.compliance.kaldi as kaldi
    except Exception as error:  # OSError from a mismatched extension, ImportError, ...
        raise ImportError(
            f"KaldiFbank needs torchaudio (torchaudio.compliance.kaldi.fbank), which failed to "
            f"import: {type(error).__name__}: {error}; {TORCHAUDIO_FIX}. The other avrobust "
            "front-ends (ASDMFCC, VGGishPatches, ...) do not need torchaudio"
        ) from error
    return kaldi


_HALF = (torch.float16, torch.bfloat16)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype an audio front-end computes in for inputs of ``dtype``: float32 for float16 and
    bfloat16 (their FFTs are missing or too coarse: a log-mel of a half waveform loses most of
    its digits), else ``dtype`` itself. The result is cast back to the input's dtype."""
    return torch.float32 if dtype in _HALF else dtype


def warn_on_scale(waveform: Tensor, input_scale: float) -> None:
    """Warn when a waveform that ``input_scale`` (> 1) is to bring to int16 units already is in
    them (:func:`~avrobust.attacks.units.units_disagree` with [-1, 1]): features ~90 dB too loud."""
    if input_scale <= 1 or waveform.numel() == 0:
        return
    peak = float(waveform.detach().abs().amax())
    if units_disagree(-peak, peak, (-1.0, 1.0)):
        warnings.warn(
            f"waveform: samples reach {peak:.4g}, which looks like int16 scale, but input_scale "
            f"{input_scale:g} expects float samples in [-1, 1] and scales them itself; divide "
            "the waveform by 32768, or pass input_scale=1.0",
            UserWarning,
            stacklevel=3,
        )


def asd_video_frames(num_samples: int, *, sample_rate: float = 16000, fps: float = 25.0) -> int:
    """Video frames ``T`` a waveform of ``num_samples`` stands for: ``round(S * fps / rate)``, >= 1.

    Args:
        num_samples: waveform length ``S`` in samples.
        sample_rate: in Hz.
        fps: video frame rate.

    Returns:
        ``T`` (halves round up): 640 samples per frame at 16 kHz and 25 fps.
    """
    return max(1, round_half_up(num_samples * fps / sample_rate))


def asd_mfcc(
    waveform: Tensor,
    frames: int | None = None,
    *,
    sample_rate: float = 16000,
    fps: float = 25.0,
    input_scale: float = 32768.0,
    numcep: int = 13,
) -> Tensor:
    """The MFCC of active speaker detection (TalkNet's AVA loader), differentiable.

    ``python_speech_features.mfcc(int16, sample_rate, numcep=13, winlen=0.025 * 25 / fps,
    winstep=0.010 * 25 / fps)`` on the waveform times ``input_scale`` (the int16 scale), then
    :func:`wrap_to_frames` to exactly ``4 T`` rows (numpy ``"wrap"`` padding, then cut).

    Args:
        waveform: ``(..., S)`` float samples in [-1, 1].
        frames: ``T``, the number of video frames; ``None`` takes :func:`asd_video_frames`.
        sample_rate: in Hz.
        fps: video frame rate (the window and hop scale as ``25 / fps``).
        input_scale: factor applied to the waveform first (32768: int16 units).
        numcep: MFCC coefficients.

    Returns:
        ``(..., 4 T, numcep)`` in the waveform's dtype (float16 and bfloat16 waveforms are
        computed in float32 and the result cast back; the gradient flows through the casts).
    """
    check_tensor(waveform, "waveform", floating=True)
    warn_on_scale(waveform, input_scale)
    rate = 25.0 / check_number(fps, "fps", min_value=0, strict=True)
    if frames is None:
        frames = asd_video_frames(waveform.shape[-1], sample_rate=sample_rate, fps=fps)
    frames = check_int(frames, "frames", min_value=1)
    feats = mfcc(
        waveform.to(compute_dtype(waveform.dtype)) * input_scale,
        sample_rate,
        winlen=0.025 * rate,
        winstep=0.010 * rate,
        numcep=numcep,
    )
    return wrap_to_frames(feats, ASD_FEATURES_PER_FRAME * frames).to(waveform.dtype)


def kaldi_fbank(waveform: Tensor, **options: Any) -> Tensor:
    """Kaldi log-mel filter banks of every clip: :func:`torchaudio.compliance.kaldi.fbank` batched.

    Each row of ``waveform`` is passed alone as a mono ``(1, S)`` signal with ``options``; the
    function is differentiable in the waveform (the random dither, ``dither > 0``, is not, and
    makes the result non-deterministic: the default is 0).

    Args:
        waveform: ``(..., S)`` float samples (Kaldi reads them in the unit given: AudioSet models
            such as AST pass [-1, 1]).
        **options: options of :func:`torchaudio.compliance.kaldi.fbank` (see
            :data:`KALDI_FBANK_DEFAULTS`), e.g. AST's ``htk_compat=True, window_type="hanning",
            num_mel_bins=128``.

    Returns:
        ``(..., F, num_mel_bins)`` (``+ 1`` with ``use_energy``), ``F`` frames of
        ``frame_shift`` ms, in the waveform's dtype (float16 and bfloat16 waveforms are computed
        in float32 and the result cast back).

    Raises:
        TypeError: an unknown option.
        ImportError: torchaudio cannot be imported (the message says why and how to fix it).
        ValueError: a waveform shorter than one window (``frame_length`` ms at
            ``sample_frequency``: 400 samples by default).
    """
    check_tensor(waveform, "waveform", floating=True)
    unknown = sorted(set(options) - set(KALDI_FBANK_DEFAULTS))
    if unknown:
        raise TypeError(
            f"options: {unknown[0]!r} is not an option of torchaudio.compliance.kaldi.fbank; "
            f"expected some of {sorted(KALDI_FBANK_DEFAULTS)}"
        )
    _check_kaldi_length(waveform, options)
    kaldi = kaldi_module()
    rows = waveform.reshape(-1, waveform.shape[-1]).to(compute_dtype(waveform.dtype))
    out = torch.stack([kaldi.fbank(row[None], **options) for row in rows])
    return out.reshape(*waveform.shape[:-1], *out.shape[1:]).to(waveform.dtype)


def _check_kaldi_length(waveform: Tensor, options: dict[str, Any]) -> None:
    """Kaldi frames need at least one whole window: say so naming the length, the window and
    the options that set it (torchaudio's own check is a bare assertion)."""
    settings = {**KALDI_FBANK_DEFAULTS, **options}
    rate, length_ms = settings["sample_frequency"], settings["frame_length"]
    window = int(rate * length_ms * 0.001)  # as torchaudio computes it
    samples = waveform.shape[-1] if waveform.ndim else 0
    if samples < max(window, 1):
        raise ValueError(
            f"waveform: expected at least one window of {window} samples (frame_length="
            f"{length_ms:g} ms at sample_frequency={rate:g} Hz), got {samples} samples in "
            f"{describe(waveform)}; pad or lengthen the audio, or lower frame_length"
        )


# VGGish constants, from vggish_params.py of the AudioSet release
# (github.com/tensorflow/models, research/audioset/vggish/vggish_params.py):
VGGISH_SAMPLE_RATE = 16000  # SAMPLE_RATE
VGGISH_WINDOW_SECONDS = 0.025  # STFT_WINDOW_LENGTH_SECONDS
VGGISH_HOP_SECONDS = 0.010  # STFT_HOP_LENGTH_SECONDS
VGGISH_MEL_BANDS = 64  # NUM_MEL_BINS = NUM_BANDS
VGGISH_MEL_RANGE = (125.0, 7500.0)  # MEL_MIN_HZ, MEL_MAX_HZ
VGGISH_LOG_OFFSET = 0.01  # LOG_OFFSET
VGGISH_PATCH_FRAMES = 96  # NUM_FRAMES = EXAMPLE_WINDOW_SECONDS (0.96) / hop (0.010)
VGGISH_PATCH_HOP = 96  # EXAMPLE_HOP_SECONDS (0.96) / hop: patches without overlap


def vggish_mel_matrix(num_bins: int = 257) -> Tensor:
    """VGGish's ``spectrogram_to_mel_matrix``: ``(num_bins, 64)`` HTK-mel triangles, float64.

    Mel scale ``1127 ln(1 + f / 700)``; 66 edges evenly spaced in mel over 125-7500 Hz; bin
    ``k`` at ``k * 8000 / (num_bins - 1)`` Hz; the DC bin's weights are 0 (mel_features.py).
    """
    low, high = VGGISH_MEL_RANGE
    nyquist = VGGISH_SAMPLE_RATE / 2.0

    def to_mel(hz: Any) -> Any:
        return 1127.0 * np.log(1.0 + np.asarray(hz) / 700.0)

    bins = to_mel(np.linspace(0.0, nyquist, num_bins))[:, None]
    edges = np.linspace(to_mel(low), to_mel(high), VGGISH_MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return torch.from_numpy(weights)


def vggish_log_mel(waveform: Tensor, mel_matrix: Tensor | None = None) -> Tensor:
    """VGGish's log-mel spectrogram (``mel_features.log_mel_spectrogram`` with vggish_params).

    16 kHz waveform in [-1, 1]; frames of 400 samples (25 ms) every 160 (10 ms), only whole
    frames; periodic Hann window; ``|rfft|`` with 512 points (the next power of two);
    ``log(magnitude @ vggish_mel_matrix() + 0.01)``.

    Args:
        waveform: ``(..., S)``, ``S >= 400``, at 16 kHz (resample first, e.g. with the
            differentiable :func:`torchaudio.functional.resample`).
        mel_matrix: the ``(257, 64)`` matrix (default :func:`vggish_mel_matrix`), for caching.

    Returns:
        ``(..., 1 + (S - 400) // 160, 64)`` in the waveform's dtype (float16 and bfloat16
        waveforms are computed in float32 and the result cast back).
    """
    check_tensor(waveform, "waveform", floating=True)
    win = round_half_up(VGGISH_SAMPLE_RATE * VGGISH_WINDOW_SECONDS)
    hop = round_half_up(VGGISH_SAMPLE_RATE * VGGISH_HOP_SECONDS)
    if waveform.ndim == 0 or waveform.shape[-1] < win:
        raise ValueError(
            f"waveform: expected (..., S) with at least {win} samples (one 25 ms frame at "
            f"16 kHz), got {describe(waveform)}"
        )
    nfft = 2 ** math.ceil(math.log2(win))
    x = waveform.to(compute_dtype(waveform.dtype))
    window = torch.hann_window(win, periodic=True, dtype=torch.float64).to(x)
    frames = x.unfold(-1, win, hop) * window
    magnitude = torch.fft.rfft(frames, n=nfft, dim=-1).abs()
    matrix = vggish_mel_matrix(nfft // 2 + 1) if mel_matrix is None else mel_matrix
    return torch.log(magnitude @ matrix.to(magnitude) + VGGISH_LOG_OFFSET).to(waveform.dtype)


def vggish_patches(log_mel: Tensor) -> Tensor:
    """Cut a log-mel spectrogram into VGGish examples: 96 frames each, hop 96 (no overlap).

    Args:
        log_mel: ``(..., F, 64)`` from :func:`vggish_log_mel`, ``F >= 96``.

    Returns:
        ``(..., N, 96, 64)`` with ``N = 1 + (F - 96) // 96`` (a tail shorter than a patch is
        dropped, as ``vggish_input.waveform_to_examples`` does).
    """
    check_tensor(log_mel, "log_mel", floating=True)
    if log_mel.ndim < 2 or log_mel.shape[-2] < VGGISH_PATCH_FRAMES:
        raise ValueError(
            f"log_mel: expected (..., F, bands) with F >= {VGGISH_PATCH_FRAMES} frames "
            f"(0.96 s of audio: 15600 samples at 16 kHz), got {describe(log_mel)}"
        )
    return log_mel.unfold(-2, VGGISH_PATCH_FRAMES, VGGISH_PATCH_HOP).transpose(-1, -2)
