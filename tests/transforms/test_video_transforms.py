"""Video transforms: uint8 -> float, RGB <-> BGR, BT.601 grey (against PIL's convert("L")) and
mean/std normalisation; shapes (B, T, C, H, W) and (B, C, H, W), gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming

from avrobust.transforms import ChannelOrder, Grey, Normalize, ToFloat
from avrobust.transforms import functional as VF

Image = pytest.importorskip("PIL.Image")


def uint8_frames(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(seed)).to(
        torch.uint8
    )


def test_to_float_converts_uint8_keeping_or_scaling_the_range():
    """uint8 -> float32 with the same values (0-255), or divided by 255 with scale=True."""
    frames = uint8_frames(2, 3, 3, 4, 4)
    kept = ToFloat()(frames)
    assert kept.dtype == torch.float32 and torch.equal(kept, frames.float())
    scaled = ToFloat(scale=True, dtype=torch.float64)(frames)
    assert scaled.dtype == torch.float64
    torch.testing.assert_close(scaled, frames.double() / 255.0, rtol=0, atol=0)


def test_to_float_gradient_is_the_identity_on_float_frames():
    """Float frames pass through in value; d out / d in = 1 (1/255 with scale=True)."""
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True) * 255
    x.retain_grad()
    out = ToFloat()(x)
    assert torch.equal(out, x)
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    y = torch.rand(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ToFloat(scale=True), (y,))


@pytest.mark.parametrize("shape", [(2, 3, 3, 4, 5), (2, 3, 4, 5)])
def test_channel_order_reverses_rgb_on_both_layouts(shape):
    """ChannelOrder == frames[..., [2, 1, 0], :, :] on (B, T, C, H, W) and (B, C, H, W); twice
    is the identity; gradcheck passes."""
    frames = torch.rand(*shape, dtype=torch.float64)
    flipped = ChannelOrder()(frames)
    assert torch.equal(flipped, frames[..., [2, 1, 0], :, :])
    assert torch.equal(ChannelOrder()(flipped), frames)
    assert torch.autograd.gradcheck(ChannelOrder(), (frames.requires_grad_(),))


def test_channel_order_on_channels_last():
    """dim=-1 flips (..., H, W, 3) frames as decoders return them."""
    frames = uint8_frames(2, 4, 4, 3)
    assert torch.equal(ChannelOrder(dim=-1)(frames), frames.flip(-1))


def test_grey_matches_pil_bt601():
    """Grey on RGB 0-255 == PIL's convert("L") (ITU-R 601-2 luma, rounded to integers) within
    half a level; BGR input with order="bgr" gives the same; keepdim controls the channel axis."""
    rgb = uint8_frames(6, 7, 3, seed=1)  # H, W, C for PIL
    expected = np.asarray(Image.fromarray(rgb.numpy(), "RGB").convert("L"), dtype=np.float64)
    frames = rgb.permute(2, 0, 1)[None].double()  # (1, 3, H, W)
    got = Grey()(frames)
    assert got.shape == (1, 1, 6, 7)
    assert np.abs(got[0, 0].numpy() - expected).max() <= 0.5 + 1e-6
    bgr = ChannelOrder()(frames)
    torch.testing.assert_close(Grey(order="bgr", keepdim=False)(bgr), got[:, 0])
    clip = frames[:, None].expand(2, 3, 3, 6, 7)  # (B, T, C, H, W)
    assert Grey(keepdim=False)(clip).shape == (2, 3, 6, 7)


def test_grey_gradcheck_and_weights():
    """The weights are BT.601's (0.299, 0.587, 0.114); gradcheck in float64."""
    assert VF.BT601_LUMA == (0.299, 0.587, 0.114)
    x = torch.rand(2, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(Grey(), (x,))


def test_normalize_per_channel_and_scalar():
    """Normalize == (x - mean[c]) / std[c] computed in NumPy, per channel on both layouts; a
    scalar mean/std applies to every channel; gradcheck passes."""
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    x = torch.rand(2, 4, 3, 5, 5, dtype=torch.float64)
    expected = (x.numpy() - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(Normalize(mean, std)(x).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(Normalize(mean, std)(x[:, 0]).numpy(), expected[:, 0], rtol=1e-12)
    np.testing.assert_allclose(
        Normalize(0.4161 * 255, 0.1688 * 255)(x).numpy(), (x.numpy() - 106.1055) / 43.044
    )
    assert torch.autograd.gradcheck(Normalize(mean, std), (x[:1, :1].requires_grad_(),))


def test_video_transforms_bad_arguments_name_the_argument():
    """Wrong channel counts, bad axes, std <= 0, non-numeric mean, bad order/dtype raise naming them."""
    x = torch.rand(2, 4, 4, 4)
    assert_raises_naming(ValueError, "frames", ChannelOrder(), x)
    assert_raises_naming(ValueError, "dim", ChannelOrder(dim=7), torch.rand(2, 3, 4, 4))
    assert_raises_naming(ValueError, "frames", Grey(), x)
    assert_raises_naming(TypeError, "frames", Grey(), uint8_frames(1, 3, 2, 2))
    assert_raises_naming(ValueError, "order", Grey, order="rgba")
    assert_raises_naming(ValueError, "std", Normalize, [0.5], [0.0])
    assert_raises_naming(ValueError, "std", VF.normalize, x, 0.5, -1.0)
    assert_raises_naming(TypeError, "mean", Normalize, "red", 1.0)
    assert_raises_naming(ValueError, "mean", Normalize, [[0.5]], 1.0)
    assert_raises_naming(ValueError, "frames", Normalize([0.5, 0.5, 0.5], 1.0), x)
    assert_raises_naming(TypeError, "dtype", ToFloat, dtype=torch.int64)
    assert_raises_naming(TypeError, "frames", ToFloat(), torch.zeros(2, dtype=torch.bool))
    assert_raises_naming(TypeError, "scale", ToFloat, scale="yes")
