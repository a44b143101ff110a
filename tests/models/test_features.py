"""The differentiable audio front-ends against python_speech_features 0.6 (the independent reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming
from hypothesis import given, settings
from hypothesis import strategies as st

from avrobust.models import MFCC, LinearSpectrogram, mfcc
from avrobust.models.features import (
    LOG_FLOOR,
    dct_matrix,
    frame_signal,
    mel_filterbank,
    num_frames,
    round_half_up,
    samples_for_frames,
)

psf = pytest.importorskip("python_speech_features")
from python_speech_features import sigproc  # noqa: E402
from scipy.fftpack import dct as scipy_dct  # noqa: E402


def speech_like(samples: int, seed: int) -> np.ndarray:
    """Voiced harmonics with a moving pitch, a syllable envelope, a little noise and a digital-silence gap."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    f0 = 110 + 40 * np.sin(2 * np.pi * 2.5 * t) + 20 * rng.standard_normal()
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = np.sin(np.pi * 4 * t) ** 2
    x = 0.3 * voiced * envelope + 0.002 * rng.standard_normal(samples)
    x[samples // 3 : samples // 3 + 900] = 0.0  # digital silence: a frame with zero energy
    return np.clip(x, -1, 1)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(x * 32767).astype(np.int16)


def reference(int16: np.ndarray, **kwargs: float) -> np.ndarray:
    """TalkNet's call (demo): mfcc(audio, 16000, numcep=13, winlen=0.025, winstep=0.010)."""
    return psf.mfcc(int16, 16000, numcep=13, **{"winlen": 0.025, "winstep": 0.010, **kwargs})


@pytest.mark.parametrize("samples", [300, 400, 401, 1000, 6640, 16000])
@pytest.mark.parametrize("kind", ["speech", "noise"])
def test_mfcc_matches_python_speech_features(samples: int, kind: str) -> None:
    rng = np.random.default_rng(samples)
    x = speech_like(samples, samples) if kind == "speech" else rng.uniform(-1, 1, samples)
    int16 = to_int16(x)
    expected = reference(int16)
    waveform = torch.tensor(int16 / 32768.0, dtype=torch.float32)  # [-1, 1] as the model gets it
    got = MFCC(input_scale=32768.0)(waveform)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-3, rtol=0)
    # the pure function on int16-scale samples gives the same
    np.testing.assert_allclose(mfcc(waveform * 32768).numpy(), expected, atol=1e-3, rtol=0)


def test_mfcc_ava_30fps_window_matches_reference() -> None:
    # AVA loader at 30 fps: winlen 0.025*25/30 s (333.33 -> 333 samples), hop 133.33 -> 133
    int16 = to_int16(speech_like(5333, 1))
    winlen, winstep = 0.025 * 25 / 30, 0.010 * 25 / 30
    expected = reference(int16, winlen=winlen, winstep=winstep)
    module = MFCC(winlen=winlen, winstep=winstep, input_scale=32768.0)
    assert (module.frame_len, module.frame_step) == (333, 133)
    got = module(torch.tensor(int16 / 32768.0, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-3, rtol=0)


def test_mfcc_scale_only_shifts_c0() -> None:
    x = torch.tensor(speech_like(3000, 2), dtype=torch.float64)
    unit, scaled = mfcc(x), mfcc(x * 32768)
    torch.testing.assert_close(scaled[:, 1:], unit[:, 1:])
    non_silent = unit[:, 0] > math.log(1e-10)
    shift = (scaled[:, 0] - unit[:, 0])[non_silent]
    torch.testing.assert_close(shift, torch.full_like(shift, 2 * math.log(32768)))


def test_mfcc_batch_dims_equal_per_signal() -> None:
    x = torch.randn(2, 3, 2000)
    batched = MFCC()(x)
    assert batched.shape == (2, 3, num_frames(2000, 400, 160), 13)
    torch.testing.assert_close(batched[1, 2], MFCC()(x[1, 2]))


def test_constants_match_reference_pieces() -> None:
    np.testing.assert_array_equal(
        mel_filterbank(26, 512, 16000).numpy(), psf.get_filterbanks(26, 512, 16000)
    )
    x = np.random.default_rng(0).standard_normal((4, 26))
    np.testing.assert_allclose(
        x @ dct_matrix(26, 13).numpy(), scipy_dct(x, type=2, axis=1, norm="ortho")[:, :13]
    )
    signal = np.arange(1234.0)
    np.testing.assert_array_equal(
        frame_signal(torch.tensor(signal), 400, 160).numpy(), sigproc.framesig(signal, 400, 160)
    )
    assert (
        round_half_up(333.3333) == 333
        and round_half_up(400.5) == 401
        and round_half_up(0.025 * 16000) == 400
    )


@settings(max_examples=60, deadline=None)
@given(frames=st.integers(1, 500), frame_len=st.integers(1, 600), frame_step=st.integers(1, 300))
def test_samples_for_frames_is_the_exact_preimage(
    frames: int, frame_len: int, frame_step: int
) -> None:
    low, high = samples_for_frames(frames, frame_len, frame_step)
    assert num_frames(low, frame_len, frame_step) == frames
    assert num_frames(high, frame_len, frame_step) == frames
    assert num_frames(high + 1, frame_len, frame_step) == frames + 1
    if low > 1:
        assert num_frames(low - 1, frame_len, frame_step) == frames - 1


def test_mfcc_gradcheck_float64() -> None:
    # default TalkNet parameters on a short signal (3 frames), int16 amplitude
    x = (torch.randn(1, 600, dtype=torch.float64) * 3000).requires_grad_()
    assert torch.autograd.gradcheck(lambda w: mfcc(w), (x,), fast_mode=True)
    # the module with its input scale, small custom geometry, full (slow-mode) check
    module = MFCC(winlen=0.004, winstep=0.002, nfft=64, nfilt=8, numcep=5, input_scale=100.0)
    y = torch.randn(2, 150, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (y,))


def test_mfcc_gradient_is_finite_on_digital_silence() -> None:
    x = torch.zeros(1, 1200, requires_grad=True)
    out = MFCC(input_scale=32768.0)(x)
    assert torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(grad).all()


def test_mfcc_warns_when_frames_exceed_fft_size() -> None:
    module = MFCC(winlen=0.04)  # 640-sample frames, nfft 512
    with pytest.warns(
        UserWarning, match=r"frame length \(640 samples\) is greater than the FFT size \(512\)"
    ):
        module(torch.randn(2000))


def test_mfcc_argument_errors() -> None:
    with pytest.raises(ValueError, match=r"numcep: must be <= nfilt = 26, got 30"):
        MFCC(numcep=30)
    with pytest.raises(ValueError, match=r"winlen: must be a finite number > 0, got -0.025"):
        MFCC(winlen=-0.025)
    with pytest.raises(
        ValueError, match=r"highfreq: must be <= sample_rate / 2 = 8000 Hz, got 9000"
    ):
        MFCC(highfreq=9000)
    with pytest.raises(TypeError, match=r"waveform: expected a floating-point tensor"):
        MFCC()(torch.zeros(1000, dtype=torch.int16))


def test_linear_spectrogram_frames_shape_and_gradient() -> None:
    spec = LinearSpectrogram()
    for samples in (300, 6640, 6641, 16000):
        out = spec(torch.randn(2, samples))
        assert out.shape == (2, MFCC().num_frames(samples), 201)
    # frame i covers samples [160 i, 160 i + 400): an impulse at sample 500 shows in frames 1, 2 and 3 only
    impulse = torch.zeros(1, 1200)
    impulse[0, 500] = 1.0
    energetic = spec(impulse).amax(-1)[0] > math.log(1e-9)
    assert energetic.nonzero().flatten().tolist() == [1, 2, 3]
    x = torch.randn(1, 500, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        LinearSpectrogram(winlen=0.01, winstep=0.005), (x,), fast_mode=True
    )


def test_linear_spectrogram_log_guard_is_named_guard() -> None:
    """The spectrogram's ``log(power + guard)``: on silence it is exactly ``log(guard)`` (the
    default 1e-10 and a custom 1.0), and a guard <= 0 is refused naming ``guard``."""
    silence = torch.zeros(1, 1200, dtype=torch.float64)
    torch.testing.assert_close(
        LinearSpectrogram()(silence), torch.full((1, 6, 201), math.log(1e-10), dtype=torch.float64)
    )
    assert float(LinearSpectrogram(guard=1.0)(silence).abs().max()) == 0.0
    assert_raises_naming(ValueError, "guard", LinearSpectrogram, guard=0.0)


def test_mfcc_log_floor_is_machine_epsilon() -> None:
    """Digital silence gives ``log(LOG_FLOOR)`` in every filter before the DCT: c0 (the log
    energy) equals ``log(machine epsilon)`` exactly, as python_speech_features puts it."""
    out = mfcc(torch.zeros(1, 800, dtype=torch.float64))
    assert LOG_FLOOR == np.finfo(float).eps
    torch.testing.assert_close(out[..., 0], torch.full_like(out[..., 0], math.log(LOG_FLOOR)))


def test_feature_modules_have_no_state_dict_entries() -> None:
    assert MFCC().state_dict() == {} and LinearSpectrogram().state_dict() == {}


def test_features_package_keeps_the_old_import_paths() -> None:
    """``avrobust.models.features`` became a package (framing, filterbanks, cepstral,
    spectrogram): every name of the old module's ``__all__`` still imports from it and is the
    object its submodule defines."""
    import avrobust.models.features as features
    from avrobust.models.features import cepstral, filterbanks, framing, spectrogram

    old_all = ["MFCC", "LinearSpectrogram", "dct_matrix", "frame_signal", "lifter_weights",
               "mel_filterbank", "mfcc", "num_frames", "power_spectrum", "preemphasis",
               "round_half_up", "samples_for_frames"]  # fmt: skip
    assert set(old_all) <= set(features.__all__)
    homes = (cepstral, filterbanks, framing, spectrogram)
    for name in old_all:
        home = [m for m in homes if name in m.__all__]
        assert len(home) == 1 and getattr(features, name) is getattr(home[0], name), name
