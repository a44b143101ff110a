"""Issue 18: torchaudio's native library is imported only where it is used.

A torchaudio wheel built for another torch (or a CPU install that pulled a CUDA torchaudio) fails
at ``import torchaudio`` with an ``OSError`` from its extension. ``import avrobust``, the
transforms, the CLI and the demo's front-ends must still work; only :class:`KaldiFbank` (Kaldi
filter banks are torchaudio's code) raises, naming torchaudio, the cause and the fix.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from avrobust.models.features import LinearSpectrogram
from avrobust.transforms import functional as F

BROKEN = "libtorchaudio.so: undefined symbol: fake_symbol_for_the_test"

SCRIPT = textwrap.dedent(
    """
    import runpy, sys
    import torch
    import avrobust, avrobust.transforms, avrobust.cli
    from avrobust.models.features import LinearSpectrogram
    from avrobust.transforms import ASDMFCC, VGGishPatches, Normalize, functional as F
    wave = torch.rand(1, 3200) * 2 - 1
    assert ASDMFCC()(wave).shape == (1, 20, 13)
    assert VGGishPatches()(torch.zeros(1, 16000)).shape == (1, 1, 96, 64)
    assert LinearSpectrogram()(wave).shape[-1] == 201
    assert F.KALDI_FBANK_DEFAULTS["num_mel_bins"] == 23
    fbank = avrobust.transforms.KaldiFbank(num_mel_bins=40)  # building it needs no torchaudio
    try:
        fbank(torch.zeros(1, 16000))
    except ImportError as error:
        print("ERROR:", error)
    else:
        raise SystemExit("KaldiFbank ran without torchaudio")
    sys.argv = ["avrobust", "--help"]
    try:
        runpy.run_module("avrobust", run_name="__main__")
    except SystemExit as done:
        assert done.code in (0, None), done.code
    print("HELP-OK")
    """
)


@pytest.fixture
def broken_torchaudio(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``import torchaudio`` raises the OSError of a mismatched build."""
    package = tmp_path / "torchaudio"
    package.mkdir()
    (package / "__init__.py").write_text(f"raise OSError({BROKEN!r})\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.slow
def test_everything_but_kaldi_works_when_torchaudio_cannot_load(broken_torchaudio):
    """With a torchaudio that raises OSError on import: avrobust, its transforms and CLI import;
    the MFCC, VGGish and linear-spectrogram front-ends run; ``python -m avrobust --help`` works;
    KaldiFbank raises an ImportError naming torchaudio, the OSError and the install command."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=broken_torchaudio,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HELP-OK" in done.stdout and "usage: avrobust" in done.stdout
    error = done.stdout.split("ERROR:", 1)[1].split("\n")[0]
    assert "torchaudio" in error and "OSError" in error and "fake_symbol_for_the_test" in error
    assert "pip install torch torchaudio --index-url https://download.pytorch.org/whl/" in error


@pytest.mark.slow
def test_python_m_avrobust_help_without_torchaudio(broken_torchaudio):
    """``python -m avrobust --help`` exits 0 with the usage when torchaudio cannot load."""
    done = subprocess.run(
        [sys.executable, "-m", "avrobust", "--help"],
        env=broken_torchaudio,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: avrobust")


def test_kaldi_defaults_are_torchaudios():
    """The defaults written out in avrobust equal torchaudio's signature (where it loads)."""
    kaldi = pytest.importorskip("torchaudio.compliance.kaldi")
    expected = {
        name: p.default
        for name, p in inspect.signature(kaldi.fbank).parameters.items()
        if name != "waveform"
    }
    assert F.KALDI_FBANK_DEFAULTS == expected


@pytest.mark.parametrize("nfft", [None, 512])
def test_linear_spectrogram_equals_torchaudio(nfft):
    """The linear spectrogram, now on torch.stft, equals torchaudio.functional.spectrogram with
    the same framing (exactly: the same FFT is called)."""
    AF = pytest.importorskip("torchaudio.functional")
    spec = LinearSpectrogram(nfft=nfft).double()
    wave = torch.randn(2, 6650, dtype=torch.float64)
    frames = spec.num_frames(wave.shape[-1])
    front = (spec.nfft - spec.frame_len) // 2
    back = (frames - 1) * spec.frame_step + spec.nfft - wave.shape[-1] - front
    x = torch.nn.functional.pad(wave, (front, back))
    reference = AF.spectrogram(
        x,
        pad=0,
        window=spec.window.to(torch.float64),
        n_fft=spec.nfft,
        hop_length=spec.frame_step,
        win_length=spec.frame_len,
        power=2.0,
        normalized=False,
        center=False,
    )
    expected = torch.log(reference + spec.guard).transpose(-1, -2)
    torch.testing.assert_close(spec(wave), expected, rtol=1e-10, atol=1e-10)
