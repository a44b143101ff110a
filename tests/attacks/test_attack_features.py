"""Behaviour of MultimodalAttack beyond the invariants: restarts, objectives, shapes, dtypes, contexts."""

from __future__ import annotations

import pytest
import torch
from helpers import (
    VISUAL_BOUNDS,
    assert_same_model,
    budgets_for,
    make_inputs,
    make_model,
    snapshot,
)
from torch import nn

import avrobust
from avrobust.attacks.objectives import per_sample_ce

MODEL = make_model()
FRAME_MODEL = make_model(frame_level=True)
DOUBLE_MODEL = make_model().double()  # for comparisons across batch sizes: see the tests
LABELS = torch.tensor([0, 1, 1])


def visual_only(eps: float = 4.0, alpha: float | None = None) -> dict[str, avrobust.Budget]:
    return {"visual": avrobust.Linf(eps, alpha=alpha, bounds=VISUAL_BOUNDS)}


def test_restarts_keep_the_best_restart_per_sample():
    """Restart 0 of a batched run draws the same start as a 1-restart run with the same seed, so
    the kept restart can only score higher or equal. In float64: the 1-restart and the 4-restart
    runs use other batch sizes, and in float32 a near-zero gradient element can take another sign
    in another batch size on some CPUs."""
    inputs = make_inputs(batch=5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0, 1])
    # small steps, so where a restart ends depends on where it started
    budget = visual_only(4.0, alpha=0.2)
    one = avrobust.MultimodalAttack(
        DOUBLE_MODEL, budgets=budget, rule=avrobust.PGD(restarts=1), steps=2, seed=3, keep="last"
    )
    four = avrobust.MultimodalAttack(
        DOUBLE_MODEL, budgets=budget, rule=avrobust.PGD(restarts=4), steps=2, seed=3, keep="last"
    )
    r1, r4 = one(inputs, labels), four(inputs, labels)
    tol = 64 * torch.finfo(torch.float64).eps  # rounding of the loss (~1) in another batch size
    assert bool((r4.loss >= r1.loss - tol).all())
    assert bool((r4.loss > r1.loss + 1e-6).any()), (
        "no restart ever helped: the test would not detect a bug"
    )


def test_chunked_restarts_equal_unchunked():
    """Restarts run in chunks of one give the unchunked result: the same inputs exactly (L-inf
    steps are signs, in float64 no gradient element is near enough to 0 to flip with the batch
    size), the same loss to the rounding of float64. Both modalities: see also
    tests/test_trust_attacks.py::test_max_batch_does_not_change_the_random_starts."""
    inputs = make_inputs(batch=3, dtype=torch.float64)
    full = avrobust.MultimodalAttack(
        DOUBLE_MODEL, budgets=visual_only(), rule=avrobust.PGD(restarts=4), steps=2, seed=1
    )
    chunked = avrobust.MultimodalAttack(
        DOUBLE_MODEL,
        budgets=visual_only(),
        rule=avrobust.PGD(restarts=4),
        steps=2,
        seed=1,
        max_batch=3,
    )
    a, b = full(inputs, LABELS), chunked(inputs, LABELS)
    assert torch.equal(a.inputs["visual"], b.inputs["visual"])
    tol = 64 * torch.finfo(torch.float64).eps
    torch.testing.assert_close(a.loss, b.loss, atol=tol, rtol=tol)


def test_result_fields_are_consistent():
    inputs = make_inputs()
    result = avrobust.MultimodalAttack(
        MODEL, budgets=budgets_for("linf", 0.05, 20.0), rule="pgd", steps=5, seed=0
    )(inputs, LABELS)
    model = MODEL
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(**result.inputs)
    model.train(was)
    torch.testing.assert_close(result.logits, out.logits)
    torch.testing.assert_close(
        result.loss,
        per_sample_ce(out.logits, LABELS)
        + 0.4 * per_sample_ce(out.heads["audio"], LABELS)
        + 0.4 * per_sample_ce(out.heads["visual"], LABELS),
    )
    assert torch.equal(result.success, out.logits.argmax(-1) != LABELS)
    for name in inputs:
        torch.testing.assert_close(result.perturbations[name], result.inputs[name] - inputs[name])
    assert result.clean_loss is not None and bool((result.loss >= result.clean_loss).all())
    assert 0.0 <= result.success_rate <= 1.0


def test_objectives_training_inference_and_callable():
    inputs = make_inputs()
    budgets = budgets_for("linf")
    out = MODEL.eval()(**inputs)
    MODEL.train()
    ce = {k: per_sample_ce(v, LABELS) for k, v in {"av": out.logits, **out.heads}.items()}
    for objective, expected in [
        ("training", ce["av"] + 0.4 * ce["audio"] + 0.4 * ce["visual"]),  # TinyAV.head_weights
        ("inference", ce["av"]),
        (lambda o, y: per_sample_ce(o.heads["audio"], y), ce["audio"]),
    ]:
        attack = avrobust.MultimodalAttack(
            MODEL, budgets=budgets, rule="bim", steps=1, objective=objective
        )
        if callable(objective):  # the audio head does not see the video: no gradient reaches it
            with pytest.warns(UserWarning, match=r"'visual' received no gradient"):
                result = attack(inputs, LABELS)
        else:
            result = attack(inputs, LABELS)
        torch.testing.assert_close(result.clean_loss, expected.detach())


def test_training_objective_attacks_harder_on_the_training_loss():
    inputs = make_inputs(batch=6)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    budgets = budgets_for("linf", 0.02, 8.0)
    train = avrobust.MultimodalAttack(
        MODEL, budgets=budgets, rule="bim", steps=5, objective="training"
    )(inputs, labels)
    infer = avrobust.MultimodalAttack(
        MODEL, budgets=budgets, rule="bim", steps=5, objective="inference"
    )(inputs, labels)
    scorer = avrobust.MultimodalAttack(MODEL, budgets={}, rule="bim", steps=1, objective="training")
    assert scorer(train.inputs, labels).loss.sum() >= scorer(infer.inputs, labels).loss.sum() - 1e-5


def test_targeted_attack_moves_towards_the_target():
    inputs = make_inputs(batch=6)
    target = torch.tensor([1, 1, 1, 0, 0, 0])
    result = avrobust.MultimodalAttack(
        MODEL, budgets=budgets_for("linf", 0.2, 60.0), rule="pgd", steps=10, targeted=True, seed=0
    )(inputs, target)
    assert result.clean_loss is not None
    assert bool((result.loss <= result.clean_loss + 1e-6).all())
    assert bool((result.loss < result.clean_loss - 1e-3).any())
    assert torch.equal(result.success, result.logits.argmax(-1) == target)


def test_frame_level_labels_and_clip_labels_on_frame_logits():
    inputs = make_inputs()
    frames = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 0, 1]])
    r = avrobust.MultimodalAttack(
        FRAME_MODEL, budgets=budgets_for("linf", 0.1, 30.0), rule="mim", steps=3
    )(inputs, frames)
    assert (
        r.logits.shape == (3, 4, 2)
        and r.frame_success is not None
        and r.frame_success.shape == (3, 4)
    )
    assert torch.equal(r.success, r.frame_success.float().mean(1) > 0.5)
    clip = avrobust.MultimodalAttack(FRAME_MODEL, budgets=budgets_for("linf"), rule="bim", steps=1)(
        inputs, LABELS
    )
    expanded = avrobust.MultimodalAttack(
        FRAME_MODEL, budgets=budgets_for("linf"), rule="bim", steps=1
    )(inputs, LABELS[:, None].expand(3, 4))
    assert torch.equal(clip.inputs["visual"], expanded.inputs["visual"])


def test_three_d_audio_and_five_d_video():
    inputs = make_inputs()
    inputs = {"audio": inputs["audio"][:, None], "visual": inputs["visual"][:, :, None]}
    r = avrobust.MultimodalAttack(MODEL, budgets=budgets_for("l2"), rule="mim", steps=2)(
        inputs, LABELS
    )
    assert {k: v.shape for k, v in r.inputs.items()} == {k: v.shape for k, v in inputs.items()}
    assert not torch.equal(r.inputs["audio"], inputs["audio"])


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtypes_are_kept(dtype):
    model = make_model().to(dtype)
    inputs = make_inputs(dtype=dtype)
    r = avrobust.MultimodalAttack(
        model, budgets=budgets_for("linf", 0.05, 8.0), rule="pgd", steps=2, seed=0
    )(inputs, LABELS)
    for name in inputs:
        assert r.inputs[name].dtype == dtype
        assert (r.inputs[name] - inputs[name]).abs().max() <= avrobust.Linf(8.0).eps
    assert r.logits.dtype == dtype


def test_float16_inputs_on_a_half_model():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).half()
    x = torch.rand(4, 12).half()
    r = avrobust.MultimodalAttack(
        avrobust.wrap(model, ["x"]),
        budgets={"x": avrobust.Linf(0.1, bounds=(0, 1))},
        rule="bim",
        steps=2,
    )({"x": x}, torch.tensor([0, 1, 0, 1]))
    assert r.inputs["x"].dtype == torch.float16
    assert float((r.inputs["x"].float() - x.float()).abs().max()) <= 0.1


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_works_inside_no_grad_and_inference_mode(context):
    inputs = make_inputs()
    ref = avrobust.MultimodalAttack(MODEL, budgets=budgets_for("linf"), rule="bim", steps=2)(
        inputs, LABELS
    )
    manager = torch.no_grad() if context == "no_grad" else torch.inference_mode()
    with manager:
        r = avrobust.MultimodalAttack(MODEL, budgets=budgets_for("linf"), rule="bim", steps=2)(
            inputs, LABELS
        )
    assert torch.equal(r.inputs["visual"], ref.inputs["visual"])


def test_current_mode_keeps_dropout_active_and_restores_batchnorm():
    model = make_model(dropout=0.5)
    before = snapshot(model)
    inputs = make_inputs()
    a = avrobust.MultimodalAttack(
        model, budgets=budgets_for("linf"), rule="bim", steps=3, model_mode="current"
    )
    with pytest.warns(
        UserWarning, match=r"model_mode='current' with BatchNorm layers in training mode"
    ):
        r1, r2 = a(inputs, LABELS), a(inputs, LABELS)
    assert not torch.equal(r1.logits, r2.logits), "dropout should be active in model_mode='current'"
    assert_same_model(before, model)


def test_mixed_module_modes_and_existing_grads_are_restored():
    model = make_model()
    model.audio_net.eval()  # a mix: top in train, one branch in eval
    model.head.weight.grad = torch.full_like(model.head.weight, 3.0)
    model.visual_proj.weight.requires_grad_(False)
    before = snapshot(model)
    avrobust.MultimodalAttack(model, budgets=budgets_for("linf"), rule="mim", steps=2)(
        make_inputs(), LABELS
    )
    assert_same_model(before, model)
    assert not model.audio_net.training and model.training


def test_mim_zero_gradient_guard_gives_no_nan():
    state: dict[str, torch.Tensor] = {}
    d = avrobust.MIM().direction(torch.zeros(2, 3, 4), state)
    assert torch.equal(d, torch.zeros(2, 3, 4))

    class IgnoresAudio(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(8, 2)

        def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
            return self.lin(visual)

    inputs = {"audio": torch.rand(2, 5), "visual": torch.rand(2, 8)}
    budgets = {
        "audio": avrobust.Linf(0.1, bounds=(0, 1)),
        "visual": avrobust.Linf(0.1, bounds=(0, 1)),
    }
    attack = avrobust.MultimodalAttack(IgnoresAudio(), budgets=budgets, rule="mim", steps=3)
    with pytest.warns(UserWarning, match=r"'audio' received no gradient"):
        r = attack(inputs, torch.tensor([0, 1]))
    assert torch.isfinite(r.inputs["audio"]).all()
    assert torch.equal(r.inputs["audio"], inputs["audio"])  # zero gradient: no step
    assert not torch.equal(r.inputs["visual"], inputs["visual"])


def test_snr_budget_keeps_the_perturbation_below_the_snr():
    inputs = make_inputs()
    eps = avrobust.snr_eps(inputs["audio"], 30.0)
    r = avrobust.MultimodalAttack(
        MODEL, budgets={"audio": avrobust.Linf(eps, bounds=(-1, 1))}, rule="pgd", steps=3, seed=0
    )(inputs, LABELS)
    delta = r.inputs["audio"] - inputs["audio"]
    snr = 10 * torch.log10(inputs["audio"].pow(2).mean(1) / delta.pow(2).mean(1))
    assert bool((snr >= 30.0 - 1e-4).all()) and bool((snr < 40).all())
    l2 = avrobust.snr_eps(inputs["audio"], 30.0, norm="l2")
    torch.testing.assert_close(l2, inputs["audio"].norm(dim=1) * 10 ** (-1.5))


def test_push_pull_coupling():
    b = avrobust.push_pull_budgets(5)
    assert b["audio"].eps == pytest.approx(5e-4) and b["visual"].eps == pytest.approx(0.5)
    assert b["audio"].bounds == (-1.0, 1.0) and b["visual"].bounds == (0.0, 255.0)
    assert all(v.is_zero for v in avrobust.push_pull_budgets(0).values())


def test_fgsm_takes_one_step_of_eps():
    inputs = make_inputs()
    r = avrobust.MultimodalAttack(
        MODEL, budgets=visual_only(3.0), rule="fgsm", steps=10, keep="last"
    )(inputs, LABELS)
    delta = (r.inputs["visual"] - inputs["visual"]).abs()
    inside = (inputs["visual"] > 3.0) & (inputs["visual"] < 252.0)
    torch.testing.assert_close(
        delta[inside], torch.full_like(delta[inside], 3.0), atol=2e-5, rtol=0
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_stay_on_cuda():
    """In float64, so that no gradient sign depends on CUDA's or the CPU's rounding."""
    model = make_model().double().cuda()
    inputs = {k: v.cuda() for k, v in make_inputs(dtype=torch.float64).items()}
    r = avrobust.MultimodalAttack(model, budgets=budgets_for("linf"), rule="pgd", steps=2, seed=0)(
        inputs, LABELS.cuda()
    )
    assert all(v.is_cuda for v in r.inputs.values())
    cpu = avrobust.MultimodalAttack(
        DOUBLE_MODEL, budgets=budgets_for("linf"), rule="pgd", steps=2, seed=0
    )(make_inputs(dtype=torch.float64), LABELS)
    atol = 16 * torch.finfo(torch.float64).eps * VISUAL_BOUNDS[1]
    torch.testing.assert_close(r.inputs["visual"].cpu(), cpu.inputs["visual"], atol=atol, rtol=0)
