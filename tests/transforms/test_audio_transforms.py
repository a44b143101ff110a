"""Audio transforms against their references: python_speech_features 0.6 + the AVA loader's framing
(ASDMFCC), torchaudio.compliance.kaldi.fbank (KaldiFbank), a NumPy VGGish pipeline (VGGishPatches)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi
from helpers import assert_raises_naming

from avrobust.models import TalkNet
from avrobust.transforms import ASDMFCC, KaldiFbank, VGGishPatches
from avrobust.transforms import functional as AF

psf = pytest.importorskip("python_speech_features")


def int16_clip(samples: int, seed: int, batch: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    tone = np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x = 0.3 * tone + 0.05 * rng.standard_normal((batch, samples))
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def ava_reference(int16: np.ndarray, frames: int, fps: float = 25.0) -> np.ndarray:
    """TalkNet's AVA loader (load_audio): psf.mfcc with the window scaled by 25/fps, then
    numpy 'wrap' padding to 4T rows and a cut to 4T."""
    out = []
    for row in int16:
        feats = psf.mfcc(row, 16000, numcep=13, winlen=0.025 * 25 / fps, winstep=0.010 * 25 / fps)
        if len(feats) < 4 * frames:
            feats = np.pad(feats, ((0, 4 * frames - len(feats)), (0, 0)), "wrap")
        out.append(feats[: 4 * frames])
    return np.stack(out)


@pytest.mark.parametrize(
    "frames, samples, fps",
    [(5, 3200, 25.0), (6, 3900, 25.0), (4, 2300, 25.0), (3, 1920, 25.0), (6, 3200, 30.0)],
)
def test_asd_mfcc_equals_python_speech_features_with_the_ava_framing(frames, samples, fps):
    """ASDMFCC on [-1, 1] samples == psf.mfcc on the int16 samples, wrap-padded/cut to 4T rows,
    within 1e-4 relative: elementwise in float64, relative to the feature scale in float32."""
    int16 = int16_clip(samples, seed=samples)
    expected = ava_reference(int16, frames, fps)
    waveform = torch.tensor(int16 / 32768.0)
    got64 = ASDMFCC(frames=frames, fps=fps)(waveform)
    assert got64.shape == (2, 4 * frames, 13) and got64.dtype == torch.float64
    np.testing.assert_allclose(got64.numpy(), expected, rtol=1e-4, atol=1e-6)
    got32 = ASDMFCC(fps=fps)(waveform.float(), frames)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(
        AF.asd_mfcc(waveform, frames, fps=fps).numpy(), expected, rtol=1e-4, atol=1e-6
    )


def test_asd_mfcc_takes_the_frame_count_from_the_waveform_length():
    """Without frames, T = round(S * 25 / 16000): 640 samples per frame, halves rounding up."""
    module = ASDMFCC()
    assert [module.video_frames(s) for s in (640, 3200, 3519, 3520, 100)] == [1, 5, 5, 6, 1]
    x = torch.tensor(int16_clip(3300, 1) / 32768.0)
    assert torch.equal(module(x), module(x, frames=5))
    assert torch.equal(ASDMFCC(frames=5)(x), module(x, 5))


def test_talknet_computes_its_audio_features_with_asd_mfcc():
    """TalkNet's waveform path and ASDMFCC are the same code: bit-identical features."""
    model = TalkNet("tiny").eval()
    for frames, samples in ((5, 3200), (4, 2300), (3, 2100)):
        x = torch.rand(2, samples, generator=torch.Generator().manual_seed(samples)) * 2 - 1
        assert torch.equal(model.audio_features(x, frames), ASDMFCC(frames=frames)(x))


def test_asd_mfcc_gradcheck_float64():
    """torch.autograd.gradcheck of ASDMFCC w.r.t. a short float64 waveform (2 video frames)."""
    x = torch.tensor(int16_clip(1280, 3, batch=1) / 32768.0, requires_grad=True)
    assert torch.autograd.gradcheck(ASDMFCC(frames=2), (x,), eps=1e-7, atol=1e-5, rtol=1e-4)


def test_asd_mfcc_bad_arguments_name_the_argument():
    """A waveform far from T frames, int samples, T < 1 and fps <= 0 each raise naming them."""
    x = torch.zeros(1, 3200)
    message = assert_raises_naming(ValueError, "waveform", ASDMFCC(frames=10), x)
    assert "3200" in message and "5760 to 7040" in message
    assert_raises_naming(TypeError, "waveform", ASDMFCC(), torch.zeros(1, 640, dtype=torch.int16))
    assert_raises_naming(ValueError, "frames", ASDMFCC(), x, 0)
    assert_raises_naming(ValueError, "frames", ASDMFCC, frames=0)
    assert_raises_naming(ValueError, "fps", ASDMFCC, fps=0)
    assert_raises_naming(ValueError, "fps", AF.asd_mfcc, x, fps=-1.0)


AST = {"htk_compat": True, "window_type": "hanning", "num_mel_bins": 128, "dither": 0.0}


@pytest.mark.parametrize("options", [{}, AST, {"use_energy": True, "snip_edges": False}])
def test_kaldi_fbank_equals_torchaudio_per_clip(options):
    """KaldiFbank on a batch == torchaudio.compliance.kaldi.fbank called on each clip alone."""
    x = torch.tensor(int16_clip(4000, 4, batch=3) / 32768.0, dtype=torch.float32)
    got = KaldiFbank(**options)(x)
    for i in range(3):
        assert torch.equal(got[i], kaldi.fbank(x[i : i + 1], **options))
    nested = KaldiFbank(**options)(x.reshape(3, 1, -1))
    assert torch.equal(nested[:, 0], got)


def test_kaldi_fbank_defaults_are_torchaudios_and_the_scale_applies_first():
    """The exposed defaults are deterministic (dither 0, povey, preemphasis 0.97, DC removed,
    snip_edges, no energy), and input_scale multiplies the waveform before Kaldi."""
    d = AF.KALDI_FBANK_DEFAULTS
    assert (d["dither"], d["window_type"], d["preemphasis_coefficient"]) == (0.0, "povey", 0.97)
    assert d["remove_dc_offset"] and d["snip_edges"] and not d["use_energy"]
    x = torch.tensor(int16_clip(2000, 5, batch=1) / 32768.0, dtype=torch.float32)
    assert torch.equal(KaldiFbank(input_scale=32768.0)(x)[0], kaldi.fbank(x * 32768.0))


def test_kaldi_fbank_gradcheck_float64():
    """torch.autograd.gradcheck of KaldiFbank (default and AST options) in float64."""
    x = torch.tensor(int16_clip(800, 6, batch=2) / 32768.0, requires_grad=True)
    assert torch.autograd.gradcheck(KaldiFbank(num_mel_bins=10), (x,), fast_mode=True)
    assert torch.autograd.gradcheck(KaldiFbank(**AST), (x,), fast_mode=True)


def test_kaldi_fbank_bad_arguments_name_the_argument():
    """An unknown option, an integer waveform, an empty one, a bad scale raise naming them."""
    assert_raises_naming(TypeError, "'num_mels'", KaldiFbank, num_mels=40)
    assert_raises_naming(TypeError, "'num_mels'", AF.kaldi_fbank, torch.zeros(400), num_mels=40)
    assert_raises_naming(
        TypeError, "waveform", KaldiFbank(), torch.zeros(2, 800, dtype=torch.int32)
    )
    assert_raises_naming(ValueError, "waveform", KaldiFbank(), torch.zeros(2, 0))
    assert_raises_naming(ValueError, "input_scale", KaldiFbank, input_scale=0)


def numpy_vggish(waveform: np.ndarray) -> np.ndarray:
    """VGGish's examples in NumPy, step by step as mel_features.py / vggish_input.py describe:
    400-sample frames (snip), periodic Hann, |rfft(512)|, HTK-mel matrix 125-7500 Hz with the
    DC row zeroed, log(mel + 0.01), 96-frame patches every 96 frames."""
    win, hop, nfft = 400, 160, 512
    count = 1 + (len(waveform) - win) // hop
    frames = np.stack([waveform[i * hop : i * hop + win] for i in range(count)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi / win * np.arange(win))
    magnitude = np.abs(np.fft.rfft(frames * window, nfft))

    def mel(hz):
        return 1127.0 * np.log(1.0 + hz / 700.0)

    bins_mel = mel(np.linspace(0.0, 8000.0, nfft // 2 + 1))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    matrix = np.zeros((nfft // 2 + 1, 64))
    for i in range(64):
        lo, centre, hi = edges[i : i + 3]
        for k, m in enumerate(bins_mel):
            matrix[k, i] = max(0.0, min((m - lo) / (centre - lo), (hi - m) / (hi - centre)))
    matrix[0, :] = 0.0
    log_mel = np.log(magnitude @ matrix + 0.01)
    patches = 1 + (len(log_mel) - 96) // 96
    return np.stack([log_mel[i * 96 : i * 96 + 96] for i in range(patches)])


def test_vggish_patches_shapes_and_values_equal_a_numpy_vggish():
    """Shapes (N = 1 + (F - 96) // 96 patches of 96 x 64) and values equal to the NumPy pipeline."""
    x = int16_clip(40000, 7, batch=2) / 32768.0
    got = VGGishPatches()(torch.tensor(x))
    assert got.shape == (2, 2, 96, 64)  # F = 1 + (40000 - 400) // 160 = 248 frames
    for i in range(2):
        np.testing.assert_allclose(got[i].numpy(), numpy_vggish(x[i]), rtol=1e-9, atol=1e-9)
    assert VGGishPatches()(torch.zeros(1, 15600)).shape == (1, 1, 96, 64)
    assert VGGishPatches()(torch.zeros(3, 2, 48000)).shape == (3, 2, 3, 96, 64)


def test_vggish_patches_gradcheck_float64():
    """torch.autograd.gradcheck (fast mode) of VGGishPatches on one 0.975 s float64 clip."""
    x = torch.tensor(int16_clip(15600, 8, batch=1) / 32768.0, requires_grad=True)
    assert torch.autograd.gradcheck(VGGishPatches(), (x,), fast_mode=True)


def test_vggish_bad_inputs_name_the_argument():
    """Too short for a frame or for a patch, or integer samples, raise naming the input."""
    assert_raises_naming(ValueError, "log_mel", VGGishPatches(), torch.zeros(1, 15599))
    assert_raises_naming(ValueError, "waveform", VGGishPatches(), torch.zeros(1, 399))
    assert_raises_naming(
        TypeError, "waveform", VGGishPatches(), torch.zeros(1, 16000, dtype=torch.int16)
    )
