"""Issue 12: the four recipes of docs/wrapping.md, run as written and attacked jointly and per
modality.

Each recipe is the page's own code (the preamble block, then the blocks of its section), so the
page cannot drift from what is tested. Every recipe leaves ``model`` (the third-party model),
``wrapped`` (its one ``wrap(...)`` call), ``inputs``, ``labels`` and ``budgets``; the checks:
each attacked modality moves, within its budget (per dimension for feature budgets) and bounds;
a modality not attacked is bit-identical; the wrapper and everything registered on it (the
model, its transforms and attached heads) is unchanged (``snapshot``/``assert_same_model``).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from helpers import assert_same_model, snapshot

import avrobust

PAGE = Path(__file__).resolve().parents[2] / "docs" / "wrapping.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _sections() -> tuple[list[str], dict[str, list[str]]]:
    """The python blocks before the first ``## `` heading, and per ``## Recipe X`` heading."""
    parts = re.split(r"^## ", PAGE.read_text(), flags=re.M)
    preamble = BLOCK.findall(parts[0])
    recipes = {
        part.split(":", 1)[0].removeprefix("Recipe ").strip(): BLOCK.findall(part)
        for part in parts[1:]
        if part.startswith("Recipe ")
    }
    return preamble, recipes


def run_recipe(letter: str) -> dict[str, object]:
    preamble, recipes = _sections()
    namespace: dict[str, object] = {"__name__": f"recipe_{letter}"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for i, code in enumerate(preamble + recipes[letter]):
            exec(compile(code, f"wrapping.md[recipe {letter}, block {i}]", "exec"), namespace)
    return namespace


def _within(delta: torch.Tensor, budget: avrobust.Budget) -> bool:
    eps = budget.eps if isinstance(budget.eps, torch.Tensor) else torch.tensor(budget.eps)
    return bool((delta.abs() <= eps.to(delta.dtype) * (1 + 1e-5) + 1e-6).all())


def test_the_page_has_the_four_recipes():
    """The page has recipes A-D, each with its model, its wrap call and an attack."""
    _, recipes = _sections()
    assert sorted(recipes) == ["A", "B", "C", "D"]
    for letter, blocks in recipes.items():
        code = "\n".join(blocks)
        assert "avrobust.wrap(" in code and "MultimodalAttack(" in code, letter


@pytest.mark.parametrize("letter", ["A", "B", "C", "D"])
def test_recipe_attacks_jointly_and_per_modality_within_budget(letter):
    """The recipe's wrapped model is attacked jointly, audio only and visual only (BIM, no
    warning): each attacked modality moves within budget and bounds, the others stay
    bit-identical, and the wrapper and its parts are unchanged."""
    ns = run_recipe(letter)
    wrapped, inputs, labels = ns["wrapped"], ns["inputs"], ns["labels"]
    budgets: dict[str, avrobust.Budget] = ns["budgets"]  # type: ignore[assignment]
    assert isinstance(wrapped, avrobust.WrappedModel) and wrapped.model is ns["model"]
    before = snapshot(wrapped)
    for attacked in (["audio", "visual"], ["audio"], ["visual"]):
        chosen = {m: budgets[m] for m in attacked}
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            result = avrobust.MultimodalAttack(wrapped, chosen, rule="bim", steps=3)(inputs, labels)
        for m, x in inputs.items():  # type: ignore[attr-defined]
            adv = result.inputs[m]
            assert adv.shape == x.shape and adv.dtype == x.dtype
            if m not in chosen:
                assert torch.equal(adv, x), (letter, attacked, m)
                continue
            delta = adv - x
            assert float(delta.abs().max()) > 0, (letter, attacked, m)
            assert _within(delta, chosen[m]), (letter, attacked, m)
            if chosen[m].bounds is not None:
                low, high = chosen[m].bounds
                assert float(adv.min()) >= low and float(adv.max()) <= high
    assert_same_model(before, wrapped)


def test_recipe_a_needs_no_forward_and_follows_clip_length():
    """Recipe A: the model class has no forward (the chain replaces it); the logits are frame
    logits (B, T, 2) for two clip lengths; the classifier of the loss module is registered."""
    ns = run_recipe("A")
    model, wrapped, loss_av = ns["model"], ns["wrapped"], ns["loss_av"]
    assert type(model).forward is torch.nn.Module.forward  # type: ignore[attr-defined]
    assert any(m is loss_av.FC for m in wrapped.modules())  # type: ignore[attr-defined]
    for frames in (5, 7):
        out = wrapped(audio=torch.randn(3, 4 * frames, 13), visual=torch.rand(3, frames, 32, 32))  # type: ignore[operator]
        assert out.logits.shape == (3, frames, 2)


def test_recipe_b_perturbs_the_raw_waveform_through_the_registered_mfcc():
    """Recipe B: the attacked audio is the raw waveform (B, S) in [-1, 1] (not the MFCC); the
    MFCC transform is a registered submodule, and the wrapper's logits equal the model's own
    call on the MFCC of the waveform followed by the loss module's classifier."""
    ns = run_recipe("B")
    wrapped, model, loss_av, inputs = ns["wrapped"], ns["model"], ns["loss_av"], ns["inputs"]
    result = ns["result"]
    assert result.inputs["audio"].shape == inputs["audio"].shape  # type: ignore[attr-defined,index]
    assert result.inputs["audio"].ndim == 2  # type: ignore[attr-defined,index]
    mfcc = wrapped.transforms["audio"]  # type: ignore[attr-defined]
    assert isinstance(mfcc, avrobust.transforms.ASDMFCC)
    wrapped.eval()  # type: ignore[attr-defined]
    with torch.no_grad():
        features = mfcc(inputs["audio"])  # type: ignore[index]
        assert features.shape == (2, 20, 13)
        ref = loss_av.FC(model(features, inputs["visual"])[0]).view(2, 5, 2)  # type: ignore[attr-defined,operator,index]
        torch.testing.assert_close(wrapped(**inputs).logits, ref)  # type: ignore[operator,arg-type]


def test_recipe_c_scores_the_distance_and_captures_both_embeddings():
    """Recipe C: the logits are ``[d - 1, 1 - d]`` for the pairwise embedding distance ``d``,
    and the captured embeddings are the two encoders' outputs."""
    ns = run_recipe("C")
    wrapped, model, inputs = ns["wrapped"], ns["model"], ns["inputs"]
    out = wrapped(**inputs)  # type: ignore[operator,arg-type]
    z_a = model.forward_aud(inputs["audio"])  # type: ignore[attr-defined,index]
    z_v = model.forward_lip(inputs["visual"])  # type: ignore[attr-defined,index]
    d = (z_a - z_v + 1e-6).norm(dim=1)  # torch's pairwise_distance adds eps=1e-6
    torch.testing.assert_close(out.logits, torch.stack([d - 1.0, 1.0 - d], -1))
    torch.testing.assert_close(out.embeddings["audio"], z_a)
    torch.testing.assert_close(out.embeddings["visual"], z_v)


def test_recipe_d_declared_probabilities_and_per_dimension_budgets():
    """Recipe D: the logits are the log of the model's probabilities (the objective is the
    model's NLL); the same model wrapped without ``output=`` warns; the budget's radius is 0.1
    standard deviation per feature dimension (checked against the clean set)."""
    ns = run_recipe("D")
    wrapped, model, inputs, clean = ns["wrapped"], ns["model"], ns["inputs"], ns["clean"]
    probabilities = model(inputs["audio"], inputs["visual"])  # type: ignore[operator,index]
    torch.testing.assert_close(wrapped(**inputs).logits, probabilities.log())  # type: ignore[operator,arg-type]
    with pytest.warns(UserWarning, match="look like probabilities"):
        avrobust.wrap(model, ["audio", "visual"])(**inputs)  # type: ignore[arg-type]
    for m, budget in ns["budgets"].items():  # type: ignore[attr-defined]
        std = clean[m].reshape(-1, clean[m].shape[-1]).std(0, correction=0)  # type: ignore[index]
        torch.testing.assert_close(budget.eps.flatten(), 0.1 * std)
