"""Issue 17, point 4: models that write into their inputs or into themselves during forward.

The caller's tensors come back bit-identical whatever forward does; an attacked input written in
place is an error naming the model; parameters and buffers that forward rebinds or mutates in
place are restored (the original objects, with their values, ``requires_grad`` and ``.grad``).
"""

from __future__ import annotations

import pytest
import torch
from helpers import assert_same_model, budgets_for, make_inputs, make_model, snapshot
from torch import nn

import avrobust

LABELS = torch.tensor([0, 1, 0])


class ScalesInPlace(nn.Module):
    """Writes into its inputs in place (``visual /= 255``, ``audio *= 2``), as some models do."""

    def __init__(self, write: tuple[str, ...] = ("visual",)) -> None:
        super().__init__()
        self.inner = make_model()
        self.write = write
        self.seen: list[float] = []  # the largest visual value each forward saw first

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> avrobust.AVOutput:
        self.seen.append(float(visual.detach().abs().max()))
        if "visual" in self.write:
            visual /= 255
        if "audio" in self.write:
            audio *= 2
        return self.inner(audio=audio / 2 if "audio" in self.write else audio, visual=visual * 255)


def copies(inputs):
    return {n: x.clone() for n, x in inputs.items()}


@pytest.mark.parametrize(
    "rule, options",
    [("bim", {}), ("pgd", {}), (avrobust.PGD(restarts=3), {"max_batch": 6, "eot_samples": 2})],
    ids=["bim", "pgd", "pgd-restarts-chunked-eot"],
)
def test_an_input_the_attack_does_not_perturb_is_written_in_place(rule, options):
    """Only audio is attacked; forward divides visual in place at every pass: the caller's
    visual is unchanged, every forward sees the original values, the result carries them."""
    model = ScalesInPlace()
    inputs = make_inputs()
    before = copies(inputs)
    budgets = {"audio": budgets_for("linf")["audio"]}
    attack = avrobust.MultimodalAttack(model, budgets, rule=rule, steps=3, seed=0, **options)
    with torch.inference_mode():  # the caller's tensors may be inference tensors
        frozen = {n: x.clone() for n, x in inputs.items()}
    result = attack(frozen, LABELS)
    for name in inputs:
        assert torch.equal(frozen[name], before[name]), f"caller's {name} was written to"
    result = attack(inputs, LABELS)
    for name in inputs:
        assert torch.equal(inputs[name], before[name]), f"caller's {name} was written to"
    assert torch.equal(result.inputs["visual"], before["visual"])
    peak = float(before["visual"].abs().max())
    assert model.seen and all(seen == peak for seen in model.seen), model.seen


def test_an_attacked_input_written_in_place_is_an_error_naming_the_model():
    inputs = make_inputs()
    before = copies(inputs)
    attack = avrobust.MultimodalAttack(ScalesInPlace(), budgets_for("linf"), rule="bim", steps=2)
    with pytest.raises(ValueError) as info:
        attack(inputs, LABELS)
    message = str(info.value)
    assert "ScalesInPlace" in message and "in place" in message, message
    assert "'visual'" in message and "leaf Variable" not in message, message
    for name in inputs:
        assert torch.equal(inputs[name], before[name])


def test_an_attacked_input_written_in_place_without_gradient_is_the_same_error():
    """PGD scores its random starts' clean inputs under no_grad first: the write is caught too."""
    inputs = make_inputs()
    before = copies(inputs)
    budgets = {"audio": budgets_for("linf")["audio"]}
    attack = avrobust.MultimodalAttack(ScalesInPlace(("audio",)), budgets, rule="pgd", steps=2)
    with pytest.raises(ValueError, match=r"ScalesInPlace.*'audio'"):
        attack(inputs, LABELS)
    for name in inputs:
        assert torch.equal(inputs[name], before[name])


class Counts(nn.Module):
    """Rebinds a buffer (``self.calls = self.calls + 1``) and a functional running mean, rebinds
    a parameter and scales another in place under no_grad, at every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model()
        self.register_buffer("calls", torch.zeros(()))
        self.register_buffer("running", torch.zeros(()))
        self.gain = nn.Parameter(torch.ones(()))
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> avrobust.AVOutput:
        self.calls = self.calls + 1
        self.running = 0.9 * self.running + 0.1 * audio.detach().mean()  # functional update
        with torch.no_grad():
            self.inner.head.bias.mul_(1.5)
            self.gain.add_(1.0)
        self.shift = nn.Parameter(self.shift.detach() + 1)
        out = self.inner(audio=audio, visual=visual)
        return avrobust.AVOutput(
            out.logits * self.gain + self.shift + self.running, heads=out.heads
        )


@pytest.mark.filterwarnings("ignore:model_mode='current' with BatchNorm")
@pytest.mark.parametrize("model_mode", ["eval", "current"])
def test_parameters_and_buffers_rebound_or_mutated_by_forward_are_restored(model_mode):
    model = Counts()
    model.gain.grad = torch.full((), 3.0)
    model.shift.requires_grad_(False)
    before, objects = snapshot(model), dict(model.named_parameters()) | dict(model.named_buffers())
    attack = avrobust.MultimodalAttack(
        model, budgets_for("linf"), rule="pgd", steps=2, model_mode=model_mode, seed=0
    )
    attack(make_inputs(), LABELS)
    assert_same_model(before, model)
    after = dict(model.named_parameters()) | dict(model.named_buffers())
    assert all(after[k] is v for k, v in objects.items()), "a rebound tensor was not put back"
    assert not model.running.requires_grad and model.running.grad_fn is None
    assert model.gain.requires_grad and torch.equal(model.gain.grad, torch.full((), 3.0))


def test_preserve_model_state_restores_rebinding_and_in_place_changes():
    model = Counts()
    before = snapshot(model)
    with torch.no_grad(), avrobust.preserve_model_state(model):
        model(**make_inputs())
        model(**make_inputs())
    assert_same_model(before, model)


def test_restoring_leaves_untouched_parameters_alone():
    """A parameter forward did not change is not written back (its version stays), so a graph
    the caller built before the attack can still be backpropagated after it."""
    model = make_model()
    inputs = make_inputs()
    loss = model(**inputs).logits.sum()  # the caller's graph, saved parameters inside
    versions = {n: p._version for n, p in model.named_parameters()}
    avrobust.MultimodalAttack(model, budgets_for("linf"), rule="bim", steps=2)(inputs, LABELS)
    assert {n: p._version for n, p in model.named_parameters()} == versions
    loss.backward()  # would raise had a saved parameter been written to


def test_a_model_loaded_under_inference_mode_can_be_attacked():
    """Parameters created under inference_mode have no version counter: nothing to restore."""
    with torch.inference_mode():
        model = make_model()
    model.eval()
    before = snapshot(model)
    avrobust.MultimodalAttack(model, {}, rule="bim", steps=1)(make_inputs(), LABELS)
    assert_same_model(before, model)
