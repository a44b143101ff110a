"""Property tests (hypothesis) of MultimodalAttack for every rule x norm."""

from __future__ import annotations

import pytest
import torch
from helpers import (
    ALL_NORMS,
    ALL_RULES,
    AUDIO_BOUNDS,
    DETERMINISTIC_RULES,
    VISUAL_BOUNDS,
    assert_same_model,
    budgets_for,
    make_inputs,
    make_model,
    snapshot,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import avrobust

PROPS = settings(
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
MODEL = make_model(frame_level=False)
FRAME_MODEL = make_model(frame_level=True)


def _norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


@pytest.mark.parametrize("norm", list(ALL_NORMS))
@pytest.mark.parametrize("rule", list(ALL_RULES))
@PROPS
@given(
    eps_a=st.floats(1e-4, 0.2),
    eps_v=st.floats(0.1, 40.0),
    seed=st.integers(0, 1000),
    steps=st.integers(1, 4),
    frame_level=st.booleans(),
)
def test_within_budget_and_bounds_and_nothing_else_changes(
    rule, norm, eps_a, eps_v, seed, steps, frame_level
):
    model = FRAME_MODEL if frame_level else MODEL
    before = snapshot(model)
    inputs = make_inputs(seed=seed)
    inputs["visual"][0, 0, 0, :3] = torch.tensor([0.0, 255.0, 128.0])  # pixels at the bounds
    copies = {k: v.clone() for k, v in inputs.items()}
    labels = torch.randint(
        0, 2, (3, 4) if frame_level else (3,), generator=torch.Generator().manual_seed(seed)
    )
    budgets = budgets_for(norm, eps_a, eps_v)
    result = avrobust.MultimodalAttack(
        model, budgets=budgets, rule=ALL_RULES[rule](), steps=steps, seed=seed
    )(inputs, labels)

    for name, bounds in (("audio", AUDIO_BOUNDS), ("visual", VISUAL_BOUNDS)):
        adv = result.inputs[name]
        assert adv.shape == inputs[name].shape and adv.dtype == inputs[name].dtype
        # L-inf holds exactly in the input's dtype; L2 up to the rounding of the norm itself
        limit = budgets[name].eps if norm == "linf" else budgets[name].eps * (1 + 1e-6)
        assert bool((_norm(adv - inputs[name], norm) <= limit).all())
        assert adv.min() >= bounds[0] and adv.max() <= bounds[1]
        assert torch.equal(inputs[name], copies[name]), "caller's input was modified"
    assert_same_model(before, model)
    assert model.training, "the model's own mode (training) must be restored"
    # the objective never ends below the clean objective (keep="best" includes the clean input)
    clean = avrobust.MultimodalAttack(model, budgets={}, rule="bim", steps=1)(inputs, labels).loss
    assert bool((result.loss >= clean - 1e-6).all())


@pytest.mark.parametrize("norm", list(ALL_NORMS))
@pytest.mark.parametrize("rule", list(ALL_RULES))
def test_eps_zero_is_bit_identical_for_that_modality(rule, norm):
    inputs = make_inputs()
    budgets = budgets_for(norm)
    budgets["audio"] = ALL_NORMS[norm](0.0, bounds=AUDIO_BOUNDS)
    result = avrobust.MultimodalAttack(
        MODEL, budgets=budgets, rule=ALL_RULES[rule](), steps=3, seed=0
    )(inputs, torch.tensor([0, 1, 0]))
    assert torch.equal(result.inputs["audio"], inputs["audio"])
    assert result.inputs["audio"].data_ptr() != inputs["audio"].data_ptr()
    assert not torch.equal(result.inputs["visual"], inputs["visual"])


@pytest.mark.parametrize("norm", list(ALL_NORMS))
@pytest.mark.parametrize("rule", list(ALL_RULES))
def test_same_seed_same_result(rule, norm):
    inputs, labels = make_inputs(), torch.tensor([1, 0, 1])
    runs = [
        avrobust.MultimodalAttack(
            MODEL, budgets=budgets_for(norm), rule=ALL_RULES[rule](), steps=3, seed=7
        )(inputs, labels)
        for _ in range(2)
    ]
    for name in inputs:
        assert torch.equal(runs[0].inputs[name], runs[1].inputs[name])
    torch.manual_seed(0)
    state = torch.get_rng_state()
    avrobust.MultimodalAttack(
        MODEL, budgets=budgets_for(norm), rule=ALL_RULES[rule](), steps=2, seed=None
    )(inputs, labels)
    assert torch.equal(state, torch.get_rng_state()), "the global RNG must not be used"


DOUBLE_MODEL = make_model(frame_level=False).double()


@pytest.mark.parametrize("norm", list(ALL_NORMS))
@pytest.mark.parametrize("rule", DETERMINISTIC_RULES)
def test_batch_equals_samples_one_by_one(rule, norm):
    """A batch of 4 gives each sample what the sample gets alone.

    Run in float64: in float32 a near-zero gradient element can change sign when batch-of-4 and
    batch-of-1 kernels round differently (one whole L-inf step apart on another CPU). In float64
    the two agree to a few ulps of the largest input value (255), whatever the CPU; the
    tolerance is derived from that resolution, not tuned.
    """
    inputs = make_inputs(batch=4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])
    attack = avrobust.MultimodalAttack(
        DOUBLE_MODEL, budgets=budgets_for(norm), rule=ALL_RULES[rule](), steps=4
    )
    batch = attack(inputs, labels)
    atol = 16 * torch.finfo(torch.float64).eps * VISUAL_BOUNDS[1]  # ~1e-12
    for i in range(4):
        one = attack({k: v[i : i + 1] for k, v in inputs.items()}, labels[i : i + 1])
        for name in inputs:
            torch.testing.assert_close(
                one.inputs[name][0], batch.inputs[name][i], atol=atol, rtol=0
            )
