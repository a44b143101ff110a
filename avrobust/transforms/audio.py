"""Audio front-ends as transforms: waveform in, the features a model was trained on out.

Each is a small ``nn.Module`` over a function of :mod:`avrobust.transforms.functional`, holding
its constants as non-persistent buffers (they never enter a state dict), differentiable in the
waveform, so an attack through ``avrobust.wrap(model, transforms={"audio": ...})`` perturbs
samples while the model sees its features.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int, check_number, check_tensor
from ..models.features import MFCC, wrap_to_frames
from . import _audio_functional as F
from ._model_frontends import SYNCNET_FRAMES, loconet_log_mel, syncnet_mfcc

__all__ = ["ASDMFCC", "KaldiFbank", "LoCoNetLogMel", "SyncNetMFCC", "VGGishPatches"]


class ASDMFCC(nn.Module):
    """MFCC with the active-speaker-detection framing of TalkNet's AVA loader.

    ``python_speech_features.mfcc(int16_audio, 16000, numcep=13, winlen=0.025 * 25 / fps,
    winstep=0.010 * 25 / fps)`` computed in PyTorch (:class:`~avrobust.models.MFCC`), on the
    waveform in [-1, 1] times ``input_scale`` (32768: int16 units), then padded by repeating rows
    from the start (numpy ``"wrap"``) and cut to exactly ``4 T`` rows, 4 MFCC frames per video
    frame. :class:`~avrobust.models.TalkNet` computes its audio features with the same code.

    ``T`` is, in this order: the ``frames`` argument of :meth:`forward`, the ``frames`` given
    here, or ``round(S * fps / sample_rate)`` (640 samples per frame at 16 kHz and 25 fps).

    Args:
        frames: a fixed number of video frames ``T`` (``None``: from the waveform length).
        sample_rate: in Hz.
        fps: video frame rate.
        input_scale: factor applied to the waveform first.
        numcep: MFCC coefficients.
        compute_dtype: dtype of the internal computation (``None``: the input's, float32 for
            float16 and bfloat16 inputs); the result is cast back to the input's dtype.

    Shape:
        ``(..., S)`` waveform -> ``(..., 4 T, numcep)``.

    Example:
        >>> import torch
        >>> ASDMFCC()(torch.zeros(2, 5 * 640)).shape
        torch.Size([2, 20, 13])
    """

    def __init__(
        self,
        *,
        frames: int | None = None,
        sample_rate: float = 16000,
        fps: float = 25.0,
        input_scale: float = 32768.0,
        numcep: int = 13,
        compute_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.frames = None if frames is None else check_int(frames, "frames", min_value=1)
        self.fps = check_number(fps, "fps", min_value=0, strict=True)
        rate = 25.0 / self.fps
        self.mfcc = MFCC(
            sample_rate=sample_rate,
            winlen=0.025 * rate,
            winstep=0.010 * rate,
            numcep=numcep,
            input_scale=input_scale,
            compute_dtype=compute_dtype,
        )

    def video_frames(self, num_samples: int) -> int:
        """``T`` for a waveform of ``num_samples`` samples when none is given."""
        return F.asd_video_frames(num_samples, sample_rate=self.mfcc.sample_rate, fps=self.fps)

    def forward(self, waveform: Tensor, frames: int | None = None) -> Tensor:
        """Compute the aligned MFCC.

        Args:
            waveform: ``(..., S)`` float samples in [-1, 1].
            frames: ``T`` for this call (overrides the one given at construction).

        Returns:
            ``(..., 4 T, numcep)`` in the input's dtype.

        Raises:
            ValueError: a given ``T`` that the waveform is more than one video frame away from.
        """
        check_tensor(waveform, "waveform", floating=True)
        F.warn_on_scale(waveform, self.mfcc.input_scale)
        length = waveform.shape[-1] if waveform.ndim else 0
        steps = frames if frames is not None else self.frames
        if steps is None:
            steps = self.video_frames(length)
        steps = check_int(steps, "frames", min_value=1)
        per_frame = self.mfcc.sample_rate / self.fps
        low = max(1, math.floor(per_frame * (steps - 1)))
        high = math.ceil(per_frame * (steps + 1))
        if not low <= length <= high:
            raise ValueError(
                f"waveform: expected about {round(per_frame * steps)} samples for {steps} video "
                f"frames ({low} to {high} accepted), got {length}; pass frames=None to take "
                "the number of frames from the waveform"
            )
        return wrap_to_frames(self.mfcc(waveform), F.ASD_FEATURES_PER_FRAME * steps)

    def extra_repr(self) -> str:
        return f"frames={self.frames}, fps={self.fps:g}"


class KaldiFbank(nn.Module):
    """Kaldi log-mel filter banks, :func:`torchaudio.compliance.kaldi.fbank`, for a batch.

    The defaults are torchaudio's (:data:`~avrobust.transforms.functional.KALDI_FBANK_DEFAULTS`):
    ``dither=0.0`` (deterministic; Kaldi's own default is 1.0), ``window_type="povey"``,
    ``preemphasis_coefficient=0.97``, ``remove_dc_offset=True``, ``snip_edges=True``,
    ``use_energy=False``, ``num_mel_bins=23``, 25 ms frames every 10 ms at 16 kHz. AudioSet
    models such as AST use ``KaldiFbank(htk_compat=True, window_type="hanning",
    num_mel_bins=128)`` on a waveform in [-1, 1] (then their own mean/std normalisation).

    Args:
        input_scale: factor applied to the waveform first (32768 for Kaldi's int16 units).
        **options: options of :func:`torchaudio.compliance.kaldi.fbank`.

    Shape:
        ``(..., S)`` waveform, ``S`` at least one window (400 samples by default) ->
        ``(..., F, num_mel_bins)`` in the waveform's dtype; each clip computed on its own,
        float16 and bfloat16 waveforms in float32.

    Example:
        >>> import torch
        >>> KaldiFbank(num_mel_bins=40)(torch.randn(2, 16000)).shape
        torch.Size([2, 98, 40])
    """

    def __init__(self, *, input_scale: float = 1.0, **options: Any) -> None:
        super().__init__()
        unknown = sorted(set(options) - set(F.KALDI_FBANK_DEFAULTS))
        if unknown:
            raise TypeError(
                f"options: {unknown[0]!r} is not an option of torchaudio.compliance.kaldi.fbank; "
                f"expected some of {sorted(F.KALDI_FBANK_DEFAULTS)}"
            )
        self.input_scale = check_number(input_scale, "input_scale", min_value=0, strict=True)
        self.options = dict(options)

    def forward(self, waveform: Tensor) -> Tensor:
        """Compute the filter banks: ``(..., S)`` -> ``(..., F, num_mel_bins)``."""
        check_tensor(waveform, "waveform", floating=True)
        x = waveform * self.input_scale if self.input_scale != 1.0 else waveform
        return F.kaldi_fbank(x, **self.options)

    def extra_repr(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"input_scale={self.input_scale:g}" + (f", {options}" if options else "")


class VGGishPatches(nn.Module):
    """VGGish's input examples: log-mel spectrogram patches of 0.96 s.

    As ``vggish_input.waveform_to_examples`` of the AudioSet release, with the constants of its
    ``vggish_params.py``: 16 kHz (``SAMPLE_RATE``), 25 ms window (``STFT_WINDOW_LENGTH_SECONDS``,
    400 samples, periodic Hann, 512-point FFT magnitude), 10 ms hop
    (``STFT_HOP_LENGTH_SECONDS``), 64 mel bands (``NUM_MEL_BINS``) over 125-7500 Hz
    (``MEL_MIN_HZ``, ``MEL_MAX_HZ``, HTK mel scale), ``log(mel + 0.01)`` (``LOG_OFFSET``),
    patches of 96 frames (``NUM_FRAMES``, ``EXAMPLE_WINDOW_SECONDS = 0.96``) every 96 frames
    (``EXAMPLE_HOP_SECONDS = 0.96``). The waveform is float in [-1, 1] at 16 kHz (VGGish divides
    int16 samples by 32768); resample other rates first.

    Shape:
        ``(..., S)`` waveform, ``S >= 15600`` -> ``(..., N, 96, 64)``, ``N = 1 + (F - 96) // 96``
        with ``F = 1 + (S - 400) // 160`` frames, in the waveform's dtype (float16 and bfloat16
        waveforms are computed in float32). VGGish itself takes ``(N, 1, 96, 64)``.

    Example:
        >>> import torch
        >>> VGGishPatches()(torch.zeros(2, 32000)).shape
        torch.Size([2, 2, 96, 64])
    """

    mel_matrix: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mel_matrix", F.vggish_mel_matrix(), persistent=False)

    def forward(self, waveform: Tensor) -> Tensor:
        """Compute the patches: ``(..., S)`` -> ``(..., N, 96, 64)``."""
        return F.vggish_patches(F.vggish_log_mel(waveform, self.mel_matrix))


class SyncNetMFCC(nn.Module):
    """SyncNet's audio input: python_speech_features' default MFCC as ``(..., 1, 13, 4 T)``.

    :func:`~avrobust.transforms.functional.syncnet_mfcc`: the MFCC of
    ``SyncNetInstance.evaluate`` (``python_speech_features.mfcc(int16, 16000)``, 13
    coefficients, 10 ms hop) for one window of ``frames`` video frames, in SyncNet's layout
    (coefficients by time), so ``forward_aud`` takes it as it is.

    Args:
        frames: video frames per window ``T`` (SyncNet: 5, 0.2 s).
        input_scale: factor applied to the waveform first (32768: int16 units).

    Shape:
        ``(..., S)`` waveform in [-1, 1] at 16 kHz, ``S <= 640 T + 240`` (shorter is
        zero-padded) -> ``(..., 1, 13, 4 T)``.

    Example:
        >>> import torch
        >>> SyncNetMFCC()(torch.zeros(2, 3440)).shape
        torch.Size([2, 1, 13, 20])
    """

    def __init__(self, *, frames: int = SYNCNET_FRAMES, input_scale: float = 32768.0) -> None:
        super().__init__()
        self.frames = check_int(frames, "frames", min_value=1)
        self.input_scale = check_number(input_scale, "input_scale", min_value=0, strict=True)

    def forward(self, waveform: Tensor) -> Tensor:
        """Compute the MFCC window: ``(..., S)`` -> ``(..., 1, 13, 4 T)``."""
        return syncnet_mfcc(waveform, self.frames, input_scale=self.input_scale)

    def extra_repr(self) -> str:
        return f"frames={self.frames}, input_scale={self.input_scale:g}"


class LoCoNetLogMel(nn.Module):
    """LoCoNet's audio input: VGGish's log-mel at 4 rows per video frame, ``(..., 1, 4 T, 64)``.

    :func:`~avrobust.transforms.functional.loconet_log_mel`: LoCoNet's ``waveform_to_examples``
    (VGGish's ``log_mel_spectrogram``, window and hop scaled by ``25 / fps``) on the int16-scaled
    waveform, wrap-padded and cut to ``4 T`` rows, with the channel axis its loader adds.

    Args:
        frames: a fixed number of video frames ``T`` (``None``: ``round(S * fps / 16000)``).
        fps: video frame rate.
        input_scale: factor applied to the waveform first (32768: int16 units).

    Shape:
        ``(..., S)`` waveform in [-1, 1] at 16 kHz -> ``(..., 1, 4 T, 64)``.

    Example:
        >>> import torch
        >>> LoCoNetLogMel()(torch.zeros(2, 3200)).shape
        torch.Size([2, 1, 20, 64])
    """

    def __init__(
        self, *, frames: int | None = None, fps: float = 25.0, input_scale: float = 32768.0
    ) -> None:
        super().__init__()
        self.frames = None if frames is None else check_int(frames, "frames", min_value=1)
        self.fps = check_number(fps, "fps", min_value=0, strict=True)
        self.input_scale = check_number(input_scale, "input_scale", min_value=0, strict=True)

    def forward(self, waveform: Tensor) -> Tensor:
        """Compute the log-mel rows: ``(..., S)`` -> ``(..., 1, 4 T, 64)``."""
        return loconet_log_mel(waveform, self.frames, fps=self.fps, input_scale=self.input_scale)

    def extra_repr(self) -> str:
        return f"frames={self.frames}, fps={self.fps:g}, input_scale={self.input_scale:g}"
