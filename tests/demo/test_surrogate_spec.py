"""The demo's transfer surrogate (Push-Pull §4.2: ncTalkNet / specTalkNet), the architectures a
demo model may have, and the worst-case attack's settings: validated, and kept out of the cache
key of models A-E (so the caches made before these settings existed stay valid)."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
from helpers import assert_raises_naming

from avrobust.data.synthetic import SyntheticActiveSpeaker
from avrobust.demo import PRESETS, DemoConfig, ModelSpec
from avrobust.demo.config import surrogate_spec
from avrobust.demo.training import _model_payload, cache_path, load_or_train

#: the fields a ModelSpec had before ``architecture``: today's cache keys hash exactly these
_FIELDS_BEFORE = ("key", "description", "avil_terms", "adversarial", "init_from")


def _small(**changes: object) -> DemoConfig:
    return PRESETS["test"].replace(train_steps=1, train_clips=4, test_clips=4, **changes)


def _data(config: DemoConfig):
    return SyntheticActiveSpeaker(
        config.train_clips, frames=config.frames, face_size=config.face_size, seed=1
    ).tensors()


# ----------------------------------------------------------------------------- cache keys


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_default_architecture_keeps_the_cache_key_of_before(preset: str) -> None:
    """Reference: the payload with the spec entry made of the fields of before (no
    ``architecture``), i.e. what ``_model_payload`` hashed before the field was added."""
    config = PRESETS[preset]
    for spec in config.models:
        assert spec.architecture == "talknet"
        payload = _model_payload(spec, config)
        assert "architecture" not in json.dumps(payload)
        before = {f: getattr(spec, f) for f in _FIELDS_BEFORE}
        assert payload["spec"] == before
        assert payload["model"] == {"variant": "tiny", "face_size": config.face_size}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_surrogate_worst_case_and_grid_settings_keep_the_cache_of_models_a_to_e(
    preset: str,
) -> None:
    config = PRESETS[preset]
    other = config.replace(
        surrogate="spec_talknet" if config.surrogate == "nc_talknet" else "nc_talknet",
        worst_case_steps=config.worst_case_steps + 3,
        worst_case_queries=config.worst_case_queries + 5,
        eps_grid=(*config.eps_grid, 123.0),
        tie_margin=config.tie_margin + 1,
    )
    assert [cache_path(s, other, "") for s in other.models] == [
        cache_path(s, config, "") for s in config.models
    ]


def test_another_architecture_changes_the_cache_key() -> None:
    config = PRESETS["default"]
    a = config.models[0]
    paths = {
        arch: cache_path(dataclasses.replace(a, architecture=arch), config, "")
        for arch in ("talknet", "nc_talknet", "spec_talknet")
    }
    assert paths["talknet"] == cache_path(a, config, "")
    assert len(set(paths.values())) == 3, paths
    nc = _model_payload(dataclasses.replace(a, architecture="nc_talknet"), config)
    assert nc["spec"]["architecture"] == "nc_talknet"
    assert nc["model"]["cross_attention"] is False


# ----------------------------------------------------------------------------- validation


def test_model_spec_architecture_is_checked_and_lower_cased() -> None:
    assert ModelSpec("A", "x", architecture="NC_TalkNet").architecture == "nc_talknet"
    message = assert_raises_naming(
        ValueError, "architecture", ModelSpec, "A", "x", architecture="x"
    )
    assert "spec_talknet" in message
    assert_raises_naming(TypeError, "architecture", ModelSpec, "A", "x", architecture=None)


def test_surrogate_and_worst_case_settings_are_checked() -> None:
    base = PRESETS["test"]
    assert_raises_naming(ValueError, "surrogate", base.replace, surrogate="talknet")
    assert_raises_naming(TypeError, "surrogate", base.replace, surrogate=1)
    assert base.replace(surrogate="Spec_TalkNet").surrogate == "spec_talknet"
    for name in ("worst_case_steps", "worst_case_queries"):
        assert_raises_naming(ValueError, name, base.replace, **{name: 0})
        assert_raises_naming(TypeError, name, base.replace, **{name: 2.5})
        assert_raises_naming(TypeError, name, base.replace, **{name: True})


def test_presets_worst_case_settings_are_the_ones_the_help_states() -> None:
    """``avrobust demo --help`` states the worst case's defaults of the default and quick
    presets; they must be the presets' own."""
    from avrobust.cli import build_parser

    demo = next(
        a
        for a in build_parser()._subparsers._group_actions[0].choices.values()
        if "--worst-case-steps" in a.format_help()
    )
    text = " ".join(demo.format_help().split())
    for option, field in (("steps", "worst_case_steps"), ("queries", "worst_case_queries")):
        default, quick = PRESETS["default"], PRESETS["quick"]
        stated = f"(default {getattr(default, field)}; --quick {getattr(quick, field)})"
        assert stated in text, (option, stated)
    assert PRESETS["default"].worst_case_restarts > PRESETS["quick"].worst_case_restarts
    assert DemoConfig().surrogate == "nc_talknet"


# ----------------------------------------------------------------------------- the surrogate


@pytest.mark.parametrize(
    ("surrogate", "name"), [("nc_talknet", "ncTalkNet"), ("spec_talknet", "specTalkNet")]
)
def test_surrogate_spec_is_model_a_with_the_papers_architecture(surrogate: str, name: str) -> None:
    config = PRESETS["default"].replace(surrogate=surrogate)
    spec = surrogate_spec(config)
    a = next(s for s in config.models if s.key == "A")
    assert spec.key == "S" and spec.architecture == surrogate
    assert (spec.avil_terms, spec.adversarial, spec.init_from) == (a.avil_terms, False, None)
    assert spec.description.startswith(name) and "surrogate" in spec.description
    assert "S" not in [s.key for s in config.models]
    assert config.model_label("S") == f"(S) {spec.description}"


@pytest.mark.parametrize(
    ("surrogate", "changed"),
    [("nc_talknet", {"cross_attention": False}), ("spec_talknet", {"features": "spectrogram"})],
)
def test_load_or_train_builds_caches_and_reloads_the_surrogate(
    tmp_path: object, surrogate: str, changed: dict[str, object]
) -> None:
    """The model's configuration is compared with the named TalkNet variant's fields."""
    config = _small(surrogate=surrogate)
    spec = surrogate_spec(config)
    cache = os.fspath(tmp_path)  # type: ignore[call-overload]
    model, cached = load_or_train(spec, config, _data(config), {}, cache, False)
    assert not cached
    for field, value in changed.items():
        assert getattr(model.config, field) == value
    assert model.config.face_size == config.face_size
    again, cached = load_or_train(spec, config, ({}, torch.zeros(0)), {}, cache, False)
    assert cached
    assert again.config == model.config
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    with open(cache_path(spec, config, cache)[: -len(".model")] + ".json") as handle:
        assert json.load(handle)["spec"]["architecture"] == surrogate
