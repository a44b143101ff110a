"""Issue 17 sweep, the export of listening-test material: NaN/Inf samples or pixels, integer
PCM handed in as float samples, and data in other units (frames in [0, 1], int16-scale audio)
would write silent, black or clipped files without a word: refused or warned about, naming the
argument."""

from __future__ import annotations

import warnings

import pytest
import torch

from avrobust.export import export_pairs, write_png, write_wav


@pytest.mark.parametrize(
    ("write", "name", "value"),
    [
        (write_wav, "audio", torch.full((100,), float("nan"))),
        (write_png, "image", torch.full((8, 8), float("inf"))),
    ],
)
def test_non_finite_values_are_refused_naming_the_argument(tmp_path, write, name, value):
    with pytest.raises(ValueError, match=name):
        write(tmp_path / "out", value)
    assert not (tmp_path / "out").exists()


def test_integer_pcm_is_refused_with_the_scaling_to_use(tmp_path):
    with pytest.raises(TypeError, match="audio") as info:
        write_wav(tmp_path / "a.wav", torch.zeros(100, dtype=torch.int16))
    assert "32768" in str(info.value)


@pytest.mark.parametrize(
    ("write", "value", "fragment"),
    [
        (write_wav, torch.rand(100) * 30000, "[-1, 1]"),
        (write_png, torch.rand(8, 8), "0-255"),
    ],
    ids=["int16-scale audio", "frames in [0, 1]"],
)
def test_data_in_other_units_warns(tmp_path, write, value, fragment):
    with pytest.warns(UserWarning, match="other units") as caught:
        write(tmp_path / "out", value)
    assert fragment in str(caught[0].message)


def test_export_pairs_warns_once_for_frames_in_other_units(tmp_path):
    clean = {"visual": torch.rand(3, 2, 8, 8)}
    adversarial = {"visual": (clean["visual"] + 0.01).clamp(0, 1)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export_pairs(tmp_path, clean, adversarial, frames=False)
    said = [w for w in caught if "other units" in str(w.message)]
    assert len(said) == 1 and "visual" in str(said[0].message)


def test_data_in_its_units_writes_without_warning(tmp_path, recwarn):
    write_wav(tmp_path / "a.wav", torch.rand(100) * 2 - 1)
    write_png(tmp_path / "a.png", torch.rand(8, 8) * 255)
    write_png(tmp_path / "b.png", torch.zeros(8, 8))  # a black frame says nothing
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_export_pairs_names_the_non_finite_side(tmp_path):
    clean = {"audio": torch.zeros(1, 100)}
    with pytest.raises(ValueError, match=r"adversarial\['audio'\]"):
        export_pairs(tmp_path, clean, {"audio": torch.full((1, 100), float("nan"))})
