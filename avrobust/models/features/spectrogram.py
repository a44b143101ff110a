"""A log power spectrogram on a linear frequency axis, framed like the MFCC (specTalkNet)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..._checks import check_int, check_number, check_tensor
from .framing import FramedFrontEnd

__all__ = ["LinearSpectrogram"]


class LinearSpectrogram(FramedFrontEnd):
    """Log power spectrogram on a linear frequency axis (specTalkNet's audio features).

    Computed with :func:`torch.stft` (Hann window, ``center=False``; the same FFT as
    :func:`torchaudio.functional.spectrogram`, which it equals, without torchaudio). The
    waveform's tail is zero-padded as python_speech_features pads it, so frame ``i`` covers samples
    ``[i H, i H + L)`` and a waveform gives exactly as many frames as :class:`MFCC` with the same
    ``winlen``/``winstep`` (4 per video frame for TalkNet). Output: ``log(power + guard)`` with the
    waveform in its own unit ([-1, 1] for TalkNet), ``nfft // 2 + 1`` bins.

    Args:
        sample_rate: in Hz.
        winlen: window length in seconds (also the FFT size unless ``nfft`` is given).
        winstep: hop in seconds.
        nfft: FFT size, ``>=`` the window length (default: the window length).
        guard: added to the power before the log (a numerical guard against ``log(0)``), > 0.

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
        guard: float = 1e-10,
    ) -> None:
        super().__init__(sample_rate, winlen, winstep)
        self.nfft = self.frame_len if nfft is None else check_int(nfft, "nfft", min_value=1)
        if self.nfft < self.frame_len:
            raise ValueError(
                f"nfft: must be >= the window length ({self.frame_len} samples), got {self.nfft}"
            )
        self.guard = check_number(guard, "guard", min_value=0, strict=True)
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
            ``(..., F, nfft // 2 + 1)``, same dtype (float16 and bfloat16 waveforms are
            computed in float32 and the result cast back).
        """
        check_tensor(waveform, "waveform", floating=True)
        if waveform.dtype in (torch.float16, torch.bfloat16):  # no FFT: compute in float32
            return self(waveform.float()).to(waveform.dtype)
        length = waveform.shape[-1]
        frames = self.num_frames(length)
        # torch.stft centres a short window inside each nfft-long frame: shift the signal so the
        # window covers [i H, i H + L) and pad the tail to the python_speech_features length.
        front = (self.nfft - self.frame_len) // 2
        back = (frames - 1) * self.frame_step + self.nfft - length - front
        x = nn.functional.pad(waveform, (front, back))
        rows = x.reshape(-1, x.shape[-1])
        spec = torch.stft(
            rows,
            n_fft=self.nfft,
            hop_length=self.frame_step,
            win_length=self.frame_len,
            window=self.window.to(x.dtype),
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spec = spec.reshape(*x.shape[:-1], *spec.shape[-2:])
        power = torch.view_as_real(spec).square().sum(-1)
        return torch.log(power + self.guard).transpose(-1, -2)

    def extra_repr(self) -> str:
        return f"frame_len={self.frame_len}, frame_step={self.frame_step}, nfft={self.nfft}"
