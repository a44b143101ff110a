"""Issue 10, the demo's trust cases: bootstrap intervals behind every verdict, plots that say what
they show, a listening-test manifest a spreadsheet cannot mangle.

The bootstrap is checked against a direct computation (the library's AVA mAP of the explicitly
resampled frames) and by its properties; the verdicts by their rule on constructed intervals;
the plots by their matplotlib artists (legend texts, titles, bar colours and hatches), not pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming

from avrobust.bootstrap import bootstrap_map, bootstrap_mean, clip_counts, percentile_interval
from avrobust.metrics import average_precision


def _clips(n: int, frames: int = 6, seed: int = 0, noise: float = 0.6):
    """n clips of frame scores/labels; half speaking; scores = label + noise, rounded (ties)."""
    g = np.random.default_rng(seed)
    labels = [(g.random(frames) < (0.8 if i % 2 else 0.2)).astype(int) for i in range(n)]
    scores = [np.round(y + noise * g.standard_normal(frames), 1) for y in labels]
    return scores, labels


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_map_equals_the_map_of_the_explicitly_resampled_frames() -> None:
    """Reference: average_precision on the frames of each resample, a clip drawn k times
    repeated k times (scores rounded to 0.1, so tied scores across clips are exercised)."""
    scores, labels = _clips(9)
    counts = clip_counts(9, resamples=6, seed=4)
    fast = bootstrap_map(scores, labels, counts)
    for r in range(6):
        picked = [i for i in range(9) for _ in range(counts[r, i])]
        s = np.concatenate([scores[i] for i in picked])
        y = np.concatenate([labels[i] for i in picked])
        if y.sum() == 0:
            assert np.isnan(fast[r])
        else:
            assert fast[r] == pytest.approx(float(average_precision(s, y)), abs=1e-12)
    counts_all = np.ones((1, 9), dtype=np.int64)  # every clip once: the plain mAP
    plain = average_precision(np.concatenate(scores), np.concatenate(labels))
    assert bootstrap_map(scores, labels, counts_all)[0] == pytest.approx(float(plain), abs=1e-12)


def test_bootstrap_interval_is_reproducible_contains_the_estimate_and_narrows() -> None:
    """Property checks: a seed gives the same counts, another seed others; the 95 % interval
    holds the full-sample mAP; 16 times the clips give a clearly narrower interval."""
    assert np.array_equal(clip_counts(20, seed=3), clip_counts(20, seed=3))
    assert not np.array_equal(clip_counts(20, seed=3), clip_counts(20, seed=4))
    assert (clip_counts(20, resamples=50).sum(axis=1) == 20).all()
    widths = []
    for n in (24, 384):
        scores, labels = _clips(n, seed=1)
        point = float(average_precision(np.concatenate(scores), np.concatenate(labels)))
        low, high = percentile_interval(bootstrap_map(scores, labels, clip_counts(n, seed=0)))
        assert low <= point <= high
        widths.append(high - low)
    assert widths[1] < 0.5 * widths[0]


def test_bootstrap_mean_and_interval_by_hand() -> None:
    """bootstrap_mean against the mean of the drawn values; percentile_interval against
    np.percentile, NaN samples left out."""
    values = np.array([1.0, 2.0, 4.0, 8.0])
    counts = clip_counts(4, resamples=5, seed=2)
    for r, mean in enumerate(bootstrap_mean(values, counts)):
        assert mean == pytest.approx(np.repeat(values, counts[r]).mean())
    samples = np.r_[np.arange(101.0), np.nan]
    assert percentile_interval(samples, level=0.9) == pytest.approx((5.0, 95.0))
    assert all(np.isnan(percentile_interval(np.array([np.nan]))))


@pytest.mark.parametrize(
    ("argument", "call"),
    [
        ("clips", lambda: clip_counts(0)),
        ("resamples", lambda: clip_counts(3, resamples=0)),
        ("seed", lambda: clip_counts(3, seed=-1)),
        ("level", lambda: percentile_interval(np.zeros(3), level=1.0)),
        ("level", lambda: percentile_interval(np.zeros(3), level=float("nan"))),
        ("counts", lambda: bootstrap_map([[0.1]], [[1]], np.ones((2, 3), dtype=np.int64))),
        ("counts", lambda: bootstrap_mean([0.1, 0.2], np.ones((2, 3), dtype=np.int64))),
        ("scores, labels", lambda: bootstrap_map([[0.1]], [[1], [0]], clip_counts(1))),
        ("scores[0], labels[0]", lambda: bootstrap_map([[0.1, 0.2]], [[1]], clip_counts(1))),
        ("scores", lambda: bootstrap_map([[float("nan")]], [[1]], clip_counts(1))),
        ("labels", lambda: bootstrap_map([[0.5]], [[2]], clip_counts(1))),
        ("values", lambda: bootstrap_mean([float("inf")], clip_counts(1))),
    ],
)
def test_bootstrap_bad_inputs_name_the_argument(argument, call) -> None:
    """Bad inputs raise ValueError naming the argument."""
    assert_raises_naming(ValueError, argument, call)


# ----------------------------------------------------------------------------- per-clip scores


@pytest.fixture(scope="module")
def small_report():
    """evaluate() on 6 clips of a tiny frame-level model: one BIM cell per modality set."""
    from avrobust.evaluation import Grid, Selection, evaluate
    from avrobust.testing import TinyAV

    torch.manual_seed(0)
    model = TinyAV(frames=4, frame_level=True)
    g = torch.Generator().manual_seed(1)
    inputs = {
        "audio": torch.rand(6, 640, generator=g) * 2 - 1,
        "visual": torch.rand(6, 4, 16, 16, generator=g) * 255,
    }
    labels = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1]]).repeat(2, 1)
    grid = Grid(rules=["bim"], eps=[50.0], modalities=["audio", "audio+visual"], steps=1)
    report = evaluate(model, (inputs, labels), grid,
                      selection=Selection(clips=[5, 0, 3, 2], balance=False), batch_size=3,
                      progress=False)  # fmt: skip
    return report, labels


def test_cells_keep_per_clip_scores_that_reproduce_their_map(small_report) -> None:
    """CellResult.per_clip holds, per attacked clip in the report's selection order, the frame
    labels, clean and adversarial scores and the mean ECR; the AVA mAP of the stored scores
    equals the cell's map_clean / map_adv (direct recomputation), the mean of the per-clip ECR
    its ECR."""
    report, labels = small_report
    for cell in report.cells:
        per = cell.per_clip
        assert per is not None
        assert per["labels"] == [labels[i].tolist() for i in report.selection]
        for kind, value in (("clean", cell.map_clean), ("adv", cell.map_adv)):
            assert len(per[kind]) == len(report.selection)
            got = average_precision(torch.tensor(per[kind]), torch.tensor(per["labels"]))
            assert float(got) == pytest.approx(value, abs=1e-6)
        for m, value in cell.ecr.items():
            assert np.mean(per["ecr"][m]) == pytest.approx(value, rel=1e-5)


def test_per_clip_field_round_trips_and_old_cells_still_load(small_report) -> None:
    """to_dict/from_dict keep per_clip; a cell dict written before the field existed (no
    'per_clip' key) loads with per_clip None."""
    from avrobust.evaluation import CellResult

    cell = small_report[0].cells[0]
    assert CellResult.from_dict(cell.to_dict()) == cell
    old = {k: v for k, v in cell.to_dict().items() if k != "per_clip"}
    assert CellResult.from_dict(old).per_clip is None


def test_bootstrap_map_large_path_agrees_with_the_small_one(monkeypatch) -> None:
    """The frame-weighted path (taken when clips x distinct scores is large) gives the same
    resampled mAP as the per-clip product path."""
    import avrobust.bootstrap as boot

    scores, labels = _clips(30, frames=8, seed=5, noise=0.8)
    counts = clip_counts(30, resamples=40, seed=1)
    small = bootstrap_map(scores, labels, counts)
    monkeypatch.setattr(boot, "_CHUNK", 100)  # forces the other path and small chunks
    assert np.allclose(bootstrap_map(scores, labels, counts), small, atol=1e-12, equal_nan=True)


# ----------------------------------------------------------------------------- demo verdicts

NAN = float("nan")


@pytest.mark.parametrize(
    ("intervals", "verdict"),
    [
        ([(2.5, 6.0), (3.0, 8.0)], "held"),  # every gain surely above the margin
        ([(-5.0, -3.0)], "did not hold"),  # surely a loss
        ([(-1.0, 1.5)], "did not hold"),  # surely less than the margin: no real gain
        ([(1.0, 5.0)], "inconclusive"),  # straddles the margin
        ([(3.0, 5.0), (1.0, 5.0)], "inconclusive"),
        ([(3.0, 5.0), (-4.0, -3.0)], "partly"),  # clearly one way here, the other way there
        ([(NAN, NAN)], "inconclusive"),  # no interval (no per-clip scores)
        ([], "not tested"),
    ],
)
def test_compare_verdict_follows_the_interval_not_the_point(intervals, verdict) -> None:
    """A model comparison is held / not held only when the interval of every compared gain lies
    entirely above / below the margin (2 points here)."""
    from avrobust.demo import compare_verdict

    assert compare_verdict(intervals, 2.0) == verdict


def _cell(scores, labels, clean=None, eps=20.0, attacked=("audio", "visual"), rule="pgd"):
    """A CellResult with per-clip scores, its mAPs computed from them."""
    from avrobust.evaluation import CellResult

    clean = clean if clean is not None else [[float(v) for v in y] for y in labels]
    flat_y = np.concatenate(labels)
    return CellResult(
        rule=rule, eps=eps, modalities=attacked,
        map_clean=float(average_precision(np.concatenate(clean), flat_y)),
        map_adv=float(average_precision(np.concatenate(scores), flat_y)),
        success_rate=0.0, frame_error_rate=0.0, ecr={"audio": 0.5, "visual": 0.5},
        samples=len(labels), frames=int(flat_y.size),
        per_clip={"labels": [list(map(int, y)) for y in labels],
                  "clean": [list(map(float, c)) for c in clean],
                  "adv": [list(map(float, s)) for s in scores],
                  "ecr": {"audio": [0.5] * len(labels), "visual": [0.5] * len(labels)}},
    )  # fmt: skip


def _noisy_reports(noise_a: float, noise_d: float, seed: int = 0):
    """(A) and (D) attacked on the same 24 clips of 16 frames; scores = label + Gaussian noise."""
    from avrobust.evaluation import EvaluationReport

    g = np.random.default_rng(seed)
    labels = [np.full(16, i % 2) for i in range(24)]
    reports = {}
    for key, noise in (("A", noise_a), ("D", noise_d)):
        scores = [y + noise * g.standard_normal(16) for y in labels]
        reports[key] = EvaluationReport({}, {}, list(range(24)), [_cell(scores, labels)])
    return reports


def _one_cell_config():
    from avrobust.demo import PRESETS

    return PRESETS["test"].replace(rules=("pgd",), eps_grid=(20.0,), table_eps=20.0)


def test_a_noisy_gain_above_the_margin_is_inconclusive_a_clear_one_held() -> None:
    """D vs A with per-clip noise: a point gain above the 2-point margin that the 24-clip
    bootstrap cannot separate from no gain is "inconclusive" (the old point rule said "held");
    a gain whose paired interval lies above the margin is "held"."""
    from avrobust.demo import findings

    config = _one_cell_config()
    claim = "L1 + L4) raises robust mAP (D > A)"
    for seed in range(20):  # a seed where the point gain exceeds the margin, by chance
        reports = _noisy_reports(1.2, 1.2, seed)
        gain = 100 * (reports["D"].cells[0].map_adv - reports["A"].cells[0].map_adv)
        if gain > 2 * config.tie_margin:
            break
    else:
        raise AssertionError("no seed gave a chance gain above the margin")
    found = {f.claim: f for f in findings(config, {"A": 0.99, "D": 0.99}, reports, {})}
    noisy = next(f for c, f in found.items() if claim in c)
    assert noisy.verdict == "inconclusive", noisy
    assert "[" in noisy.evidence  # the interval is stated
    clear = findings(config, {"A": 0.99, "D": 0.99}, _noisy_reports(1.5, 0.2), {})
    assert next(f for f in clear if claim in f.claim).verdict == "held"


def test_table_states_each_map_with_its_bootstrap_interval() -> None:
    """Table 1's robust mAP of a cell reads "point [low, high]", the interval being the 95 %
    percentile interval of 1000 seeded resamples of its clips (recomputed here with the public
    bootstrap functions); the CSV record has the bounds."""
    from avrobust.demo import table_one

    config = _one_cell_config()
    reports = _noisy_reports(1.0, 0.5)
    text, records = table_one(config, {"A": 0.99, "D": 0.98}, reports)
    cell = reports["D"].cells[0]
    per = cell.per_clip
    counts = clip_counts(24, resamples=1000, seed=config.seed)
    low, high = percentile_interval(100 * bootstrap_map(per["adv"], per["labels"], counts))
    assert f"{100 * cell.map_adv:.1f} [{low:.1f}, {high:.1f}]" in text
    record = next(r for r in records if r["model"] == "D")
    assert record["pgd_map_low"] == pytest.approx(low) and record["pgd_map_high"] == pytest.approx(
        high
    )


# ----------------------------------------------------------------------------- plots


def test_models_plot_names_each_recipe() -> None:
    """The every-model mAP plot names each model's recipe (ModelSpec.description), not only its
    letter: one panel per model, titled by it (issue 19: small multiples)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from avrobust.demo import models_figure

    config = _one_cell_config()
    fig = models_figure(config, _noisy_reports(1.0, 0.5), {})
    texts = [ax.get_title().replace("\n", " ") for ax in fig.axes if ax.get_visible()]
    plt.close(fig)
    recipes = {s.key: s.description for s in config.models}
    assert texts == [f"(A) {recipes['A']}", f"(D) {recipes['D']}"]
    assert "CE_all + L1 + L4" in texts[1]


def test_ecr_bars_take_their_colour_from_the_rule_and_hatching_from_the_modality() -> None:
    """ECR bars: every bar of one rule has one face colour, different rules different colours;
    audio bars are plain, visual bars hatched."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from avrobust.demo import ecr_figure
    from avrobust.evaluation import EvaluationReport

    config = _one_cell_config().replace(rules=("bim", "pgd"))
    labels = [np.full(4, i % 2) for i in range(4)]
    reports = {
        k: EvaluationReport(
            {}, {}, list(range(4)), [_cell(labels, labels, rule=r) for r in ("bim", "pgd")]
        )
        for k in ("A", "B")
    }
    fig = ecr_figure(config, reports)
    bars = fig.axes[0].containers
    plt.close(fig)
    assert [b.get_label() for b in bars] == ["BIM A(ECR)", "BIM V(ECR)", "PGD A(ECR)", "PGD V(ECR)"]
    colour = [{p.get_facecolor() for p in b.patches} for b in bars]
    hatch = [{p.get_hatch() or "" for p in b.patches} for b in bars]
    assert all(len(c) == 1 for c in colour)
    assert colour[0] == colour[1] and colour[2] == colour[3] and colour[0] != colour[2]
    assert hatch[0] == hatch[2] == {""} and hatch[1] == hatch[3] and hatch[1] != {""}


def test_evaluate_map_plot_has_a_title_naming_the_model_and_the_data(
    small_report, tmp_path
) -> None:
    """EvaluationReport.plot_map's default title names the model (the name given to it, else
    evaluate's name: the model's class name; a report without one, its weight fingerprint) and
    the data (clips attacked of the total, with neutral class words by default)."""
    pytest.importorskip("matplotlib")
    report, _ = small_report
    fig = report.plot_map(tmp_path / "map.png")
    title = fig._suptitle.get_text()
    assert title.startswith("TinyAV: 4 of 6 clips attacked (") and "of class 1)" in title
    assert "speaking" not in title  # not every binary task is speaker detection
    unnamed = dataclasses.replace(report, name="")  # as a report read from a results file
    fingerprint = unnamed.plot_map(tmp_path / "unnamed.png")._suptitle.get_text()
    assert fingerprint.startswith(f"model {report.config['model'][:8]}: ")
    report.name = "A-123.model on synthetic:6"
    fig = report.plot_map(tmp_path / "named.png")
    assert fig._suptitle.get_text().startswith("A-123.model on synthetic:6")
    assert report.plot_map(tmp_path / "t.png", title="mine")._suptitle.get_text() == "mine"
    ecr = report.plot_ecr(tmp_path / "ecr.png")
    assert "A-123.model on synthetic:6" in ecr.axes[0].get_title()
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_cells_without_per_clip_scores_give_no_interval_and_no_verdict() -> None:
    """Cells read from an older results file (per_clip None) show their point estimate without
    brackets, and a comparison resting on them is "inconclusive", never held or not held."""
    import dataclasses

    from avrobust.demo import findings, table_one
    from avrobust.evaluation import EvaluationReport

    config = _one_cell_config()
    reports = {
        k: EvaluationReport({}, {}, r.selection, [dataclasses.replace(r.cells[0], per_clip=None)])
        for k, r in _noisy_reports(1.5, 0.2).items()
    }
    text, records = table_one(config, {"A": 0.99, "D": 0.98}, reports)
    assert "[" not in text and records[0]["pgd_map_low"] is None
    verdicts = {f.claim: f.verdict for f in findings(config, {"A": 0.99, "D": 0.98}, reports, {})}
    assert verdicts["AVIL (L1 + L4) raises robust mAP (D > A)."] == "inconclusive"
