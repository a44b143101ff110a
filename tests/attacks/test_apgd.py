"""APGD (Croce & Hein 2020, Algorithm 1) as a step rule, against torchattacks 3.5.1's APGD.

Everything runs in float64 (see test_attack_parity.py: sign steps then hold on any CPU). The
model is small and rugged (a sine feature), so that step-size control matters: PGD with the same
budget and steps is weaker there.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from helpers import assert_raises_naming, budgets_for, make_inputs, make_model
from torch import nn

import avrobust
import avrobust.attacks.apgd as apgd_module
from avrobust.attacks.apgd import apgd_checkpoints

torchattacks = pytest.importorskip("torchattacks")


class Rugged(nn.Module):
    """Images (B, 3, 4, 4) in [0, 1] -> 10 logits, through ReLU plus a sine of the features."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b = nn.Linear(48, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x.flatten(1))
        return self.b(torch.relu(h) + 0.3 * torch.sin(30 * h))


def rugged_setup(batch: int = 64) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = Rugged().double().eval()
    x = torch.rand(batch, 3, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)  # every sample correct at the clean input
    return model, x, y


def ours(model, x, y, eps, steps, objective, seed, rule="apgd", norm=avrobust.Linf):
    attack = avrobust.MultimodalAttack(
        avrobust.wrap(model, ["image"]),
        {"image": norm(eps, bounds=(0, 1))},
        rule=rule,
        steps=steps,
        objective=objective,
        seed=seed,
    )
    return attack({"image": x}, y)


def test_checkpoints_follow_the_paper_recurrence():
    """w_j = ceil(p_j N) with p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
    0.06), computed here in floats with a rounding guard, independently of the library."""
    import math

    for steps in (5, 10, 37, 100, 250):
        p = [0.0, 0.22]
        while p[-1] < 1:
            p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
        expected = sorted({math.ceil(round(q * steps, 9)) for q in p[1:]} - {0})
        assert apgd_checkpoints(steps) == [w for w in expected if w < steps]


def torchattacks_schedule(steps: int) -> list[int]:
    """The integer schedule of the authors' code (and torchattacks): a first check after
    int(0.22 N) iterations, then periods shrinking by int(0.03 N) down to int(0.06 N)."""
    k, shrink, least = (max(int(f * steps), 1) for f in (0.22, 0.03, 0.06))
    out, t = [], k
    while t < steps:
        out.append(t)
        k = max(k - shrink, least)
        t += k
    return out


@pytest.mark.parametrize("steps", [10, 25])
@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_same_start_and_schedule_give_torchattacks_robust_samples_exactly(loss, steps, monkeypatch):
    """With torchattacks' random start (global RNG seeded, t / max|t| scaled to eps) and its
    integer checkpoint schedule patched in, APGD leaves exactly the same samples robust as
    torchattacks.APGD: the step, momentum, conditions and restarts from the best point are the
    same algorithm. (Unpatched, only the start's random stream and the schedule's rounding for
    small N differ.)"""
    model, x, y = rugged_setup()
    seed = 3

    def start(self, x0, eps, generator):
        torch.manual_seed(seed)
        t = 2 * torch.rand(x0.shape).to(x0.dtype) - 1  # float32 draws, as torchattacks makes
        return (x0 + eps * t / t.flatten(1).abs().amax(1).view(-1, 1, 1, 1)).clamp(0, 1)

    monkeypatch.setattr(avrobust.Linf, "random_start", start)
    monkeypatch.setattr(apgd_module, "apgd_checkpoints", torchattacks_schedule)
    ref = torchattacks.APGD(model, eps=0.01, steps=steps, n_restarts=1, seed=seed, loss=loss)
    robust_ref, _ = ref.perturb(x.clone(), y)
    result = ours(model, x, y, 0.01, steps, "inference" if loss == "ce" else "dlr", seed)
    assert 0 < int(robust_ref.sum()) < len(y)  # neither trivial nor hopeless
    assert torch.equal(~result.success, robust_ref)


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_at_least_as_strong_as_torchattacks_median_over_five_seeds(loss):
    """Same budget, steps (10) and restarts (1): our robust accuracy is at most torchattacks',
    median over seeds 0-4 of each; and no higher than PGD's with the same loss and steps. On one
    configuration the two medians can differ by a sample either way (different random streams,
    see the exact test above); benchmarks/apgd_vs_torchattacks.py compares many."""
    model, x, y = rugged_setup()
    objective = "inference" if loss == "ce" else "dlr"
    theirs, mine = [], []
    for seed in range(5):
        adv = torchattacks.APGD(model, eps=0.007, steps=10, seed=seed, loss=loss)(x, y)
        with torch.no_grad():
            theirs.append(float((model(adv).argmax(1) == y).double().mean()))
        mine.append(
            1 - float(ours(model, x, y, 0.007, 10, objective, seed).success.double().mean())
        )
    pgd = 1 - float(ours(model, x, y, 0.007, 10, objective, 0, rule="pgd").success.double().mean())
    assert 0 < statistics.median(theirs) < 1
    assert statistics.median(mine) <= statistics.median(theirs)
    assert statistics.median(mine) <= pgd


def test_l2_apgd_stays_in_the_ball_and_matches_torchattacks_strength():
    """L2 comes from the budgets' L2 step and projection: every result inside the ball and
    bounds, and robust accuracy at most torchattacks' L2 APGD's (median over 3 seeds)."""
    model, x, y = rugged_setup()
    theirs, mine = [], []
    for seed in range(3):
        adv = torchattacks.APGD(model, norm="L2", eps=0.05, steps=10, seed=seed)(x, y)
        with torch.no_grad():
            theirs.append(float((model(adv).argmax(1) == y).double().mean()))
        result = ours(model, x, y, 0.05, 10, "inference", seed, norm=avrobust.L2)
        delta = (result.inputs["image"] - x).flatten(1).norm(dim=1)
        assert bool((delta <= 0.05).all())
        assert 0 <= float(result.inputs["image"].min()) and float(result.inputs["image"].max()) <= 1
        mine.append(1 - float(result.success.double().mean()))
    assert 0 < statistics.median(theirs) < 1
    assert statistics.median(mine) <= statistics.median(theirs)


def scripted_step_sizes(losses: list[list[float]], steps: int) -> list[list[float]]:
    """Drive APGD.update with a scripted objective (rows: steps, columns: samples) on a 1-D
    box of radius 1; returns the step size of each sample after each step."""
    n = len(losses[0])
    budget = avrobust.Linf(1.0)
    eps = torch.ones(n, 1, dtype=torch.float64)
    run = avrobust.attacks.StepContext(
        budgets={"x": budget},
        eps={"x": eps},
        alpha={"x": eps},
        project={"x": budget.ball(torch.zeros(n, 1, dtype=torch.float64), eps)},
        steps=steps,
    )
    rule, x, sizes = avrobust.APGD(), {"x": torch.zeros(n, 1, dtype=torch.float64)}, []
    for t in range(steps):
        run.step = t
        loss = torch.tensor(losses[t], dtype=torch.float64)
        x = rule.update(x, {"x": torch.ones(n, 1, dtype=torch.float64)}, loss, run)
        sizes.append(run.memory["eta"]["x"].flatten().tolist())
    return sizes


def test_checkpoint_conditions_on_a_scripted_objective():
    """Checkpoints for 20 steps: 5, 9, 12, 14, 16, 18, 19. Sample 0 rises every step: never
    halved. Sample 1 never rises: Condition 1 halves it at every checkpoint. Sample 2 starts at
    its best (100) and then rises every step below it: Condition 1 never holds, Condition 2
    (no halving at the last checkpoint, best not improved) halves it at every other checkpoint,
    from the first on (the paper's reading: eta and f_max compared with the start)."""
    steps = 20
    assert apgd_checkpoints(steps) == [5, 9, 12, 14, 16, 18, 19]
    losses = [[float(t), 0.0, 100.0 if t == 0 else float(t)] for t in range(steps)]
    sizes = scripted_step_sizes(losses, steps)
    halvings = [[round(-torch.log2(torch.tensor(s / 2)).item()) for s in row] for row in sizes]
    assert [row[0] for row in halvings] == [0] * steps
    checkpoints_so_far = [sum(w <= t for w in apgd_checkpoints(steps)) for t in range(steps)]
    assert [row[1] for row in halvings] == checkpoints_so_far
    # sample 2 halves at 5, 12, 16, 19 (every other checkpoint)
    expected = [sum(w <= t for w in (5, 12, 16, 19)) for t in range(steps)]
    assert [row[2] for row in halvings] == expected


class Recording(avrobust.APGD):
    """APGD that keeps each run's memory, to look at the step sizes afterwards."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.memories: list[dict] = []

    def update(self, x, grads, loss, run):
        if run.step == 0:
            self.memories.append(run.memory)
        return super().update(x, grads, loss, run)


def test_step_sizes_start_at_twice_eps_and_halve_together_across_modalities():
    """Each modality's step starts at 2 eps_m; the checkpoint conditions are shared, so per
    sample every modality's step size is halved the same number of times."""
    model = make_model(num_classes=4).double()
    budgets = budgets_for("linf")
    rule = Recording(restarts=2)
    attack = avrobust.MultimodalAttack(
        model, budgets, rule=rule, steps=12, objective="margin", seed=0
    )
    attack(make_inputs(batch=5, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0]))
    (memory,) = rule.memories  # both restarts in one batched run
    audio = memory["eta"]["audio"].flatten() / (2 * budgets["audio"].eps)
    visual = memory["eta"]["visual"].flatten() / (2 * budgets["visual"].eps)
    assert audio.shape == (10,)  # 2 restarts x 5 samples
    torch.testing.assert_close(audio, visual)
    assert bool((torch.log2(audio) == torch.log2(audio).round()).all())  # powers of 1/2
    assert bool((audio < 1).any())  # some halving happened


def test_restarts_chunked_equal_unchunked_and_never_below_the_best_single_restart():
    """Batched restarts: max_batch (the chunking) changes nothing; restart 0 equals the
    1-restart run, so 3 restarts break at least the samples one restart breaks."""
    model, x, y = rugged_setup(batch=16)

    def run(restarts, max_batch=None):
        attack = avrobust.MultimodalAttack(
            avrobust.wrap(model, ["image"]),
            {"image": avrobust.Linf(0.006, bounds=(0, 1))},
            rule=avrobust.APGD(restarts=restarts),
            steps=6,
            objective="dlr",
            seed=4,
            max_batch=max_batch,
        )
        return attack({"image": x}, y)

    full, chunked, single = run(3), run(3, max_batch=16), run(1)
    assert torch.equal(full.inputs["image"], chunked.inputs["image"])
    assert bool((full.success | ~single.success).all())


def test_apgd_is_registered_and_its_repr_shows_its_settings():
    assert "apgd" in avrobust.attacks.list_rules()
    rule = avrobust.attacks.as_rule("apgd")
    assert isinstance(rule, avrobust.APGD) and rule.random_start and rule.restarts == 1
    assert repr(avrobust.APGD(restarts=2, rho=0.5)) == "APGD(restarts=2, momentum=0.75, rho=0.5)"


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"restarts": 0}, ValueError, "APGD.restarts"),
        ({"restarts": 1.5}, TypeError, "APGD.restarts"),
        ({"momentum": 0.0}, ValueError, "APGD.momentum"),
        ({"momentum": 1.5}, ValueError, "APGD.momentum"),
        ({"momentum": "high"}, TypeError, "APGD.momentum"),
        ({"rho": -0.1}, ValueError, "APGD.rho"),
        ({"rho": 2.0}, ValueError, "APGD.rho"),
        ({"rho": float("nan")}, ValueError, "APGD.rho"),
    ],
)
def test_bad_apgd_arguments_name_the_argument(kwargs, error, argument):
    assert_raises_naming(error, argument, avrobust.APGD, **kwargs)


def test_apgd_options_are_keyword_only():
    assert_raises_naming(TypeError, "positional", avrobust.APGD, 2)
