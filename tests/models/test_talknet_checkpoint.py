"""Official TalkNet checkpoints: the exact key/shape layout, the key mapping, strict loading, saving."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from avrobust.models import CheckpointMismatchError, TalkNet
from avrobust.models.talknet import (
    avrobust_to_official,
    load_official_state_dict,
    official_to_avrobust,
    read_state_dict,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "talknet_state_dict.json"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference" / "talknet_state_dict.json"


@pytest.fixture(scope="module")
def official_shapes() -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = json.loads(DATA.read_text())
    if SHARED.is_file():  # the copy in tests/data is the shared reference file
        assert json.loads(SHARED.read_text()) == shapes
    return shapes


@pytest.fixture(scope="module")
def model() -> TalkNet:
    torch.manual_seed(0)
    return TalkNet("talknet")


def official_checkpoint(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A synthetic file in the official layout: random values, the official keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1234, dtype=torch.int64)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


def test_saving_layout_equals_the_official_state_dict(
    model: TalkNet, official_shapes: dict[str, list[int]]
) -> None:
    state = model.official_state_dict()
    assert len(state) == 487
    assert list(state) == list(official_shapes)  # same keys, same order
    assert {k: list(v.shape) for k, v in state.items()} == official_shapes
    assert all(
        v.dtype == torch.int64 for k, v in state.items() if k.endswith("num_batches_tracked")
    )
    assert (
        sum(p.numel() for p in model.parameters()) == 15_744_481
    )  # 15,743,451 + 1,030 in the heads


def test_key_mapping_is_pure_and_invertible(official_shapes: dict[str, list[int]]) -> None:
    official = dict.fromkeys(official_shapes, 0)
    mapped = official_to_avrobust(official)
    assert (
        "selfAV.norm1.weight" in mapped and "head_av.weight" in mapped and "head_a.bias" in mapped
    )
    assert not any(k.startswith(("model.", "lossA")) for k in mapped)
    assert avrobust_to_official(mapped) == official
    assert list(official) == list(official_shapes)  # the input is untouched
    wrapped = {"module." + k: v for k, v in official.items()}
    assert official_to_avrobust(wrapped) == mapped
    assert official_to_avrobust({"model.module.selfAV.norm1.bias": 1}) == {"selfAV.norm1.bias": 1}
    with pytest.raises(
        ValueError,
        match=r"state_dict: keys collide after mapping: 'module.lossA.FC.bias' -> 'head_a.bias'",
    ):
        official_to_avrobust({"lossA.FC.bias": 0, "module.lossA.FC.bias": 1})


def test_official_file_round_trips(
    model: TalkNet, official_shapes: dict[str, list[int]], tmp_path: Path
) -> None:
    state = official_checkpoint(official_shapes)
    path = tmp_path / "pretrain_AVA.model"
    torch.save(state, path)
    loaded = TalkNet.from_checkpoint(path)
    assert not loaded.training
    again = loaded.official_state_dict()
    assert list(again) == list(state)
    for key, value in state.items():
        torch.testing.assert_close(again[key], value, rtol=0, atol=0)
    loaded.save_checkpoint(tmp_path / "copy.model")
    saved = torch.load(tmp_path / "copy.model", weights_only=True)
    assert list(saved) == list(state) and all(torch.equal(saved[k], v) for k, v in state.items())


def test_module_prefix_and_missing_num_batches_tracked_are_tolerated(
    model: TalkNet, official_shapes: dict[str, list[int]]
) -> None:
    state = official_checkpoint(official_shapes, seed=1)
    trimmed = {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    report = model.load_official_state_dict(trimmed)
    assert report.ok
    torch.testing.assert_close(model.selfAV.norm1.weight, state["model.selfAV.norm1.weight"])
    torch.testing.assert_close(model.head_v.bias, state["lossV.FC.bias"])


def test_strict_loading_lists_missing_unexpected_and_mismatched_keys(
    model: TalkNet, official_shapes: dict[str, list[int]]
) -> None:
    state = official_checkpoint(official_shapes)
    state.pop("lossAV.FC.weight")
    state.pop("model.selfAV.norm2.bias")
    state["model.extra.weight"] = torch.zeros(3)
    state["lossA.FC.bias"] = torch.zeros(5)
    before = model.head_a.bias.detach().clone()
    with pytest.raises(CheckpointMismatchError) as info:
        load_official_state_dict(model, state)
    message = str(info.value)
    assert "missing keys (2): model.selfAV.norm2.bias, lossAV.FC.weight" in message
    assert "unexpected keys (1): model.extra.weight" in message
    assert "shape mismatches (1): lossA.FC.bias (checkpoint [5], model [2])" in message
    assert info.value.report.missing == ["model.selfAV.norm2.bias", "lossAV.FC.weight"]
    assert isinstance(info.value, ValueError)
    torch.testing.assert_close(model.head_a.bias, before)  # nothing loaded on failure
    with pytest.warns(UserWarning, match=r"checkpoint does not fit TalkNet: missing keys \(2\)"):
        report = load_official_state_dict(model, state, strict=False)
    assert report.unexpected == ["model.extra.weight"]
    torch.testing.assert_close(model.head_v.bias, state["lossV.FC.bias"])


def test_a_variant_refuses_the_official_weights(official_shapes: dict[str, list[int]]) -> None:
    nc = TalkNet("nc_talknet", audio_layers=(1, 1, 1, 1))
    with pytest.raises(
        CheckpointMismatchError,
        match=r"unexpected keys \(216\): model.audioEncoder.layer1.1.conv1.weight, .* and 206 more",
    ) as info:
        nc.load_official_state_dict(official_checkpoint(official_shapes))
    unexpected = info.value.report.unexpected
    assert len(unexpected) == 216 and "model.crossA2V.self_attn.in_proj_weight" in unexpected
    assert not info.value.report.missing


def test_files_that_are_not_state_dicts(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.model"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(
        ValueError,
        match=r"path: '.*garbage.model' is not a PyTorch checkpoint holding a state dict",
    ):
        read_state_dict(garbage)
    listed = tmp_path / "list.model"
    torch.save([torch.zeros(2)], listed)
    with pytest.raises(
        ValueError,
        match=r"checkpoint '.*list.model': expected a state dict \(a flat dict of parameter names to tensors",
    ):
        TalkNet.from_checkpoint(listed, "tiny")
    wrapped = tmp_path / "wrapped.model"
    torch.save({"epoch": 3, "state_dict": {"model.x": torch.zeros(1)}}, wrapped)
    with pytest.raises(
        ValueError,
        match=r"but 2 entries are not tensors: epoch, state_dict.*must be unwrapped first",
    ):
        read_state_dict(wrapped)
    with pytest.raises(FileNotFoundError, match=r"path: no checkpoint file at '.*missing.model'"):
        TalkNet.from_checkpoint(tmp_path / "missing.model")
    with pytest.raises(
        TypeError,
        match=r"state_dict: expected a state dict .*, got \[1, 2\]|state_dict: expected a state dict .*, got list",
    ):
        load_official_state_dict(TalkNet("tiny"), [1, 2])  # type: ignore[arg-type]


def test_map_location_defaults_to_cpu(tmp_path: Path) -> None:
    tiny = TalkNet("tiny")
    tiny.save_checkpoint(tmp_path / "tiny.model")
    state = read_state_dict(tmp_path / "tiny.model")
    assert all(v.device.type == "cpu" for v in state.values())
    reloaded = TalkNet.from_checkpoint(
        tmp_path / "tiny.model", "tiny", map_location=torch.device("cpu")
    )
    for (k, a), b in zip(tiny.state_dict().items(), reloaded.state_dict().values()):
        assert torch.equal(a, b), k
