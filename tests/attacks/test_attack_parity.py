"""Parity with torchattacks 3.5.1, an independent implementation of single-input attacks.

Settings that make the two comparable (see shared/reference/attack_libs.md §5): 4-D images in
[0, 1], a BatchNorm CNN in eval mode, mean cross-entropy (ours backpropagates the per-sample sum,
which gives the same signs), ``keep="last"`` (torchattacks returns the final iterate).

Our projection is one clamp to the precomputed box ``[x - eps, x + eps] ∩ [0, 1]``; torchattacks
computes ``clamp(x + clamp(x' - x, -eps, eps), 0, 1)``, which rounds ``x + (x' - x)`` and can
differ from ``x'`` by one ulp. So iterative attacks agree to one ulp of the dtype at 1 (the
largest value): anything larger would mean a step went another way.

Everything runs in float64 (model and inputs; torchattacks keeps the dtype it is given): the
attacks step along gradient signs, and in float32 a near-zero gradient element can take another
sign on another CPU's kernels than on ours, which moves a whole step. In float64 such ties are
out of reach of rounding, so the comparison holds on any CPU by construction.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import avrobust

torchattacks = pytest.importorskip("torchattacks")

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10

ULP_TOL = 2 * torch.finfo(torch.float64).eps  # one ulp at 1.0, with a margin of 2


def assert_same(ours_adv: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(ours_adv, ref, atol=ULP_TOL, rtol=0)


class ImageNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = ImageNet()
    with torch.no_grad():  # give BatchNorm real statistics
        model.train()
        model(torch.rand(16, 3, 16, 16))
    model.eval().double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(7, 3, 16, 16, generator=g, dtype=torch.float64)
    return model, x, torch.randint(0, 10, (7,), generator=g)


def ours(
    model: nn.Module, rule: avrobust.StepRule, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    wrapped = avrobust.wrap(model, ["image"])
    budget = avrobust.Linf(
        EPS, alpha=None if isinstance(rule, avrobust.FGSM) else ALPHA, bounds=(0, 1)
    )
    attack = avrobust.MultimodalAttack(
        wrapped, budgets={"image": budget}, rule=rule, steps=STEPS, keep="last"
    )
    return attack({"image": x}, y).inputs["image"]


def test_fgsm_equals_torchattacks(setup):
    model, x, y = setup
    ref = torchattacks.FGSM(model, eps=EPS)(x, y)
    assert torch.equal(ours(model, avrobust.FGSM(), x, y), ref)


def test_bim_equals_torchattacks_bim(setup):
    model, x, y = setup
    ref = torchattacks.BIM(model, eps=EPS, alpha=ALPHA, steps=STEPS)(x, y)
    assert ref.dtype == torch.float64, "torchattacks must run in the dtype it is given"
    assert_same(ours(model, avrobust.BIM(), x, y), ref)


def test_mim_equals_torchattacks_mifgsm(setup):
    model, x, y = setup
    ref = torchattacks.MIFGSM(model, eps=EPS, alpha=ALPHA, steps=STEPS, decay=1.0)(x, y)
    assert_same(ours(model, avrobust.MIM(decay=1.0), x, y), ref)


def test_pgd_without_random_start_equals_torchattacks(setup):
    model, x, y = setup
    ref = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False)(x, y)
    assert_same(ours(model, avrobust.PGD(random_start=False), x, y), ref)


def test_attack_really_moved_the_input(setup):
    """Guards the parity tests against comparing two no-ops."""
    model, x, y = setup
    adv = ours(model, avrobust.PGD(random_start=False), x, y)
    assert (adv - x).abs().max() > EPS / 2


class TwoStream(nn.Module):
    """A small two-stream CNN: audio (B, S) in [0, 1] and video (B, 3, H, W) in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.audio = nn.Sequential(
            nn.Conv1d(1, 4, 9, stride=4), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten()
        )
        self.video = ImageNet().net[:-1]
        self.head = nn.Linear(12, 10)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.audio(audio[:, None]), self.video(visual)], dim=1))


class FixedAudio(nn.Module):
    """The two-stream model seen as a single-input model of the video, audio held fixed."""

    def __init__(self, model: TwoStream, audio: torch.Tensor) -> None:
        super().__init__()
        self.model, self.audio_input = model, audio

    def forward(self, visual: torch.Tensor) -> torch.Tensor:
        return self.model(self.audio_input, visual)


@pytest.mark.parametrize("rule", ["pgd_no_start", "mim"])
def test_video_only_attack_equals_torchattacks_with_audio_fixed(rule):
    model = TwoStream().eval().double()
    g = torch.Generator().manual_seed(5)
    audio = torch.rand(6, 400, generator=g, dtype=torch.float64)
    video = torch.rand(6, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (6,), generator=g)
    if rule == "mim":
        ref = torchattacks.MIFGSM(FixedAudio(model, audio), eps=EPS, alpha=ALPHA, steps=STEPS)(
            video, y
        )
        step_rule: avrobust.StepRule = avrobust.MIM()
    else:
        ref = torchattacks.PGD(
            FixedAudio(model, audio), eps=EPS, alpha=ALPHA, steps=STEPS, random_start=False
        )(video, y)
        step_rule = avrobust.PGD(random_start=False)
    budgets = {
        "audio": avrobust.Linf(0.0, bounds=(0, 1)),
        "visual": avrobust.Linf(EPS, alpha=ALPHA, bounds=(0, 1)),
    }
    attack = avrobust.MultimodalAttack(
        avrobust.wrap(model, ["audio", "visual"]),
        budgets=budgets,
        rule=step_rule,
        steps=STEPS,
        keep="last",
    )
    result = attack({"audio": audio, "visual": video}, y)
    assert_same(result.inputs["visual"], ref)
    assert torch.equal(result.inputs["audio"], audio)
