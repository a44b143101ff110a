"""Gradient-masking diagnostics: the flags fire on models built to mask and stay silent on a plain one."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import assert_raises_naming, assert_same_model, make_inputs, make_model, snapshot
from torch import nn

import avrobust
from avrobust.diagnostics import Diagnosis, Flag, _flags

BUDGETS = {
    "audio": avrobust.Linf(0.01, bounds=(-1.0, 1.0)),
    "visual": avrobust.Linf(4.0, bounds=(0.0, 255.0)),
}
FAST = {"steps": 10, "queries": 200, "noise_draws": 10}


def correct(model: nn.Module, batch: int = 8) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    inputs = make_inputs(batch=batch)
    with torch.no_grad(), avrobust.preserve_model_state(model):
        out = model(**inputs)
    return inputs, (out if isinstance(out, torch.Tensor) else out.logits).argmax(-1)


class Rounded(nn.Module):
    """TinyAV behind a quantising front-end (x.round()): the input gradient is exactly zero."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model()

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> avrobust.AVOutput:
        return self.inner(audio=(audio * 100).round() / 100, visual=visual.round())


class MemoryAV(nn.Module):
    """Linear encoders, an ExFMem FeatureMemory over both embeddings, a linear head."""

    def __init__(self, gradient: str, blend: float = 1.0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.audio, self.visual = nn.Linear(640, 8), nn.Linear(4 * 16 * 16, 8)
        self.head = nn.Linear(16, 2)
        with torch.no_grad():
            banks = self.features(**make_inputs(batch=32, seed=5))
        self.memory = avrobust.FeatureMemory(
            banks, lam=0.01, blend=blend, max_iter=10, gradient=gradient
        )

    def features(self, audio: torch.Tensor, visual: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "audio": torch.tanh(self.audio(audio)),
            "visual": torch.tanh(self.visual(visual.flatten(1) / 255 - 0.5)),
        }

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        f = self.memory(self.features(audio, visual))
        return self.head(torch.cat([f["audio"], f["visual"]], dim=1))


def test_diagnose_is_silent_on_a_plain_model():
    """On TinyAV (no masking) no flag fires and nothing warns; the model and the inputs are left
    as they were; every flag has a sentence."""
    model = make_model()
    inputs, labels = correct(model)
    before, originals = snapshot(model), {n: x.clone() for n, x in inputs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diagnosis = avrobust.diagnose(model, inputs, labels, BUDGETS, **FAST)
    assert_same_model(before, model)
    assert all(torch.equal(inputs[n], originals[n]) for n in inputs)
    assert diagnosis.fired == [] and not diagnosis.masking, str(diagnosis)
    names = [f.name for f in diagnosis.flags]
    assert names == [
        "gradients", "eps_growth", "eps_monotone", "single_step", "convergence", "black_box",
        "noise", "masking_modules", "batch_coupling",
    ]  # fmt: skip
    assert all(isinstance(f, Flag) and len(f.sentence) > 20 for f in diagnosis.flags)
    assert diagnosis.accuracy["pgd"] < 1.0, "PGD broke nothing: the plain case shows nothing"
    assert diagnosis.accuracy["pgd x64"] == 0.0
    assert diagnosis.zero_gradient == {"audio": 0.0, "visual": 0.0}
    assert diagnosis.samples == 8


def test_diagnose_fires_on_a_quantised_front_end():
    """x.round() in front of the model: zero gradients, accuracy that does not fall with eps,
    and Square (no gradients) beating white-box all fire; the attacks' warnings about the
    missing gradient are said once each."""
    model = Rounded()
    inputs, labels = correct(model)
    with pytest.warns(UserWarning) as record:
        diagnosis = avrobust.diagnose(model, inputs, labels, BUDGETS, **FAST)
    messages = [str(w.message) for w in record]
    assert any("diagnose: MultimodalAttack: the modality 'visual'" in m for m in messages)
    assert len(messages) == len(set(messages))
    fired = {f.name for f in diagnosis.fired}
    assert {"gradients", "eps_growth", "black_box"} <= fired, str(diagnosis)
    assert diagnosis.zero_gradient == {"audio": 1.0, "visual": 1.0}
    assert "'visual' 100 %" in diagnosis.flag("gradients").sentence


def test_diagnose_transfer_from_a_surrogate_fires_on_masking():
    """With the plain model as surrogate, adversarial inputs crafted on it break the quantised
    model where its own (zero) gradient cannot: "transfer" fires. On the plain model with itself
    as surrogate it stays silent."""
    model = Rounded()
    inputs, labels = correct(model)
    with pytest.warns(UserWarning):
        masked = avrobust.diagnose(model, inputs, labels, BUDGETS, surrogate=model.inner, **FAST)
    assert masked.flag("transfer").fired, str(masked)
    plain = model.inner
    inputs, labels = correct(plain)
    silent = avrobust.diagnose(plain, inputs, labels, BUDGETS, surrogate=plain, **FAST)
    assert not silent.flag("transfer").fired and "transfer" in silent.accuracy


def test_diagnose_fires_on_a_detached_feature_memory_and_not_on_bpda():
    """FeatureMemory(gradient="detached", blend=1) passes no gradient: "gradients",
    "eps_growth" and "masking_modules" fire (and the memory warns at attack time); the same
    model with gradient="bpda" fires neither "gradients" nor "masking_modules"."""
    model = MemoryAV("detached")
    inputs, labels = correct(model)
    quick = {"steps": 5, "queries": 50, "noise_draws": 5, "scales": (1, 64)}
    with pytest.warns(UserWarning) as record:
        detached = avrobust.diagnose(model, inputs, labels, BUDGETS, **quick)
    assert any("FeatureMemory(gradient='detached')" in str(w.message) for w in record)
    fired = {f.name for f in detached.fired}
    assert {"gradients", "eps_growth", "masking_modules"} <= fired, str(detached)
    assert "memory" in detached.flag("masking_modules").sentence
    model.memory.gradient = "bpda"
    bpda = avrobust.diagnose(model, inputs, labels, BUDGETS, **quick)
    assert not bpda.flag("gradients").fired and not bpda.flag("masking_modules").fired


def test_each_flag_fires_on_its_own_gap():
    """The flag logic on hand-made per-sample results: each comparison fires when the other run
    broke more than `tolerance` of the samples the reference left robust, and only then."""
    f, t = False, True
    base = {
        "clean": torch.tensor([f, f, f, f]),
        "fgsm": torch.tensor([t, f, f, f]),
        "pgd": torch.tensor([t, f, f, f]),
        "pgd-strong": torch.tensor([t, f, f, f]),
        "pgd x1": torch.tensor([t, f, f, f]),
        "pgd x4": torch.tensor([t, t, f, f]),
        "pgd x16": torch.tensor([t, t, t, t]),
        "square": torch.tensor([t, f, f, f]),
        "noise": torch.tensor([f, f, f, f]),
    }

    def fired(zero: float = 0.1, **changes: torch.Tensor) -> set[str]:
        flags = _flags({**base, **changes}, {"audio": zero}, [1, 4, 16], 0.3, 0.5, nn.Linear(1, 1))
        return {x.name for x in flags if x.fired}

    two_more, one_more = torch.tensor([t, t, t, f]), torch.tensor([t, t, f, f])
    assert fired() == set()
    assert fired(fgsm=one_more, square=one_more, noise=one_more) == set()  # 1/4 <= 0.3
    assert fired(**{"pgd-strong": one_more}) == set()
    assert fired(fgsm=two_more) == {"single_step"}
    assert fired(**{"pgd-strong": two_more}) == {"convergence"}
    assert fired(square=two_more) == {"black_box"}
    assert fired(noise=two_more) == {"noise"}
    assert fired(**{"pgd x16": one_more}) == {"eps_growth"}  # accuracy 0.5 at the largest
    assert fired(**{"pgd x1": two_more, "pgd x4": base["pgd"]}) == {"eps_monotone"}
    assert fired(zero=0.6) == {"gradients"}
    assert fired(zero=0.5) == set()


def test_diagnosis_api_and_l2_budgets():
    """`flag` finds a flag by name and names the argument otherwise; str lists every flag; with
    L2 budgets Square is not run and says so."""
    model = make_model()
    inputs, labels = correct(model, batch=4)
    l2 = {"visual": avrobust.L2(50.0, bounds=(0.0, 255.0))}
    diagnosis = avrobust.diagnose(model, inputs, labels, l2, steps=3, noise_draws=2)
    assert isinstance(diagnosis, Diagnosis)
    assert "square" not in diagnosis.accuracy
    assert "not run" in diagnosis.flag("black_box").sentence
    assert all(f.name in str(diagnosis) for f in diagnosis.flags)
    assert_raises_naming(KeyError, "name", diagnosis.flag, "nothing")


def test_diagnose_bad_arguments():
    """Every bad argument raises the right error naming the argument."""
    model = make_model()
    inputs, labels = correct(model, batch=2)
    run = avrobust.diagnose
    assert_raises_naming(ValueError, "steps", run, model, inputs, labels, BUDGETS, steps=0)
    assert_raises_naming(ValueError, "restarts", run, model, inputs, labels, BUDGETS, restarts=0)
    assert_raises_naming(ValueError, "queries", run, model, inputs, labels, BUDGETS, queries=0)
    assert_raises_naming(
        ValueError, "noise_draws", run, model, inputs, labels, BUDGETS, noise_draws=0
    )
    assert_raises_naming(ValueError, "tolerance", run, model, inputs, labels, BUDGETS, tolerance=-1)
    assert_raises_naming(
        ValueError, "max_zero_gradient", run, model, inputs, labels, BUDGETS, max_zero_gradient=-1
    )
    assert_raises_naming(TypeError, "scales", run, model, inputs, labels, BUDGETS, scales=[1.0])
    assert_raises_naming(ValueError, "scales", run, model, inputs, labels, BUDGETS, scales=[4, 1])
    assert_raises_naming(
        ValueError, "scales[1]", run, model, inputs, labels, BUDGETS, scales=[1, 0]
    )
    assert_raises_naming(TypeError, "surrogate", run, model, inputs, labels, BUDGETS, surrogate=1)
    assert_raises_naming(ValueError, "labels", run, model, inputs, labels[:1], BUDGETS)
    assert_raises_naming(TypeError, "model", run, "model", inputs, labels, BUDGETS)
