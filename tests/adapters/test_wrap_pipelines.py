"""Issue 18: ``transforms=`` takes a list applied in order (as ``logits=`` does), and a selector
given the wrong type (a tuple output fed to a classifier) says which selector and what it got."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import avrobust


class TupleOut(nn.Module):
    """Light-ASD's output structure: ``forward(audioFeature, visualFeature) -> (outsAV, outsV)``."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.v = nn.Linear(3, 4), nn.Linear(3, 4)

    def forward(self, audioFeature, visualFeature):
        av = self.a(audioFeature) + self.v(visualFeature)
        return av.reshape(-1, 4), self.v(visualFeature).reshape(-1, 4)


INPUTS = {"audio": torch.randn(2, 3), "visual": torch.randn(2, 3)}


@pytest.mark.parametrize(
    ("logits", "where"),
    [
        (nn.Linear(4, 2), "logits"),
        ([nn.Linear(4, 2), lambda out: out], "logits[0]"),
        ([lambda out: out, nn.Linear(4, 2)], "logits[1]"),
    ],
)
def test_selector_given_a_tuple_names_its_position_and_what_it_got(logits, where):
    """A module selector that receives the model's tuple raises a TypeError naming the
    selector's position, the tuple it got, the raw cause, and the index to put first."""
    wrapped = avrobust.wrap(TupleOut(), ["audio", "visual"], logits=logits)
    with pytest.raises(TypeError) as info:
        wrapped(**INPUTS)
    message = str(info.value)
    assert message.startswith(f"{where}:"), message
    assert "tuple of 2 elements (Tensor, Tensor)" in message
    assert "must be Tensor" in message  # the raw error is kept in the message
    assert "logits=[0, " in message  # the fix: select an element first


def test_selector_on_a_dict_suggests_a_key():
    """A function selector given a dict output names the keys to select first."""
    model = nn.Linear(3, 4)
    wrapped = avrobust.wrap(
        model, ["audio"], forward=lambda m, audio: {"scores": m(audio)}, logits=lambda o: o.view(-1)
    )
    with pytest.raises(TypeError, match=r"^logits: .*dict with keys \['scores'\].*'scores'"):
        wrapped(audio=torch.randn(2, 3))


def test_selector_error_on_a_tensor_is_the_users_own():
    """An error of a selector that did get a tensor keeps its type and message (with a note)."""
    wrapped = avrobust.wrap(nn.Linear(3, 4), ["audio"], logits=lambda out: out.view(5, 7))
    with pytest.raises(RuntimeError, match="shape") as info:
        wrapped(audio=torch.randn(2, 3))
    assert any("logits" in note for note in getattr(info.value, "__notes__", []))


def test_the_right_pipeline_on_a_tuple_runs():
    """``logits=[0, classifier]`` takes element 0, then the classifier."""
    model, fc = TupleOut(), nn.Linear(4, 2)
    out = avrobust.wrap(model, ["audio", "visual"], logits=[0, fc])(**INPUTS)
    torch.testing.assert_close(out.logits, fc(model(INPUTS["audio"], INPUTS["visual"])[0]))


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        return self.dropout(x) * self.factor


def test_transforms_take_a_list_applied_in_order():
    """``transforms={"audio": [module, function, module]}`` applies them left to right; the
    modules are registered (eval() reaches the dropout), and the pipeline is callable as
    ``wrapped.transforms["audio"]``."""
    first, last = Scale(2.0), Scale(10.0)
    model = nn.Linear(3, 4)
    wrapped = avrobust.wrap(
        model, ["audio"], transforms={"audio": [first, lambda x: x + 1.0, last]}
    )
    wrapped.eval()
    assert not first.training and not last.training
    x = torch.randn(2, 3)
    expected = model((x * 2.0 + 1.0) * 10.0)
    torch.testing.assert_close(wrapped(audio=x).logits, expected)
    torch.testing.assert_close(wrapped.transforms["audio"](x), (x * 2.0 + 1.0) * 10.0)
    names = {n for n, _ in wrapped.named_modules()}
    assert {"transforms.audio.steps.0", "transforms.audio.steps.2"} <= names


def test_transform_list_errors_name_the_step():
    """A step that is not callable is refused at wrap time naming its position; an error
    inside a step at call time carries a note naming it; an empty list is refused."""
    with pytest.raises(TypeError, match=r"transforms\['audio'\]\[1\]: expected"):
        avrobust.wrap(nn.Linear(3, 4), ["audio"], transforms={"audio": [abs, 3]})
    with pytest.raises(ValueError, match=r"transforms\['audio'\]: an empty list"):
        avrobust.wrap(nn.Linear(3, 4), ["audio"], transforms={"audio": []})
    wrapped = avrobust.wrap(
        nn.Linear(3, 4), ["audio"], transforms={"audio": [abs, lambda x: x.view(7, 7)]}
    )
    with pytest.raises(RuntimeError) as info:
        wrapped(audio=torch.randn(2, 3))
    assert any("transforms['audio'][1]" in n for n in getattr(info.value, "__notes__", []))
