"""Issue 18: SyncNet's ``(B, 1, 13, 20)`` MFCC and LoCoNet's 4-rows-per-frame log-mel, against
the arithmetic of the models' own front-ends (SyncNetInstance.evaluate with python_speech_features;
LoCoNet's waveform_to_examples, written out in NumPy step by step)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from avrobust.models.features import wrap_to_frames
from avrobust.transforms import LoCoNetLogMel, SyncNetMFCC
from avrobust.transforms import functional as AF

psf = pytest.importorskip("python_speech_features")


def int16_track(samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(samples)
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def syncnet_reference(track: np.ndarray, frame: int) -> np.ndarray:
    """SyncNetInstance.evaluate: mfcc of the whole int16 track (psf defaults), (1, 1, 13, N),
    the columns [4 f, 4 f + 20) of the window starting at video frame f."""
    cc = np.stack(list(zip(*psf.mfcc(track, 16000))))[None, None]
    return cc[:, :, :, frame * 4 : frame * 4 + 20]


@pytest.mark.parametrize("frame", [0, 3, 11])
def test_syncnet_mfcc_equals_syncnets_window_of_the_whole_track(frame):
    """The window's span of the track ([640 f, 640 f + 3440)) gives SyncNet's own columns; for
    f > 0 the first column differs (its pre-emphasis would read the sample before the clip)."""
    track = int16_track(16000, seed=frame)
    expected = syncnet_reference(track, frame)
    clip = torch.tensor(track[640 * frame : 640 * frame + 3440] / 32768.0)[None]
    got = SyncNetMFCC()(clip)
    assert got.shape == (1, 1, 13, 20) == expected.shape
    first = 0 if frame == 0 else 1
    np.testing.assert_allclose(
        got[..., first:].numpy(), expected[..., first:], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(AF.syncnet_mfcc(clip).numpy(), got.numpy(), rtol=0, atol=0)


def test_syncnet_mfcc_pads_a_short_clip_and_refuses_a_long_one():
    """5 frames of audio (3200 samples) are zero-padded to the 3440-sample span; a longer clip
    is refused naming the limit; the gradient reaches the samples."""
    wave = torch.rand(2, 3200, dtype=torch.float64, requires_grad=True)
    out = SyncNetMFCC()(wave * 2 - 1)
    assert out.shape == (2, 1, 13, 20)
    out.sum().backward()
    assert wave.grad is not None and float(wave.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="waveform: expected at most 3440 samples"):
        SyncNetMFCC()(torch.zeros(1, 3441))


def loconet_reference(track: np.ndarray, frames: int, fps: float = 25.0) -> np.ndarray:
    """LoCoNet's waveform_to_examples on the int16 samples, written out: mel_features framing
    (whole windows of int(round(16000 * 0.025 * 25 / fps)) samples), periodic Hann, |rfft| of the
    next power of two, HTK-mel matrix 125-7500 Hz (DC row zero), log(mel + 0.01), numpy 'wrap'
    padding to 4 T rows and the cut, then the loader's channel axis."""
    win = round(16000 * 0.025 * 25 / fps)
    hop = round(16000 * 0.010 * 25 / fps)
    nfft = 2 ** int(np.ceil(np.log2(win)))
    count = 1 + (len(track) - win) // hop
    framed = np.stack([track[i * hop : i * hop + win] for i in range(count)]).astype(np.float64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi / win * np.arange(win))
    magnitude = np.abs(np.fft.rfft(framed * window, nfft))
    mel = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)  # noqa: E731
    bins = mel(np.linspace(0.0, 8000.0, nfft // 2 + 1))[:, None]
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    lo, centre, hi = edges[:-2], edges[1:-1], edges[2:]
    matrix = np.maximum(0.0, np.minimum((bins - lo) / (centre - lo), (hi - bins) / (hi - centre)))
    matrix[0, :] = 0.0
    log_mel = np.log(magnitude @ matrix + 0.01)
    if log_mel.shape[0] < 4 * frames:
        log_mel = np.pad(log_mel, ((0, 4 * frames - log_mel.shape[0]), (0, 0)), "wrap")
    return log_mel[: 4 * frames][None]


@pytest.mark.parametrize(
    ("frames", "samples", "fps"), [(5, 3200, 25.0), (8, 5120, 25.0), (6, 3200, 30.0)]
)
def test_loconet_log_mel_equals_loconets_waveform_to_examples(frames, samples, fps):
    """Rows, padding and values as LoCoNet's loader computes them (float64, 1e-9)."""
    track = int16_track(samples, seed=samples)
    got = LoCoNetLogMel(frames=frames, fps=fps)(torch.tensor(track / 32768.0)[None])
    assert got.shape == (1, 1, 4 * frames, 64)
    np.testing.assert_allclose(
        got[0].numpy(), loconet_reference(track, frames, fps), rtol=1e-9, atol=1e-9
    )


def test_loconet_log_mel_frames_from_length_and_float32():
    """T defaults to round(S * fps / 16000); float32 stays float32 and close to float64."""
    wave = torch.tensor(int16_track(3200, 1) / 32768.0)[None]
    assert LoCoNetLogMel()(wave.float()).dtype == torch.float32
    torch.testing.assert_close(
        LoCoNetLogMel()(wave.float()).double(), LoCoNetLogMel()(wave), rtol=1e-4, atol=1e-4
    )
    with pytest.raises(ValueError, match=r"waveform: expected .* at least 400 samples"):
        LoCoNetLogMel()(torch.zeros(1, 399))


def test_wrap_to_frames_counts_rows_and_the_old_keyword_warns():
    """``wrap_to_frames(features, rows)``: ``rows`` counts feature rows; ``frames=`` (which
    meant rows, not video frames) still works with a DeprecationWarning."""
    x = torch.arange(6.0).view(3, 2)
    assert wrap_to_frames(x, rows=5).tolist() == [[0, 1], [2, 3], [4, 5], [0, 1], [2, 3]]
    with pytest.warns(DeprecationWarning, match="rows="):
        old = AF.wrap_to_frames(x, frames=5)
    assert torch.equal(old, wrap_to_frames(x, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wrap_to_frames(x, 2)
    with pytest.raises(TypeError, match="rows"):
        wrap_to_frames(x, 4, frames=4)
