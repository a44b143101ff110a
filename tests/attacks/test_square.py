"""The Square attack: score-based, no gradients, per-modality L-inf budgets."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import assert_raises_naming, assert_same_model, make_inputs, make_model, snapshot
from torch import nn

import avrobust
from avrobust import AVOutput
from avrobust.attacks.square import p_schedule

BUDGETS = {
    "audio": avrobust.Linf(0.02, bounds=(-1.0, 1.0)),
    "visual": avrobust.Linf(8.0, bounds=(0.0, 255.0)),
}


def margin(out: AVOutput, labels: torch.Tensor) -> torch.Tensor:
    """CW margin (best other logit minus the true one), clip logits: written out independently."""
    true = out.logits.gather(1, labels[:, None]).squeeze(1)
    other = out.logits.scatter(1, labels[:, None], -float("inf")).amax(dim=1)
    return other - true


def predicted(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad(), avrobust.preserve_model_state(model):
        out = model(**inputs)
        return (out if isinstance(out, torch.Tensor) else out.logits).argmax(-1)


def test_square_breaks_a_simple_model_and_keeps_every_guarantee():
    """Square breaks most correctly classified clips of TinyAV, each perturbation stays inside its
    per-sample budget and the bounds, the inputs and the model are untouched, and the loss never
    falls below the clean one."""
    model, inputs = make_model(), make_inputs(batch=6)
    labels = predicted(model, inputs)
    eps_audio = torch.linspace(0.04, 0.1, 6)
    budgets = {
        "audio": avrobust.Linf(eps_audio, bounds=(-1.0, 1.0)),
        "visual": avrobust.Linf(32.0, bounds=(0.0, 255.0)),
    }
    before, originals = snapshot(model), {n: x.clone() for n, x in inputs.items()}
    attack = avrobust.SquareAttack(model, budgets, queries=150, objective=margin, seed=0)
    result = attack(inputs, labels)
    assert_same_model(before, model)
    for n, x in inputs.items():
        assert torch.equal(x, originals[n])
    assert result.success.float().mean() >= 0.5
    delta_a = (result.inputs["audio"] - inputs["audio"]).abs().amax(dim=1)
    assert (delta_a <= eps_audio).all()
    assert (result.inputs["visual"] - inputs["visual"]).abs().max() <= 32.0
    assert result.inputs["visual"].min() >= 0 and result.inputs["visual"].max() <= 255
    assert result.inputs["audio"].abs().max() <= 1.0
    assert all(torch.isfinite(x).all() for x in result.inputs.values())
    assert (result.loss >= result.clean_loss).all()
    assert ((result.loss > 0) == result.success).all()  # margin > 0 <=> broken
    torch.testing.assert_close(result.logits, model.eval()(**result.inputs).logits)


def test_square_is_deterministic_for_a_seed():
    """Two calls with the same seed give bit-identical results; another seed other inputs."""
    model, inputs = make_model(), make_inputs(batch=4)
    labels = predicted(model, inputs)

    def run(seed: int) -> avrobust.AttackResult:
        return avrobust.SquareAttack(model, BUDGETS, queries=30, objective=margin, seed=seed)(
            inputs, labels
        )

    a, b, c = run(3), run(3), run(4)
    for n in inputs:
        assert torch.equal(a.inputs[n], b.inputs[n])
    assert not all(torch.equal(a.inputs[n], c.inputs[n]) for n in inputs)


class NoGradModel(nn.Module):
    """TinyAV that fails whenever it is run with gradient recording on."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = make_model()

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> AVOutput:
        assert not torch.is_grad_enabled(), "Square ran the model with gradients enabled"
        return self.inner(audio=audio, visual=visual)


def test_square_never_computes_a_gradient():
    """The model is only ever run with gradient recording off (so nothing can call backward),
    even when the caller enables gradients and the inputs require them; no parameter gets .grad."""
    model, inputs = NoGradModel(), make_inputs(batch=3)
    labels = predicted(model.inner, inputs)
    inputs = {n: x.requires_grad_(True) for n, x in inputs.items()}
    with torch.enable_grad():
        result = avrobust.SquareAttack(model, BUDGETS, queries=20, objective=margin, seed=0)(
            inputs, labels
        )
    assert all(p.grad is None for p in model.parameters())
    assert all(x.grad is None for x in inputs.values())
    assert not result.inputs["visual"].requires_grad


class ConstantModel(nn.Module):
    """Logits that do not depend on the inputs: no candidate can ever raise the objective."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([1.0, 0.0]))

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(audio.shape[0], 2) + 0 * audio.mean()


def test_square_accepts_only_candidates_that_raise_the_objective():
    """With an objective no perturbation can raise, every candidate is refused: the clean
    inputs come back bit-identical, after the full query budget."""
    inputs = make_inputs(batch=3)
    result = avrobust.SquareAttack(ConstantModel(), BUDGETS, queries=15, objective=margin, seed=0)
    out = result(inputs, torch.zeros(3, dtype=torch.long))
    for n, x in inputs.items():
        assert torch.equal(out.inputs[n], x)
    assert torch.equal(result.queries_used, torch.full((3,), 15))


def test_square_stops_querying_broken_samples():
    """A sample misclassified at the clean input is never queried; a broken one stops early;
    the unattacked modality comes back bit-identical."""
    model, inputs = make_model(), make_inputs(batch=4)
    labels = predicted(model, inputs)
    labels[0] = 1 - labels[0]  # already wrong
    visual = avrobust.Linf(64.0, bounds=(0.0, 255.0))
    attack = avrobust.SquareAttack(model, {"visual": visual}, queries=200, objective=margin, seed=0)
    result = attack(inputs, labels)
    assert attack.queries_used[0] == 0
    assert torch.equal(result.inputs["audio"], inputs["audio"])
    assert torch.equal(result.inputs["visual"][0], inputs["visual"][0])
    broken = result.success.clone()
    broken[0] = False
    assert broken.any(), "nothing was broken: the test shows nothing"
    assert (attack.queries_used[broken] < 200).all()


def test_square_on_frame_logits_and_5d_video():
    """Frame-level logits (B, T, C) with video (B, T, C, H, W) and audio (B, 1, S): shapes hold,
    frame_success is (B, T), and the budget holds."""
    model = make_model(frame_level=True)
    inputs = make_inputs(batch=2)
    inputs = {"audio": inputs["audio"][:, None], "visual": inputs["visual"][:, :, None]}
    labels = torch.zeros(2, 4, dtype=torch.long)
    result = avrobust.SquareAttack(model, BUDGETS, queries=10, objective="inference", seed=0)(
        inputs, labels
    )
    assert result.frame_success is not None and result.frame_success.shape == (2, 4)
    assert (result.inputs["visual"] - inputs["visual"]).abs().max() <= 8.0


def test_square_progress_bar(capsys):
    """progress=True draws a tqdm bar on stderr; the default draws nothing."""
    model, inputs = make_model(), make_inputs(batch=2)
    labels = predicted(model, inputs)
    avrobust.SquareAttack(model, BUDGETS, queries=5, objective=margin, seed=0)(inputs, labels)
    assert "square" not in capsys.readouterr().err
    avrobust.SquareAttack(model, BUDGETS, queries=5, objective=margin, seed=0, progress=True)(
        inputs, labels
    )
    assert "square" in capsys.readouterr().err


@pytest.mark.parametrize("n_queries", [100, 1000, 5000])
def test_p_schedule_equals_the_authors_schedule(n_queries):
    """The window fraction schedule equals torchattacks' Square.p_selection (the authors' code)."""
    torchattacks = pytest.importorskip("torchattacks")
    ref = torchattacks.Square(nn.Linear(2, 2), n_queries=n_queries, p_init=0.8)
    for it in range(0, n_queries, max(1, n_queries // 200)):
        assert p_schedule(0.8, it, n_queries) == ref.p_selection(it)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 6 * 6, 3),
        ).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_square_is_as_strong_as_torchattacks_square_on_one_input():
    """On a single-input image model, our robust accuracy is at most torchattacks' Square's
    (an independent implementation of the same paper; same eps, queries, p_init, margin loss)
    plus one sample, median over 3 seeds."""
    torchattacks = pytest.importorskip("torchattacks")
    model = SmallCNN().eval()
    x = torch.rand(16, 1, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = predicted(model, {"x": x})
    eps, n_queries = 0.2, 300
    ours, theirs = [], []
    for seed in range(3):
        attack = avrobust.SquareAttack(
            model, {"x": avrobust.Linf(eps, bounds=(0, 1))}, queries=n_queries,
            objective=margin, seed=seed,
        )  # fmt: skip
        ours.append(1 - attack({"x": x}, y).success.double().mean().item())
        ref = torchattacks.Square(model, eps=eps, n_queries=n_queries, p_init=0.8, seed=seed)
        adv = ref(x, y)
        theirs.append((predicted(model, {"x": adv}) == y).double().mean().item())
    assert sorted(theirs)[1] < 0.9, "torchattacks broke almost nothing: the test shows nothing"
    assert sorted(ours)[1] <= sorted(theirs)[1] + 1 / 16


def test_square_bad_arguments():
    """Every bad argument raises the right error naming the argument."""
    model = make_model()
    l2 = {"audio": avrobust.L2(0.1)}
    assert_raises_naming(TypeError, "budgets['audio']", avrobust.SquareAttack, model, l2)
    assert_raises_naming(ValueError, "queries", avrobust.SquareAttack, model, BUDGETS, queries=0)
    assert_raises_naming(TypeError, "queries", avrobust.SquareAttack, model, BUDGETS, queries=2.5)
    assert_raises_naming(ValueError, "p_init", avrobust.SquareAttack, model, BUDGETS, p_init=0)
    assert_raises_naming(ValueError, "p_init", avrobust.SquareAttack, model, BUDGETS, p_init=1.5)
    assert_raises_naming(ValueError, "seed", avrobust.SquareAttack, model, BUDGETS, seed=-1)
    assert_raises_naming(
        TypeError, "progress", avrobust.SquareAttack, model, BUDGETS, progress="yes"
    )
    assert_raises_naming(TypeError, "model", avrobust.SquareAttack, "model", BUDGETS)
    attack = avrobust.SquareAttack(model, BUDGETS, queries=2, objective=margin)
    inputs = make_inputs(batch=2)
    assert_raises_naming(ValueError, "labels", attack, inputs, torch.zeros(3, dtype=torch.long))
    outside = {**inputs, "visual": inputs["visual"] + 300}
    assert_raises_naming(ValueError, "inputs['visual']", attack, outside, torch.zeros(2).long())


def test_square_silent_on_a_plain_call():
    """A plain call warns about nothing."""
    model, inputs = make_model(), make_inputs(batch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        avrobust.SquareAttack(model, BUDGETS, queries=5, objective=margin, seed=0)(
            inputs, predicted(model, inputs)
        )
