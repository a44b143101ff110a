"""Transforms on float16/bfloat16 waveforms compute in float32 and cast back (gradients flow);
KaldiFbank on audio shorter than one window says so."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming

from avrobust.models import MFCC, LinearSpectrogram
from avrobust.transforms import ASDMFCC, KaldiFbank, VGGishPatches
from avrobust.transforms import functional as AF

HALF = (torch.float16, torch.bfloat16)

TRANSFORMS = {
    "ASDMFCC": (ASDMFCC, 3200),
    "asd_mfcc": (lambda: AF.asd_mfcc, 3200),
    "MFCC": (lambda: MFCC(input_scale=32768.0), 3200),
    "KaldiFbank": (lambda: KaldiFbank(num_mel_bins=23), 3200),
    "kaldi_fbank": (lambda: AF.kaldi_fbank, 3200),
    "VGGishPatches": (VGGishPatches, 16000),
    "vggish_log_mel": (lambda: AF.vggish_log_mel, 1600),
    "LinearSpectrogram": (LinearSpectrogram, 3200),
}


def waveform(samples: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(samples)
    t = torch.arange(samples) / 16000
    tone = 0.4 * torch.sin(2 * torch.pi * 220 * t) * (0.6 + 0.4 * torch.sin(2 * torch.pi * 3 * t))
    return (tone + 0.05 * torch.randn(2, samples, generator=g)).clamp(-1, 1)


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_audio_transforms_on_half_precision_compute_in_float32(name, dtype):
    """The result is in the input's half dtype, equals the float32 result on the same (rounded)
    samples to within the half dtype's rounding, and the waveform gets a finite gradient."""
    build, samples = TRANSFORMS[name]
    transform = build()
    x = waveform(samples).to(dtype).requires_grad_()
    out = transform(x)
    assert out.dtype == dtype
    expected = transform(x.detach().float())
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.float(), expected, rtol=eps, atol=eps * 1e-3)
    out.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == dtype
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("samples", [0, 100, 399])
def test_kaldi_fbank_on_audio_shorter_than_a_window_names_it(samples):
    """Shorter than one window (400 samples: 25 ms at 16 kHz): a ValueError naming the
    waveform, its length, the window length and the option that sets it."""
    for transform in (KaldiFbank(), lambda w: AF.kaldi_fbank(w)):
        message = assert_raises_naming(ValueError, "waveform", transform, torch.zeros(2, samples))
        for word in (f"{samples} samples", "400", "frame_length"):
            assert word in message, message
    fits = KaldiFbank()(torch.zeros(2, 400))
    assert fits.shape == (2, 1, 23)
