"""Modality mix-up: joint and per-modality mixing, soft targets, λ ~ Beta(α, α), errors."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from avrobust.defenses.mixup import modality_mixup


def batch(b: int = 6) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    inputs = {
        "audio": torch.randn(b, 10, generator=g),
        "visual": torch.rand(b, 3, 4, 4, generator=g),
    }
    return inputs, torch.arange(b) % 3


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def expected_mix(x: torch.Tensor, lam: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    w = lam.view((-1,) + (1,) * (x.ndim - 1))
    return w * x + (1 - w) * x[index]


def test_joint_mix_uses_one_lambda_and_partner_for_everything():
    x, y = batch()
    out = modality_mixup(x, y, num_classes=3, generator=gen())
    assert torch.equal(out.lam["audio"], out.lam["visual"])
    for m in x:
        torch.testing.assert_close(out.inputs[m], expected_mix(x[m], out.lam[m], out.index))
    onehot = torch.nn.functional.one_hot(y, 3).float()
    lam = out.lam["audio"][:, None]
    torch.testing.assert_close(out.targets, lam * onehot + (1 - lam) * onehot[out.index])
    assert sorted(out.index.tolist()) == list(range(6))


def test_per_modality_mix_draws_its_own_lambda_and_averages_for_the_target():
    x, y = batch()
    out = modality_mixup(x, y, num_classes=3, mode="per_modality", generator=gen())
    assert not torch.equal(out.lam["audio"], out.lam["visual"])
    for m in x:
        torch.testing.assert_close(out.inputs[m], expected_mix(x[m], out.lam[m], out.index))
    onehot = torch.nn.functional.one_hot(y, 3).float()
    lam = ((out.lam["audio"] + out.lam["visual"]) / 2)[:, None]
    torch.testing.assert_close(out.targets, lam * onehot + (1 - lam) * onehot[out.index])
    torch.testing.assert_close(out.targets.sum(1), torch.ones(6))


def test_unmixed_modality_is_untouched_and_counts_as_lambda_one():
    x, y = batch()
    out = modality_mixup(x, y, num_classes=3, modalities=["audio"], generator=gen())
    assert torch.equal(out.inputs["visual"], x["visual"])
    assert torch.equal(out.lam["visual"], torch.ones(6))
    onehot = torch.nn.functional.one_hot(y, 3).float()
    lam = ((out.lam["audio"] + 1) / 2)[:, None]
    torch.testing.assert_close(out.targets, lam * onehot + (1 - lam) * onehot[out.index])


def test_unmixed_modality_is_passed_through_not_recomputed():
    """1·x + 0·x[π] is not x: it loses int64 precision and turns a partner's inf into NaN."""
    ids = torch.full((4, 1), 2**40 + 1)
    extra = torch.tensor([[1.0], [float("inf")], [2.0], [3.0]])
    x = {"audio": torch.randn(4, 2), "ids": ids, "extra": extra}
    out = modality_mixup(x, torch.tensor([0, 1, 0, 1]), num_classes=2, modalities=["audio"])
    assert torch.equal(out.inputs["ids"], ids)
    assert torch.equal(out.inputs["extra"], extra)


def test_per_batch_lambda_soft_labels_and_reproducibility():
    x, _ = batch()
    soft = torch.softmax(torch.randn(6, 3, generator=gen(1)), -1)
    out = modality_mixup(x, soft, per_sample=False, generator=gen(2))
    assert bool((out.lam["audio"] == out.lam["audio"][0]).all())
    again = modality_mixup(x, soft, per_sample=False, generator=gen(2))
    assert torch.equal(out.inputs["visual"], again.inputs["visual"]) and torch.equal(
        out.index, again.index
    )
    torch.testing.assert_close(out.targets.sum(1), torch.ones(6))


@pytest.mark.parametrize("alpha", [0.4, 1.0, 2.0])
def test_lambda_follows_beta_alpha_alpha(alpha):
    x = {"audio": torch.zeros(4000, 1)}
    out = modality_mixup(
        x, torch.zeros(4000, dtype=torch.long), num_classes=2, alpha=alpha, generator=gen(3)
    )
    result = stats.kstest(out.lam["audio"].numpy(), stats.beta(alpha, alpha).cdf)
    assert result.pvalue > 1e-3


def test_errors_name_the_argument():
    x, y = batch()
    with pytest.raises(ValueError, match="num_classes: needed with integer labels, got None"):
        modality_mixup(x, y)
    with pytest.raises(
        ValueError, match=r"modalities: \['depth'\] not in inputs \['audio', 'visual'\]"
    ):
        modality_mixup(x, y, num_classes=3, modalities=["depth"])
    with pytest.raises(ValueError, match="mode: expected one of"):
        modality_mixup(x, y, num_classes=3, mode="cutmix")
    with pytest.raises(ValueError, match="alpha: must be a finite number > 0, got 0"):
        modality_mixup(x, y, num_classes=3, alpha=0.0)
    with pytest.raises(ValueError, match="labels: expected batch size 6, got 5"):
        modality_mixup(x, y[:5], num_classes=3)
    with pytest.raises(
        ValueError, match=r"labels: expected \(B,\) integer classes or \(B, C\) probabilities"
    ):
        modality_mixup(x, y.float(), num_classes=3)
    with pytest.raises(
        ValueError, match=r"labels: expected classes in \[0, 3\), got min 0 and max 5"
    ):
        modality_mixup(x, torch.tensor([0, 1, 2, 5, 0, 1]), num_classes=3)
    with pytest.raises(ValueError, match=r"labels: expected classes in \[0, 3\), got min -1"):
        modality_mixup(x, torch.tensor([0, 1, -1, 2, 0, 1]), num_classes=3)
    with pytest.raises(TypeError, match=r"labels: expected a torch\.Tensor, got list"):
        modality_mixup(x, [0, 1, 2, 0, 1, 2], num_classes=3)
