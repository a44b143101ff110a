"""The attack's cost in model passes: forwards (with and without autograd) and backwards per call.

A deterministic stand-in for speed (no timing): on a CPU the attack's time is almost all model
passes, so a forward or backward that creeps in shows up here. The expected counts are the
minimum the attack's contract allows: one forward with a backward per step; one forward at
the clean inputs (its NaN/Inf check, ``clean_loss``, the clean candidate), shared with the
first step when that step starts there (no random start); one forward at each run's final
iterate (its logits and success); all of it ``eot_samples`` times.
"""

from __future__ import annotations

import pytest
import torch
from helpers import budgets_for, make_inputs, make_model
from torch import nn

import avrobust
from avrobust import AVOutput

RULES = {"bim": avrobust.BIM, "mim": avrobust.MIM}


class Counting(nn.Module):
    """Wraps a model and records each forward: ``(grad enabled, batch size, at the clean
    inputs)``; ``backwards`` counts the backward passes that reach the logits."""

    def __init__(self, inner: nn.Module, clean: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.inner, self.clean = inner, clean
        self.calls: list[tuple[bool, int, bool]] = []
        self.backwards = 0

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> AVOutput:
        batch = audio.shape[0]
        at_clean = batch == self.clean["audio"].shape[0] and all(
            torch.equal(x, self.clean[n]) for n, x in (("audio", audio), ("visual", visual))
        )
        self.calls.append((torch.is_grad_enabled(), batch, at_clean))
        out = self.inner(audio=audio, visual=visual)
        if out.logits.requires_grad:
            out.logits.register_hook(self._count_backward)
        return out

    def _count_backward(self, grad: torch.Tensor) -> None:
        self.backwards += 1


def counted_attack(
    rule: avrobust.StepRule, *, steps: int = 4, batch: int = 3, **options: object
) -> tuple[Counting, avrobust.AttackResult, dict[str, torch.Tensor]]:
    x = make_inputs(batch=batch)
    model = Counting(make_model(), x)
    attack = avrobust.MultimodalAttack(
        model,
        budgets_for("linf"),
        rule=rule,
        steps=steps,
        seed=0,
        objective="inference",
        **options,  # type: ignore[arg-type]
    )
    result = attack(x, torch.tensor([0, 1, 0][:batch]))
    return model, result, x


@pytest.mark.parametrize("keep", ["best", "last"])
@pytest.mark.parametrize("rule", [avrobust.PGD(), avrobust.APGD()], ids=["pgd", "apgd"])
def test_a_random_start_costs_steps_plus_two_forwards_and_steps_backwards(rule, keep):
    """steps forward+backward passes, plus exactly two forwards without autograd: the clean
    inputs first (the random start is elsewhere), the final iterate last."""
    model, _, _ = counted_attack(rule, steps=5, keep=keep)
    grad_enabled = [g for g, _, _ in model.calls]
    assert grad_enabled == [False] + [True] * 5 + [False]
    assert model.calls[0][2], "the first forward is at the clean inputs"
    assert not any(c for _, _, c in model.calls[1:]), "no other forward repeats the clean inputs"
    assert model.backwards == 5


@pytest.mark.parametrize("keep", ["best", "last"])
@pytest.mark.parametrize("name", ["bim", "mim"])
def test_without_a_random_start_the_first_step_is_the_clean_forward(name, keep):
    """No separate clean forward: the first step's forward (with autograd) is at the clean
    inputs and serves for the clean checks and clean_loss; then one forward at the end."""
    model, result, x = counted_attack(RULES[name](), steps=5, keep=keep)
    assert [g for g, _, _ in model.calls] == [True] * 5 + [False]
    assert [c for _, _, c in model.calls] == [True] + [False] * 5
    assert model.backwards == 5
    # clean_loss from the shared forward equals the objective at the clean inputs computed
    # here independently (a fresh forward in eval mode, cross-entropy per sample)
    inner = model.inner.eval()
    with torch.no_grad():
        logits = inner(**x).logits
    expected = nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0]), reduction="none")
    assert result.clean_loss is not None
    torch.testing.assert_close(result.clean_loss, expected, rtol=1e-6, atol=1e-7)


def test_fgsm_costs_one_forward_backward_and_one_forward():
    model, _, _ = counted_attack(avrobust.FGSM(), steps=7)
    assert [(g, c) for g, _, c in model.calls] == [(True, True), (False, False)]
    assert model.backwards == 1


@pytest.mark.parametrize(("max_batch", "chunks"), [(None, [6]), (6, [6]), (3, [3, 3]), (5, [3, 3])])
def test_batched_restarts_cost_one_clean_forward_and_one_final_forward_per_chunk(max_batch, chunks):
    """PGD with 2 restarts on 3 samples: the clean inputs once (batch 3), then per chunk of
    restarts steps forward+backward passes and one final forward on the chunk's rows."""
    steps = 3
    model, _, _ = counted_attack(avrobust.PGD(restarts=2), steps=steps, max_batch=max_batch)
    expected = [(False, 3)]
    for rows in chunks:
        expected += [(True, rows)] * steps + [(False, rows)]
    assert [(g, b) for g, b, _ in model.calls] == expected
    assert model.backwards == steps * len(chunks)


@pytest.mark.parametrize("rule", [avrobust.PGD(), avrobust.BIM()], ids=["pgd", "bim"])
def test_eot_multiplies_every_pass_by_the_number_of_samples(rule):
    base, _, _ = counted_attack(rule, steps=3)
    eot, _, _ = counted_attack(rule, steps=3, eot_samples=3)
    assert [g for g, _, _ in eot.calls] == [g for g, _, _ in base.calls for _ in range(3)]
    assert eot.backwards == 3 * base.backwards


def test_no_budget_costs_one_forward_and_no_backward():
    x = make_inputs()
    model = Counting(make_model(), x)
    attack = avrobust.MultimodalAttack(model, {}, objective="inference")
    attack(x, torch.tensor([0, 1, 0]))
    assert [(g, c) for g, _, c in model.calls] == [(False, True)]
    assert model.backwards == 0
