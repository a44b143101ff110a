"""The audio front-ends of two public models, in the layouts their networks take.

- SyncNet (joonson/syncnet_python, ``SyncNetInstance.evaluate``): ``python_speech_features.mfcc``
  with its defaults on the int16 track, transposed to ``(1, 1, 13, N)``, and for the window of
  video frames ``[f, f + 5)`` the 20 columns ``[4 f, 4 f + 20)``: ``(B, 1, 13, 20)``.
- LoCoNet (SJTUwxz/LoCoNet_ASD, its ``torchvggish/vggish_input.waveform_to_examples``): VGGish's
  log-mel (``mel_features.log_mel_spectrogram``, 64 bands over 125-7500 Hz, ``log(mel + 0.01)``)
  with the window and hop scaled by ``25 / fps``, on the int16 samples as ``wavfile.read`` gives
  them (not divided by 32768), wrap-padded and cut to ``4 T`` rows; the loader adds a channel
  axis: ``(B, 1, 4 T, 64)``.

Exported through :mod:`avrobust.transforms.functional`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_int, check_number, check_tensor, describe
from ..models.features import mfcc, round_half_up, wrap_to_frames
from ._audio_functional import (
    ASD_FEATURES_PER_FRAME,
    VGGISH_HOP_SECONDS,
    VGGISH_LOG_OFFSET,
    VGGISH_WINDOW_SECONDS,
    asd_video_frames,
    compute_dtype,
    vggish_mel_matrix,
    warn_on_scale,
)

__all__ = ["SYNCNET_FRAMES", "loconet_log_mel", "syncnet_mfcc"]

SYNCNET_FRAMES = 5
"""Video frames in one SyncNet window (0.2 s at 25 fps): 20 MFCC columns."""


def syncnet_mfcc(
    waveform: Tensor,
    frames: int = SYNCNET_FRAMES,
    *,
    sample_rate: float = 16000,
    input_scale: float = 32768.0,
) -> Tensor:
    """SyncNet's audio input ``(..., 1, 13, 4 T)``: python_speech_features' MFCC, its defaults.

    ``python_speech_features.mfcc(int16, 16000)`` (25 ms window, 10 ms hop, 13 coefficients)
    on the waveform times ``input_scale``, rows ``[0, 4 T)`` as columns. The window of video
    frames ``[f, f + T)`` of a track reads samples ``[640 f, 640 f + 640 T + 240)`` (the last
    row's window reaches 240 samples past the frames); given that span, the result equals SyncNet
    on the whole track, but for the first column when ``f > 0`` (its pre-emphasis would read the
    sample before the clip). A shorter waveform is zero-padded at the end to that length first.

    Args:
        waveform: ``(..., S)`` float samples in [-1, 1] at 16 kHz.
        frames: ``T``, video frames per window (SyncNet: 5, so ``(..., 1, 13, 20)``).
        sample_rate: in Hz.
        input_scale: factor applied to the waveform first (32768: the int16 units SyncNet reads).

    Returns:
        ``(..., 1, 13, 4 T)`` in the waveform's dtype (float16 and bfloat16 waveforms are
        computed in float32 and the result cast back).

    Raises:
        ValueError: a waveform longer than the window's span (cut it to the window first).
    """
    check_tensor(waveform, "waveform", floating=True)
    frames = check_int(frames, "frames", min_value=1)
    check_number(sample_rate, "sample_rate", min_value=0, strict=True)
    warn_on_scale(waveform, input_scale)
    rows = ASD_FEATURES_PER_FRAME * frames
    win, hop = round_half_up(0.025 * sample_rate), round_half_up(0.010 * sample_rate)
    span = (rows - 1) * hop + win
    length = waveform.shape[-1] if waveform.ndim else 0
    if length > span:
        raise ValueError(
            f"waveform: expected at most {span} samples for a window of {frames} video frames "
            f"({rows} MFCC rows of {win} samples every {hop}), got {describe(waveform)}; cut "
            "the track into windows first"
        )
    x = torch.nn.functional.pad(waveform.to(compute_dtype(waveform.dtype)), (0, span - length))
    feats = mfcc(x * input_scale, sample_rate)[..., :rows, :]
    return feats.transpose(-1, -2).unsqueeze(-3).to(waveform.dtype)


def loconet_log_mel(
    waveform: Tensor,
    frames: int | None = None,
    *,
    fps: float = 25.0,
    input_scale: float = 32768.0,
) -> Tensor:
    """LoCoNet's audio input ``(..., 1, 4 T, 64)``: VGGish's log-mel at 4 rows per video frame.

    As LoCoNet's ``waveform_to_examples(audio, 16000, numFrames, fps)``: windows of
    ``round(16000 * 0.025 * 25 / fps)`` samples every ``round(16000 * 0.010 * 25 / fps)`` (400
    and 160 at 25 fps), whole windows only, periodic Hann, ``|rfft|`` of the next power of two,
    :func:`vggish_mel_matrix`, ``log(mel + 0.01)``, on the waveform times ``input_scale``
    (LoCoNet reads int16 samples and does not divide them); then numpy ``"wrap"`` padding to
    ``4 T`` rows and a cut (:func:`wrap_to_frames`), and the channel axis.

    Args:
        waveform: ``(..., S)`` float samples in [-1, 1] at 16 kHz, ``S >=`` one window.
        frames: ``T``, video frames; ``None``: :func:`asd_video_frames` of ``S``.
        fps: video frame rate.
        input_scale: factor applied to the waveform first (32768: int16 units).

    Returns:
        ``(..., 1, 4 T, 64)`` in the waveform's dtype (float16 and bfloat16 waveforms are
        computed in float32 and the result cast back).
    """
    check_tensor(waveform, "waveform", floating=True)
    rate = 25.0 / check_number(fps, "fps", min_value=0, strict=True)
    warn_on_scale(waveform, input_scale)
    win = round(16000 * VGGISH_WINDOW_SECONDS * rate)  # mel_features: int(round(...))
    hop = round(16000 * VGGISH_HOP_SECONDS * rate)
    length = waveform.shape[-1] if waveform.ndim else 0
    if length < win:
        raise ValueError(
            f"waveform: expected (..., S) with at least {win} samples (one window at {fps:g} "
            f"fps), got {describe(waveform)}"
        )
    if frames is None:
        frames = asd_video_frames(length, fps=fps)
    frames = check_int(frames, "frames", min_value=1)
    nfft = 2 ** math.ceil(math.log2(win))
    x = waveform.to(compute_dtype(waveform.dtype)) * input_scale
    window = torch.hann_window(win, periodic=True, dtype=torch.float64).to(x)
    magnitude = torch.fft.rfft(x.unfold(-1, win, hop) * window, n=nfft, dim=-1).abs()
    log_mel = torch.log(
        magnitude @ vggish_mel_matrix(nfft // 2 + 1).to(magnitude) + VGGISH_LOG_OFFSET
    )
    rows = wrap_to_frames(log_mel, ASD_FEATURES_PER_FRAME * frames)
    return rows.unsqueeze(-3).to(waveform.dtype)
