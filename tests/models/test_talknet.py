"""TalkNet: output contract, per-clip batching, gradients, inputs and their errors, loss and scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming
from torch.nn import functional as F

from avrobust import AVOutput
from avrobust.models import (
    TalkNet,
    TalkNetConfig,
    create_model,
    list_models,
    speaking_logit,
    speaking_probability,
    talknet_loss,
    talknet_objective,
)
from avrobust.models.talknet.layers import AttentionLayer, GlobalLayerNorm

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps


@pytest.fixture(scope="module")
def tiny() -> TalkNet:
    torch.manual_seed(0)
    model = TalkNet("tiny")
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model(**clip(batch=4, frames=6, size=64, seed=5))
    return model.eval()


@pytest.fixture(scope="module")
def full() -> TalkNet:
    torch.manual_seed(0)
    return TalkNet("talknet").eval()


def clip(
    batch: int = 2, frames: int = 3, size: int = 64, seed: int = 0, samples: int | None = None
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    samples = SAMPLES_PER_FRAME * frames if samples is None else samples
    return {
        "audio": (torch.rand(batch, samples, generator=g) * 2 - 1) * 0.5,
        "visual": torch.rand(batch, frames, size, size, generator=g) * 255,
    }


# ------------------------------------------------------------------------------ output contract


def test_output_contract_full_model(full: TalkNet) -> None:
    out = full(**clip(batch=2, frames=2, size=112))
    assert isinstance(out, AVOutput)
    assert out.logits.shape == (2, 2, 2)
    assert {k: tuple(v.shape) for k, v in out.heads.items()} == {
        "audio": (2, 2, 2),
        "visual": (2, 2, 2),
    }
    assert {k: tuple(v.shape) for k, v in out.embeddings.items()} == {
        "audio": (2, 2, 128),
        "visual": (2, 2, 128),
        "audio_cross": (2, 2, 128),
        "visual_cross": (2, 2, 128),
    }
    assert TalkNet.head_weights == {"audio": 0.4, "visual": 0.4}


def test_variants_from_the_registry() -> None:
    assert {"talknet", "nc_talknet", "spec_talknet", "tiny"} <= set(list_models())
    assert list_models("*talknet") == ["nc_talknet", "spec_talknet", "talknet"]
    model = create_model("tiny", face_size=32)
    assert isinstance(model, TalkNet) and model.config.face_size == 32
    out = model.eval()(**clip(batch=1, frames=2, size=32))
    assert out.logits.shape == (1, 2, 2)
    with pytest.raises(ValueError, match=r"name: expected one of \[.*'tiny'\], got 'talknet-xl'"):
        create_model("talknet-xl")
    with pytest.raises(TypeError, match=r"TalkNetConfig: unknown field\(s\) \['faces'\]"):
        TalkNet("tiny", faces=32)


def test_nc_talknet_has_no_cross_attention() -> None:
    model = TalkNet("nc_talknet", **_TINY_WIDTHS).eval()
    assert not any("cross" in key for key in model.state_dict())
    out = model(**clip(batch=1, frames=2, size=64))
    assert out.embeddings["audio_cross"] is out.embeddings["audio"]
    assert out.embeddings["visual_cross"] is out.embeddings["visual"]


def test_spec_talknet_uses_a_linear_spectrogram() -> None:
    model = TalkNet("spec_talknet", **_TINY_WIDTHS).eval()
    inputs = clip(batch=2, frames=3, size=64)
    assert model.audio_features(inputs["audio"], 3).shape == (2, 12, 201)
    assert model(**inputs).logits.shape == (2, 3, 2)


_TINY_WIDTHS = {k: getattr(TalkNetConfig.variant("tiny"), k) for k in (
    "face_size", "audio_layers", "audio_channels", "visual_stem_channels", "visual_channels",
    "visual_tcn_blocks", "visual_hidden", "attention_heads",
)}  # fmt: skip


# ------------------------------------------------------------------------ batching and gradients


def test_batch_equals_clips_one_by_one(tiny: TalkNet, full: TalkNet) -> None:
    for model, size, frames in ((tiny, 64, 7), (full, 112, 2)):
        inputs = clip(batch=3, frames=frames, size=size, seed=1)
        batched = model(**inputs)
        for i in range(3):
            single = model(audio=inputs["audio"][i : i + 1], visual=inputs["visual"][i : i + 1])
            torch.testing.assert_close(
                batched.logits[i : i + 1], single.logits, atol=1e-4, rtol=1e-4
            )
            for key in ("audio", "visual", "audio_cross"):
                torch.testing.assert_close(
                    batched.embeddings[key][i : i + 1], single.embeddings[key], atol=1e-4, rtol=1e-4
                )


def test_neighbouring_clips_do_not_leak_in_the_3d_convolution(tiny: TalkNet) -> None:
    inputs = clip(batch=2, frames=4, size=64, seed=2)
    before = tiny(**inputs).embeddings["visual"][0]
    inputs["visual"][1] = 255 - inputs["visual"][1]  # change only the second clip
    torch.testing.assert_close(tiny(**inputs).embeddings["visual"][0], before)


@pytest.mark.parametrize("which", ["tiny", "full"])
def test_gradients_reach_waveform_and_pixels(which: str, request: pytest.FixtureRequest) -> None:
    model: TalkNet = request.getfixturevalue(which)
    size = model.config.face_size
    inputs = {k: v.requires_grad_() for k, v in clip(batch=2, frames=2, size=size, seed=3).items()}
    loss = talknet_loss(model(**inputs), torch.tensor([[0, 1], [1, 1]]))
    grad_audio, grad_visual = torch.autograd.grad(loss, [inputs["audio"], inputs["visual"]])
    for grad in (grad_audio, grad_visual):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------------------- audio alignment


def test_waveform_path_equals_official_features_path(tiny: TalkNet) -> None:
    """Waveform in [-1, 1] -> model == python_speech_features on int16 + the AVA loader's wrap padding."""
    psf = pytest.importorskip("python_speech_features")
    frames = 6
    rng = np.random.default_rng(0)
    int16 = (rng.standard_normal((2, SAMPLES_PER_FRAME * frames)) * 3000).astype(np.int16)
    official = []
    for row in int16:
        feats = psf.mfcc(row, 16000, numcep=13, winlen=0.025, winstep=0.010)  # 23 frames
        feats = np.pad(feats, ((0, 4 * frames - len(feats)), (0, 0)), "wrap")[: 4 * frames]
        official.append(feats)
    features = torch.tensor(np.stack(official), dtype=torch.float32)
    visual = clip(batch=2, frames=frames, size=64)["visual"]
    waveform = torch.tensor(int16 / 32768.0, dtype=torch.float32)
    torch.testing.assert_close(tiny.audio_features(waveform, frames), features, atol=1e-3, rtol=0)
    torch.testing.assert_close(
        tiny(audio=waveform, visual=visual).logits,
        tiny.forward_features(features, visual).logits,
        atol=1e-3,
        rtol=1e-3,
    )


def test_wrap_alignment_accepts_one_video_frame_of_slack(tiny: TalkNet) -> None:
    for samples in (SAMPLES_PER_FRAME * 4, SAMPLES_PER_FRAME * 3, SAMPLES_PER_FRAME * 5):
        assert tiny(**clip(batch=1, frames=4, samples=samples)).logits.shape == (1, 4, 2)
    with pytest.raises(
        ValueError,
        match=r"audio: expected about 2560 samples \(4 video frames at 25 fps, 16000 Hz; 1920 to 3200 accepted\), got 5120",
    ):
        tiny(**clip(batch=1, frames=4, samples=5120))


def test_strict_alignment_says_how_many_samples_are_needed() -> None:
    model = TalkNet("tiny", audio_align="strict").eval()
    with pytest.raises(
        ValueError,
        match=r"audio: expected 6481 to 6640 samples, which give 40 feature frames \(4 per video frame, T=10\), got 6400 samples \(39 frames\)",
    ):
        model(**clip(batch=1, frames=10, samples=6400))
    assert model(**clip(batch=1, frames=10, samples=6640)).logits.shape == (1, 10, 2)


def test_other_frame_rates_keep_four_feature_frames_per_video_frame() -> None:
    model = TalkNet("tiny", fps=30.0).eval()
    assert (model.audio_frontend.frame_len, model.audio_frontend.frame_step) == (333, 133)
    assert model(**clip(batch=1, frames=6, samples=3200)).logits.shape == (1, 6, 2)


# ---------------------------------------------------------------------------- input checking


def test_visual_layouts_and_dtypes_are_equivalent(tiny: TalkNet) -> None:
    inputs = clip(batch=1, frames=3, seed=4)
    reference = tiny(**inputs).logits
    channel = tiny(audio=inputs["audio"].unsqueeze(1), visual=inputs["visual"].unsqueeze(2)).logits
    as_uint8 = tiny(audio=inputs["audio"], visual=inputs["visual"].round().to(torch.uint8)).logits
    torch.testing.assert_close(channel, reference)
    torch.testing.assert_close(
        as_uint8, tiny(audio=inputs["audio"], visual=inputs["visual"].round()).logits
    )


def test_bad_inputs_raise_clear_errors(tiny: TalkNet) -> None:
    audio, visual = clip(batch=2, frames=3).values()
    with pytest.raises(
        ValueError,
        match=r"visual: expected \(B, T, 64, 64\) grayscale faces \(64x64, config.face_size\), got 112x112",
    ):
        tiny(audio=audio, visual=torch.zeros(2, 3, 112, 112))
    with pytest.raises(
        ValueError, match=r"visual: .* looks like colour frames; convert to grayscale"
    ):
        tiny(audio=audio, visual=torch.zeros(2, 3, 3, 64, 64))
    with pytest.raises(ValueError, match=r"visual: .* looks like colour frames"):
        tiny(audio=audio, visual=torch.zeros(2, 3, 64, 64, 3))
    with pytest.raises(
        ValueError,
        match=r"visual: expected a tensor with 4 or 5 dimensions, got shape \(3, 64, 64\)",
    ):
        tiny(audio=audio, visual=torch.zeros(3, 64, 64))
    with pytest.raises(
        TypeError,
        match=r"audio: expected a float waveform in \[-1, 1\] \(divide int16 samples by 32768\), got dtype torch.int16",
    ):
        tiny(audio=audio.to(torch.int16), visual=visual)
    with pytest.raises(
        ValueError, match=r"audio: expected mono \(B, S\) or \(B, 1, S\), got shape \(2, 2, 1920\)"
    ):
        tiny(audio=torch.stack([audio, audio], 1), visual=visual)
    with pytest.raises(
        ValueError, match=r"audio: expected the batch size of visual \(2\), got shape \(1, 1920\)"
    ):
        tiny(audio=audio[:1], visual=visual)
    with pytest.raises(
        ValueError,
        match=r"features: expected shape \(2, 12, F\) \(4 feature frames per video frame, T=3\), got \(2, 11, 13\)",
    ):
        tiny.forward_features(torch.zeros(2, 11, 13), visual)


def test_suspicious_units_warn(tiny: TalkNet) -> None:
    audio, visual = clip(batch=1, frames=2).values()
    with pytest.warns(UserWarning, match=r"audio: samples reach 1.638e\+04, outside \[-1, 1\]"):
        tiny(audio=audio * 32768, visual=visual)
    with pytest.warns(UserWarning, match=r"visual: every pixel is within \[0, 1\]"):
        tiny(audio=audio, visual=visual / 255)


def test_config_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"attention_heads: must divide the embedding size audio_channels\[-1\] = 64, got 5",
    ):
        TalkNet("tiny", attention_heads=5)
    with pytest.raises(
        ValueError,
        match=r"audio_layers: expected a tuple of 4 ints \(one per stage\), got \(1, 1\)",
    ):
        TalkNetConfig(audio_layers=(1, 1))
    with pytest.raises(
        TypeError, match=r"visual_channels: expected a tuple of 4 ints \(one per stage\), got 512"
    ):
        TalkNetConfig(visual_channels=512)  # type: ignore[arg-type]
    assert TalkNetConfig(audio_layers=[1, 2, 3, 4]).audio_layers == (1, 2, 3, 4)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"audio_align: expected one of \['strict', 'wrap'\], got 'pad'"
    ):
        TalkNetConfig(audio_align="pad")
    with pytest.raises(ValueError, match=r"variant: expected one of .*, got 'huge'"):
        TalkNetConfig.variant("huge")


# ------------------------------------------------------------------------------ layer quirks


def test_attention_residual_and_values_come_from_src_queries_from_tar() -> None:
    torch.manual_seed(0)
    layer = AttentionLayer(16, 4, dropout=0.0).eval()
    src, tar = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    # every query gets a softmax-weighted mean of src values: with one distinct src step the
    # output no longer depends on tar at all
    constant_src = src[:, :1].expand(-1, 5, -1)
    torch.testing.assert_close(layer(constant_src, tar), layer(constant_src, torch.randn(2, 5, 16)))
    assert not torch.allclose(layer(src, tar), layer(src, torch.randn(2, 5, 16)))


def test_global_layer_norm_uses_channels_and_time() -> None:
    x = torch.randn(2, 8, 5) * 3 + 1
    y = GlobalLayerNorm(8)(x)
    torch.testing.assert_close(y.mean(dim=(1, 2)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(1, 2), unbiased=False), torch.ones(2), atol=1e-4, rtol=0)


def test_global_layer_norm_guard_is_named_guard_and_stays_out_of_the_state_dict() -> None:
    """The variance guard is the ``guard`` argument (not ``eps``, which names budget radii only):
    a large guard shrinks the output by ``sqrt(var / (var + guard))`` (hand-derived), the state
    dict keeps the official checkpoint's keys (``gamma``, ``beta``), and a guard <= 0 is refused
    naming ``guard``."""
    x = torch.randn(2, 8, 5, dtype=torch.float64)
    var = x.var(dim=(1, 2), unbiased=False, keepdim=True)
    norm = GlobalLayerNorm(8, guard=1.0).double()
    torch.testing.assert_close(norm(x), GlobalLayerNorm(8).double()(x) * (var / (var + 1)).sqrt())
    assert sorted(norm.state_dict()) == ["beta", "gamma"]
    assert_raises_naming(ValueError, "guard", GlobalLayerNorm, 8, guard=0.0)


# ---------------------------------------------------------------------------- loss and scores


def _output(seed: int = 0, batch: int = 3, frames: int = 4) -> AVOutput:
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(batch, frames, 2, generator=g) for _ in range(3)]
    return AVOutput(logits[0], heads={"audio": logits[1], "visual": logits[2]})


def test_talknet_loss_is_equation_4() -> None:
    out = _output()
    labels = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]])
    flat = labels.flatten()
    expected = (
        F.cross_entropy(out.logits.reshape(-1, 2), flat)
        + 0.4 * F.cross_entropy(out.heads["audio"].reshape(-1, 2), flat)
        + 0.4 * F.cross_entropy(out.heads["visual"].reshape(-1, 2), flat)
    )
    torch.testing.assert_close(talknet_loss(out, labels), expected)
    per_clip = talknet_objective(out, labels)
    assert per_clip.shape == (3,)
    torch.testing.assert_close(per_clip.mean(), expected)
    # the attack core's "training" objective: CE(logits) + head_weights[h] * CE(head h)
    core = F.cross_entropy(out.logits.transpose(1, 2), labels, reduction="none").mean(1)
    for name, weight in TalkNet.head_weights.items():
        core = core + weight * F.cross_entropy(
            out.heads[name].transpose(1, 2), labels, reduction="none"
        ).mean(1)
    torch.testing.assert_close(per_clip, core)


def test_talknet_loss_labels() -> None:
    out = _output(batch=2, frames=3)
    torch.testing.assert_close(
        talknet_loss(out, torch.tensor([1, 0]), reduction="none"),
        talknet_loss(out, torch.tensor([[1, 1, 1], [0, 0, 0]]), reduction="none"),
    )
    with pytest.raises(
        ValueError,
        match=r"labels: expected shape \(2, 3\) \(frame labels\) or \(2,\) \(one label per clip\) to match logits \(2, 3, 2\), got \(2, 4\)",
    ):
        talknet_loss(out, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(
        TypeError,
        match=r"labels: expected integer class indices \(0 or 1\), got dtype torch.float32",
    ):
        talknet_loss(out, torch.zeros(2, 3))
    with pytest.raises(
        ValueError,
        match=r"out.heads: expected a 'audio' head for the TalkNet loss \(weight 0.4\), got heads \[\]",
    ):
        talknet_loss(AVOutput(out.logits), torch.zeros(2, 3, dtype=torch.long))
    torch.testing.assert_close(
        talknet_loss(
            AVOutput(out.logits),
            torch.ones(2, 3, dtype=torch.long),
            audio_weight=0,
            visual_weight=0,
        ),
        F.cross_entropy(out.logits.reshape(-1, 2), torch.ones(6, dtype=torch.long)),
    )


def test_scores_as_the_official_evaluation_and_demo_take_them() -> None:
    out = _output()
    torch.testing.assert_close(speaking_probability(out), torch.softmax(out.logits, -1)[..., 1])
    torch.testing.assert_close(speaking_logit(out.logits), out.logits[..., 1])
    assert speaking_probability(out).shape == (3, 4)
    with pytest.raises(ValueError, match=r"logits: expected 2-class scores \(\.\.\., 2\)"):
        speaking_logit(torch.zeros(3, 4, 5))
