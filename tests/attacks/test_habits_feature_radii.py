"""Square, the default ensemble and the worst-case cell with per-dimension radii
(:func:`avrobust.feature_budgets`, recipe D of docs/wrapping.md) and 1-D modalities ``(B,)``."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming
from torch import nn

import avrobust
from avrobust.evaluation import WorstCase

BOUNDS = (-3.0, 3.0)


class FeatureModel(nn.Module):
    """Features ``(B, D)``, frame features ``(B, T, D)`` and a scalar per clip ``(B,)`` in,
    clip logits ``(B, 3)`` out (float64)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features, self.frames = nn.Linear(6, 3), nn.Linear(6, 3)
        self.scalar = nn.Linear(1, 3)
        self.double()

    def forward(
        self, features: torch.Tensor, frames: torch.Tensor, scalar: torch.Tensor
    ) -> torch.Tensor:
        return self.features(features) + self.frames(frames).mean(1) + self.scalar(scalar[:, None])


def feature_data(batch: int, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    spread = torch.tensor([0.05, 0.5, 1.0, 0.1, 0.8, 0.3], dtype=torch.float64)
    return {
        "features": (torch.randn(batch, 6, generator=g, dtype=torch.float64) * spread).clamp(
            *BOUNDS
        ),
        "frames": (torch.randn(batch, 4, 6, generator=g, dtype=torch.float64) * spread).clamp(
            *BOUNDS
        ),
        "scalar": torch.rand(batch, generator=g, dtype=torch.float64),
    }


def budgets() -> dict[str, avrobust.Budget]:
    clean = feature_data(32, seed=2)
    per_dimension = avrobust.feature_budgets(
        {"features": clean["features"], "frames": clean["frames"]}, scale=0.5, bounds=BOUNDS
    )
    return {**per_dimension, "scalar": avrobust.Linf(0.2, bounds=(0.0, 1.0))}


def assert_within(result: avrobust.AttackResult, inputs: dict[str, torch.Tensor]) -> None:
    """Every perturbation inside its per-dimension radius and the bounds; something moved."""
    bud = budgets()
    for name in ("features", "frames"):
        eps = bud[name].eps  # (1, D)
        delta = (result.inputs[name] - inputs[name]).abs()
        assert (delta <= eps).all(), f"{name}: outside its per-dimension radius"
        assert result.inputs[name].min() >= BOUNDS[0] and result.inputs[name].max() <= BOUNDS[1]
    scalar = result.inputs["scalar"]
    assert scalar.shape == inputs["scalar"].shape
    assert ((scalar - inputs["scalar"]).abs() <= 0.2).all()
    assert scalar.min() >= 0.0 and scalar.max() <= 1.0
    moved = sum(float((result.inputs[n] - inputs[n]).abs().max()) for n in inputs)
    assert moved > 0, "nothing moved"


def clean_labels(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).argmax(-1)


ATTACKS = {
    "square": lambda m, b: avrobust.SquareAttack(m, b, queries=30, seed=0),
    "default_ensemble": lambda m, b: avrobust.default_ensemble(
        m, b, steps=3, queries=20, targets=2
    ),
    "worst-case": lambda m, b: WorstCase(queries=20, targets=2).build(m, b, steps=3, seed=0),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_take_per_dimension_radii_and_scalar_modalities(name):
    """Each attack runs with feature_budgets radii ``(1, D)`` on ``(B, D)`` and ``(B, T, D)``
    features and a ``(B,)`` modality, and keeps every coordinate inside its own radius and the
    bounds."""
    model, inputs = FeatureModel(), feature_data(5)
    originals = {n: x.clone() for n, x in inputs.items()}
    result = ATTACKS[name](model, budgets())(inputs, clean_labels(model, inputs))
    assert all(torch.equal(inputs[n], originals[n]) for n in inputs)
    assert_within(result, inputs)


def test_square_uses_each_dimension_s_own_radius():
    """Square's candidates sit at the corners of the per-dimension box: the largest move of each
    dimension is its own radius (not one radius for all)."""
    model, inputs = FeatureModel(), feature_data(5)
    labels = clean_labels(model, inputs)
    radii = torch.tensor([[0.01, 0.1, 0.2, 0.02, 0.3, 0.05]], dtype=torch.float64)
    bud = {"features": avrobust.Linf(radii)}
    result = avrobust.SquareAttack(model, bud, queries=40, seed=0)(inputs, labels)
    moved = (result.inputs["features"] - inputs["features"]).abs().amax(dim=0)
    torch.testing.assert_close(moved, bud["features"].eps[0], rtol=1e-12, atol=0.0)


def test_feature_budgets_scale_that_overflows_names_scale():
    """A scale so large that scale x spread overflows to inf raises a ValueError naming
    ``scale`` (not a budget's eps the user never wrote)."""
    feats = {"audio": torch.tensor([[0.0, 10.0], [2.0, 30.0]])}
    message = assert_raises_naming(ValueError, "scale", avrobust.feature_budgets, feats, scale=1e38)
    assert "float32" in message and "clean_features['audio']" in message
