"""Expectation over transformation: ``MultimodalAttack(..., eot_samples=k)`` averages the
gradient (and objective and logits) over k forward/backward passes of a randomised model."""

from __future__ import annotations

import pytest
import torch
from helpers import ALL_RULES, assert_raises_naming, budgets_for, make_inputs, make_model
from torch import nn

import avrobust

RULES = {**ALL_RULES, "apgd": lambda: avrobust.APGD(restarts=2)}


class Noisy(nn.Module):
    """x (B, 8) -> 3 logits through a random input noise (a randomised defense): every forward
    draws new noise from the global RNG. Counts its forwards."""

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(8, 32), nn.Linear(32, 3)
        self.sigma, self.calls = sigma, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.b(torch.tanh(self.a(x + self.sigma * torch.randn_like(x))))


def fgsm_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The unit L2 direction of one FGSM step (no bounds): the attack's gradient estimate."""
    attack = avrobust.MultimodalAttack(
        avrobust.wrap(model, ["x"]),
        {"x": avrobust.L2(1.0)},
        rule="fgsm",
        objective="inference",
        keep="last",
        eot_samples=k,
    )
    delta = attack({"x": x}, y).inputs["x"] - x
    return delta / delta.norm(dim=1, keepdim=True)


def test_eot_reduces_the_gradient_error_against_the_expected_gradient():
    """On a model with random noise inside, the direction of an FGSM step with eot_samples=16
    is much closer to the expected gradient (estimated directly with 4000 noise draws, outside
    the library) than with one sample: its mean squared error is at least 4x smaller (1/k
    is 16x for independent draws)."""
    model = Noisy().double()
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    torch.manual_seed(123)
    xr = x.repeat(4000, 1).requires_grad_(True)
    loss = nn.functional.cross_entropy(model(xr), y.repeat(4000), reduction="sum")
    (grad,) = torch.autograd.grad(loss, xr)
    expected = grad.view(4000, 4, 8).mean(dim=0)
    expected = expected / expected.norm(dim=1, keepdim=True)
    errors = {}
    for k in (1, 16):
        torch.manual_seed(7)
        trials = [fgsm_direction(model, x, y, k) for _ in range(20)]
        errors[k] = float(torch.stack([(u - expected).pow(2).sum(dim=1) for u in trials]).mean())
    assert errors[16] * 4 < errors[1]


@pytest.mark.parametrize("rule", list(RULES))
def test_eot_one_is_bit_identical_to_no_eot(rule):
    """eot_samples=1 (the default) runs exactly the loop without EOT, for every rule."""
    model, inputs, labels = make_model().double(), make_inputs(dtype=torch.float64), None
    labels = torch.tensor([0, 1, 1])
    results = [
        avrobust.MultimodalAttack(
            model, budgets_for("linf"), rule=RULES[rule](), steps=3, seed=0, **extra
        )(inputs, labels)
        for extra in ({}, {"eot_samples": 1})
    ]
    for name in inputs:
        assert torch.equal(results[0].inputs[name], results[1].inputs[name])
    assert torch.equal(results[0].logits, results[1].logits)
    assert torch.equal(results[0].loss, results[1].loss)


@pytest.mark.parametrize("rule", list(RULES))
def test_eot_composes_with_every_rule(rule):
    """k passes per evaluation (the clean inputs when the rule starts at random, each step with
    a gradient, and the final iterate), results inside the budget, finite averaged loss."""
    model = Noisy(sigma=0.3).double()
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    step_rule = RULES[rule]()
    attack = avrobust.MultimodalAttack(
        avrobust.wrap(model, ["x"]),
        {"x": avrobust.Linf(0.2)},
        rule=step_rule,
        steps=4,
        objective="inference",
        seed=0,
        eot_samples=3,
    )
    torch.manual_seed(0)
    model.calls = 0
    result = attack({"x": x}, torch.tensor([0, 1, 2, 0, 1]))
    steps = step_rule.fixed_steps or 4
    evaluations = steps + 1 + (1 if step_rule.random_start else 0)
    assert model.calls == 3 * evaluations
    assert float((result.inputs["x"] - x).abs().max()) <= 0.2
    assert bool(torch.isfinite(result.loss).all())


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_eot_samples_name_the_argument(value, error):
    assert_raises_naming(
        error,
        "eot_samples",
        avrobust.MultimodalAttack,
        make_model(),
        budgets_for("linf"),
        eot_samples=value,
    )
