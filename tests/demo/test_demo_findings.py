"""Issue 11, the demo's findings as data: small claim functions with named thresholds, returning
structured verdicts that the summary and the command read (no Markdown scraping).

The reports are built by hand from per-clip scores (label + Gaussian noise), so the size of the
attack's harm is known; the thresholds are shown to be the ones used by moving them.
"""

from __future__ import annotations

import numpy as np
import pytest

import avrobust.demo._attack_claims as attack_claims
from avrobust.demo import (
    CLAIMS,
    PRESETS,
    SERIOUS_LOSS_POINTS,
    VERDICTS,
    DemoResult,
    Finding,
    findings,
)
from avrobust.demo.outputs import summary_text
from avrobust.evaluation import CellResult, EvaluationReport
from avrobust.metrics import average_precision


def _cell(adv_noise: float, g: np.random.Generator, rule: str = "pgd") -> CellResult:
    """A PGD audio-visual cell on 24 clips of 16 frames: clean scores = labels (mAP 100), attacked
    scores = labels + Gaussian noise of ``adv_noise``."""
    labels = [np.full(16, i % 2) for i in range(24)]
    clean = [y.astype(float) for y in labels]
    adv = [y + adv_noise * g.standard_normal(16) for y in labels]
    flat = np.concatenate(labels)
    return CellResult(
        rule=rule, eps=20.0, modalities=("audio", "visual"),
        map_clean=float(average_precision(np.concatenate(clean), flat)),
        map_adv=float(average_precision(np.concatenate(adv), flat)),
        success_rate=0.0, frame_error_rate=0.0, ecr={"audio": 0.5, "visual": 0.5},
        samples=24, frames=int(flat.size),
        per_clip={"labels": [y.tolist() for y in labels], "clean": [c.tolist() for c in clean],
                  "adv": [a.tolist() for a in adv],
                  "ecr": {"audio": [0.5] * 24, "visual": [0.5] * 24}},
    )  # fmt: skip


def _setting(noise: float = 1.0):
    """(config, clean_map, reports): (A) and (D) under PGD at eps_av 20, (D) less harmed."""
    config = PRESETS["test"].replace(rules=("pgd",), eps_grid=(20.0,), table_eps=20.0)
    g = np.random.default_rng(0)
    reports = {
        k: EvaluationReport({}, {}, list(range(24)), [_cell(n, g)])
        for k, n in (("A", noise), ("D", 0.2))
    }
    return config, {"A": 0.99, "D": 0.98}, reports


def test_every_finding_is_structured() -> None:
    """Each finding has a verdict among VERDICTS, a unique name, and its compared numbers with
    their 95 % intervals (low <= value <= high where an interval exists)."""
    found = findings(*_setting(), {})
    assert len(found) >= 5
    assert all(isinstance(f, Finding) and f.verdict in VERDICTS for f in found)
    names = [f.name for f in found]
    assert all(names) and len(set(names)) == len(names)
    numbers = [n for f in found for n in f.numbers]
    assert numbers and all(n.label for n in numbers)
    for n in numbers:
        if n.low is not None:
            assert n.low <= n.value + 1e-9 and n.value <= n.high + 1e-9, n


def test_the_serious_loss_threshold_is_the_named_constant(monkeypatch) -> None:
    """The white-box claim compares the interval of (A)'s mAP loss with SERIOUS_LOSS_POINTS: a
    threshold below the interval makes it held, one above it makes it not held; the number
    carries the threshold."""
    setting = _setting(noise=1.0)

    def white_box() -> Finding:
        return next(f for f in findings(*setting, {}) if f.name == "white_box_degrades")

    loss = white_box().numbers[0]
    assert loss.threshold == SERIOUS_LOSS_POINTS and loss.low is not None
    monkeypatch.setattr(attack_claims, "SERIOUS_LOSS_POINTS", loss.low - 1.0)
    assert white_box().verdict == "held"
    monkeypatch.setattr(attack_claims, "SERIOUS_LOSS_POINTS", loss.high + 1.0)
    found = white_box()
    assert found.verdict == "did not hold"
    assert f"more than {loss.high + 1.0:g} points" in found.evidence


def test_claims_are_small_functions_in_the_summary_order() -> None:
    """CLAIMS lists one callable per claim; findings() returns, in that order, those that apply."""
    config, clean_map, reports = _setting()
    found = findings(config, clean_map, reports, {})
    from avrobust.demo.findings import Evidence, Intervals

    evidence = Evidence(config, clean_map, reports, {}, Intervals(config))
    expected = [f for f in (claim(evidence) for claim in CLAIMS) if f is not None]
    assert [f.name for f in found] == [f.name for f in expected]
    assert all(callable(c) for c in CLAIMS) and len(CLAIMS) >= 12


def test_summary_lists_exactly_the_findings() -> None:
    """summary.md's findings section is made from the Finding objects, one bullet each."""
    config, clean_map, reports = _setting()
    found = findings(config, clean_map, reports, {})
    text = summary_text(config, "", found, {"train": 1.0, "evaluate": 2.0})
    bullets = [line for line in text.splitlines() if line.startswith("- **")]
    assert bullets == [f"- **{f.verdict}**: {f.claim} {f.evidence}." for f in found]
    held = sum(f.verdict == "held" for f in found)
    assert f"held here ({held} of {len(found)})" in text


def test_the_command_prints_the_findings_not_the_markdown(monkeypatch, tmp_path, capsys) -> None:
    """``avrobust demo`` prints DemoResult.findings, whatever the summary's Markdown says."""
    import avrobust.demo
    from avrobust.cli import main

    config = PRESETS["test"]
    made = [
        Finding("Claim one.", "held", "evidence one", name="one"),
        Finding("Claim two.", "inconclusive", "evidence two", name="two"),
    ]

    def fake_run(out, cfg, **kwargs):
        assert cfg == config
        summary = "- **did not hold**: a line the command must not scrape."
        return DemoResult(cfg, {}, {}, {}, "| table |", summary, [], {"total": 0.0}, [], made)

    monkeypatch.setattr(avrobust.demo, "run_demo", fake_run)
    assert main(["demo", "--preset", "test", "--quiet", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "  held: Claim one. evidence one." in printed
    assert "  inconclusive: Claim two. evidence two." in printed
    assert "must not scrape" not in printed


@pytest.mark.parametrize("verdict", VERDICTS)
def test_finding_line(verdict) -> None:
    """Finding.line() is the one-line form the command prints."""
    assert Finding("C.", verdict, "e").line() == f"{verdict}: C. e."
