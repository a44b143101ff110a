"""Issue 17, point 9: habits that used to end in a raw torch/Python message, or in one naming the
wrong setting. Each error names the thing and says what to do."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_raises_naming, budgets_for, make_inputs, make_model
from torch import nn

import avrobust
from avrobust.adapters.outputs import warn_probabilities

MODEL = make_model()
LABELS = torch.tensor([0, 1, 0])


def attack(model=MODEL, budgets=None, **kwargs):
    options = {"rule": "bim", "steps": 2, "seed": 0} | kwargs
    return avrobust.MultimodalAttack(model, budgets or budgets_for("linf"), **options)


def test_inputs_on_the_meta_device_name_the_modality_and_the_device():
    inputs = make_inputs()
    inputs["audio"] = inputs["audio"].to("meta")
    message = assert_raises_naming(ValueError, "inputs['audio']", attack(), inputs, LABELS)
    assert "meta" in message and "data" in message, message


class SkipsAudio(nn.Module):
    """Scores the visual stream alone (accepts any audio, also an empty one)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4 * 16 * 16, 2)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.lin(visual.flatten(1) / 255) + 0 * audio.sum()


def test_an_attacked_zero_size_modality_is_an_error():
    inputs = make_inputs()
    inputs["audio"] = torch.zeros(3, 0)
    message = assert_raises_naming(
        ValueError, "inputs['audio']", attack(SkipsAudio()), inputs, LABELS
    )
    assert "(3, 0)" in message and "no elements" in message, message


def test_a_zero_size_modality_that_is_not_attacked_is_the_models_business():
    inputs = make_inputs()
    inputs["audio"] = torch.zeros(3, 0)
    budgets = {"visual": budgets_for("linf")["visual"]}
    result = attack(SkipsAudio(), budgets)(inputs, LABELS)
    assert result.inputs["audio"].shape == (3, 0)


class HeadBatch(nn.Module):
    """An extra head whose batch is folded with frames, (B*2, C), beside (B, C) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model()

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> avrobust.AVOutput:
        out = self.inner(audio=audio, visual=visual)
        return avrobust.AVOutput(out.logits, heads={"audio": out.logits.repeat(2, 1)})


def test_a_head_whose_batch_differs_from_the_labels_is_named():
    message = assert_raises_naming(
        ValueError, "heads['audio']", attack(HeadBatch()), make_inputs(), LABELS
    )
    assert "(6, 2)" in message and "3" in message and "wrap" in message, message


def test_the_inference_objective_ignores_such_a_head():
    attack(HeadBatch(), objective="inference")(make_inputs(), LABELS)


@pytest.mark.parametrize("name", ["Margin", "DLR", "Training", "INFERENCE"])
def test_objective_names_are_case_insensitive(name):
    model = avrobust.testing.TinyAV(num_classes=3)
    resolved = attack(model, objective=name).objective
    assert type(resolved) is type(attack(model, objective=name.lower()).objective)


class Positional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> avrobust.AVOutput:
        return self.inner(audio=x, visual=y)


class OneBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model()

    def forward(self, batch: dict) -> avrobust.AVOutput:
        return self.inner(**batch)


@pytest.mark.parametrize("model, signature", [(Positional(), "(x, y)"), (OneBatch(), "(batch")])
def test_a_raw_model_whose_forward_does_not_take_the_modality_names(model, signature):
    message = assert_raises_naming(TypeError, "avrobust.wrap", attack(model), make_inputs(), LABELS)
    assert f"{type(model).__name__}.forward{signature}" in message, message
    assert "'audio'" in message and "'visual'" in message, message


def test_a_forward_taking_keywords_is_accepted():
    class Keywords(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = make_model()

        def forward(self, **inputs: torch.Tensor) -> avrobust.AVOutput:
            return self.inner(**inputs)

    attack(Keywords())(make_inputs(), LABELS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_one_hot_labels_say_so_and_how_to_convert(dtype):
    one_hot = F.one_hot(LABELS, 2).to(dtype)
    kind = TypeError if dtype.is_floating_point else ValueError
    message = assert_raises_naming(kind, "labels", attack(), make_inputs(), one_hot)
    assert "one-hot" in message and "labels.argmax(-1)" in message, message


def test_float_class_indices_say_how_to_convert():
    message = assert_raises_naming(TypeError, "labels", attack(), make_inputs(), LABELS.float())
    assert "labels.long()" in message and "one-hot" not in message, message


class Probabilities(nn.Module):
    """Returns softmax probabilities where the attack wants logits."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model()

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.inner(audio=audio, visual=visual).logits.softmax(-1)


def test_a_raw_model_returning_probabilities_warns_once_with_the_wrap_message():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attack(Probabilities(), rule=avrobust.PGD(restarts=2), steps=3)(make_inputs(), LABELS)
    found = [w for w in caught if "look like probabilities" in str(w.message)]
    assert len(found) == 1, [str(w.message) for w in caught]
    with warnings.catch_warnings(record=True) as expected:
        warnings.simplefilter("always")
        warn_probabilities(torch.zeros(3, 2), stacklevel=1)
    assert str(found[0].message) == str(expected[0].message)
    assert found[0].filename == __file__  # points at the caller's line


def test_a_wrapped_model_returning_probabilities_warns_once_not_twice():
    wrapped = avrobust.wrap(Probabilities())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attack(wrapped)(make_inputs(), LABELS)
    assert sum("look like probabilities" in str(w.message) for w in caught) == 1
