"""Fusion modules: each forward equals its formula on random features; shapes, options, errors."""

from __future__ import annotations

import pytest
import torch

from avrobust.models.fusion import (
    FUSIONS,
    ConcatFusion,
    FiLMFusion,
    GatedConcatFusion,
    GatedSumFusion,
    SumFusion,
    make_fusion,
)

ALL_FUSIONS = tuple(FUSIONS)


def features(shape: tuple[int, ...] = (5, 6), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)


def reference(
    fusion: torch.nn.Module, z_audio: torch.Tensor, z_visual: torch.Tensor
) -> torch.Tensor:
    """The slides' formulas written out element by element, independently of the modules."""
    sig = lambda x: 1 / (1 + torch.exp(-x))  # noqa: E731
    if isinstance(fusion, SumFusion):
        return z_audio + z_visual
    if isinstance(fusion, ConcatFusion):
        return torch.cat([z_visual, z_audio], -1)
    if isinstance(fusion, FiLMFusion):
        alpha = z_audio @ fusion.alpha.weight.T + fusion.alpha.bias
        beta = z_audio @ fusion.beta.weight.T + fusion.beta.bias
        return alpha * z_visual + beta
    f1, f2 = sig(z_audio) * z_visual, sig(z_visual) * z_audio
    return f1 + f2 if isinstance(fusion, GatedSumFusion) else torch.cat([f1, f2], -1)


@pytest.mark.parametrize("name", ALL_FUSIONS)
@pytest.mark.parametrize("shape", [(5, 6), (2, 3, 6)])
def test_forward_equals_formula(name, shape):
    torch.manual_seed(1)
    fusion = make_fusion(name, 6, identity_init=False) if name == "film" else make_fusion(name, 6)
    z_audio, z_visual = features(shape)
    out = fusion(z_audio, z_visual)
    torch.testing.assert_close(out, reference(fusion, z_audio, z_visual))
    assert out.shape == (*shape[:-1], fusion.out_dim)


def test_film_identity_init_starts_from_the_visual_feature():
    z_audio, z_visual = features()
    torch.testing.assert_close(FiLMFusion(6)(z_audio, z_visual), z_visual)


def test_film_and_concat_accept_different_widths():
    z_audio, z_visual = torch.randn(4, 3), torch.randn(4, 5)
    assert ConcatFusion(3, 5)(z_audio, z_visual).shape == (4, 8)
    film = FiLMFusion(3, 5, identity_init=False)
    torch.testing.assert_close(film(z_audio, z_visual), reference(film, z_audio, z_visual))


def test_learned_gates_put_a_linear_layer_inside_sigma():
    torch.manual_seed(0)
    fusion = GatedConcatFusion(6, learned_gates=True)
    z_audio, z_visual = features()
    g_a = torch.sigmoid(fusion.gate_audio(z_audio))
    g_v = torch.sigmoid(fusion.gate_visual(z_visual))
    torch.testing.assert_close(
        fusion(z_audio, z_visual), torch.cat([g_a * z_visual, g_v * z_audio], -1)
    )


@pytest.mark.parametrize("name", ALL_FUSIONS)
def test_gradients_reach_both_features(name):
    z_audio, z_visual = (f.requires_grad_(True) for f in features())
    fusion = make_fusion(name, 6, identity_init=False) if name == "film" else make_fusion(name, 6)
    fusion(z_audio, z_visual).pow(2).sum().backward()
    assert z_audio.grad is not None and z_audio.grad.abs().sum() > 0
    assert z_visual.grad is not None and z_visual.grad.abs().sum() > 0


def test_make_fusion_names_and_out_dims():
    dims = {name: make_fusion(name.upper().replace("_", "-"), 4).out_dim for name in ALL_FUSIONS}
    assert dims == {"sum": 4, "concat": 8, "film": 4, "gated_sum": 4, "gated_concat": 8}


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"fusion: expected one of \['concat', 'film'"):
        make_fusion("product", 4)
    with pytest.raises(TypeError, match="fusion: expected one of"):
        make_fusion(3, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim_audio and dim_visual must be equal, got dim_audio=4"):
        make_fusion("gated_sum", 4, 5)
    with pytest.raises(ValueError, match="dim_audio and dim_visual must be equal"):
        SumFusion(4, 6)
    with pytest.raises(TypeError, match=r"fusion 'sum': unknown option\(s\) \['gain'\]"):
        make_fusion("sum", 4, gain=True)
    with pytest.raises(ValueError, match="dim_audio: must be >= 1, got 0"):
        ConcatFusion(0)
    with pytest.raises(TypeError, match="dim_visual: expected an int"):
        ConcatFusion(3, 2.5)  # type: ignore[arg-type]


def test_forward_rejects_wrong_widths_and_batch():
    fusion = ConcatFusion(3, 5)
    with pytest.raises(
        ValueError, match=r"z_visual must be a tensor of shape \(\.\.\., 5\), got Tensor"
    ):
        fusion(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="z_audio and z_visual must share their leading dim"):
        fusion(torch.zeros(2, 3), torch.zeros(3, 5))
