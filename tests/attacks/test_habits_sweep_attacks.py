"""Issue 17, the sweep of attacks and wrapping: what researchers get wrong, and faults around them.

Each test is one finding of the sweep (``/tmp/sweep_attacks``): a silent wrong answer (a caller's
tensor or model changed, a budget or an objective not as given) or an error that did not say what
was at fault. Errors must name the argument or the thing at fault.
"""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import (
    assert_raises_naming,
    assert_same_model,
    budgets_for,
    make_inputs,
    make_model,
    snapshot,
)
from torch import nn

import avrobust
from avrobust.attacks import TopKTargeted

LABELS = torch.tensor([0, 1, 0])


class WritesInputs(nn.Module):
    """Writes in place into one of its inputs at every forward (``audio *= 0.5`` or
    ``visual.clamp_(100, 200)``), as some preprocessing code does."""

    def __init__(self, write: str) -> None:
        super().__init__()
        self.inner = make_model()
        self.write = write

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> avrobust.AVOutput:
        if self.write == "audio":
            audio.mul_(0.5)
        else:
            visual.clamp_(100, 200)
        return self.inner(audio=audio, visual=visual)


VISUAL_ONLY = {"visual": avrobust.Linf(4.0, bounds=(0, 255))}


def _copies(inputs):
    return {n: x.clone() for n, x in inputs.items()}


def _assert_unchanged(before, inputs):
    for name, x in before.items():
        assert torch.equal(x, inputs[name]), f"the caller's {name} was written to"


# ---------------------------------------------------------------- the caller's tensors
@pytest.mark.parametrize(
    "run",
    [
        lambda m, x: avrobust.SquareAttack(m, VISUAL_ONLY, queries=4, seed=0)(x, LABELS),
        lambda m, x: TopKTargeted(
            avrobust.MultimodalAttack(m, VISUAL_ONLY, targeted=True, steps=2, seed=0)
        )(x, LABELS),
        lambda m, x: avrobust.batch_coupling(m, x),
    ],
    ids=["square", "top-k-targeted", "batch-coupling"],
)
def test_a_forward_writing_into_an_input_that_is_not_attacked_leaves_the_callers_tensors(run):
    model, inputs = WritesInputs("audio"), make_inputs()
    before = _copies(inputs)
    run(model, inputs)
    _assert_unchanged(before, inputs)


def test_square_gives_every_query_the_clean_values_of_an_input_it_does_not_attack():
    """The model halves audio in place at every forward; each query must still see the
    caller's audio."""
    seen: list[torch.Tensor] = []

    class Records(WritesInputs):
        def forward(self, audio, visual):
            seen.append(audio.clone())  # each query holds the rows of the samples not yet broken
            return super().forward(audio, visual)

    inputs = make_inputs()
    result = avrobust.SquareAttack(Records("audio"), VISUAL_ONLY, queries=3, seed=0)(inputs, LABELS)
    assert len(seen) > 1
    for audio in seen:
        assert (audio[:, None] == inputs["audio"][None]).all(-1).any(1).all(), "written values"
    assert torch.equal(result.inputs["audio"], inputs["audio"])


def test_square_refuses_a_forward_writing_into_an_attacked_input():
    model, inputs = WritesInputs("visual"), make_inputs()
    before = _copies(inputs)
    attack = avrobust.SquareAttack(model, VISUAL_ONLY, queries=4, seed=0)
    message = assert_raises_naming(ValueError, "WritesInputs", attack, inputs, LABELS)
    assert "'visual'" in message and "in place" in message
    _assert_unchanged(before, inputs)


def test_diagnose_leaves_the_callers_tensors_when_the_model_writes_into_them():
    model, inputs = WritesInputs("audio"), make_inputs()
    before = _copies(inputs)
    avrobust.diagnose(
        model, inputs, LABELS, VISUAL_ONLY, steps=1, restarts=1, queries=2, noise_draws=1,
        scales=(1.0, 2.0),
    )  # fmt: skip
    _assert_unchanged(before, inputs)


# ---------------------------------------------------------------- the model
class WritesWeightData(nn.Module):
    """Changes a weight through ``.data`` (which bypasses autograd's version counter)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model()

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> avrobust.AVOutput:
        self.inner.head.bias.data.add_(1.0)
        return self.inner(audio=audio, visual=visual)


def test_a_parameter_written_through_data_is_restored():
    model = WritesWeightData()
    before = snapshot(model)
    avrobust.MultimodalAttack(model, budgets_for("linf"), steps=2, seed=0)(make_inputs(), LABELS)
    assert_same_model(before, model)


def test_attacks_on_one_model_from_several_threads_leave_it_as_it_was():
    """Each attack puts the model in eval mode and restores its flags: overlapping attacks from
    several threads must not record one another's eval mode as the model's own."""
    model = make_model()
    model.train()
    before = snapshot(model)
    errors: list[BaseException] = []

    def attack() -> None:
        try:
            for _ in range(2):
                avrobust.MultimodalAttack(model, budgets_for("linf"), steps=2, seed=0)(
                    make_inputs(), LABELS
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=attack) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert_same_model(before, model)


def test_labels_made_under_inference_mode_are_accepted():
    with torch.inference_mode():
        inputs, labels = make_inputs(), LABELS.clone()
    result = avrobust.MultimodalAttack(make_model(), budgets_for("linf"), steps=1, seed=0)(
        inputs, labels
    )
    assert result.success.shape == (3,)


def test_a_model_built_under_inference_mode_is_refused_by_name():
    with torch.inference_mode():
        model = make_model()
    attack = avrobust.MultimodalAttack(model, budgets_for("linf"), steps=1)
    message = assert_raises_naming(ValueError, "model", attack, make_inputs(), LABELS)
    assert "inference_mode" in message


# ---------------------------------------------------------------- budgets
@pytest.mark.parametrize(
    "field, value, exc",
    [
        ("eps", -5.0, ValueError),
        ("eps", float("nan"), ValueError),
        ("eps", "8", TypeError),
        ("alpha", 0.0, ValueError),
        ("bounds", (255, 0), ValueError),
    ],
)
def test_a_budget_changed_after_it_was_made_is_checked(field, value, exc):
    budget = avrobust.Linf(4.0, bounds=(0, 255))
    with pytest.raises(exc, match=f"Linf.{field}"):
        setattr(budget, field, value)


def test_a_budget_changed_after_it_was_made_keeps_its_forms():
    budget = avrobust.Linf(4.0, bounds=(0, 255))
    budget.eps, budget.alpha, budget.bounds = 8, 1, [0, 1]
    assert (budget.eps, budget.alpha, budget.bounds) == (8.0, 1.0, (0.0, 1.0))
    budget.eps = torch.tensor([1.0, 2.0, 3.0])
    assert budget.eps.shape == (3,)


# ---------------------------------------------------------------- objectives
@pytest.mark.parametrize(
    "objective, fragment",
    [
        (nn.CrossEntropyLoss(), "CrossEntropyLoss"),
        (F.cross_entropy, "cross_entropy"),
        (avrobust.MarginObjective, "MarginObjective()"),
        (lambda out: out.logits[:, 0], "objective(AVOutput, labels)"),
        (avrobust.AVILoss(), "AVILoss"),
    ],
    ids=["nn-loss", "functional-loss", "class", "one-parameter", "avil"],
)
def test_an_objective_of_the_wrong_form_is_refused_at_construction(objective, fragment):
    message = assert_raises_naming(
        TypeError, "objective", avrobust.MultimodalAttack, make_model(), budgets_for("linf"),
        objective=objective,
    )  # fmt: skip
    assert fragment in message


def test_an_objective_returning_integers_is_refused_by_name():
    attack = avrobust.MultimodalAttack(
        make_model(), budgets_for("linf"), steps=1, objective=lambda out, y: out.logits.argmax(-1)
    )
    message = assert_raises_naming(TypeError, "objective", attack, make_inputs(), LABELS)
    assert "int64" in message


def test_an_objective_with_nan_at_the_clean_inputs_is_refused_naming_the_samples():
    def nan_for_one(out, labels):
        loss = F.cross_entropy(out.logits, labels, reduction="none")
        return torch.where(torch.arange(3) == 1, loss * float("nan"), loss)

    attack = avrobust.MultimodalAttack(
        make_model(), budgets_for("linf"), steps=2, objective=nan_for_one
    )
    message = assert_raises_naming(ValueError, "objective", attack, make_inputs(), LABELS)
    assert "[1]" in message


def test_head_weights_naming_a_head_the_output_lacks_are_refused():
    objective = avrobust.CrossEntropyObjective({"audoi": 0.4})
    attack = avrobust.MultimodalAttack(make_model(), budgets_for("linf"), objective=objective)
    message = assert_raises_naming(ValueError, "audoi", attack, make_inputs(), LABELS)
    assert "'audio'" in message


def test_a_head_with_fewer_classes_than_the_labels_is_named():
    class OneClassHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = make_model()

        def forward(self, audio, visual):
            out = self.inner(audio=audio, visual=visual)
            return avrobust.AVOutput(out.logits, heads={"aux": out.logits[:, :1]})

    attack = avrobust.MultimodalAttack(OneClassHead(), budgets_for("linf"), steps=1)
    assert_raises_naming(ValueError, "heads['aux']", attack, make_inputs(), LABELS)


# ---------------------------------------------------------------- outputs and wrapping
def test_heads_that_are_not_a_dict_are_named():
    class ListHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = make_model()

        def forward(self, audio, visual):
            logits = self.inner(audio=audio, visual=visual).logits
            return avrobust.AVOutput(logits, heads=[logits])

    attack = avrobust.MultimodalAttack(ListHeads(), budgets_for("linf"), steps=1)
    assert_raises_naming(TypeError, "AVOutput.heads", attack, make_inputs(), LABELS)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"logits": lambda out: out.nope}, "logits"),
        ({"transforms": {"audio": lambda x: x.reshape(-1, 7)}}, "transforms['audio']"),
        ({"forward": lambda m, wave, frames: m(wave, frames)}, "forward"),
    ],
    ids=["logits-selector", "transform", "forward-function"],
)
def test_an_error_inside_a_wrap_option_says_which_option_raised(options, fragment):
    wrapped = avrobust.wrap(make_model(), **options)
    with pytest.raises(Exception) as info:
        wrapped(**make_inputs())
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert fragment in notes, notes


def test_an_error_inside_the_models_forward_names_the_inputs_it_got():
    attack = avrobust.MultimodalAttack(make_model(), budgets_for("linf"), steps=1)
    inputs = make_inputs()
    inputs["visual"] = inputs["visual"][:, 0]  # (B, H, W): a frame axis missing
    with pytest.raises(Exception) as info:
        attack(inputs, LABELS)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "(3, 16, 16)" in notes and "TinyAV" in notes, notes


def test_declared_probabilities_whose_rows_do_not_sum_to_one_warn():
    sigmoids = avrobust.wrap(
        make_model(), output="probabilities", logits=lambda out: out.logits.sigmoid()
    )
    with pytest.warns(UserWarning, match="sum to values in"):
        sigmoids(**make_inputs())
    softmax = avrobust.wrap(
        make_model(), output="probabilities", logits=lambda out: out.logits.softmax(-1)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        softmax(**make_inputs())


# ---------------------------------------------------------------- ensembles
def test_an_ensemble_attack_returning_another_batch_is_named():
    model = make_model()

    def half(inputs, labels):
        attack = avrobust.MultimodalAttack(model, budgets_for("linf"), steps=1)
        return attack({n: x[:2] for n, x in inputs.items()}, labels[:2])

    ensemble = avrobust.Ensemble([half])
    message = assert_raises_naming(ValueError, "attacks[0]", ensemble, make_inputs(), LABELS)
    assert "3" in message and "2" in message


# ---------------------------------------------------------------- options in the wrong place
@pytest.mark.parametrize(
    "make, option, fragment",
    [
        (avrobust.MultimodalAttack, "restarts", "avrobust.PGD(restarts="),
        (avrobust.MultimodalAttack, "eps", "avrobust.Linf("),
        (avrobust.SquareAttack, "steps", "queries="),
        (avrobust.SquareAttack, "alpha", "alpha="),
    ],
)
def test_an_option_of_another_object_says_where_it_belongs(make, option, fragment):
    message = assert_raises_naming(
        TypeError, repr(option), make, make_model(), budgets_for("linf"), **{option: 2}
    )
    assert fragment in message and "'budgets'" in message


class WritesThroughData(nn.Module):
    """Halves an input through ``.data``, which bypasses autograd's version counter."""

    def __init__(self, write: str) -> None:
        super().__init__()
        self.inner = make_model()
        self.write = write

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> avrobust.AVOutput:
        (audio if self.write == "audio" else visual).data.mul_(0.5)
        return self.inner(audio=audio, visual=visual)


def test_a_write_through_data_into_an_attacked_input_is_refused():
    attack = avrobust.MultimodalAttack(WritesThroughData("visual"), VISUAL_ONLY, steps=2, seed=0)
    message = assert_raises_naming(ValueError, "'visual'", attack, make_inputs(), LABELS)
    assert "in place" in message


def test_a_write_through_data_into_an_input_that_is_not_attacked_is_undone():
    inputs = make_inputs()
    before = _copies(inputs)
    attack = avrobust.MultimodalAttack(WritesThroughData("audio"), VISUAL_ONLY, steps=2, seed=0)
    result = attack(inputs, LABELS)
    _assert_unchanged(before, inputs)
    assert torch.equal(result.inputs["audio"], inputs["audio"])
    assert (result.inputs["visual"] - inputs["visual"]).abs().max() <= 4.0


@pytest.mark.parametrize("labels", [[0, 1, 0], (0, 1, 0)], ids=["list", "tuple"])
def test_labels_that_are_not_a_tensor_say_how_to_convert_them(labels):
    attack = avrobust.MultimodalAttack(make_model(), budgets_for("linf"), steps=1)
    message = assert_raises_naming(TypeError, "labels", attack, make_inputs(), labels)
    assert "torch.as_tensor(labels)" in message
