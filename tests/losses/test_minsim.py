"""MinSim / MaxSim: the slides' guarded cosine, its η guard, signs, weights and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from avrobust.losses.minsim import MaxSimLoss, MinSimLoss, av_similarity


def test_equals_torch_cosine_away_from_the_guard():
    g = torch.Generator().manual_seed(0)
    z_audio, z_visual = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    torch.testing.assert_close(
        av_similarity(z_audio, z_visual), F.cosine_similarity(z_audio, z_visual, dim=-1)
    )
    torch.testing.assert_close(
        MinSimLoss()(z_audio, z_visual), F.cosine_similarity(z_audio, z_visual).mean()
    )


def test_eta_guard_divides_by_eta_when_the_norm_product_is_smaller():
    z_audio = torch.tensor([[1e-3, 0.0]])
    z_visual = torch.tensor([[2e-3, 0.0]])  # product of norms 2e-6, dot 2e-6
    assert float(av_similarity(z_audio, z_visual, guard=1e-4)) == pytest.approx(2e-6 / 1e-4)
    assert float(av_similarity(z_audio, z_visual, guard=1e-8)) == pytest.approx(1.0)


def test_zero_features_give_zero_and_a_finite_gradient():
    z_audio = torch.zeros(3, 4, requires_grad=True)
    z_visual = torch.randn(3, 4, requires_grad=True)
    loss = MinSimLoss()(z_audio, z_visual)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert z_audio.grad is not None and bool(torch.isfinite(z_audio.grad).all())
    assert z_visual.grad is not None and bool(torch.isfinite(z_visual.grad).all())


def test_maxsim_is_the_negative_and_weight_scales():
    z_audio, z_visual = torch.rand(5, 7), torch.rand(5, 7)
    base = MinSimLoss()(z_audio, z_visual)
    torch.testing.assert_close(MaxSimLoss()(z_audio, z_visual), -base)
    torch.testing.assert_close(MinSimLoss(weight=0.8)(z_audio, z_visual), 0.8 * base)
    assert MinSimLoss().weight == 1.0  # the slides' default


def test_frame_level_features_average_over_batch_and_time():
    z_audio, z_visual = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    expected = F.cosine_similarity(z_audio.reshape(6, 4), z_visual.reshape(6, 4)).mean()
    torch.testing.assert_close(MinSimLoss()(z_audio, z_visual), expected)


def test_minimising_minsim_separates_and_maxsim_aligns():
    g = torch.Generator().manual_seed(1)
    start_a, start_v = torch.rand(16, 8, generator=g), torch.rand(16, 8, generator=g)
    for loss_cls, sign in ((MinSimLoss, -1), (MaxSimLoss, 1)):
        z_audio, z_visual = (
            start_a.clone().requires_grad_(True),
            start_v.clone().requires_grad_(True),
        )
        before = float(av_similarity(z_audio, z_visual).mean().detach())
        optimizer = torch.optim.SGD([z_audio, z_visual], lr=0.5)
        for _ in range(20):
            optimizer.zero_grad()
            loss_cls()(z_audio, z_visual).backward()
            optimizer.step()
        after = float(av_similarity(z_audio, z_visual).mean().detach())
        assert sign * (after - before) > 0.05


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0, 10), min_size=4, max_size=4),
    st.lists(st.floats(0, 10), min_size=4, max_size=4),
)
def test_non_negative_features_give_a_similarity_in_0_1(a, v):
    s = float(av_similarity(torch.tensor([a]), torch.tensor([v])))
    assert -1e-6 <= s <= 1 + 1e-6


def test_errors_name_the_argument():
    with pytest.raises(
        ValueError,
        match=r"z_audio and z_visual: expected the same shape \(\.\.\., D\), got \(2, 3\) and \(2, 4\)",
    ):
        MinSimLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="guard: must be a finite number > 0, got 0"):
        MinSimLoss(guard=0.0)
    with pytest.raises(ValueError, match="weight: must be a finite number >= 0, got -1"):
        MaxSimLoss(weight=-1.0)
    with pytest.raises(TypeError, match="z_audio: expected a floating-point tensor"):
        av_similarity(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
