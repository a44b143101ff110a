"""Feature-space budgets: per-dimension L-inf radii (``Linf(eps=(1, D) tensor)``) and ``feature_budgets``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming
from sklearn.preprocessing import StandardScaler
from torch import nn

import avrobust
from avrobust.attacks import feature_budgets

DIM = 6


class FeatureNet(nn.Module):
    """A small classifier over two precomputed feature vectors ``audio (B, D)``, ``visual (B, D)``."""

    def __init__(self, dim: int = DIM, classes: int = 3) -> None:
        super().__init__()
        self.audio = nn.Linear(dim, 8)
        self.visual = nn.Linear(dim, 8)
        self.head = nn.Linear(16, classes)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(torch.cat([self.audio(audio), self.visual(visual)], -1)))


def make_features(n: int = 5, seed: int = 0, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    spread = torch.linspace(0.1, 3.0, DIM, dtype=dtype)
    return {
        "audio": torch.randn(n, DIM, generator=g, dtype=dtype) * spread,
        "visual": torch.randn(n, DIM, generator=g, dtype=dtype) * spread.flip(0) + 2.0,
    }


def feature_model(dtype: torch.dtype = torch.float64) -> avrobust.WrappedModel:
    torch.manual_seed(0)
    return avrobust.wrap(FeatureNet().to(dtype).eval())


@pytest.mark.parametrize("rule", ["pgd", "bim", "fgsm", "mim"])
def test_per_dimension_eps_keeps_each_dimension_inside_its_own_box(rule):
    """Each coordinate moves at most its own radius (0 for a zero radius), and the attack moves
    the wide dimensions further than the narrowest radius: the box is not shrunk to a scalar."""
    x = make_features()
    eps = torch.tensor([[0.0, 0.01, 0.05, 0.1, 0.5, 1.0]], dtype=torch.float64)
    budgets = {"audio": avrobust.Linf(eps), "visual": avrobust.Linf(eps.flip(-1))}
    attack = avrobust.MultimodalAttack(feature_model(), budgets, rule=rule, steps=5, seed=0)
    result = attack(x, torch.tensor([0, 1, 2, 0, 1]))
    for name, radius in (("audio", eps), ("visual", eps.flip(-1))):
        delta = (result.inputs[name] - x[name]).abs()
        assert (delta <= radius).all(), name
        assert (delta[:, radius[0] == 0] == 0).all(), name
        assert delta.amax() > radius[radius > 0].min(), name


def test_random_start_is_inside_the_per_dimension_box_and_fills_it():
    """Linf.random_start with a (1, D) radius: every coordinate within its radius, and the widest
    coordinates use more than the narrowest radius (uniform over the box, not a cube)."""
    budget = avrobust.Linf(torch.tensor([[0.0, 0.001, 0.01, 0.1, 1.0, 10.0]]), bounds=(-5, 5))
    x = torch.zeros(200, DIM, dtype=torch.float64)
    eps = budget.radius(x)
    start = budget.random_start(x, eps, torch.Generator().manual_seed(0))
    assert eps.shape == x.shape
    assert (start.abs() <= budget.eps).all()
    assert (start[:, 0] == 0).all()
    assert start[:, 4].abs().max() > 0.9  # close to its radius 1.0
    assert start[:, 5].abs().max() == 5.0  # clamped into the bounds


@pytest.mark.parametrize("rule", ["pgd", "bim", "mim"])
def test_equal_per_dimension_radii_give_the_scalar_attack(rule):
    """A (1, D) radius with every entry equal to e gives the attack of Linf(e), bit for bit
    (float64, same seed, same random start)."""
    x = make_features(dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1])
    scalar = {"audio": avrobust.Linf(0.2), "visual": avrobust.Linf(0.3, alpha=0.05)}
    per_dim = {
        "audio": avrobust.Linf(torch.full((1, DIM), 0.2, dtype=torch.float64)),
        "visual": avrobust.Linf(
            torch.full((1, DIM), 0.3, dtype=torch.float64),
            alpha=torch.full((1, DIM), 0.05, dtype=torch.float64),
        ),
    }
    model = feature_model()
    runs = [
        avrobust.MultimodalAttack(model, b, rule=rule, steps=4, seed=3)(x, labels)
        for b in (scalar, per_dim)
    ]
    for name in x:
        assert torch.equal(runs[0].inputs[name], runs[1].inputs[name]), name


def test_per_dimension_eps_broadcasts_over_frames():
    """A (1, D) radius applies to every frame of (B, T, D) inputs; a (1, T, D) radius per frame."""
    budget = avrobust.Linf(torch.arange(1.0, DIM + 1).reshape(1, DIM))
    x = torch.zeros(2, 3, DIM)
    assert torch.equal(budget.radius(x, repeats=1)[1, 2], torch.arange(1.0, DIM + 1))
    per_frame = avrobust.Linf(torch.rand(1, 3, DIM))
    assert torch.equal(per_frame.radius(x)[1], per_frame.eps[0])  # type: ignore[index]


def test_feature_budgets_scale_the_standard_deviation_as_sklearn():
    """Radius per dimension = scale * the population std of the clean features; the reference is
    scikit-learn's StandardScaler (sqrt(var_), ddof=0). Bounds are passed to every budget."""
    clean = make_features(n=40, seed=1)
    budgets = feature_budgets(clean, scale=0.25, bounds=(-20.0, 20.0))
    assert set(budgets) == {"audio", "visual"}
    for name, feats in clean.items():
        expected = 0.25 * np.sqrt(StandardScaler().fit(feats.numpy()).var_)
        budget = budgets[name]
        assert isinstance(budget, avrobust.Linf)
        assert budget.eps.shape == (1, DIM)  # type: ignore[union-attr]
        np.testing.assert_allclose(budget.eps[0].numpy(), expected, rtol=1e-12)  # type: ignore[index]
        assert budget.bounds == (-20.0, 20.0)


def test_feature_budgets_pool_frames_and_take_per_modality_bounds():
    """(N, T, D) features pool every axis but the last (the std over N*T rows, as sklearn on the
    flattened rows); bounds given per modality reach only that modality."""
    g = torch.Generator().manual_seed(2)
    clean = {
        "audio": torch.randn(4, 5, DIM, generator=g),
        "visual": torch.rand(4, DIM, generator=g),
    }
    budgets = feature_budgets(clean, scale=1.0, bounds={"visual": (0.0, 1.0)})
    rows = clean["audio"].reshape(-1, DIM).double().numpy()
    expected = np.sqrt(StandardScaler().fit(rows).var_)
    np.testing.assert_allclose(budgets["audio"].eps[0].numpy(), expected, rtol=1e-5)  # type: ignore[index]
    assert budgets["audio"].bounds is None and budgets["visual"].bounds == (0.0, 1.0)


def test_feature_budgets_attack_end_to_end_stays_in_the_box():
    """A PGD attack with feature_budgets moves each feature by at most scale * std_d."""
    clean = make_features(n=30, seed=4)
    budgets = feature_budgets(clean, scale=0.1)
    x = make_features(n=5, seed=5)
    result = avrobust.MultimodalAttack(feature_model(), budgets, rule="pgd", steps=3, seed=0)(
        x, torch.tensor([0, 1, 2, 0, 1])
    )
    for name in x:
        assert ((result.inputs[name] - x[name]).abs() <= budgets[name].eps).all()


def test_feature_budgets_warn_on_dimensions_without_spread():
    """A constant feature dimension gets radius 0 (never perturbed), with a warning naming it."""
    clean = {"audio": torch.cat([torch.randn(5, 3), torch.ones(5, 1)], dim=1)}
    with pytest.warns(UserWarning, match=r"clean_features\['audio'\]: 1 of 4 dimensions"):
        budgets = feature_budgets(clean, scale=1.0)
    assert budgets["audio"].eps[0, 3] == 0  # type: ignore[index]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feature_budgets({"audio": torch.randn(5, 3)}, scale=1.0)


def test_feature_budgets_bad_arguments_name_the_argument():
    """Every bad argument raises TypeError/ValueError naming it."""
    good = {"audio": torch.randn(4, 3)}
    assert_raises_naming(TypeError, "clean_features", feature_budgets, [torch.randn(4, 3)], scale=1)
    assert_raises_naming(ValueError, "clean_features", feature_budgets, {}, scale=1)
    assert_raises_naming(
        TypeError, "clean_features['audio']", feature_budgets, {"audio": np.ones((4, 3))}, scale=1
    )
    assert_raises_naming(
        ValueError, "clean_features['audio']", feature_budgets, {"audio": torch.ones(4)}, scale=1
    )
    assert_raises_naming(
        ValueError, "clean_features['audio']", feature_budgets, {"audio": torch.ones(1, 3)}, scale=1
    )
    bad = torch.randn(4, 3)
    bad[0, 0] = float("nan")
    assert_raises_naming(
        ValueError, "clean_features['audio']", feature_budgets, {"audio": bad}, scale=1
    )
    assert_raises_naming(
        TypeError,
        "clean_features['audio']",
        feature_budgets,
        {"audio": torch.ones(4, 3, dtype=torch.long)},
        scale=1,
    )
    assert_raises_naming(ValueError, "scale", feature_budgets, good, scale=-1.0)
    assert_raises_naming(TypeError, "scale", feature_budgets, good, scale="big")
    assert_raises_naming(ValueError, "bounds", feature_budgets, good, scale=1, bounds=(1, 0))
    assert_raises_naming(
        ValueError, "bounds", feature_budgets, good, scale=1, bounds={"depth": (0, 1)}
    )
    assert_raises_naming(
        TypeError, "bounds['audio']", feature_budgets, good, scale=1, bounds={"audio": 3}
    )


def test_per_dimension_eps_bad_shapes_name_the_argument():
    """Per-dimension radii: a leading axis other than 1, negative entries, L2, or a shape that does
    not broadcast against the input each raise naming the budget's argument."""
    assert_raises_naming(ValueError, "Linf.eps", avrobust.Linf, torch.ones(2, DIM))
    assert_raises_naming(ValueError, "Linf.eps", avrobust.Linf, -torch.ones(1, DIM))
    assert_raises_naming(ValueError, "Linf.alpha", avrobust.Linf, 0.1, alpha=torch.zeros(1, DIM))
    assert_raises_naming(ValueError, "L2.eps", avrobust.L2, torch.ones(1, DIM))
    message = assert_raises_naming(
        ValueError, "Linf.eps", avrobust.Linf(torch.ones(1, 4)).radius, torch.zeros(2, DIM)
    )
    assert "(2, 6)" in message and "(1, 4)" in message
