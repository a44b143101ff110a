"""Issue 10, attacks: no silent wrong result, and a clear error for every bad input.

Each test says what it checks. The models here are tiny and built so that the fault under test
(a NaN gradient, NaN logits, a detached input, ...) happens at a known place, so the expected
counts follow from the construction, not from a run of the code under test.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from helpers import (
    AUDIO_BOUNDS,
    VISUAL_BOUNDS,
    assert_raises_naming,
    budgets_for,
    make_inputs,
    make_model,
)
from torch import nn

import avrobust
from avrobust.attacks.objectives import per_sample_ce

MODEL = make_model()
DOUBLE_MODEL = make_model().double()
LABELS = torch.tensor([0, 1, 1])


def _flat_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _no_warnings(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return func(*args, **kwargs)


# ----------------------------------------------------------------- NaN gradients (case 2)
FRAMES, FRAME_LEN = 8, 8


class RmsAudio(nn.Module):
    """Audio features are per-frame RMS, ``sqrt(mean(frame**2))``: on an all-zero frame the
    gradient is ``inf * 0 = NaN`` for each of its ``FRAME_LEN`` elements, finite elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.audio = nn.Linear(FRAMES, 2)
        self.visual = nn.Linear(12, 2)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        frames = audio.reshape(audio.shape[0], FRAMES, FRAME_LEN)
        rms = frames.pow(2).mean(-1).sqrt()
        return self.audio(rms) + self.visual(visual.flatten(1))


def _rms_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    audio = torch.rand(3, FRAMES * FRAME_LEN, generator=g) * 1.6 - 0.8
    audio[0, 2 * FRAME_LEN : 3 * FRAME_LEN] = 0.0  # one silent frame in sample 0
    audio[2, 5 * FRAME_LEN : 6 * FRAME_LEN] = 0.0  # and one in sample 2
    return {"audio": audio, "visual": torch.rand(3, 12, generator=g)}


@pytest.mark.parametrize("keep", ["best", "last"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_nan_gradient_elements_are_zeroed_and_reported(norm, keep):
    """With a NaN gradient on the silent frames, the result is finite, inside bounds and budget,
    and still moves every sample (before: all-NaN audio with keep='last', a silently zero
    perturbation with keep='best'). The warning names the modality and the count: 2 silent
    frames of 8 elements in each of 3 gradient steps (BIM keeps the silent frames at 0, where
    the gradient stays NaN) = 48, known from the construction."""
    inputs, steps = _rms_inputs(), 3
    eps = 0.05 if norm == "linf" else 0.2
    budget = avrobust.Linf(eps, bounds=AUDIO_BOUNDS) if norm == "linf" else avrobust.L2(eps)
    attack = avrobust.MultimodalAttack(
        RmsAudio(), budgets={"audio": budget}, rule="bim", steps=steps, keep=keep
    )
    with pytest.warns(UserWarning, match=r"'audio'.* 48 NaN/Inf gradient elements"):
        result = attack(inputs, LABELS)
    adv = result.inputs["audio"]
    assert torch.isfinite(adv).all()
    assert adv.min() >= AUDIO_BOUNDS[0] and adv.max() <= AUDIO_BOUNDS[1]
    moved = _flat_norm(adv - inputs["audio"], norm)
    assert bool((moved <= eps * (1 + 1e-6)).all())
    assert bool((moved > 0).all()), "every sample has finite gradient elements: it must move"
    assert torch.isfinite(result.logits).all() and torch.isfinite(result.loss).all()


# ----------------------------------------------------------------- NaN logits (case 3)
class NanAbove(nn.Module):
    """Logits ``[sum(x), 100 - sum(x)]``: class 1 wins wherever the logits are finite, so no
    untargeted attack on label 1 can succeed; but the logits are NaN wherever an element of ``x``
    exceeds ``limit`` (and argmax of NaN is 0, which would read as a success)."""

    def __init__(self, limit: float = 0.9) -> None:
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.sum(1, keepdim=True)
        logits = torch.cat([s, 100 - s], dim=1)
        over = (x > self.limit).any(1, keepdim=True)
        return torch.where(over, torch.full_like(logits, math.nan), logits)


@pytest.mark.parametrize("keep", ["best", "last"])
@pytest.mark.parametrize("rule", ["bim", "pgd"])
def test_nan_logits_never_count_as_success(rule, keep):
    """Iterates cross into the NaN region (x > 0.9 from clean values in [0.65, 0.8], eps 0.3): no
    sample may count as a success (finite logits always say class 1 = the label), the returned
    inputs are finite and a warning says how many samples met NaN logits (all 4)."""
    x = torch.linspace(0.65, 0.8, 16).reshape(4, 4)
    attack = avrobust.MultimodalAttack(
        NanAbove(),
        budgets={"x": avrobust.Linf(0.3, bounds=(0, 1))},
        rule=rule,
        steps=4,
        seed=0,
        keep=keep,
    )
    with pytest.warns(UserWarning, match=r"4 of 4 samples .*logits are NaN/Inf"):
        result = attack({"x": x}, torch.ones(4, dtype=torch.long))
    assert not result.success.any()
    assert result.success_rate == 0.0
    assert torch.isfinite(result.inputs["x"]).all()
    if keep == "best":  # a NaN candidate is never kept: the clean input is always a finite one
        assert torch.isfinite(result.logits).all()


def test_nan_logits_at_the_clean_inputs_are_an_error():
    """The model cannot be evaluated at the clean inputs of samples 1 and 3: a ValueError that
    names the logits and those samples' indices (an attack result there would mean nothing)."""
    x = torch.full((4, 4), 0.5)
    x[1, 0] = x[3, 2] = 0.95
    attack = avrobust.MultimodalAttack(
        NanAbove(), budgets={"x": avrobust.Linf(0.01, bounds=(0, 1))}, rule="pgd", keep="last"
    )
    message = assert_raises_naming(ValueError, "logits", attack, {"x": x}, torch.ones(4).long())
    assert "[1, 3]" in message


# ----------------------------------------------------------------- no gradient (case 4)
class Blocks(nn.Module):
    """``how`` = "detach": audio reaches the logits detached (gradient None); "zero": audio is
    multiplied by 0 (gradient all zeros)."""

    def __init__(self, how: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.how = how
        self.lin = nn.Linear(10, 2)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        a = audio.detach() if self.how == "detach" else audio * 0
        return self.lin(torch.cat([a, visual], dim=1))


@pytest.mark.parametrize("rule", ["bim", "pgd", "mim"])
@pytest.mark.parametrize("how", ["detach", "zero"])
def test_a_modality_without_gradient_is_reported(how, rule):
    """Audio receives no gradient (None or all zeros) in any step: one warning naming 'audio'
    ("attacked in name only"), none naming 'visual', which the attack really moves."""
    inputs = {"audio": torch.rand(2, 5), "visual": torch.rand(2, 5)}
    budgets = {"audio": avrobust.Linf(0.1, bounds=(0, 1)), "visual": avrobust.Linf(0.1)}
    attack = avrobust.MultimodalAttack(Blocks(how), budgets=budgets, rule=rule, steps=2, seed=0)
    with pytest.warns(UserWarning, match=r"'audio'.*attacked in name only") as record:
        result = attack(inputs, torch.tensor([0, 1]))
    assert not any("'visual'" in str(w.message) for w in record)
    assert not torch.equal(result.inputs["visual"], inputs["visual"])


@pytest.mark.parametrize("rule", ["fgsm", "bim", "mim", "pgd"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_an_ordinary_attack_warns_nothing(rule, norm):
    """The guards stay silent on a healthy model at float32 with the paper's budgets."""
    budgets = budgets_for(norm) if norm == "l2" else avrobust.push_pull_budgets(5)
    attack = avrobust.MultimodalAttack(MODEL, budgets=budgets, rule=rule, steps=2, seed=0)
    _no_warnings(attack, make_inputs(), LABELS)


# ----------------------------------------------------------------- dtype resolution (case 5)
@pytest.mark.parametrize(
    "dtype, eps_av", [(torch.bfloat16, 5.0), (torch.float16, 0.5), (torch.float32, 1e-4)]
)
def test_budget_below_the_dtype_resolution_warns(dtype, eps_av):
    """A budget below the input dtype's resolution at its bounds (bfloat16 spacing near 1 is
    0.0078 > the audio eps 5e-4 of eps_av=5; float16: 9.8e-4 > 5e-5; float32: 1.2e-7 > 1e-8;
    at 255 the visual spacing is 1.99, 0.25, 3e-5 > eps 0.5, 0.05, 1e-5) would round to no
    perturbation: a warning names the modality and the dtype."""
    model = make_model().to(dtype)
    attack = avrobust.MultimodalAttack(
        model, budgets=avrobust.push_pull_budgets(eps_av), rule="bim", steps=2
    )
    with pytest.warns(UserWarning, match=rf"budgets\['(audio|visual)'\].*{dtype}") as record:
        attack(make_inputs(dtype=dtype), LABELS)
    named = {m for m in ("audio", "visual") for w in record if f"budgets['{m}']" in str(w.message)}
    assert named == {"audio", "visual"}


# ----------------------------------------------------------------- seeds and chunks (case 6)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_max_batch_does_not_change_the_random_starts(norm):
    """The same seed gives the same result whatever the chunking of restarts (two attacked
    modalities, 4 restarts of 3 samples: all at once, one per chunk, two per chunk). In float64,
    where no step depends on the batch size's rounding; inputs compared exactly."""
    inputs = make_inputs(batch=3, dtype=torch.float64)
    results = [
        avrobust.MultimodalAttack(
            DOUBLE_MODEL, budgets=budgets_for(norm), rule=avrobust.PGD(restarts=4), steps=2, seed=3,
            max_batch=max_batch,
        )(inputs, LABELS)
        for max_batch in (None, 4, 6)
    ]  # fmt: skip
    tol = 64 * torch.finfo(torch.float64).eps
    for other in results[1:]:
        for name in inputs:
            if norm == "linf":
                assert torch.equal(results[0].inputs[name], other.inputs[name]), name
            else:  # the L2 step divides by a norm, summed in another order in another batch
                atol = tol * VISUAL_BOUNDS[1]
                torch.testing.assert_close(
                    results[0].inputs[name], other.inputs[name], atol=atol, rtol=0
                )
        torch.testing.assert_close(results[0].loss, other.loss, atol=tol, rtol=tol)


# ----------------------------------------------------------------- NumPy scalars (case 11)
@pytest.mark.parametrize("value", [np.float32(0.5), np.float64(0.5), np.int64(2), np.float16(1)])
def test_numpy_scalars_are_accepted_as_numbers(value):
    """NumPy scalars are numbers: eps, alpha and eps_av take them and store Python floats."""
    for budget in (avrobust.Linf(value, alpha=value), avrobust.L2(value)):
        assert isinstance(budget.eps, float) and budget.eps == float(value)
    pp = avrobust.push_pull_budgets(value, alpha=(value, value))
    assert pp["visual"].eps == pytest.approx(float(value) * 0.1)


# ----------------------------------------------------------------- bad inputs (cases 7-12)
class Logits(nn.Module):
    """Returns ``fn(lin(x))``: a way to hand the attack logits of any shape or dtype."""

    def __init__(self, fn) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.fn = nn.Linear(4, 2), fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.lin(x))


def _attack_x(fn=lambda z: z, x=None, **kwargs):
    model = Logits(fn)
    args = {"rule": "bim", "budgets": {"x": avrobust.Linf(0.1, bounds=(0, 1))}, "steps": 2}
    attack = avrobust.MultimodalAttack(model, **(args | kwargs))
    x = torch.rand(3, 4) if x is None else x
    return attack({"x": x}, torch.zeros(x.shape[0], dtype=torch.long))


def _attack_av(inputs=None, labels=LABELS, **kwargs):
    args = {"rule": "bim", "budgets": budgets_for("linf"), "steps": 1} | kwargs
    return avrobust.MultimodalAttack(MODEL, **args)(
        make_inputs() if inputs is None else inputs, labels
    )


def _inputs(**changes):
    inputs = make_inputs()
    for name, fn in changes.items():
        inputs[name] = fn(inputs[name])
    return inputs


BAD = {
    # MultimodalAttack, the model's logits (case 8)
    "one_class_logits": (ValueError, "logits", _attack_x, {"fn": lambda z: z[:, :1]}),
    "logits_without_classes": (ValueError, "logits", _attack_x, {"fn": lambda z: z[:, 0]}),
    "integer_logits": (TypeError, "logits", _attack_x, {"fn": lambda z: z.long()}),
    "logits_batch_b_times_t": (ValueError, "logits", _attack_x, {"fn": lambda z: z.repeat(4, 1)}),
    "nan_clean_logits": (ValueError, "logits", _attack_x, {"fn": lambda z: z * math.nan}),
    # MultimodalAttack, objective (case 9) and inputs (cases 10, 11)
    "detached_objective": (
        ValueError,
        "objective",
        _attack_av,
        {"objective": lambda out, y: per_sample_ce(out.logits, y).detach()},
    ),
    "float64_input_float32_model": (
        TypeError,
        "inputs['visual']",
        _attack_av,
        {"inputs": _inputs(visual=lambda v: v.double())},
    ),
    "float16_input_float32_model": (
        TypeError,
        "inputs['audio']",
        _attack_av,
        {"inputs": _inputs(audio=lambda v: v.half())},
    ),
    "empty_batch": (
        ValueError,
        "inputs",
        _attack_av,
        {"inputs": _inputs(audio=lambda v: v[:0], visual=lambda v: v[:0]), "labels": LABELS[:0]},
    ),
    "per_sample_eps_of_wrong_length": (
        ValueError,
        "Linf.eps",
        _attack_av,
        {"budgets": {"audio": avrobust.Linf(torch.full((5,), 0.1))}},
    ),
    "inputs_not_a_dict": (TypeError, "inputs", _attack_av, {"inputs": [torch.zeros(3, 4)]}),
    "inputs_empty_dict": (ValueError, "inputs", _attack_av, {"inputs": {}}),
    "labels_a_list": (TypeError, "labels", _attack_av, {"labels": [0, 1, 1]}),
    # MultimodalAttack, constructor
    "max_batch_zero": (ValueError, "max_batch", _attack_av, {"max_batch": 0}),
    "seed_negative": (ValueError, "seed", _attack_av, {"seed": -1}),
    "seed_a_string": (TypeError, "seed", _attack_av, {"seed": "3"}),
    "targeted_a_string": (TypeError, "targeted", _attack_av, {"targeted": "yes"}),
    "model_mode_train": (ValueError, "model_mode", _attack_av, {"model_mode": "train"}),
    "keep_an_int": (TypeError, "keep", _attack_av, {"keep": 1}),
    "budgets_none": (TypeError, "budgets", _attack_av, {"budgets": None}),
    "budgets_a_list": (TypeError, "budgets", _attack_av, {"budgets": [avrobust.Linf(1.0)]}),
    "budget_a_string": (TypeError, "budgets['audio']", _attack_av, {"budgets": {"audio": "x"}}),
    "rule_unknown": (ValueError, "rule", _attack_av, {"rule": "cw"}),
    # budgets
    "linf_empty_eps": (ValueError, "Linf.eps", avrobust.Linf, {"eps": torch.empty(0)}),
    "l2_empty_alpha": (ValueError, "L2.alpha", avrobust.L2, {"eps": 1.0, "alpha": torch.empty(0)}),
    "l2_eps_2d": (ValueError, "L2.eps", avrobust.L2, {"eps": torch.ones(2, 2)}),
    "linf_eps_bool": (TypeError, "Linf.eps", avrobust.Linf, {"eps": True}),
    "linf_eps_numpy_bool": (TypeError, "Linf.eps", avrobust.Linf, {"eps": np.bool_(True)}),
    "linf_eps_string": (TypeError, "Linf.eps", avrobust.Linf, {"eps": "0.5"}),
    "linf_eps_nan_entry": (
        ValueError,
        "Linf.eps",
        avrobust.Linf,
        {"eps": torch.tensor([math.nan])},
    ),
    "linf_alpha_string": (TypeError, "Linf.alpha", avrobust.Linf, {"eps": 0.1, "alpha": "a"}),
    "l2_bounds_nan": (ValueError, "L2.bounds", avrobust.L2, {"eps": 0.1, "bounds": (0, math.nan)}),
    # push_pull_budgets (case 7)
    "pp_same_names": (
        ValueError,
        "visual",
        avrobust.push_pull_budgets,
        {"eps_av": 5, "audio": "x", "visual": "x"},
    ),
    "pp_alpha_one_value": (
        ValueError,
        "alpha",
        avrobust.push_pull_budgets,
        {"eps_av": 5, "alpha": (0.1,)},
    ),
    "pp_alpha_a_number": (
        TypeError,
        "alpha",
        avrobust.push_pull_budgets,
        {"eps_av": 5, "alpha": 0.1},
    ),
    "pp_alpha_string_entry": (
        TypeError,
        "alpha[1]",
        avrobust.push_pull_budgets,
        {"eps_av": 5, "alpha": (0.1, "x")},
    ),
    "pp_eps_negative": (ValueError, "eps_av", avrobust.push_pull_budgets, {"eps_av": -1}),
    "pp_eps_string": (TypeError, "eps_av", avrobust.push_pull_budgets, {"eps_av": "5"}),
    "pp_audio_not_a_string": (
        TypeError,
        "audio",
        avrobust.push_pull_budgets,
        {"eps_av": 5, "audio": 3},
    ),
    "pp_audio_bounds_reversed": (
        ValueError,
        "audio_bounds",
        avrobust.push_pull_budgets,
        {"eps_av": 5, "audio_bounds": (1, -1)},
    ),
    # snr_eps (case 11)
    "snr_0d_signal": (
        ValueError,
        "signal",
        avrobust.snr_eps,
        {"signal": torch.tensor(1.0), "snr_db": 20},
    ),
    "snr_empty_batch": (
        ValueError,
        "signal",
        avrobust.snr_eps,
        {"signal": torch.zeros(0, 5), "snr_db": 20},
    ),
    "snr_empty_samples": (
        ValueError,
        "signal",
        avrobust.snr_eps,
        {"signal": torch.zeros(2, 0), "snr_db": 20},
    ),
    "snr_nan_signal": (
        ValueError,
        "signal",
        avrobust.snr_eps,
        {"signal": torch.tensor([[0.1, math.nan]]), "snr_db": 20},
    ),
    "snr_integer_signal": (
        TypeError,
        "signal",
        avrobust.snr_eps,
        {"signal": torch.ones(2, 3).long(), "snr_db": 20},
    ),
    "snr_db_nan": (
        ValueError,
        "snr_db",
        avrobust.snr_eps,
        {"signal": torch.ones(2, 3), "snr_db": math.nan},
    ),
    "snr_norm_l1": (
        ValueError,
        "norm",
        avrobust.snr_eps,
        {"signal": torch.ones(2, 3), "snr_db": 20, "norm": "l1"},
    ),
    # rules
    "pgd_restarts_zero": (ValueError, "PGD.restarts", avrobust.PGD, {"restarts": 0}),
    "pgd_restarts_float": (TypeError, "PGD.restarts", avrobust.PGD, {"restarts": 1.5}),
    "pgd_random_start_int": (TypeError, "PGD.random_start", avrobust.PGD, {"random_start": 1}),
    "mim_decay_negative": (ValueError, "MIM.decay", avrobust.MIM, {"decay": -1.0}),
    "mim_decay_nan": (ValueError, "MIM.decay", avrobust.MIM, {"decay": math.nan}),
    "mim_decay_string": (TypeError, "MIM.decay", avrobust.MIM, {"decay": "1"}),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_raises_an_error_naming_it(case):
    """Each bad input raises the stated error type, and the message names the argument (for the
    B*T logits case, the message states the logits' batch 12 besides the inputs' 3)."""
    exc, named, func, kwargs = BAD[case]
    message = assert_raises_naming(exc, named, func, **kwargs)
    if case == "logits_batch_b_times_t":
        assert "12" in message and "3" in message and not message.startswith("labels")
    if case.startswith("float") and "model" in case:
        assert "torch.float32" in message and "dtype" in message
