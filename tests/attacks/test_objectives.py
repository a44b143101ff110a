"""The margin (Carlini–Wagner) and DLR (Croce & Hein 2020) objectives, clip- and frame-level,
targeted and untargeted, against direct computations and torchattacks 3.5.1's loss functions."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming, budgets_for, make_inputs, make_model

import avrobust
from avrobust import AVOutput
from avrobust.attacks.objectives import DLRObjective, MarginObjective, as_objective

torchattacks = pytest.importorskip("torchattacks")


def direct_margin(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row by row, with Python's max over the other classes: (N,)."""
    out = []
    for row, label in zip(z.tolist(), y.tolist()):
        other = max(v for i, v in enumerate(row) if i != label)
        out.append(other - row[label])
    return torch.tensor(out, dtype=z.dtype)


def logits_and_labels(n: int = 12, c: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, c, generator=g, dtype=torch.float64) * 3
    return z, torch.randint(0, c, (n,), generator=g)


def test_margin_equals_the_direct_computation_and_torchattacks_cw():
    """margin = max_{i != y} z_i - z_y, against a row-by-row computation and against
    torchattacks' CW.f (which returns z_y - max_{i != y} z_i; its one-hot trick needs positive
    logits, hence the shift, and a large kappa disables its clamp)."""
    z, y = logits_and_labels()
    ours = MarginObjective()(AVOutput(z), y)
    torch.testing.assert_close(ours, direct_margin(z, y))
    cw = torchattacks.CW(torch.nn.Identity(), c=1, kappa=1e9)
    cw.device = z.device
    shifted = z + 20
    torch.testing.assert_close(MarginObjective()(AVOutput(shifted), y), -cw.f(shifted, y))


def test_dlr_equals_torchattacks_apgd_dlr_loss():
    """Untargeted DLR = -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3 + 1e-12), compared with
    torchattacks.APGD.dlr_loss (the authors' formula)."""
    z, y = logits_and_labels()
    ref = torchattacks.APGD(torch.nn.Identity()).dlr_loss(z, y)
    torch.testing.assert_close(DLRObjective()(AVOutput(z), y), ref)


def test_targeted_dlr_equals_torchattacks_apgdt_where_the_true_class_leads():
    """Targeted DLR: (max_{i!=t} z_i - z_t) / (z_pi1 - (z_pi3 + z_pi4)/2 + g), lowered by the
    attack. Where the true class y leads (the clean inputs of correctly classified samples) its
    negation equals torchattacks.APGDT.dlr_loss_targeted(z, y, t) = -(z_y - z_t) / (...)."""
    z, _ = logits_and_labels(c=7, seed=1)
    y = z.argmax(dim=1)
    t = (y + 1 + torch.arange(len(y)) % 6) % 7  # any class but y
    assert bool((t != y).all())
    ref = torchattacks.APGDT(torch.nn.Identity(), n_classes=7).dlr_loss_targeted(z, y, t)
    ours = DLRObjective(targeted=True)(AVOutput(z), t)
    torch.testing.assert_close(-ours, ref)


def test_dlr_is_invariant_to_scaling_and_shifting_the_logits():
    """DLR is the margin over a spread of the logits: a positive scale and a shift change
    nothing (the margin itself scales)."""
    z, y = logits_and_labels()
    base = DLRObjective()(AVOutput(z), y)
    torch.testing.assert_close(DLRObjective()(AVOutput(z * 7.5 - 3), y), base)
    torch.testing.assert_close(
        MarginObjective()(AVOutput(z * 7.5 - 3), y), MarginObjective()(AVOutput(z), y) * 7.5
    )


def test_frame_level_values_are_the_mean_over_frames():
    """Frame logits (B, T, C): frame_level=True averages the per-frame values; frame_level=False
    takes the margin of the frame-mean logits against the clip's most frequent frame label."""
    g = torch.Generator().manual_seed(2)
    z = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (3, 5), generator=g)
    per_frame = direct_margin(z.reshape(15, 4), y.reshape(15)).reshape(3, 5)
    torch.testing.assert_close(MarginObjective()(AVOutput(z), y), per_frame.mean(dim=1))
    dlr_frames = DLRObjective()(AVOutput(z.reshape(15, 4)), y.reshape(15)).reshape(3, 5)
    torch.testing.assert_close(DLRObjective()(AVOutput(z), y), dlr_frames.mean(dim=1))
    clip_label = torch.tensor([int(torch.bincount(row, minlength=4).argmax()) for row in y])
    torch.testing.assert_close(
        MarginObjective(frame_level=False)(AVOutput(z), y),
        direct_margin(z.mean(dim=1), clip_label),
    )


def test_names_resolve_and_the_targeted_dlr_form_follows_the_attack():
    model = make_model()
    assert isinstance(as_objective("margin", model), MarginObjective)
    assert not as_objective("dlr", model).targeted
    assert as_objective("dlr", model, targeted=True).targeted
    attack = avrobust.MultimodalAttack(model, budgets_for("linf"), objective="dlr", targeted=True)
    assert isinstance(attack.objective, DLRObjective) and attack.objective.targeted


def test_margin_attack_fools_more_than_it_started_with_and_loss_is_the_margin():
    """An attack with objective='margin' raises the margin, and result.loss is the margin of the
    returned logits (the CW margin: positive exactly on misclassified samples)."""
    model = make_model(num_classes=4)
    inputs = make_inputs(batch=6)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    attack = avrobust.MultimodalAttack(
        model, budgets_for("linf"), rule="apgd", steps=5, objective="margin", seed=0
    )
    result = attack(inputs, labels)
    assert result.clean_loss is not None
    assert bool((result.loss >= result.clean_loss).all())
    torch.testing.assert_close(result.loss, direct_margin(result.logits.double(), labels).float())
    assert bool((result.success == (result.loss > 0)).all())


def test_targeted_margin_attack_reaches_targets():
    """Targeted: the attack lowers max_{i!=t} z_i - z_t; with a large budget every target is hit
    and the returned loss is negative exactly there."""
    model = make_model(num_classes=4)
    inputs = make_inputs(batch=4)
    targets = torch.tensor([1, 2, 3, 0])
    attack = avrobust.MultimodalAttack(
        model,
        budgets_for("linf", eps_audio=0.5, eps_visual=120.0),
        rule="apgd",
        steps=10,
        objective="margin",
        targeted=True,
        seed=0,
    )
    result = attack(inputs, targets)
    assert bool(result.success.all())
    assert bool((result.logits.argmax(-1) == targets).all())
    assert bool((result.loss < 0).all())


@pytest.mark.parametrize(
    ("build", "error", "argument"),
    [
        (lambda: MarginObjective(frame_level=1), TypeError, "MarginObjective.frame_level"),
        (lambda: DLRObjective(targeted="yes"), TypeError, "DLRObjective.targeted"),
        (lambda: DLRObjective(guard=-1.0), ValueError, "DLRObjective.guard"),
        (lambda: DLRObjective(guard=float("nan")), ValueError, "DLRObjective.guard"),
        (lambda: MarginObjective(True), TypeError, "positional"),
    ],
)
def test_bad_objective_arguments_name_the_argument(build, error, argument):
    assert_raises_naming(error, argument, build)


def test_dlr_needs_three_classes_and_the_targeted_form_four():
    """The DLR denominator needs the third (and fourth) largest logit: a binary model is
    refused at call time, naming the objective and pointing to the margin."""
    z2, y2 = logits_and_labels(c=2)
    message = assert_raises_naming(ValueError, "objective", DLRObjective(), AVOutput(z2), y2)
    assert "margin" in message
    z3, y3 = logits_and_labels(c=3)
    DLRObjective()(AVOutput(z3), y3)  # enough for the untargeted form
    assert_raises_naming(ValueError, "objective", DLRObjective(targeted=True), AVOutput(z3), y3)
    attack = avrobust.MultimodalAttack(make_model(), budgets_for("linf"), objective="dlr")
    assert_raises_naming(ValueError, "objective", attack, make_inputs(), torch.tensor([0, 1, 1]))
