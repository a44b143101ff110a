"""Issue 17, point 3: data and budget in different units (frames in [0, 1] under 0–255 bounds).

The attack warns once per call, naming the modality, the observed range, the bounds and the fix;
data outside the bounds by a large factor is the existing error, which now says the same fix.
Ordinary data (frames in 0–255, audio in [-1, 1], quiet audio, silence, dark frames) is silent.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import make_inputs, make_model

import avrobust
from avrobust.attacks import units_disagree

MODEL = make_model()
LABELS = torch.tensor([0, 1, 0])


def attack(budgets=None, **kwargs):
    options = {"rule": "bim", "steps": 2, "seed": 0} | kwargs
    return avrobust.MultimodalAttack(MODEL, budgets or avrobust.push_pull_budgets(5), **options)


def units_warnings(caught):
    return [str(w.message) for w in caught if "units" in str(w.message)]


def test_frames_in_0_1_under_0_255_bounds_warn_once_naming_everything():
    inputs = make_inputs()
    inputs["visual"] = inputs["visual"] / 255
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attack(rule=avrobust.PGD(restarts=3))(inputs, LABELS)
    (message,) = units_warnings(caught)
    (where,) = [w.filename for w in caught if "units" in str(w.message)]
    assert where == __file__  # points at the caller's line
    assert "inputs['visual']" in message and "(0, 255)" in message, message
    low, high = (float(v) for v in torch.aminmax(inputs["visual"]))
    assert f"[{low:.4g}, {high:.4g}]" in message, message
    assert "frames * 255" in message and "bounds=(0.0, 1.0)" in message, message
    assert all(issubclass(w.category, UserWarning) for w in caught)


def test_float_audio_under_int16_bounds_warns():
    budgets = {"audio": avrobust.Linf(16.0, bounds=(-32768, 32767))}
    with pytest.warns(UserWarning, match=r"inputs\['audio'\].*\(-32768, 32767\)"):
        attack(budgets)(make_inputs(), LABELS)


def test_int16_audio_under_unit_bounds_is_the_bounds_error_with_the_fix():
    inputs = make_inputs()
    inputs["audio"] = (inputs["audio"] * 32767).round()
    with pytest.raises(ValueError, match=r"inputs\['audio'\]: values must lie inside") as info:
        attack()(inputs, LABELS)
    message = str(info.value)
    assert "other units" in message and "a waveform in [-1, 1]" in message, message


@pytest.mark.parametrize(
    "case", ["ordinary", "silent audio", "quiet audio", "dark frames", "black frames"]
)
def test_ordinary_data_does_not_warn(case):
    inputs = make_inputs()
    if case == "silent audio":
        inputs["audio"] = torch.zeros_like(inputs["audio"])
    elif case == "quiet audio":  # -46 dBFS peak: a quiet room
        inputs["audio"] = inputs["audio"] * 0.005
    elif case == "dark frames":  # pixel levels 0-4 of 255
        inputs["visual"] = (inputs["visual"] / 64).floor()
    elif case == "black frames":
        inputs["visual"] = torch.zeros_like(inputs["visual"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attack()(inputs, LABELS)


@pytest.mark.parametrize(
    "low, high, bounds, expected",
    [
        (0.0, 1.0, (0, 255), True),  # frames in [0, 1], 0-255 budget
        (-0.5, 0.7, (-32768, 32767), True),  # float audio, int16 budget
        (0.0, 255.0, (0, 1), True),  # 0-255 frames, [0, 1] budget
        (-20000.0, 30000.0, (-1, 1), True),  # int16 audio, float budget
        (0.0, 255.0, (0, 255), False),
        (-1.0, 1.0, (-1, 1), False),
        (-0.005, 0.005, (-1, 1), False),  # quiet audio
        (0.0, 0.0, (0, 255), False),  # black frames: nothing to judge by
        (0.0, 4.0, (0, 255), False),  # dark frames
        (-900.0, 800.0, (-32768, 32767), False),  # quiet int16 audio
        (0.0, 1.0, (0, float("inf")), False),  # an open range says nothing
    ],
)
def test_units_disagree(low, high, bounds, expected):
    assert units_disagree(low, high, bounds) is expected
