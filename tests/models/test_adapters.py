"""avrobust.wrap: third-party models get the contract model(**inputs) -> AVOutput."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import avrobust


class ThirdParty(nn.Module):
    """Positional audio, keyword video; returns a tuple (logits, audio_logits, extra)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc_a = nn.Linear(5, 3)
        self.enc_v = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
        self.cls = nn.Linear(6, 2)
        self.cls_a = nn.Linear(3, 2)

    def forward(self, wave, video=None):
        a, v = self.enc_a(wave), self.enc_v(video)
        return self.cls(torch.cat([a, v], 1)), self.cls_a(a), "not a tensor"


def test_routes_positions_and_keywords_picks_heads_and_captures_embeddings():
    model = ThirdParty()
    wrapped = avrobust.wrap(
        model,
        {"audio": 0, "visual": "video"},
        logits=0,
        heads={"audio": 1},
        embeddings={"audio": "enc_a", "visual": "enc_v.1"},
        head_weights={"audio": 0.4},
    )
    x = {"audio": torch.rand(4, 5), "visual": torch.rand(4, 2, 4)}
    out = wrapped(**x)
    ref = model(x["audio"], video=x["visual"])
    assert torch.equal(out.logits, ref[0]) and torch.equal(out.heads["audio"], ref[1])
    assert torch.equal(out.embeddings["audio"], model.enc_a(x["audio"]))
    assert out.embeddings["visual"].shape == (4, 3)
    assert wrapped.head_weights == {"audio": 0.4} and wrapped.modalities == ["audio", "visual"]
    assert wrapped.model is model
    r = avrobust.MultimodalAttack(
        wrapped, budgets={"audio": avrobust.Linf(0.1, bounds=(0, 1))}, rule="pgd", steps=2, seed=0
    )(x, torch.tensor([0, 1, 0, 1]))
    assert torch.equal(r.inputs["visual"], x["visual"]) and not torch.equal(
        r.inputs["audio"], x["audio"]
    )


def test_default_logits_from_tuple_dict_and_attribute():
    class Out(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind, self.lin = kind, nn.Linear(2, 2)

        def forward(self, x):
            y = self.lin(x)
            return {
                "tuple": (y, y * 2),
                "dict": {"logits": y, "other": 1},
                "attr": SimpleNamespace(logits=y),
            }[self.kind]

    x = torch.rand(3, 2)
    for kind in ("tuple", "dict", "attr"):
        m = Out(kind)
        assert torch.equal(avrobust.wrap(m)(x=x).logits, m.lin(x))
    m = Out("tuple")
    assert torch.equal(avrobust.wrap(m, logits=lambda o: o[1])(x=x).logits, 2 * m.lin(x))


def test_many_modalities_with_free_names():
    class Three(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, text, depth, audio):
            return self.lin(torch.stack([text.mean(1), depth.mean((1, 2)), audio.mean(1)], 1))

    wrapped = avrobust.wrap(Three(), ["text", "depth", "audio"])
    x = {"text": torch.rand(2, 4), "depth": torch.rand(2, 3, 3), "audio": torch.rand(2, 6)}
    budgets = {k: avrobust.Linf(0.05, bounds=(0, 1)) for k in ("depth", "audio")}
    r = avrobust.MultimodalAttack(wrapped, budgets=budgets, rule="bim", steps=2)(
        x, torch.tensor([0, 1])
    )
    assert torch.equal(r.inputs["text"], x["text"])
    assert all(not torch.equal(r.inputs[k], x[k]) for k in budgets)


def test_wrong_names_list_what_exists():
    model = ThirdParty()
    with pytest.raises(
        ValueError,
        match=r"embeddings\['audio'\]: no submodule named 'enc_aa'. "
        r"Did you mean \['enc_a'.*Available: \['enc_a', 'enc_v', 'enc_v.0', 'enc_v.1', 'cls', 'cls_a'\]",
    ):
        avrobust.wrap(model, ["audio", "visual"], embeddings={"audio": "enc_aa"})
    wrapped = avrobust.wrap(model, ["audio", "visual"])
    with pytest.raises(
        TypeError,
        match=r"inputs: expected modalities \['audio', 'visual'\], got \['audio', 'video'\] "
        r"\(unknown: \['video'\], missing: \['visual'\]\)",
    ):
        wrapped(audio=torch.rand(2, 5), video=torch.rand(2, 8))
    with pytest.raises(
        ValueError, match=r"logits: index 5 is out of range for a model output of 3 elements"
    ):
        avrobust.wrap(model, ["audio", "visual"], logits=5)(
            audio=torch.rand(2, 5), visual=torch.rand(2, 8)
        )
    with pytest.raises(TypeError, match=r"heads\['x'\]: expected a tensor, got 'not a tensor'"):
        avrobust.wrap(model, ["audio", "visual"], heads={"x": 2})(
            audio=torch.rand(2, 5), visual=torch.rand(2, 8)
        )
    with pytest.raises(ValueError, match=r"inputs: positions must be 0..1, got \[0, 2\]"):
        avrobust.wrap(model, {"audio": 0, "visual": 2})
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module"):
        avrobust.wrap(lambda x: x)  # type: ignore[arg-type]
