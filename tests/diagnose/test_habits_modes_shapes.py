"""diagnose under ``torch.inference_mode()``, with per-dimension radii and 1-D modalities, and
without an attacked modality."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming, make_inputs, make_model
from torch import nn

import avrobust

QUICK = {"steps": 3, "queries": 20, "noise_draws": 3, "scales": (1, 4)}


class FeatureModel(nn.Module):
    """Features ``(B, D)`` and a scalar per clip ``(B,)`` in, clip logits ``(B, 2)`` out."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features, self.scalar = nn.Linear(6, 2), nn.Linear(1, 2)
        self.double()

    def forward(self, features: torch.Tensor, scalar: torch.Tensor) -> torch.Tensor:
        return self.features(features) + self.scalar(scalar[:, None])


def feature_data(batch: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    scale = torch.tensor([0.1, 1.0, 10.0, 0.5, 2.0, 5.0], dtype=torch.float64)
    return {
        "features": torch.randn(batch, 6, generator=g, dtype=torch.float64) * scale,
        "scalar": torch.rand(batch, generator=g, dtype=torch.float64),
    }


def test_diagnose_under_inference_mode_gives_the_same_diagnosis():
    """Called inside ``torch.inference_mode()`` (with inference tensors as inputs), diagnose
    gives the same flags, accuracies and zero-gradient fractions as outside, not a "gradients"
    flag from a graph it could not build."""
    model = make_model().double()
    inputs = {n: x.double() for n, x in make_inputs(batch=4).items()}
    labels = torch.tensor([0, 1, 0, 1])
    budgets = {
        "audio": avrobust.Linf(0.01, bounds=(-1.0, 1.0)),
        "visual": avrobust.Linf(4.0, bounds=(0.0, 255.0)),
    }
    outside = avrobust.diagnose(model, inputs, labels, budgets, **QUICK)
    with torch.inference_mode():
        frozen = {n: x.clone() for n, x in inputs.items()}
        inside = avrobust.diagnose(model, frozen, labels.clone(), budgets, **QUICK)
    assert [(f.name, f.fired) for f in inside.flags] == [(f.name, f.fired) for f in outside.flags]
    assert inside.zero_gradient == outside.zero_gradient == {"audio": 0.0, "visual": 0.0}
    assert inside.accuracy == outside.accuracy


def test_diagnose_with_feature_budgets_and_a_scalar_modality():
    """Per-dimension radii from feature_budgets and a 1-D modality ``(B,)``: diagnose runs every
    check (Square included) and reports a gradient fraction for each modality."""
    data = feature_data()
    clean = {"features": feature_data(32)["features"]}
    budgets = {
        **avrobust.feature_budgets(clean, scale=0.3),
        "scalar": avrobust.Linf(0.05, bounds=(0.0, 1.0)),
    }
    labels = torch.zeros(6, dtype=torch.long)
    diagnosis = avrobust.diagnose(FeatureModel(), data, labels, budgets, **QUICK)
    assert "square" in diagnosis.accuracy
    assert set(diagnosis.zero_gradient) == {"features", "scalar"}


@pytest.mark.parametrize("budgets", [{}, {"visual": avrobust.Linf(0.0)}])
def test_diagnose_without_an_attacked_modality_names_budgets(budgets):
    """No budget, or only zero budgets: nothing to diagnose, a ValueError naming ``budgets``."""
    model, inputs = make_model(), make_inputs(batch=2)
    message = assert_raises_naming(
        ValueError, "budgets", avrobust.diagnose, model, inputs, torch.tensor([0, 1]), budgets
    )
    assert "eps" in message
