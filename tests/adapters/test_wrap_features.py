"""Issue 12, ``avrobust.wrap`` without glue: ``forward=`` (callable or method chain),
``transforms=``, ``output=``, selectors that see the inputs, module heads (registered), and the
handling of ``uint8`` frames.

Each test's docstring says what it checks; the bad-input table at the end uses
``assert_raises_naming`` (the error type and the argument named in the message).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_raises_naming, assert_same_model, snapshot
from torch import nn

import avrobust
from avrobust.attacks.objectives import check_labels

# ------------------------------------------------------------------------- small models


class NoForward(nn.Module):
    """Like the official TalkNet: no ``forward``, a chain of ``forward_*`` methods."""

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.enc_a = nn.Linear(3, dim)
        self.enc_v = nn.Linear(5, dim)
        self.back = nn.Linear(2 * dim, dim)

    def forward_audio_frontend(self, x):  # (B, T, 3) -> (B, T, D)
        return torch.tanh(self.enc_a(x))

    def forward_visual_frontend(self, x):  # (B, T, 5) -> (B, T, D)
        return torch.tanh(self.enc_v(x))

    def forward_cross_attention(self, a, v):
        return a + 0.5 * v, v + 0.5 * a

    def forward_audio_visual_backend(self, a, v):  # -> (B*T, D) flattened frames
        return torch.tanh(self.back(torch.cat([a, v], -1))).reshape(-1, a.shape[-1])


def chain_inputs(batch: int = 3, frames: int = 4, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": torch.rand(batch, frames, 3, generator=g).to(dtype),
        "visual": torch.rand(batch, frames, 5, generator=g).to(dtype),
    }


def reference_chain(model, fc, x):
    a = model.forward_audio_frontend(x["audio"])
    v = model.forward_visual_frontend(x["visual"])
    a, v = model.forward_cross_attention(a, v)
    return fc(model.forward_audio_visual_backend(a, v)).view(x["visual"].shape[0], -1, 2)


def frames_of(out, inputs):
    """(B*T, C) -> (B, T, C), B from the inputs."""
    return out.view(inputs["visual"].shape[0], -1, out.shape[-1])


CHAIN = [
    {"audio": "forward_audio_frontend", "visual": "forward_visual_frontend"},
    "forward_cross_attention",
    "forward_audio_visual_backend",
]


class Clip(nn.Module):
    """``model(wave, frames) -> (B, 3)`` clip logits (or their softmax with ``probs=True``)."""

    def __init__(self, probs: bool = False) -> None:
        super().__init__()
        self.a, self.v, self.probs = nn.Linear(8, 3), nn.Linear(6, 3), probs

    def forward(self, wave, frames):
        z = 3.0 * torch.tanh(self.a(wave)) + 3.0 * torch.tanh(self.v(frames))
        return z.softmax(-1) if self.probs else z


def clip_inputs(batch: int = 4, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": (torch.rand(batch, 8, generator=g) * 2 - 1).to(dtype),
        "visual": torch.rand(batch, 6, generator=g).to(dtype),
    }


CLIP_BUDGETS = {
    "audio": avrobust.Linf(0.05, bounds=(-1, 1)),
    "visual": avrobust.Linf(0.05, bounds=(0, 1)),
}


# ------------------------------------------------------------------------- 1: forward=


def test_model_without_forward_is_refused_at_wrap_naming_forward():
    """A model with no ``forward`` (PyTorch's placeholder) and no ``forward=`` is refused when
    wrapped, with a message naming ``forward=`` and listing the model's ``forward_*`` methods,
    instead of PyTorch's NotImplementedError at the first call."""
    message = assert_raises_naming(TypeError, "forward=", avrobust.wrap, NoForward())
    assert "forward_audio_frontend" in message


def test_forward_callable_receives_the_model_and_the_inputs():
    """``forward=callable`` is called as ``forward(model, **inputs)``; its output goes through
    the selectors as a forward's would."""
    model, fc = NoForward(), nn.Linear(4, 2)

    def run(m, audio, visual):
        a, v = m.forward_cross_attention(
            m.forward_audio_frontend(audio), m.forward_visual_frontend(visual)
        )
        return m.forward_audio_visual_backend(a, v)

    wrapped = avrobust.wrap(model, ["audio", "visual"], forward=run, logits=[fc, frames_of])
    x = chain_inputs()
    assert torch.equal(wrapped(**x).logits, reference_chain(model, fc, x))


def test_forward_method_chain_equals_the_hand_written_adapter():
    """A chain (per-modality dict step, then methods taking the previous results, a tuple
    unpacked as positional arguments) gives exactly the official call sequence's logits, for two
    clip lengths (T comes from the inputs, not a closure)."""
    model, fc = NoForward(), nn.Linear(4, 2)
    wrapped = avrobust.wrap(model, ["audio", "visual"], forward=[*CHAIN, fc], logits=frames_of)
    for frames in (4, 7):
        x = chain_inputs(frames=frames)
        out = wrapped(**x).logits
        assert out.shape == (3, frames, 2)
        assert torch.equal(out, reference_chain(model, fc, x))


def test_forward_chain_modules_are_registered_and_follow_eval_and_to():
    """An ``nn.Module`` step of the chain is a submodule of the wrapper: ``eval()`` and ``.to()``
    reach it (a dropout in it is off in eval mode, its weights become float64)."""
    fc = nn.Sequential(nn.Dropout(0.9), nn.Linear(4, 2))
    wrapped = avrobust.wrap(NoForward(), ["audio", "visual"], forward=[*CHAIN, fc])
    assert any(m is fc for m in wrapped.modules())
    wrapped.eval()
    assert not fc.training
    wrapped.to(torch.float64)
    assert fc[1].weight.dtype == torch.float64


def test_forward_chain_attack_jointly_and_per_modality_keeps_budgets_and_model():
    """The wrapped chain model is attacked jointly and per modality within budget and bounds, and
    the model (incl. the chain's head module) is unchanged."""
    model, fc = NoForward(), nn.Linear(4, 2)
    wrapped = avrobust.wrap(model, ["audio", "visual"], forward=[*CHAIN, fc], logits=frames_of)
    x, y = chain_inputs(), torch.tensor([0, 1, 0])
    budgets = {k: avrobust.Linf(0.05, bounds=(0, 1)) for k in x}
    before = snapshot(wrapped)
    for attacked in (["audio", "visual"], ["audio"], ["visual"]):
        b = {k: budgets[k] for k in attacked}
        r = avrobust.MultimodalAttack(wrapped, b, rule="bim", steps=3)(x, y)
        for k in x:
            delta = (r.inputs[k] - x[k]).abs().max()
            assert (0 < delta <= 0.05 + 1e-6) if k in attacked else delta == 0
    assert_same_model(before, wrapped)


# ------------------------------------------------------------------------- 2: transforms=


class Square(nn.Module):
    """A differentiable front-end with a dropout (to see eval mode) and a buffer (to see .to)."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x):
        return self.drop(x * self.scale) ** 2


def test_transforms_run_inside_the_wrapper_and_are_registered():
    """``transforms={"audio": m}`` feeds ``m(audio)`` to the model, is a submodule (eval and
    ``.to`` follow), and gradients reach the raw input."""
    model, t = Clip().double(), Square()
    wrapped = avrobust.wrap(model, ["audio", "visual"], transforms={"audio": t}).eval()
    x = clip_inputs()
    assert not t.training and any(m is t for m in wrapped.modules())
    assert torch.equal(wrapped(**x).logits, model(4 * x["audio"] ** 2, x["visual"]))
    wrapped.to(torch.float32)
    assert t.scale.dtype == torch.float32
    wrapped.to(torch.float64)
    a = x["audio"].clone().requires_grad_(True)
    wrapped(audio=a, visual=x["visual"]).logits.sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_attack_through_a_transform_perturbs_the_raw_input():
    """The attack perturbs the raw input (within budget and bounds), not the transformed one."""
    model = Clip().double()
    wrapped = avrobust.wrap(model, ["audio", "visual"], transforms={"audio": Square()})
    x, y = clip_inputs(), torch.tensor([0, 1, 2, 0])
    r = avrobust.MultimodalAttack(wrapped, {"audio": CLIP_BUDGETS["audio"]}, rule="bim", steps=3)(
        x, y
    )
    assert r.inputs["audio"].shape == x["audio"].shape
    assert 0 < float((r.inputs["audio"] - x["audio"]).abs().max()) <= 0.05 + 1e-12
    assert float(r.inputs["audio"].abs().max()) <= 1.0


# ------------------------------------------------------------------------- 3: output=


def test_declared_probabilities_give_the_same_attack_as_the_logits_model():
    """``output="probabilities"`` (softmax outputs, turned into clamped log-probabilities) gives
    the same adversarial inputs and objective (float64, BIM and PGD) as the equivalent logits
    model; declared ``"log_probabilities"`` (log_softmax outputs) too."""
    torch.manual_seed(0)
    logits_model = Clip().double()
    probs_model = Clip(probs=True).double()
    probs_model.load_state_dict(logits_model.state_dict())
    x, y = clip_inputs(batch=6), torch.tensor([0, 1, 2, 0, 1, 2])
    ref = avrobust.wrap(logits_model, ["audio", "visual"])
    declared = avrobust.wrap(probs_model, ["audio", "visual"], output="probabilities")
    for rule in ("bim", "pgd"):
        attack = dict(budgets=CLIP_BUDGETS, rule=rule, steps=5, seed=1)
        r_ref = avrobust.MultimodalAttack(ref, **attack)(x, y)
        r_p = avrobust.MultimodalAttack(declared, **attack)(x, y)
        for k in x:
            torch.testing.assert_close(r_p.inputs[k], r_ref.inputs[k], rtol=0, atol=1e-12)
        torch.testing.assert_close(r_p.loss, r_ref.loss)
        assert torch.equal(r_p.success, r_ref.success)
    log_model = avrobust.wrap(
        nn.Sequential(), output="log_probabilities", forward=lambda m, z: F.log_softmax(z, -1)
    )
    z = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(log_model(z=z).logits, F.log_softmax(z, -1))


def test_undeclared_probabilities_warn_and_declared_ones_do_not():
    """Rows of what is called logits that are all in [0, 1] and sum to 1 warn (naming
    ``output="probabilities"``), once per wrapper; declared probabilities and ordinary logits do
    not warn."""
    probs_model = Clip(probs=True).double()
    x = clip_inputs()
    undeclared = avrobust.wrap(probs_model, ["audio", "visual"])
    with pytest.warns(UserWarning, match=r"look like probabilities.*output=\"probabilities\""):
        undeclared(**x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        undeclared(**x)  # once per wrapper
        avrobust.wrap(probs_model, ["audio", "visual"], output="probabilities")(**x)
        avrobust.wrap(Clip().double(), ["audio", "visual"])(**x)


def test_probabilities_use_a_clamped_log_with_a_named_guard():
    """Probabilities of exactly 0 become ``log(guard)`` (finite), not -inf; the default guard is
    the dtype's smallest normal number, and ``guard=`` sets it."""
    p = torch.tensor([[1.0, 0.0], [0.25, 0.75]], dtype=torch.float64)
    model = nn.Identity()
    out = avrobust.wrap(model, ["p"], output="probabilities")(p=p).logits
    assert out[0, 1] == torch.log(torch.tensor(torch.finfo(torch.float64).tiny, dtype=out.dtype))
    torch.testing.assert_close(out[1], torch.log(p[1]))
    out = avrobust.wrap(model, ["p"], output="probabilities", guard=1e-6)(p=p).logits
    torch.testing.assert_close(out[0, 1], torch.log(torch.tensor(1e-6, dtype=out.dtype)))


def test_declared_probabilities_outside_0_1_are_an_error():
    """``output="probabilities"`` with values outside [0, 1] (logits declared as probabilities)
    raises, naming ``output``."""
    wrapped = avrobust.wrap(nn.Identity(), ["p"], output="probabilities")
    assert_raises_naming(ValueError, "output", wrapped, p=torch.tensor([[2.0, -1.0]]))


# ------------------------------------------------------------------------- 4: selectors


def test_selectors_that_see_the_inputs_positional_and_keyword():
    """A selector with two positional parameters gets ``(output, inputs)``; one with an
    ``inputs`` keyword gets it by keyword; a one-parameter selector gets the output only. The
    frame count comes from the inputs, so another clip length works."""
    model, fc = NoForward(), nn.Linear(4, 2)
    forward = [*CHAIN, fc]

    def by_keyword(out, *, inputs):
        return out.view(inputs["audio"].shape[0], -1, 2)

    for selector in (
        lambda out, inputs: out.view(inputs["visual"].shape[0], -1, 2),
        by_keyword,
    ):
        wrapped = avrobust.wrap(model, ["audio", "visual"], forward=forward, logits=selector)
        for frames in (2, 5):
            x = chain_inputs(frames=frames)
            assert torch.equal(wrapped(**x).logits, reference_chain(model, fc, x))


def test_selector_pipeline_applies_each_selector_in_turn():
    """A list of selectors is a pipeline: ``[0, module, fn]`` picks element 0, applies the
    module, then the function."""
    model, fc = NoForward(), nn.Linear(4, 2)

    def run(m, audio, visual):
        a, v = m.forward_cross_attention(
            m.forward_audio_frontend(audio), m.forward_visual_frontend(visual)
        )
        return (m.forward_audio_visual_backend(a, v), "extra")

    wrapped = avrobust.wrap(model, ["audio", "visual"], forward=run, logits=[0, fc, frames_of])
    x = chain_inputs()
    assert torch.equal(wrapped(**x).logits, reference_chain(model, fc, x))


def test_labels_error_for_flattened_clip_logits_prints_both_alternatives():
    """Frame labels ``(B, T)`` against flattened ``(B*T, C)`` logits: the message names clip
    labels ``(20,)`` for those logits and frame logits ``(B, T, C)`` as the other alternative,
    rather than ``(20,)`` twice."""
    message = assert_raises_naming(
        ValueError, "labels", check_labels, torch.zeros(4, 5, dtype=torch.long), torch.zeros(20, 2)
    )
    assert message.count("(20,)") == 1 and "(B, T, C)" in message and "(4, 5)" in message


# ------------------------------------------------------------------------- 5: module heads


class Body(nn.Module):
    """``model(wave, frames) -> (B, 6)`` features; the classifier lives outside."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.v = nn.Linear(8, 3), nn.Linear(6, 3)

    def forward(self, wave, frames):
        return torch.tanh(torch.cat([self.a(wave), self.v(frames)], -1))


def test_module_heads_are_registered_and_follow_eval_and_to():
    """``logits=`` and ``heads=`` given as ``nn.Module`` are submodules of the wrapper (in a
    pipeline too): ``eval()`` turns their dropout off and ``.to()`` casts them."""
    head = nn.Sequential(nn.Dropout(0.5), nn.Linear(6, 2))
    aux = nn.Sequential(nn.Dropout(0.5), nn.Linear(3, 2))
    wrapped = avrobust.wrap(
        Body(), ["audio", "visual"], logits=head, heads={"audio": [lambda o: o[:, :3], aux]}
    )
    assert {id(head), id(aux)} <= {id(m) for m in wrapped.modules()}
    wrapped.eval()
    assert not head.training and not aux.training
    x = clip_inputs(dtype=torch.float32)
    out1, out2 = wrapped(**x), wrapped(**x)
    assert torch.equal(out1.logits, out2.logits)
    assert torch.equal(out1.heads["audio"], out2.heads["audio"])
    wrapped.to(torch.float64)
    assert head[1].weight.dtype == aux[1].weight.dtype == torch.float64


def test_closure_trap_lambda_head_keeps_dropout_and_module_head_fixes_it():
    """The closure trap: a lambda over a head module outside the wrapper escapes the attack's
    eval mode, so two identical deterministic BIM calls differ; the same head passed as a module
    is registered, so the calls agree and the head's training flag is restored afterwards."""
    torch.manual_seed(0)
    body, head = Body(), nn.Sequential(nn.Dropout(0.5), nn.Linear(6, 2))
    x, y = clip_inputs(dtype=torch.float32), torch.tensor([0, 1, 1, 0])
    budgets = {k: avrobust.Linf(0.1, bounds=b.bounds) for k, b in CLIP_BUDGETS.items()}

    def twice(wrapped):
        attack = avrobust.MultimodalAttack(wrapped, budgets, rule="bim", steps=4)
        first, second = attack(x, y), attack(x, y)
        same_inputs = all(torch.equal(first.inputs[k], second.inputs[k]) for k in x)
        return same_inputs and torch.equal(first.logits, second.logits)

    assert not twice(avrobust.wrap(body, ["audio", "visual"], logits=lambda o: head(o)))
    assert twice(avrobust.wrap(body, ["audio", "visual"], logits=head))
    assert head.training


# ------------------------------------------------------------------------- 6: uint8 frames


class Frames(nn.Module):
    """``model(frames) -> (B, 2)``; refuses anything but float frames."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(12, 2)

    def forward(self, audio, frames):
        assert frames.is_floating_point()
        a = audio.mean(1)
        return self.lin(frames.flatten(1) / 255.0) + torch.stack([a, -a], -1)


class ToFloat(nn.Module):
    def forward(self, x):
        return x.float()


def test_attacked_uint8_input_is_refused_with_the_fix_in_the_message():
    """An attacked ``uint8`` modality is refused with a TypeError naming ``inputs['visual']``
    that says to pass float frames in 0-255 (``.float()``); an unattacked ``uint8`` modality is
    passed through, to a transform inside the wrapper that converts it."""
    wrapped = avrobust.wrap(Frames(), ["audio", "visual"], transforms={"visual": ToFloat()})
    g = torch.Generator().manual_seed(0)
    x = {
        "audio": torch.rand(2, 5, generator=g) * 2 - 1,
        "visual": torch.randint(0, 256, (2, 3, 2, 2), generator=g, dtype=torch.uint8),
    }
    y = torch.tensor([0, 1])
    budgets = {"visual": avrobust.Linf(4.0, bounds=(0, 255))}
    message = assert_raises_naming(
        TypeError, "inputs['visual']", avrobust.MultimodalAttack(wrapped, budgets), x, y
    )
    assert ".float()" in message and "0-255" in message
    audio_only = {"audio": avrobust.Linf(0.05, bounds=(-1, 1))}
    r = avrobust.MultimodalAttack(wrapped, audio_only, rule="bim", steps=2)(x, y)
    assert r.inputs["visual"].dtype == torch.uint8 and torch.equal(r.inputs["visual"], x["visual"])
    floats = {**x, "visual": x["visual"].float()}
    r = avrobust.MultimodalAttack(wrapped, budgets, rule="bim", steps=2)(floats, y)
    assert 0 < float((r.inputs["visual"] - floats["visual"]).abs().max()) <= 4.0


# ------------------------------------------------------------------------- bad inputs

BAD_INPUTS = {
    "forward-int": (TypeError, "forward", lambda: avrobust.wrap(Clip(), forward=3)),
    "forward-empty-chain": (ValueError, "forward", lambda: avrobust.wrap(Clip(), forward=[])),
    "forward-unknown-method": (
        ValueError,
        "forward[1]",
        lambda: avrobust.wrap(NoForward(), forward=["forward_audio_frontend", "forward_cros"]),
    ),
    "forward-attribute-not-callable": (
        TypeError,
        "forward[0]",
        lambda: avrobust.wrap(NoForward(), forward=["training"]),
    ),
    "forward-dict-step-bad-value": (
        TypeError,
        "forward[0]['audio']",
        lambda: avrobust.wrap(NoForward(), forward=[{"audio": 3}]),
    ),
    "forward-dict-step-unknown-modality": (
        ValueError,
        "forward[0]",
        lambda: avrobust.wrap(NoForward(), ["audio", "visual"], forward=[{"vidoe": "forward"}]),
    ),
    "transforms-not-mapping": (
        TypeError,
        "transforms",
        lambda: avrobust.wrap(Clip(), transforms=[Square()]),
    ),
    "transforms-not-callable": (
        TypeError,
        "transforms['audio']",
        lambda: avrobust.wrap(Clip(), transforms={"audio": 3}),
    ),
    "transforms-unknown-modality": (
        ValueError,
        "transforms",
        lambda: avrobust.wrap(Clip(), ["audio", "visual"], transforms={"video": Square()}),
    ),
    "output-unknown": (ValueError, "output", lambda: avrobust.wrap(Clip(), output="softmax")),
    "guard-negative": (
        ValueError,
        "guard",
        lambda: avrobust.wrap(Clip(), output="probabilities", guard=-1.0),
    ),
    "guard-without-probabilities": (
        ValueError,
        "guard",
        lambda: avrobust.wrap(Clip(), guard=1e-6),
    ),
    "logits-empty-pipeline": (ValueError, "logits", lambda: avrobust.wrap(Clip(), logits=[])),
    "logits-pipeline-bad-element": (
        TypeError,
        "logits[1]",
        lambda: avrobust.wrap(Clip(), logits=[0, True]),
    ),
    "log-probabilities-above-zero": (
        ValueError,
        "output",
        lambda: avrobust.wrap(nn.Identity(), ["p"], output="log_probabilities")(
            p=torch.tensor([[0.5, -1.0]])
        ),
    ),
}


@pytest.mark.parametrize(("exc_type", "argument", "call"), BAD_INPUTS.values(), ids=BAD_INPUTS)
def test_bad_inputs_name_the_argument(exc_type, argument, call):
    """Each bad input raises ``exc_type`` with a message that names ``argument``."""
    assert_raises_naming(exc_type, argument, call)
