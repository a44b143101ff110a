"""Event recognition models (AVEventNet, unimodal baselines), attacks on every fusion, synthetic event data."""

from __future__ import annotations

import pytest
import torch
from helpers import ALL_RULES

import avrobust
from avrobust.data import AVEventDataset
from avrobust.models.event import AVEventNet, UnimodalEventNet
from avrobust.models.fusion import FUSIONS

ALL_FUSIONS = tuple(FUSIONS)
K = 4


def batch(b: int = 4, samples: int = 512, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": torch.rand(b, samples, generator=g) * 2 - 1,
        "visual": torch.rand(b, 3, size, size, generator=g),
    }


def tiny(fusion: str = "concat", seed: int = 0, **kwargs) -> AVEventNet:
    torch.manual_seed(seed)
    return AVEventNet(K, fusion, dim=8, width=4, **kwargs).eval()


@pytest.mark.parametrize("fusion", ALL_FUSIONS)
def test_output_contract_for_every_fusion(fusion):
    out = tiny(fusion)(**batch())
    assert isinstance(out, avrobust.AVOutput)
    assert out.logits.shape == (4, K)
    assert set(out.embeddings) == {"audio", "visual"}
    assert all(e.shape == (4, 8) and bool((e >= 0).all()) for e in out.embeddings.values())


def test_layouts_agree_and_grey_is_repeated():
    model, x = tiny(), batch()
    ref = model(**x).logits
    torch.testing.assert_close(model(audio=x["audio"][:, None], visual=x["visual"]).logits, ref)
    grey = x["visual"][:, :1]
    torch.testing.assert_close(
        model(audio=x["audio"], visual=grey).logits,
        model(audio=x["audio"], visual=grey.repeat(1, 3, 1, 1)).logits,
    )


def test_forward_is_classify_of_the_embeddings_and_memory_sits_between():
    model, x = tiny("gated_sum"), batch()
    out = model(**x)
    torch.testing.assert_close(
        out.logits, model.classify(out.embeddings["audio"], out.embeddings["visual"])
    )

    class Halve(torch.nn.Module):
        def forward(self, feats):
            return {m: f / 2 for m, f in feats.items()}

    model.memory = Halve()
    halved = model(**x)
    torch.testing.assert_close(halved.embeddings["audio"], out.embeddings["audio"])  # pre-memory
    torch.testing.assert_close(
        halved.logits, model.classify(out.embeddings["audio"] / 2, out.embeddings["visual"] / 2)
    )


@pytest.mark.parametrize("fusion", ALL_FUSIONS)
@pytest.mark.parametrize("rule", ["fgsm", "mim", "pgd"])
def test_attack_runs_on_every_fusion(fusion, rule):
    model = tiny(fusion, identity_init=False) if fusion == "film" else tiny(fusion)
    x, labels = batch(), torch.tensor([0, 1, 2, 3])
    budgets = {
        "audio": avrobust.Linf(0.02, bounds=(-1, 1)),
        "visual": avrobust.Linf(0.05, bounds=(0, 1)),
    }
    attack = avrobust.MultimodalAttack(
        model, budgets=budgets, rule=ALL_RULES[rule](), steps=3, seed=0
    )
    result = attack(x, labels)
    for m, eps in (("audio", 0.02), ("visual", 0.05)):
        delta = result.inputs[m] - x[m]
        assert float(delta.abs().max()) <= eps + 1e-6
        assert float(delta.abs().max()) > 0
    clean_loss = torch.nn.functional.cross_entropy(model(**x).logits, labels, reduction="none")
    assert bool((result.loss >= clean_loss - 1e-5).all())


def test_unimodal_baselines_ignore_the_other_modality():
    x = batch()
    torch.manual_seed(0)
    audio_only = UnimodalEventNet(K, "audio", dim=8, width=4).eval()
    out = audio_only(**x)
    assert out.logits.shape == (4, K) and set(out.embeddings) == {"audio"}
    torch.testing.assert_close(audio_only(audio=x["audio"]).logits, out.logits)
    visual_only = UnimodalEventNet(K, "visual", dim=8, width=4).eval()
    torch.testing.assert_close(
        visual_only(visual=x["visual"]).logits,
        visual_only(audio=-x["audio"], visual=x["visual"]).logits,
    )
    with pytest.raises(ValueError, match="visual: this visual-only model needs it, got None"):
        visual_only(audio=x["audio"])


def test_model_errors_name_the_argument():
    model = tiny()
    x = batch()
    with pytest.raises(
        ValueError, match=r"audio: expected \(B, S\) or \(B, 1, S\), got \(4, 2, 256\)"
    ):
        model(audio=x["audio"].view(4, 2, 256), visual=x["visual"])
    with pytest.raises(ValueError, match="visual: expected a tensor with 4 dimensions"):
        model(audio=x["audio"], visual=x["visual"][:, None])
    with pytest.raises(ValueError, match=r"visual: expected \(B, 3, H, W\) or \(B, 1, H, W\)"):
        model(audio=x["audio"], visual=x["visual"][:, :2])
    with pytest.raises(ValueError, match="fusion: expected one of"):
        AVEventNet(K, "mean")
    assert AVEventNet(K, "Gated-Sum").fusion_name == "gated_sum"  # spelled as make_fusion takes it
    with pytest.raises(ValueError, match="num_classes: must be >= 2, got 1"):
        AVEventNet(1)
    with pytest.raises(ValueError, match="modality: expected one of"):
        UnimodalEventNet(K, "text")


def test_gradients_reach_every_parameter():
    model = tiny("film").train()
    out = model(**batch())
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 3])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


# --------------------------------------------------------------------------- synthetic data


def test_dataset_is_deterministic_balanced_and_in_range():
    data = AVEventDataset(24, num_classes=6, seed=3)
    x, y = data.tensors()
    again, _ = AVEventDataset(24, num_classes=6, seed=3).tensors()
    other, _ = AVEventDataset(24, num_classes=6, seed=4).tensors()
    assert torch.equal(x["audio"], again["audio"]) and torch.equal(x["visual"], again["visual"])
    assert not torch.equal(x["audio"], other["audio"])
    assert torch.equal(data[7][0]["visual"], x["visual"][7])  # any order, same clip
    assert torch.bincount(y).tolist() == [4] * 6
    assert x["audio"].shape == (24, 2048) and x["visual"].shape == (24, 3, 32, 32)
    assert (
        float(x["audio"].abs().max()) <= 1
        and 0 <= float(x["visual"].min()) <= float(x["visual"].max()) <= 1
    )


def spectra(audio: torch.Tensor) -> torch.Tensor:
    s = torch.fft.rfft(audio).abs()
    return s / s.norm(dim=-1, keepdim=True)


def centroid_accuracy(train_x, train_y, test_x, test_y, k) -> float:
    centroids = torch.stack([train_x[train_y == c].mean(0) for c in range(k)])
    return float(((test_x @ centroids.T).argmax(-1) == test_y).float().mean())


def test_class_sounds_are_distinct_and_mismatch_breaks_them():
    k = 6
    (tr, ytr), (te, yte) = (AVEventDataset(60, k, seed=s).tensors() for s in (0, 1))
    clean = centroid_accuracy(spectra(tr["audio"]), ytr, spectra(te["audio"]), yte, k)
    swapped, yswap = AVEventDataset(60, k, audio_mismatch=1.0, seed=1).tensors()
    broken = centroid_accuracy(spectra(tr["audio"]), ytr, spectra(swapped["audio"]), yswap, k)
    assert clean >= 0.9
    assert broken <= 0.1  # with mismatch 1 the sound is always another class's


def test_class_pictures_have_the_class_colour():
    data = AVEventDataset(12, 12, visual_noise=0.0, seed=0)
    x, _ = data.tensors()
    brightest = x["visual"].flatten(2).amax(-1)  # (N, 3): the shape's colour
    assert torch.equal(brightest[0], brightest[0])
    assert not torch.allclose(brightest[0], brightest[1])
    assert torch.allclose(brightest[0], brightest[6])  # same palette colour (k % 6), other shape


def test_dataset_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"audio_mismatch: must be a number in \[0, 1\], got 1.5"):
        AVEventDataset(4, audio_mismatch=1.5)
    with pytest.raises(ValueError, match="num_classes: must be <= 12, got 13"):
        AVEventDataset(4, 13)
    with pytest.raises(ValueError, match="image_size: must be >= 16, got 8"):
        AVEventDataset(4, image_size=8)
    with pytest.raises(IndexError, match="index: expected 0 <= index < 4, got 4"):
        AVEventDataset(4)[4]
