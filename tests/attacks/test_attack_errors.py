"""Every bad argument raises ValueError/TypeError naming the argument, the expectation and the value."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_raises_naming, budgets_for, make_inputs, make_model
from torch import nn

import avrobust

MODEL = make_model()


def attack(**kwargs):
    args = {"rule": "bim", "budgets": budgets_for("linf"), "steps": 2} | kwargs
    return avrobust.MultimodalAttack(MODEL, **args)


@pytest.mark.parametrize(
    "eps, match",
    [
        (-0.5, r"Linf.eps: must be a finite number >= 0, got -0.5"),
        (math.nan, r"Linf.eps: must be a finite number >= 0, got nan"),
        (math.inf, r"Linf.eps: must be a finite number >= 0, got inf"),
    ],
)
def test_bad_eps(eps, match):
    with pytest.raises(ValueError, match=match):
        avrobust.Linf(eps)


def test_bad_eps_type_and_per_sample_eps():
    with pytest.raises(TypeError, match=r"L2.eps: expected a real number, got 'big'"):
        avrobust.L2("big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Linf.eps: every entry must be >= 0, got min -1"):
        avrobust.Linf(torch.tensor([0.1, -1.0]))


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_alpha_must_be_positive(alpha):
    with pytest.raises(
        ValueError, match=rf"Linf.alpha: must be a finite number > 0, got {alpha:g}"
    ):
        avrobust.Linf(0.1, alpha=alpha)


def test_bounds_low_must_be_below_high():
    with pytest.raises(ValueError, match=r"Linf.bounds: expected low < high, got low=1, high=0"):
        avrobust.Linf(0.1, bounds=(1, 0))
    with pytest.raises(
        TypeError, match=r"Linf.bounds: expected a pair \(low, high\) or None, got 3"
    ):
        avrobust.Linf(0.1, bounds=3)  # type: ignore[arg-type]


def test_input_outside_its_bounds():
    inputs = make_inputs()
    inputs["visual"][0, 0, 0, 0] = 300.0
    with pytest.raises(
        ValueError,
        match=r"inputs\['visual'\]: values must lie inside "
        r"budgets\['visual'\].bounds = \(0, 255\), got min .*, max 300",
    ):
        attack()(inputs, torch.tensor([0, 1, 0]))


def test_budget_for_a_missing_modality():
    budgets = budgets_for("linf") | {"depth": avrobust.Linf(0.1)}
    with pytest.raises(
        ValueError,
        match=r"budgets: there is a budget for modality 'depth', but the "
        r"inputs have only \['audio', 'visual'\]",
    ):
        attack(budgets=budgets)(make_inputs(), torch.tensor([0, 1, 0]))


def test_inputs_with_different_batch_sizes():
    inputs = make_inputs()
    inputs["audio"] = inputs["audio"][:2]
    with pytest.raises(
        ValueError,
        match=r"inputs: all modalities must share the batch size \(dim 0\), "
        r"got \{'audio': 2, 'visual': 3\}",
    ):
        attack()(inputs, torch.tensor([0, 1, 0]))


@pytest.mark.parametrize(
    "labels, match",
    [
        (
            torch.zeros(3, 5, dtype=torch.long),
            r"labels: expected shape \(3,\) \(clip-level; frame labels need logits "
            r"\(B, T, C\)\) to match logits of shape \(3, 2\), got \(3, 5\)",
        ),
        (
            torch.zeros(2, dtype=torch.long),
            r"labels: expected a batch dimension of 3 \(as the inputs\), got shape \(2,\)",
        ),
    ],
)
def test_labels_whose_shape_fits_nothing(labels, match):
    with pytest.raises(ValueError, match=match):
        attack()(make_inputs(), labels)


def test_frame_labels_of_wrong_length():
    frame_model = make_model(frame_level=True)
    a = avrobust.MultimodalAttack(frame_model, budgets=budgets_for("linf"), rule="bim", steps=1)
    with pytest.raises(
        ValueError,
        match=r"labels: expected shape \(3, 4\) \(frame-level\) or \(3,\) "
        r"\(clip-level\) to match logits of shape \(3, 4, 2\), got \(3, 7\)",
    ):
        a(make_inputs(), torch.zeros(3, 7, dtype=torch.long))


def test_labels_out_of_class_range_and_float_labels():
    with pytest.raises(
        ValueError,
        match=r"labels: class indices must lie in \[0, 1\] for logits with "
        r"2 classes, got min 0, max 2",
    ):
        attack()(make_inputs(), torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match=r"got min -1, max 1"):
        attack()(make_inputs(), torch.tensor([0, -1, 1]))
    with pytest.raises(
        TypeError, match=r"labels: expected integer class indices, got dtype torch.float32"
    ):
        attack()(make_inputs(), torch.tensor([0.0, 1.0, 1.0]))


def test_steps_and_restarts_at_least_one():
    with pytest.raises(ValueError, match=r"steps: must be >= 1, got 0"):
        attack(steps=0)
    with pytest.raises(ValueError, match=r"PGD.restarts: must be >= 1, got 0"):
        avrobust.PGD(restarts=0)
    with pytest.raises(TypeError, match=r"steps: expected an int, got 2.5"):
        attack(steps=2.5)


def test_unknown_rule_name():
    with pytest.raises(
        ValueError, match=r"rule: expected one of \['apgd', 'bim', 'fgsm', 'mim', 'pgd'\], got 'cw'"
    ):
        attack(rule="cw")
    with pytest.raises(TypeError, match=r"rule: expected a StepRule such as avrobust.PGD\(\)"):
        attack(rule=3)


@pytest.mark.parametrize("value", [math.nan, math.inf])
@pytest.mark.parametrize("modality", ["audio", "visual"])
def test_nan_or_inf_in_an_input(modality, value):
    inputs = make_inputs()
    inputs[modality][1, 0] = value
    with pytest.raises(
        ValueError, match=rf"inputs\['{modality}'\]: expected finite values, got \d+ NaN/Inf"
    ):
        attack()(inputs, torch.tensor([0, 1, 0]))


def test_model_output_without_logits():
    class DictModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 2)

        def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"scores": self.lin(audio)}

    inputs, labels = {"audio": torch.rand(2, 4)}, torch.tensor([0, 1])
    with pytest.raises(
        TypeError,
        match=r"model output: expected avrobust.AVOutput or a logits tensor, "
        r"got dict with keys \['scores'\]; wrap the model with avrobust.wrap",
    ):
        avrobust.MultimodalAttack(DictModel(), budgets={"audio": avrobust.Linf(0.1)}, rule="bim")(
            inputs, labels
        )
    with pytest.raises(ValueError, match=r"model output: found no 'logits' key among \['scores'\]"):
        avrobust.MultimodalAttack(
            avrobust.wrap(DictModel()), budgets={"audio": avrobust.Linf(0.1)}, rule="bim"
        )(inputs, labels)


def test_other_arguments():
    with pytest.raises(
        ValueError,
        match=r"objective: expected 'training', 'inference', 'margin', 'dlr' or a callable, "
        r"got 'train'",
    ):
        attack(objective="train")
    with pytest.raises(ValueError, match=r"keep: expected one of \['best', 'last'\], got 'first'"):
        attack(keep="first")
    with pytest.raises(
        TypeError,
        match=r"budgets: expected a Budget such as avrobust.Linf\(eps\), got 'x'|budgets\['audio'\]",
    ):
        attack(budgets={"audio": "x"})
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module, got 'model'"):
        avrobust.MultimodalAttack("model", budgets={}, rule="bim")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"objective: expected per-sample losses of shape \(3,\), got \(\)"
    ):
        attack(objective=lambda out, y: out.logits.sum())(make_inputs(), torch.tensor([0, 1, 0]))
    with pytest.raises(TypeError, match=r"inputs\['visual'\]: expected a floating-point tensor"):
        inputs = make_inputs()
        inputs["visual"] = inputs["visual"].to(torch.uint8)
        attack()(inputs, torch.tensor([0, 1, 0]))


def test_only_model_and_budgets_are_positional():
    """The signature is ``MultimodalAttack(model, budgets, *, rule=..., steps=..., ...)``: the
    old positional call ``(model, rule, budgets, steps)`` no longer binds silently but raises a
    TypeError, a rule passed where the budgets go is refused naming ``budgets``, and the
    signature itself has exactly two positional parameters after ``self``."""
    import inspect

    budgets = budgets_for("linf")
    with pytest.raises(TypeError, match=r"positional argument"):
        avrobust.MultimodalAttack(MODEL, "bim", budgets)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"positional argument"):
        avrobust.MultimodalAttack(MODEL, budgets, "bim", 3)  # type: ignore[misc]
    assert_raises_naming(TypeError, "budgets", avrobust.MultimodalAttack, MODEL, "bim")
    params = list(inspect.signature(avrobust.MultimodalAttack).parameters.values())
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == ["model", "budgets"]
    assert params[1].default is inspect.Parameter.empty  # budgets is required
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:])
    same = avrobust.MultimodalAttack(MODEL, budgets=budgets, rule="bim", steps=3, seed=0)
    assert isinstance(same.rule, avrobust.BIM) and (same.steps, same.seed) == (3, 0)
    assert sorted(same.budgets) == sorted(budgets)


def test_list_rules_names_what_as_rule_accepts():
    """The registry the CLI and the evaluation grid read: every listed name builds its rule, and
    an unlisted one is refused naming the argument."""
    names = avrobust.attacks.list_rules()
    assert set(names) == {"fgsm", "bim", "mim", "pgd", "apgd"}
    assert [avrobust.attacks.as_rule(n).name for n in names] == list(names)
    assert_raises_naming(ValueError, "rule", avrobust.attacks.as_rule, "cw")
