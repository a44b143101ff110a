"""Issue 10, adapters and models: no silent wrong answers from ``avrobust.wrap`` and TalkNet
checkpoints, and bad inputs that name the argument.

Each test's docstring says what it checks; the bad-input table at the end uses
``assert_raises_naming`` (the error type and the argument named in the message).
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming
from torch import nn

import avrobust
from avrobust.adapters import as_avoutput
from avrobust.models import (
    AVEventNet,
    TalkNet,
    TalkNetConfig,
    create_model,
    list_models,
    make_fusion,
    register_model,
)
from avrobust.models.talknet import load_official_state_dict, read_state_dict


class TwoEncoders(nn.Module):
    """``model(wave, frames) -> (logits, e_a)``; ``spare`` never runs in the forward."""

    def __init__(self) -> None:
        super().__init__()
        self.enc_a = nn.Linear(5, 3)
        self.enc_v = nn.Linear(8, 3)
        self.spare = nn.Linear(3, 3)
        self.cls = nn.Linear(6, 2)

    def forward(self, wave: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        a, v = self.enc_a(wave), self.enc_v(frames)
        return self.cls(torch.cat([a, v], 1)), a


class SharedEncoder(nn.Module):
    """One encoder used for both inputs: ``enc`` runs twice per forward."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Linear(4, 3)
        self.cls = nn.Linear(6, 2)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.cls(torch.cat([self.enc(a), self.enc(b)], 1))


def two_inputs(batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"audio": torch.rand(batch, 5, generator=g), "visual": torch.rand(batch, 8, generator=g)}


# ---------------------------------------------------------------------------- case 1: selectors


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"logits": True}, "logits"),
        ({"logits": False}, "logits"),
        ({"logits": 1.5}, "logits"),
        ({"heads": {"audio": True}}, "heads['audio']"),
        ({"heads": {"audio": None}}, "heads['audio']"),
    ],
)
def test_wrap_refuses_bools_and_non_selectors(kwargs, named):
    """A bool is not an index (``True`` would silently pick element 1), nor is a float: wrap
    refuses them at once with a TypeError naming the option, before any forward."""
    assert_raises_naming(
        TypeError, named, avrobust.wrap, TwoEncoders(), ["audio", "visual"], **kwargs
    )


def test_wrap_still_takes_ints_keys_and_functions():
    """The valid selectors keep working: an int index, and a function of the output (reference:
    the model's own output)."""
    model = TwoEncoders()
    x = two_inputs()
    ref = model(x["audio"], x["visual"])
    by_index = avrobust.wrap(model, ["audio", "visual"], logits=1)(**x)
    by_function = avrobust.wrap(model, ["audio", "visual"], logits=lambda o: o[0])(**x)
    by_numpy_int = avrobust.wrap(model, ["audio", "visual"], logits=np.int64(1))(**x)
    assert torch.equal(by_index.logits, ref[1]) and torch.equal(by_function.logits, ref[0])
    assert torch.equal(by_numpy_int.logits, ref[1])


# ------------------------------------------------------------------ case 2: a submodule not run


def test_embedding_submodule_that_never_runs_is_an_error():
    """An ``embeddings=`` submodule that the forward never calls would leave the embedding
    silently missing (or stale); the call raises ValueError naming the key and the submodule."""
    wrapped = avrobust.wrap(
        TwoEncoders(), ["audio", "visual"], logits=0, embeddings={"joint": "spare"}
    )
    message = assert_raises_naming(ValueError, "embeddings['joint']", wrapped, **two_inputs())
    assert "'spare'" in message and "did not run" in message


# -------------------------------------------------------------- case 3: a submodule run twice


def test_shared_encoder_called_twice_is_refused():
    """A shared encoder runs once per input; capturing only its last call would silently give
    the visual embedding under the name the user meant for the audio one. Refused, naming the
    key, the submodule and how many calls."""
    wrapped = avrobust.wrap(SharedEncoder(), ["audio", "visual"], embeddings={"audio": "enc"})
    x = {"audio": torch.rand(2, 4), "visual": torch.rand(2, 4)}
    message = assert_raises_naming(ValueError, "embeddings['audio']", wrapped, **x)
    assert "'enc'" in message and "2 times" in message


def test_same_submodule_under_two_names_is_fine():
    """Two embedding names on one submodule that runs once both get its output."""
    model = TwoEncoders()
    wrapped = avrobust.wrap(
        model, ["audio", "visual"], logits=0, embeddings={"a": "enc_a", "b": "enc_a"}
    )
    x = two_inputs()
    out = wrapped(**x)
    assert torch.equal(out.embeddings["a"], model.enc_a(x["audio"]))
    assert torch.equal(out.embeddings["b"], out.embeddings["a"])


# -------------------------------------------------------------- case 4: hooks and stale captures


def test_hooks_do_not_accumulate_over_many_wraps():
    """51 wraps of one model (each called once) leave no forward hook on any submodule: hooks
    live only for the duration of a wrapped forward, also when that forward raises."""
    model = TwoEncoders()
    x = two_inputs()
    for _ in range(51):
        avrobust.wrap(model, ["audio", "visual"], logits=0, embeddings={"audio": "enc_a"})(**x)
    counts = {name: len(m._forward_hooks) for name, m in model.named_modules()}
    assert counts == dict.fromkeys(counts, 0)
    wrapped = avrobust.wrap(model, ["audio", "visual"], logits=0, embeddings={"audio": "enc_a"})
    with pytest.raises(RuntimeError):  # a shape error inside the model's forward
        wrapped(audio=torch.rand(2, 7), visual=torch.rand(2, 8))
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_direct_call_leaves_no_captured_tensor_and_no_stale_embedding():
    """After a wrapped call, a direct call of the underlying model must not be captured: the
    encoder output of the direct call is freed as soon as the caller drops it (weakref), and the
    next wrapped call carries its own embedding (reference: ``model.enc_a`` on its input)."""
    model = TwoEncoders()
    wrapped = avrobust.wrap(model, ["audio", "visual"], logits=0, embeddings={"audio": "enc_a"})
    first = two_inputs(seed=1)
    wrapped(**first)
    direct = two_inputs(seed=2)
    logits, e_a = model(direct["audio"], direct["visual"])
    alive = weakref.ref(e_a)
    del logits, e_a
    gc.collect()
    assert alive() is None, "the wrapper kept the direct call's encoder output alive"
    third = two_inputs(seed=3)
    out = wrapped(**third)
    assert torch.equal(out.embeddings["audio"], model.enc_a(third["audio"]))


# ------------------------------------------------------------- case 5: non-finite checkpoints


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_checkpoint_with_non_finite_weights_is_refused(tmp_path: Path, bad: float):
    """A checkpoint whose weights hold NaN or Inf would load silently and give NaN scores:
    refused, naming the file and the offending key (official layout); the model is untouched."""
    model = TalkNet("tiny")
    state = model.official_state_dict()
    key = "model.selfAV.norm1.weight"
    state[key] = state[key].clone()
    state[key][1] = bad
    path = tmp_path / "broken.model"
    torch.save(state, path)
    message = assert_raises_naming(ValueError, str(path), TalkNet.from_checkpoint, path, "tiny")
    assert key in message and "1 " in message
    before = model.selfAV.norm1.weight.detach().clone()
    message = assert_raises_naming(ValueError, "state_dict", load_official_state_dict, model, state)
    assert key in message
    assert torch.equal(model.selfAV.norm1.weight, before)


# ------------------------------------------------------------------ case 6: checkpoint paths


def test_checkpoint_path_errors_name_the_path(tmp_path: Path):
    """``None`` or an int (TypeError) and a NUL byte (ValueError) name the argument ``path``; a
    directory and a missing file give FileNotFoundError naming the path (the type callers such as
    the CLI already catch), not an OS or torch traceback. Saving onto a directory names it too."""
    assert_raises_naming(TypeError, "path:", TalkNet.from_checkpoint, None)
    assert_raises_naming(TypeError, "path:", TalkNet.from_checkpoint, 3)
    assert_raises_naming(ValueError, "path:", TalkNet.from_checkpoint, "weights\0.model")
    message = assert_raises_naming(FileNotFoundError, str(tmp_path), read_state_dict, tmp_path)
    assert "directory" in message
    assert_raises_naming(
        FileNotFoundError, "missing.model", read_state_dict, tmp_path / "missing.model"
    )
    tiny = TalkNet("tiny")
    assert_raises_naming(TypeError, "path:", tiny.save_checkpoint, None)
    assert_raises_naming(IsADirectoryError, str(tmp_path), tiny.save_checkpoint, tmp_path)


# ------------------------------------------------------------------ case 7: bad-input table


def _tiny_state() -> dict[str, torch.Tensor]:
    return TalkNet("tiny").official_state_dict()


def _wrapped_call_with_non_tensor_embedding() -> object:
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = _DictOut()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.enc(x)["y"]

    wrapped = avrobust.wrap(Model(), ["audio"], embeddings={"audio": "enc"})
    return wrapped(audio=torch.zeros(2, 3))


class _DictOut(nn.Module):
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"y": x * 2}


def _event_forward_with_two_batch_sizes() -> object:
    model = AVEventNet(5, dim=8).eval()
    return model(audio=torch.zeros(2, 512), visual=torch.zeros(3, 3, 16, 16))


BAD_INPUTS = {
    # avrobust.wrap (fixed: these were AttributeErrors, bare TypeErrors or silently accepted)
    "wrap-heads-list": (
        TypeError,
        "heads",
        lambda: avrobust.wrap(TwoEncoders(), heads=[1]),  # type: ignore[arg-type]
    ),
    "wrap-embeddings-list": (
        TypeError,
        "embeddings",
        lambda: avrobust.wrap(TwoEncoders(), embeddings=["enc_a"]),  # type: ignore[arg-type]
    ),
    "wrap-embedding-path-int": (
        TypeError,
        "embeddings['a']",
        lambda: avrobust.wrap(TwoEncoders(), embeddings={"a": 3}),  # type: ignore[dict-item]
    ),
    "wrap-head-weight-str": (
        TypeError,
        "head_weights['audio']",
        lambda: avrobust.wrap(TwoEncoders(), head_weights={"audio": "x"}),  # type: ignore[dict-item]
    ),
    "wrap-head-weight-negative": (
        ValueError,
        "head_weights['audio']",
        lambda: avrobust.wrap(TwoEncoders(), head_weights={"audio": -1.0}),
    ),
    "wrap-inputs-int-names": (
        TypeError,
        "inputs",
        lambda: avrobust.wrap(TwoEncoders(), [1, 2]),  # type: ignore[list-item]
    ),
    "wrap-inputs-duplicate-names": (
        ValueError,
        "inputs",
        lambda: avrobust.wrap(TwoEncoders(), ["audio", "audio"]),
    ),
    "wrap-embedding-not-a-tensor": (
        TypeError,
        "embeddings['audio']",
        _wrapped_call_with_non_tensor_embedding,
    ),
    # avrobust.wrap (pinned: already clear)
    "wrap-inputs-bool-position": (
        TypeError,
        "inputs['audio']",
        lambda: avrobust.wrap(TwoEncoders(), {"audio": True}),
    ),
    "wrap-inputs-string": (TypeError, "inputs", lambda: avrobust.wrap(TwoEncoders(), "audio")),
    # as_avoutput
    "as-avoutput-logits-not-tensor": (
        TypeError,
        "logits",
        lambda: as_avoutput(avrobust.AVOutput("x")),  # type: ignore[arg-type]
    ),
    "as-avoutput-tuple": (
        TypeError,
        "model output",
        lambda: as_avoutput((torch.zeros(2, 2), torch.zeros(2, 2))),
    ),
    # TalkNet and TalkNetConfig
    "config-cross-attention-str": (
        TypeError,
        "cross_attention",
        lambda: TalkNetConfig(cross_attention="yes"),  # type: ignore[arg-type]
    ),
    "config-stage-width-zero": (
        ValueError,
        "audio_channels[3]",
        lambda: TalkNetConfig(audio_channels=(8, 16, 32, 0)),
    ),
    "config-fps-nan": (ValueError, "fps", lambda: TalkNetConfig(fps=float("nan"))),
    "talknet-config-int": (TypeError, "config", lambda: TalkNet(3)),  # type: ignore[arg-type]
    "talknet-unknown-field": (TypeError, "face_sz", lambda: TalkNet("tiny", face_sz=3)),
    "talknet-strict-str": (
        TypeError,
        "strict",
        lambda: TalkNet("tiny").load_official_state_dict(_tiny_state(), strict="no"),  # type: ignore[arg-type]
    ),
    # the registry
    "list-models-pattern-int": (TypeError, "pattern", lambda: list_models(3)),  # type: ignore[arg-type]
    "create-model-unknown": (ValueError, "name", lambda: create_model("no_such_model")),
    "register-model-not-callable": (TypeError, "factory", lambda: register_model("x_h2", 3)),  # type: ignore[arg-type]
    "register-model-taken": (
        ValueError,
        "name",
        lambda: register_model("tiny", lambda: nn.Linear(1, 1)),
    ),
    # AVEventNet and make_fusion
    "event-memory-int": (TypeError, "memory", lambda: AVEventNet(5, memory=3)),  # type: ignore[arg-type]
    "event-batch-sizes-differ": (ValueError, "visual", _event_forward_with_two_batch_sizes),
    "event-unknown-fusion": (ValueError, "fusion", lambda: AVEventNet(5, fusion="median")),
    "event-option-of-another-fusion": (
        TypeError,
        "identity_init",
        lambda: AVEventNet(5, fusion="sum", identity_init=True),
    ),
    "fusion-identity-init-str": (
        TypeError,
        "identity_init",
        lambda: make_fusion("film", 4, identity_init="no"),  # type: ignore[arg-type]
    ),
    "fusion-learned-gates-int": (
        TypeError,
        "learned_gates",
        lambda: make_fusion("gated_sum", 4, learned_gates=1),  # type: ignore[arg-type]
    ),
    "fusion-widths-differ": (ValueError, "dim_visual", lambda: make_fusion("sum", 4, 5)),
}


@pytest.mark.parametrize(("exc_type", "argument", "call"), BAD_INPUTS.values(), ids=BAD_INPUTS)
def test_bad_inputs_name_the_argument(exc_type, argument, call):
    """Each bad input raises ``exc_type`` with a message that names ``argument``."""
    assert_raises_naming(exc_type, argument, call)
