"""Issue 17 sweep, the models: checkpoints whose values cannot be weights (the linear
spectrogram on half precision is in tests/transforms/test_habits_half_precision.py)."""

from __future__ import annotations

import pytest
import torch


def _first_weight(state):
    return next(k for k, v in state.items() if v.is_floating_point() and v.ndim > 1)


def _running_var(state):
    return next(k for k in state if k.endswith("running_var"))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda sd: {**sd, _first_weight(sd): sd[_first_weight(sd)].long()}, "int64"),
        (lambda sd: {**sd, _first_weight(sd): sd[_first_weight(sd)] > 0}, "bool"),
        (
            lambda sd: {**sd, _first_weight(sd): sd[_first_weight(sd)].to(torch.complex64)},
            "complex",
        ),
        (
            lambda sd: {**sd, _running_var(sd): -torch.ones_like(sd[_running_var(sd)])},
            "running_var",
        ),
    ],
    ids=["int weights", "bool weights", "complex weights", "negative running_var"],
)
def test_a_checkpoint_whose_values_cannot_be_weights_is_refused_naming_the_key(
    tmp_path, change, fragment
):
    """Integer, bool or complex values where the model has float weights would be cast in
    silence (truncated, 0/1, the imaginary part dropped); a negative BatchNorm variance gives NaN
    scores. Refused before anything is loaded, naming the file and the key."""
    from avrobust.models import TalkNet

    path = tmp_path / "w.model"
    TalkNet("tiny").save_checkpoint(path)
    torch.save(change(torch.load(path)), path)
    with pytest.raises(ValueError, match=r"w\.model") as info:
        TalkNet.from_checkpoint(path, "tiny")
    assert fragment in str(info.value)


def test_a_checkpoint_in_another_float_precision_still_loads(tmp_path):
    from avrobust.models import TalkNet

    path = tmp_path / "w.model"
    TalkNet("tiny").save_checkpoint(path)
    state = torch.load(path)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, path)
    model = TalkNet.from_checkpoint(path, "tiny")
    assert next(model.parameters()).dtype == torch.float32
