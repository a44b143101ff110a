"""The demo's gradient-masking checks (avrobust.demo.masking): avrobust.diagnose on each model at
the table's budget, with settings sized from the config, and the summary's Markdown section."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming, assert_same_model, snapshot
from torch import nn

from avrobust import diagnose, push_pull_budgets
from avrobust.data.synthetic import SyntheticActiveSpeaker
from avrobust.demo import PRESETS
from avrobust.demo.masking import (
    LARGE_EPS_AV,
    MAX_QUERIES,
    masking_checks,
    masking_section,
    masking_settings,
)
from avrobust.diagnostics import Diagnosis, Flag
from avrobust.models import TalkNet

CONFIG = PRESETS["test"]


class _Detached(nn.Module):
    """A model that hides its gradients: the inputs are detached before TalkNet sees them."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, audio: torch.Tensor, visual: torch.Tensor):
        return self.inner(audio=audio.detach(), visual=visual.detach())


def _model(seed: int, **overrides: object) -> TalkNet:
    torch.manual_seed(seed)
    return TalkNet("tiny", face_size=CONFIG.face_size, **overrides).eval()  # type: ignore[arg-type]


def _data():
    return SyntheticActiveSpeaker(
        6, frames=CONFIG.frames, face_size=CONFIG.face_size, seed=3
    ).tensors()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_settings_follow_the_config_and_reach_a_large_budget(preset: str) -> None:
    config = PRESETS[preset]
    for table_eps in (5.0, config.table_eps, 500.0):
        grid = tuple(sorted({*config.eps_grid, table_eps}))
        settings = masking_settings(config.replace(eps_grid=grid, table_eps=table_eps))
        scales = settings["scales"]
        assert scales[0] == 1.0 and list(scales) == sorted(set(scales))
        assert table_eps * scales[-1] >= LARGE_EPS_AV and scales[-1] >= 10
    settings = masking_settings(config)
    assert settings["steps"] == config.attack_steps
    assert settings["queries"] == min(config.worst_case_queries, MAX_QUERIES)
    assert settings["seed"] == config.seed


def test_checks_equal_diagnose_and_flag_a_model_that_hides_its_gradients() -> None:
    """Reference: avrobust.diagnose called directly with the same settings; the detached model
    must fire "gradients" (its input gradients are all None, i.e. 100 % zero)."""
    inputs, labels = _data()
    clean = {k: v.clone() for k, v in inputs.items()}
    models = {"A": _model(1), "X": _Detached(_model(2))}
    surrogate = _model(3, cross_attention=False)
    before = {k: snapshot(m) for k, m in models.items()}
    lines: list[str] = []
    with pytest.warns(UserWarning, match="received no gradient"):  # the detached model's
        found = masking_checks(
            CONFIG, models, (inputs, labels), [0, 2, 5], surrogate, report=lines.append
        )
    for key, model in models.items():
        assert_same_model(before[key], model)
    for k, v in inputs.items():
        assert torch.equal(v, clean[k]), k
    assert found.clips == (0, 2, 5) and found.eps_av == CONFIG.table_eps
    assert set(found.diagnoses) == set(found.seconds) == {"A", "X"}
    assert all(s > 0 for s in found.seconds.values())
    pick = torch.tensor([0, 2, 5])
    direct = diagnose(
        models["A"],
        {k: v[pick] for k, v in inputs.items()},
        labels[pick],
        push_pull_budgets(CONFIG.table_eps),
        surrogate=surrogate,
        **masking_settings(CONFIG),
    )
    assert found.diagnoses["A"].accuracy == direct.accuracy
    assert [f.fired for f in found.diagnoses["A"].flags] == [f.fired for f in direct.flags]
    assert "transfer" in direct.accuracy
    detached = found.diagnoses["X"]
    assert detached.flag("gradients").fired and "X" in found.flagged
    section = found.section
    assert section.startswith("## Gradient-masking checks (Carlini et al., 2019)\n")
    assert f"**gradients**: {detached.flag('gradients').sentence}" in section
    assert "transfer from (S) ncTalkNet" in section
    assert len(lines) == 2 and lines[1].startswith("masking checks of (X): gradients")


def test_section_says_no_flag_fired_or_lists_the_fired_flags() -> None:
    ok = Diagnosis([Flag("eps_growth", False, "fine")], {"clean": 1.0, "pgd": 0.25}, samples=4)
    bad = Diagnosis(
        [Flag("eps_growth", True, "grew"), Flag("noise", True, "noisy"), Flag("x", False, "no")],
        {"clean": 1.0, "pgd": 1.0},
        samples=4,
    )
    text = masking_section(CONFIG, {"A": ok, "B": bad}, masking_settings(CONFIG), 4, False)
    lines = text.splitlines()
    a = next(line for line in lines if line.startswith("- (A)"))
    assert "no flag fired" in a and "PGD 25 %" in a
    assert "- (B) CE_all, BIM adversarial training: 2 flags fired:" in lines
    assert "PGD 1 step, and 4 steps with 2 restarts;" in text  # the test preset's 1 step
    assert "  - **eps_growth**: grew." in lines and "  - **noise**: noisy." in lines
    assert "**x**" not in text and "transfer from" not in text


def test_bad_clips_and_settings_are_named() -> None:
    data = _data()
    models = {"A": _model(1)}
    assert_raises_naming(TypeError, "clips", masking_checks, CONFIG, models, data, [], None)
    assert_raises_naming(ValueError, "clips", masking_checks, CONFIG, models, data, [0, 6], None)
    assert_raises_naming(
        TypeError, "clips[1]", masking_checks, CONFIG, models, data, [0, 1.5], None
    )
    assert_raises_naming(
        TypeError, "settings", masking_checks, CONFIG, models, data, [0], None,
        settings={"surrogate": models["A"]},
    )  # fmt: skip


def test_the_cache_reuses_a_diagnosis_only_for_the_same_model_and_clips(tmp_path, monkeypatch):
    """A second call with the cache diagnoses nothing and gives the same diagnoses and section;
    a model whose weights changed, or other clips, is diagnosed again; an unreadable cache file
    is recomputed, not trusted."""
    import avrobust.demo.masking as masking

    inputs, labels = _data()
    models = {"A": _model(1), "B": _model(2)}
    path = str(tmp_path / "masking.json")
    first = masking_checks(CONFIG, models, (inputs, labels), [0, 2, 5], None, cache=path)
    calls: list[nn.Module] = []

    def counted(model, *args, **kwargs):
        calls.append(model)
        return diagnose(model, *args, **kwargs)

    monkeypatch.setattr(masking, "diagnose", counted)
    lines: list[str] = []
    again = masking_checks(
        CONFIG, models, (inputs, labels), [0, 2, 5], None, cache=path, report=lines.append
    )
    assert calls == [] and again.diagnoses == first.diagnoses and again.section == first.section
    assert all("from the cache" in line for line in lines) and len(lines) == 2
    with torch.no_grad():
        next(models["B"].parameters()).add_(0.01)
    masking_checks(CONFIG, models, (inputs, labels), [0, 2, 5], None, cache=path)
    assert calls == [models["B"]]
    masking_checks(CONFIG, models, (inputs, labels), [0, 2], None, cache=path)
    assert calls[1:] == [models["A"], models["B"]]
    (tmp_path / "masking.json").write_text("{not json")
    masking_checks(CONFIG, models, (inputs, labels), [0, 2], None, cache=path)
    assert calls[3:] == [models["A"], models["B"]]
