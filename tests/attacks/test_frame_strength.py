"""Strength on frame labels (issue 19, point 3): the margin clamped at kappa, APGD keeping the
candidate with the most frames wrong, and the frame options of ``default_ensemble`` and
``WorstCase``."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming, make_inputs, make_model
from torch import nn

import avrobust
from avrobust import AVOutput, MarginObjective
from avrobust.evaluation import Grid, WorstCase


def three_frames() -> torch.Tensor:
    """``(1, 3, 2)`` logits, labels 0: frame margins 3 (wrong by 3), -1 (right), 0.5 (wrong)."""
    return torch.tensor([[[0.0, 3.0], [1.0, 0.0], [0.0, 0.5]]], dtype=torch.float64)


def test_kappa_clamps_each_frame_margin_before_the_mean():
    """min(margin_t, kappa) per frame, then the mean: (min(3, 1) - 1 + 0.5) / 3."""
    labels = torch.zeros(1, 3, dtype=torch.long)
    clamped = MarginObjective(kappa=1.0)(AVOutput(three_frames()), labels)
    plain = MarginObjective()(AVOutput(three_frames()), labels)
    assert torch.allclose(clamped, torch.tensor([0.5 / 3], dtype=torch.float64))
    assert torch.allclose(plain, torch.tensor([2.5 / 3], dtype=torch.float64))
    # kappa above every margin changes nothing; None is today's objective
    high = MarginObjective(kappa=10.0)(AVOutput(three_frames()), labels)
    assert torch.equal(high, plain)
    assert torch.equal(MarginObjective(kappa=None)(AVOutput(three_frames()), labels), plain)


def test_kappa_gives_clamped_frames_no_gradient():
    """The frame wrong by more than kappa pulls nothing; the others keep their 1/T weight."""
    logits = three_frames().requires_grad_(True)
    MarginObjective(kappa=1.0)(
        AVOutput(logits), torch.zeros(1, 3, dtype=torch.long)
    ).sum().backward()
    grad = logits.grad
    assert grad is not None
    assert torch.equal(grad[0, 0], torch.zeros(2, dtype=torch.float64))
    third = torch.tensor([-1 / 3, 1 / 3], dtype=torch.float64)
    assert torch.allclose(grad[0, 1], third) and torch.allclose(grad[0, 2], third)


def test_kappa_on_clip_logits_and_validation():
    """Clip logits ``(B, C)``: min(margin, kappa) per sample. Bad kappas name the argument."""
    logits = torch.tensor([[0.0, 4.0, 1.0], [2.0, 0.5, 1.0]])
    got = MarginObjective(kappa=2.0)(AVOutput(logits), torch.tensor([0, 0]))
    assert torch.equal(got, torch.tensor([2.0, -1.0]))
    assert "kappa=2" in repr(MarginObjective(kappa=2.0))
    assert_raises_naming(ValueError, "kappa", MarginObjective, kappa=-0.5)
    assert_raises_naming(ValueError, "kappa", MarginObjective, kappa=float("nan"))
    assert_raises_naming(TypeError, "kappa", MarginObjective, kappa="1")


class Tradeoff(nn.Module):
    """One input ``x`` (B, 1) in [-1, 1] -> frame logits (B, 4, 2), labels 0. Frame 0 is wrong
    for x > 0 with margin 10x, frames 1-2 for x < -0.1 (margin -x - 0.1), frame 3 never: the
    mean margin rises with x (highest at x = 1, one frame wrong) while x < -0.1 gets two frames
    wrong (neither is more than half of the frames)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image[:, 0]
        margins = torch.stack([10 * x, -x - 0.1, -x - 0.1, torch.full_like(x, -5.0)], dim=1)
        return torch.stack([torch.zeros_like(margins), margins], dim=-1)


def test_apgd_on_frame_labels_returns_the_candidate_with_most_frames_wrong():
    """Among its restarts' iterates, APGD (keep="best") returns the one with the most frames
    wrong, not the highest objective. Some random starts land at x < -0.1 (two frames wrong);
    every run then climbs to x = 1 (one frame wrong, the highest objective)."""
    model = avrobust.wrap(Tradeoff(), ["image"])
    x = torch.zeros(6, 1, dtype=torch.float64)
    labels = torch.zeros(6, 4, dtype=torch.long)
    attack = avrobust.MultimodalAttack(
        model,
        {"image": avrobust.Linf(1.0, bounds=(-1, 1))},
        rule=avrobust.APGD(restarts=8),
        steps=10,
        objective="margin",
        seed=0,
    )
    result = attack({"image": x}, labels)
    wrong = (result.logits.argmax(-1) != labels).sum(dim=1)
    assert torch.equal(wrong, torch.full((6,), 2)), wrong
    assert bool((result.inputs["image"] < -0.1).all())


def frame_accuracy(model: nn.Module, inputs: dict, labels: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(**inputs).logits
    return float((logits.argmax(-1) == labels).double().mean())


def test_default_ensemble_frame_order_and_options():
    """With ``kappa``, the ensemble runs ``restarts`` APGD runs on the clamped margin first,
    then APGD-CE and Square, each on the clips with frames still right; it is no weaker on
    frame accuracy than its first run alone."""
    model = make_model(frame_level=True).eval()
    inputs = make_inputs(batch=4)
    with torch.no_grad():
        labels = model(**inputs).logits.argmax(-1)
    budgets = avrobust.push_pull_budgets(20)
    ensemble = avrobust.default_ensemble(model, budgets, steps=5, queries=10, restarts=2, kappa=0.5)
    assert ensemble.names == ["apgd-margin", "apgd-margin-2", "apgd-ce", "square"]
    first = ensemble.attacks[0]
    assert isinstance(first.objective, MarginObjective) and first.objective.kappa == 0.5
    result = ensemble(inputs, labels)
    assert frame_accuracy(model, result.inputs, labels) <= frame_accuracy(
        model, first(inputs, labels).inputs, labels
    )
    plain = avrobust.default_ensemble(model, budgets, steps=5, queries=10)
    assert plain.names == ["apgd-ce", "apgd-t-margin", "square"]


def test_default_ensemble_bad_frame_options():
    model = make_model(frame_level=True)
    budgets = avrobust.push_pull_budgets(20)
    build = avrobust.default_ensemble
    assert_raises_naming(ValueError, "restarts", build, model, budgets, restarts=0, kappa=1.0)
    assert_raises_naming(TypeError, "restarts", build, model, budgets, restarts=1.5, kappa=1.0)
    assert_raises_naming(ValueError, "kappa", build, model, budgets, kappa=-1.0)
    assert_raises_naming(ValueError, "restarts", build, model, budgets, restarts=2)
    with pytest.raises(TypeError):
        build(model, budgets, 10, 0, 9, 100, "all-frames", 2, 1.0)  # type: ignore[misc]


def test_worst_case_defines_follow_restarts_and_kappa():
    """The cells' defines (the results cache's key) change with ``restarts`` and ``kappa``;
    ``build`` passes them on."""
    plain, strong = WorstCase(queries=500), WorstCase(queries=500, restarts=2, kappa=0.5)
    assert repr(plain) != repr(strong)
    grid = Grid(rules=[strong], eps=[20], modalities=["visual"])
    assert "restarts=2" in grid.cells()[0].defines["rule"]
    assert "kappa=0.5" in grid.cells()[0].defines["rule"]
    built = strong.build(make_model(), avrobust.push_pull_budgets(20), steps=5, seed=0)
    assert built.names == ["apgd-margin", "apgd-margin-2", "apgd-ce", "square"]
    assert_raises_naming(ValueError, "WorstCase.restarts", WorstCase, restarts=0)
    assert_raises_naming(ValueError, "WorstCase.kappa", WorstCase, kappa=-1.0)
