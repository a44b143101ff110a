"""Issue 19, point 2: verdicts rest on measures that can move, and each rule is applied as
written.

The rules are checked on hand-made intervals (:func:`gain_outcome`, :func:`count_verdict`) and,
end to end, on hand-made reports whose scores carry no ranking at all (every frame of a model
scored alike: its mAP is the share of speaking frames, the floor), so which measure decides is
known in advance.
"""

from __future__ import annotations

import numpy as np
import pytest

import avrobust.demo.verdicts as rules
from avrobust.demo import PRESETS, findings
from avrobust.demo.verdicts import CLEAN_COST_POINTS, VERDICTS, count_verdict
from avrobust.evaluation import CellResult, EvaluationReport
from avrobust.metrics import average_precision

NAN = float("nan")
MARGIN = 2.0


# ----------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("value", "floor", "expected"),
    [(49.5, 49.5, True), (51.4, 49.5, True), (47.6, 49.5, True), (51.6, 49.5, False),
     (None, 49.5, False), (49.5, None, False)],
)  # fmt: skip
def test_at_the_floor_means_within_the_tie_margin_of_it(value, floor, expected) -> None:
    assert rules.at_floor(value, floor, margin=MARGIN) is expected


@pytest.mark.parametrize(
    ("map_gain", "accuracy_gain", "floored", "expected"),
    [
        ((3.0, 9.0), (-9.0, 1.0), False, ("held", "mAP")),  # off the floor: mAP decides
        ((-0.0, 0.0), (9.6, 33.1), False, ("did not hold", "mAP")),
        ((-0.0, 0.0), (9.6, 33.1), True, ("held", "frame accuracy")),  # the D > C
        ((-0.0, 0.0), (-33.1, -9.6), True, ("did not hold", "frame accuracy")),
        (
            (-0.0, 0.0),
            (-9.6, 7.8),
            True,
            ("saturated", "saturated: cannot separate"),
        ),  # accuracy tied too
        (
            (-0.0, 0.0),
            (-1.0, 1.0),
            True,
            ("saturated", "saturated: cannot separate"),
        ),  # surely tied: no evidence
        (
            (-0.0, 0.0),
            None,
            True,
            ("saturated", "saturated: cannot separate"),
        ),  # no accuracy to fall back on
    ],
)
def test_at_the_floor_frame_accuracy_decides_or_the_pair_is_saturated(
    map_gain, accuracy_gain, floored, expected
) -> None:
    """Both sides at the mAP floor: the gain of frame accuracy decides, against the same margin
    (above it: held; below minus it: did not hold); else "saturated" (the measures cannot
    separate the pair). Off the floor mAP decides as before."""
    assert rules.gain_outcome(map_gain, accuracy_gain, margin=MARGIN, floored=floored) == expected


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        (["did not hold", "inconclusive"], "did not hold"),  # one clearly beyond: not held
        (["did not hold", "did not hold", "inconclusive"], "did not hold"),
        (["held", "did not hold", "inconclusive"], "partly"),
        (["held", "inconclusive"], "inconclusive"),  # not every part shown
        (["held", "saturated"], "saturated"),
        (["saturated", "inconclusive"], "inconclusive"),
        (["saturated", "did not hold"], "did not hold"),
        (["held", "held"], "held"),
        ([], "not tested"),
    ],
)
def test_a_verdict_with_an_interval_clearly_beyond_is_never_inconclusive(outcomes, verdict):
    """A claim is a conjunction: one comparison clearly on the wrong side makes it "did not
    hold" (or "partly" when another clearly held), whatever the others straddle."""
    assert count_verdict(outcomes) == verdict
    assert verdict in VERDICTS


# ----------------------------------------------------------------------------- end to end


def _cell(scores, labels, *, ecr=(0.5, 0.5), rule="worst-case") -> CellResult:
    flat = np.concatenate(labels)
    clean = [np.asarray(y, dtype=float) for y in labels]
    right = np.concatenate(
        [(np.asarray(s) >= 0.5) == np.asarray(y) for s, y in zip(scores, labels)]
    )
    return CellResult(
        rule=rule, eps=20.0, modalities=("audio", "visual"),
        map_clean=1.0, map_adv=float(average_precision(np.concatenate(scores), flat)),
        success_rate=0.0, frame_error_rate=0.0, ecr={"audio": ecr[0], "visual": ecr[1]},
        samples=len(labels), frames=int(flat.size),
        accuracy_clean=1.0, accuracy_adv=float(right.mean()),
        per_clip={"labels": [list(map(int, y)) for y in labels],
                  "clean": [c.tolist() for c in clean],
                  "adv": [list(map(float, s)) for s in scores],
                  "ecr": {"audio": [ecr[0]] * len(labels), "visual": [ecr[1]] * len(labels)}},
    )  # fmt: skip


def _labels(n: int = 24, frames: int = 16):
    """Clips mostly speaking (3 of 4 frames on average, varying), so 'all speaking' and 'none
    speaking' differ in frame accuracy though neither ranks the frames."""
    g = np.random.default_rng(1)
    return [(g.random(frames) < 0.75).astype(int) for _ in range(n)]


def _floor_reports(constants: dict[str, float]) -> dict[str, EvaluationReport]:
    """Every frame of model k scored ``constants[k]`` on the same clips: mAP at the floor,
    frame accuracy the share of speaking frames (score >= 0.5) or of silent ones."""
    labels = _labels()
    return {
        k: EvaluationReport(
            {}, {}, list(range(24)), [_cell([np.full(16, c) for c in [v] * 24], labels)]
        )
        for k, v in constants.items()
    }


def _config():
    return PRESETS["test"].replace(rules=("pgd",), eps_grid=(20.0,), table_eps=20.0)


def _finding(name, reports, clean=None):
    clean = clean or dict.fromkeys(reports, 0.99)
    return next(f for f in findings(_config(), clean, reports, {}) if f.name == name)


def test_both_at_the_floor_frame_accuracy_decides_and_the_evidence_names_it() -> None:
    """(A) calls every frame silent, (D) every frame speaking: both mAPs are the floor (the
    share of speaking frames), mAP gain exactly 0, and (D) is right on about 75 % of the frames
    against 25 %. Before: "did not hold" on the +0.0 mAP gain; now held on frame accuracy, the
    evidence naming the floor and the measure, and the accuracy Number carrying the margin."""
    found = _finding("avil_pair_helps", _floor_reports({"A": 0.2, "D": 0.8}))
    assert found.verdict == "held", found
    assert "mAP floor" in found.evidence and "frame accuracy decides" in found.evidence
    thresholds = {n.label: n.threshold for n in found.numbers}
    accuracy = next(k for k in thresholds if "frame accuracy" in k)
    assert thresholds[accuracy] == _config().tie_margin
    assert next(v for k, v in thresholds.items() if "frame accuracy" not in k) is None


def test_both_at_the_floor_with_the_same_frames_right_is_saturated() -> None:
    """The same scores for (D) and (A): nothing separates them. Before: "did not hold"; now
    "saturated", and the evidence says it cannot separate them."""
    found = _finding("avil_pair_helps", _floor_reports({"A": 0.8, "D": 0.8}))
    assert found.verdict == "saturated", found
    assert "saturated: cannot separate" in found.evidence


def test_off_the_floor_map_still_decides() -> None:
    """(D) ranks the frames perfectly (mAP 100): mAP decides, frame accuracy is not needed."""
    reports = _floor_reports({"A": 0.8})
    labels = [np.asarray(y) for y in reports["A"].cells[0].per_clip["labels"]]
    reports["D"] = EvaluationReport({}, {}, list(range(24)), [_cell(labels, labels)])
    found = _finding("avil_pair_helps", reports)
    assert found.verdict == "held" and "frame accuracy decides" not in found.evidence


def test_ecr_verdict_prints_the_paired_differences_and_their_threshold() -> None:
    """AVIL lowers ECR: the evidence gives (A) minus each AVIL model, paired, with its interval
    and the threshold it must exceed; the Numbers carry them."""
    labels = _labels()
    pgd = {k: _cell([np.full(16, 0.8)] * 24, labels, ecr=e, rule="pgd")
           for k, e in (("A", (0.6, 0.6)), ("C", (0.4, 0.4)), ("D", (0.7, 0.7)))}  # fmt: skip
    reports = {k: EvaluationReport({}, {}, list(range(24)), [c]) for k, c in pgd.items()}
    found = _finding("avil_lowers_ecr", reports)
    assert "(A) minus (C) +0.2000 [+0.2000, +0.2000]" in found.evidence, found.evidence
    assert "(A) minus (D) -0.1000 [-0.1000, -0.1000]" in found.evidence
    assert "above the threshold 0" in found.evidence
    assert found.verdict == "partly"
    diffs = [n for n in found.numbers if "minus" in n.label]
    assert [n.threshold for n in diffs] == [0.0, 0.0]


def test_one_defence_clearly_beyond_the_clean_cost_is_did_not_hold(monkeypatch) -> None:
    """The issue's case: (D) clearly more than 2 points below (A) in clean mAP while (B)'s
    interval straddles the threshold. Before: "inconclusive"; now "did not hold", with the
    paired differences and the threshold in the evidence."""
    from avrobust.demo.intervals import Intervals

    g = np.random.default_rng(0)
    base = 98.7 + 0.5 * g.standard_normal(1000)
    samples = {"A": base, "B": base - 2.0 + g.standard_normal(1000), "D": base - 4.4 + 0.4 * g.standard_normal(1000)}  # fmt: skip
    monkeypatch.setattr(Intervals, "clean", lambda self, key: samples.get(key))
    reports = _floor_reports({"A": 0.8})
    found = _finding(
        "defences_cost_little", reports, {k: float(v.mean()) / 100 for k, v in samples.items()}
    )
    assert found.verdict == "did not hold", found
    assert "(D) minus (A) -4.4 [" in found.evidence
    assert f"threshold -{CLEAN_COST_POINTS:g}" in found.evidence


def test_the_rules_as_text_name_every_verdict_and_the_margin() -> None:
    """The summary's paragraph (verdict_rules) states the same rules: every verdict word but
    "not tested", the floor, frame accuracy and the margin given."""
    text = rules.verdict_rules(tie_margin=3.0)
    assert all(f'"{v}"' in text for v in VERDICTS if v != "not tested")
    assert "3 points" in text and "mAP floor" in text and "frame accuracy" in text
