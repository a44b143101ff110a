"""Issue 18: a demo checkpoint carries its architecture in the JSON beside it (``A-<hash>.json``
next to ``A-<hash>.model``); ``avrobust evaluate --checkpoint`` builds that model without
``--model tiny --face-size 32``, and flags that contradict it exit 2 saying which to pass."""

from __future__ import annotations

import json

import pytest
import torch

import avrobust.evaluation
from avrobust.cli import main
from avrobust.demo import PRESETS
from avrobust.demo.config import surrogate_spec
from avrobust.demo.training import _model_payload, cache_path
from avrobust.models import TalkNet
from avrobust.models.talknet.config import TALKNET_VARIANTS

CONFIG = PRESETS["test"]  # face_size 16


def _demo_checkpoint(folder, spec) -> str:
    """A checkpoint and sidecar as the demo writes them (training.load_or_train)."""
    model = _model_payload(spec, CONFIG)["model"]
    variant = model.pop("variant")
    path = cache_path(spec, CONFIG, str(folder))
    torch.manual_seed(0)
    TalkNet(variant, **model).save_checkpoint(path)
    with open(path[: -len(".model")] + ".json", "w") as handle:
        json.dump(_model_payload(spec, CONFIG), handle)
    return path


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return _demo_checkpoint(folder, CONFIG.models[0]), _demo_checkpoint(
        folder, surrogate_spec(CONFIG)
    )


@pytest.fixture
def seen(monkeypatch):
    """The evaluation is replaced by one that records its model, data and surrogate."""
    calls: list[dict] = []

    def record(model, data, grid, **kwargs):
        calls.append({"model": model, "data": data, "surrogate": kwargs.get("surrogate")})
        raise RuntimeError("recorded")

    monkeypatch.setattr(avrobust.evaluation, "evaluate", record)
    return calls


def _argv(checkpoint, *more, tmp_path):
    return [
        "evaluate", "--checkpoint", checkpoint, "--data", "synthetic:2", "--quiet",
        "--threads", "1", "--out", str(tmp_path / "out"), *more,
    ]  # fmt: skip


def test_a_demo_checkpoint_loads_without_model_flags(demo_models, seen, tmp_path) -> None:
    target, surrogate = demo_models
    assert main(_argv(target, "--surrogate", surrogate, tmp_path=tmp_path)) == 1  # recorded
    model, data = seen[0]["model"], seen[0]["data"]
    assert model.config.face_size == 16 and model.config.audio_channels[-1] == 64  # tiny, 16 px
    assert tuple(data[0][0]["visual"].shape[1:]) == (16, 16)
    # the surrogate (S) is the tiny ncTalkNet: no cross-attention, read from its own sidecar
    assert seen[0]["surrogate"].config.cross_attention is False
    assert TALKNET_VARIANTS["tiny"].cross_attention is True


def test_flags_that_agree_with_the_sidecar_are_accepted(demo_models, seen, tmp_path) -> None:
    argv = _argv(demo_models[0], "--model", "tiny", "--face-size", "16", tmp_path=tmp_path)
    assert main(argv) == 1 and seen[0]["model"].config.face_size == 16


@pytest.mark.parametrize(
    ("more", "starts"),
    [(["--model", "talknet"], "--model"), (["--face-size", "32"], "--face-size")],
)
def test_flags_that_contradict_the_sidecar_exit_2_saying_what_to_pass(
    demo_models, seen, tmp_path, capsys, more, starts
) -> None:
    with pytest.raises(SystemExit) as info:
        main(_argv(demo_models[0], *more, tmp_path=tmp_path))
    err = capsys.readouterr().err
    assert info.value.code == 2 and not seen
    (line,) = [line for line in err.splitlines() if "error:" in line]
    message = line.split("error: ", 1)[1]
    assert message.startswith(starts) and "--model tiny --face-size 16" in message, message
    assert ".json" in message


def test_a_checkpoint_without_sidecar_still_needs_the_flags(tmp_path, seen, capsys) -> None:
    path = str(tmp_path / "plain.model")
    TalkNet("tiny", face_size=16).save_checkpoint(path)
    with pytest.raises(SystemExit) as info:
        main(_argv(path, tmp_path=tmp_path))
    assert info.value.code == 2 and "--model talknet" in capsys.readouterr().err
    assert main(_argv(path, "--model", "tiny", "--face-size", "16", tmp_path=tmp_path)) == 1


def test_a_json_beside_that_is_no_demo_sidecar_is_ignored(tmp_path, seen) -> None:
    path = str(tmp_path / "plain.model")
    TalkNet("tiny", face_size=16).save_checkpoint(path)
    (tmp_path / "plain.json").write_text('{"notes": "my run"}')
    assert main(_argv(path, "--model", "tiny", "--face-size", "16", tmp_path=tmp_path)) == 1
