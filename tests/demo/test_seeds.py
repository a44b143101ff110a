"""Issue 19, point 1: every model row is trained from several seeds, and every interval and
verdict covers the runs and the clips (a two-level bootstrap: runs, then clips).

Checked on hand-made reports whose numbers are known in advance: runs that agree, runs that
disagree, one run (the clip bootstrap alone, unchanged), and the seeds and cache files of the
runs. The demo's jobs (:mod:`avrobust.demo.jobs`) are checked for order and errors.
"""

from __future__ import annotations

import demo_jobs as _jobs_helpers
import numpy as np
import pytest

from avrobust.demo import PRESETS, DemoConfig, findings
from avrobust.demo.intervals import Intervals
from avrobust.demo.jobs import Job, run_jobs
from avrobust.demo.outputs import summary_text
from avrobust.demo.runs import SeededReport, run_name
from avrobust.demo.training import cache_path, run_seed
from avrobust.evaluation import CellResult, EvaluationReport
from avrobust.metrics import average_precision


def _cell(scores, labels, *, rule="worst-case", ecr=0.5) -> CellResult:
    flat = np.concatenate(labels)
    right = np.concatenate([(np.asarray(s) >= 0.5) == y for s, y in zip(scores, labels)])
    return CellResult(
        rule=rule, eps=20.0, modalities=("audio", "visual"),
        map_clean=1.0, map_adv=float(average_precision(np.concatenate(scores), flat)),
        success_rate=0.0, frame_error_rate=float(1 - right.mean()),
        ecr={"audio": ecr, "visual": ecr}, samples=len(labels), frames=int(flat.size),
        accuracy_clean=1.0, accuracy_adv=float(right.mean()),
        per_clip={"labels": [list(map(int, y)) for y in labels],
                  "clean": [list(map(float, y)) for y in labels],
                  "adv": [list(map(float, s)) for s in scores],
                  "ecr": {"audio": [ecr] * len(labels), "visual": [ecr] * len(labels)}},
    )  # fmt: skip


def _labels(n=24, frames=8, seed=1):
    g = np.random.default_rng(seed)
    return [(g.random(frames) < 0.5).astype(int) for _ in range(n)]


def _report(scores, labels, **kw) -> EvaluationReport:
    return EvaluationReport({}, {}, list(range(len(labels))), [_cell(scores, labels, **kw)])


def _noisy(labels, flip, seed):
    """Scores right except a share ``flip`` of frames, drawn with ``seed``."""
    g = np.random.default_rng(seed)
    return [np.where(g.random(y.size) < flip, 1 - y, y) * 0.8 + 0.1 for y in labels]


def test_a_seeded_cell_is_the_mean_over_its_runs_and_names_a_missing_run() -> None:
    labels = _labels()
    runs = [
        _report(_noisy(labels, f, s), labels, ecr=e) for f, s, e in ((0.1, 1, 0.2), (0.3, 2, 0.6))
    ]
    row = SeededReport(tuple(runs))
    cell = row.cell("worst-case", 20, "audio+visual")
    accuracies = [r.cells[0].accuracy_adv for r in runs]
    assert cell.accuracy_adv == pytest.approx(sum(accuracies) / 2)
    assert cell.map_adv == pytest.approx((runs[0].cells[0].map_adv + runs[1].cells[0].map_adv) / 2)
    assert cell.ecr == {"audio": pytest.approx(0.4), "visual": pytest.approx(0.4)}
    assert [c.key for c in row.cells] == ["worst-case|20.0|audio+visual"]
    assert [r["run"] for r in row.rows()] == [1, 2]
    short = SeededReport((runs[0], EvaluationReport({}, {}, [], [])))
    with pytest.raises(KeyError, match="run 2 of 2"):
        short.cell("worst-case", 20, "audio+visual")
    assert short.cells == []  # a cell only where every run has it
    with pytest.raises(ValueError, match="runs: expected the report of at least one run"):
        SeededReport(())


def test_one_run_gives_the_clip_bootstrap_unchanged() -> None:
    labels = _labels()
    report = _report(_noisy(labels, 0.2, 3), labels)
    ci = Intervals(PRESETS["test"])
    alone = ci.cell(report, "worst-case", 20, measure="accuracy")
    seeded = ci.cell(SeededReport((report,)), "worst-case", 20, measure="accuracy")
    np.testing.assert_array_equal(alone, seeded)


def test_runs_are_drawn_with_replacement_then_averaged() -> None:
    """Two runs whose samples are 0 and 1 everywhere: each resample averages two draws of
    the runs, so it is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4 (a binomial, not the
    runs' plain mean 0.5 every time)."""
    ci = Intervals(PRESETS["test"])
    out = ci.runs(np.stack([np.zeros(1000), np.ones(1000)]))
    values, counts = np.unique(out, return_counts=True)
    assert values.tolist() == [0.0, 0.5, 1.0]
    assert counts / 1000 == pytest.approx([0.25, 0.5, 0.25], abs=0.05)


def test_runs_that_disagree_widen_the_interval_and_rows_stay_paired() -> None:
    labels = _labels()
    same = _report(_noisy(labels, 0.2, 3), labels)
    agree = SeededReport((same, same, same))
    differ = SeededReport(tuple(_report(_noisy(labels, f, 3), labels) for f in (0.05, 0.2, 0.4)))
    ci = Intervals(PRESETS["test"])
    narrow = ci.interval(ci.cell(agree, "worst-case", 20, measure="accuracy"))
    wide = ci.interval(ci.cell(differ, "worst-case", 20, measure="accuracy"))
    np.testing.assert_allclose(  # identical runs: the clip bootstrap of one
        narrow, ci.interval(ci.cell(same, "worst-case", 20, measure="accuracy"))
    )
    assert wide[1] - wide[0] > 2 * (narrow[1] - narrow[0])
    # the same row twice: every paired difference is exactly 0 (same run draws, same clips)
    a = ci.cell(differ, "worst-case", 20)
    b = ci.cell(SeededReport(differ.runs), "worst-case", 20)
    np.testing.assert_array_equal(a - b, 0.0)


def test_a_verdict_about_a_method_uses_its_runs() -> None:
    """(B) beats (A) in one lucky run but not in the others: with one run per row the claim
    holds, with the three runs it does not (the interval over runs and clips straddles)."""
    labels = _labels(n=24, frames=16)
    a_runs = [_report(_noisy(labels, 0.30, s), labels) for s in (1, 2, 3)]
    b_runs = [_report(_noisy(labels, f, s), labels) for f, s in ((0.02, 4), (0.45, 5), (0.35, 6))]
    config = PRESETS["test"].replace(rules=("pgd",), eps_grid=(20.0,), table_eps=20.0)

    def verdict(a, b):
        found = findings(config, {"A": 0.99, "B": 0.99}, {"A": a, "B": b}, {})
        return next(f for f in found if f.name == "adversarial_training_helps").verdict

    assert verdict(a_runs[0], b_runs[0]) == "held"
    assert verdict(SeededReport(tuple(a_runs)), SeededReport(tuple(b_runs))) != "held"


def test_each_run_has_its_own_seed_and_checkpoint_and_the_first_keeps_its_old_name() -> None:
    config = DemoConfig()
    seeds = {run_seed(s, config, r) for s in config.models for r in range(9)}
    assert len(seeds) == 5 * 9
    spec = config.models[0]
    paths = {cache_path(spec, config, "m", run=r) for r in range(3)}
    assert len(paths) == 3
    assert cache_path(spec, config, "m") == cache_path(spec, config, "m", run=0)
    assert [run_name("A", r) for r in range(3)] == ["A", "A-seed2", "A-seed3"]


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [("seeds", 0, ValueError), ("seeds", 10, ValueError), ("seeds", 1.5, TypeError),
     ("worst_case_restarts", 0, ValueError), ("worst_case_kappa", -1.0, ValueError),
     ("worst_curve_steps", -1, ValueError), ("worst_curve_steps", "25", TypeError)],
)  # fmt: skip
def test_run_and_worst_case_settings_out_of_range_are_refused_naming_them(name, value, error):
    with pytest.raises(error, match=f"^{name}"):
        DemoConfig(**{name: value})


def test_the_summary_says_when_the_verdicts_describe_one_run() -> None:
    one = summary_text(PRESETS["quick"], "", [], {})
    three = summary_text(PRESETS["default"], "", [], {})
    assert PRESETS["quick"].seeds == 1 and PRESETS["default"].seeds >= 3
    assert "describes this one training run, not the method" in one
    assert "two-level bootstrap: runs, then clips" in three
    assert "describes this one training run" not in three


def test_jobs_wait_for_their_parents_and_give_the_same_results_on_two_workers() -> None:
    jobs = [
        Job("child", _jobs_helpers.square_sum, {"n": 3}, after=("parent",)),
        Job("parent", _jobs_helpers.square_sum, {"n": 4}),
        Job("other", _jobs_helpers.square_sum, {"n": 5}),
    ]
    order: list[str] = []
    alone = run_jobs(jobs, workers=1, on_done=lambda job, _: order.append(job.name))
    assert order.index("parent") < order.index("child")
    assert run_jobs(jobs, workers=2) == alone  # worker processes, one thread each


def test_jobs_with_unknown_parents_or_a_cycle_are_refused() -> None:
    call = _jobs_helpers.square_sum
    with pytest.raises(ValueError, match="'a' waits for unknown jobs \\['b'\\]"):
        run_jobs([Job("a", call, after=("b",))])
    with pytest.raises(ValueError, match="wait for each other"):
        run_jobs([Job("a", call, after=("b",)), Job("b", call, after=("a",))])
    with pytest.raises(ValueError, match="unique names"):
        run_jobs([Job("a", call), Job("a", call)])


def test_a_failing_job_raises_its_own_error() -> None:
    with pytest.raises(ZeroDivisionError):
        run_jobs([Job("bad", _jobs_helpers.fail)], workers=2)


def test_the_worst_case_runs_strong_at_the_table_budget_and_lighter_along_the_curve() -> None:
    """Issue 19 point 4: the worst case at every budget of the grid (the strong ensemble where
    the verdicts are decided, a lighter one at the other budgets), never between them."""
    from avrobust.demo.work import _worst_grids

    config = PRESETS["default"].replace(eps_grid=(5.0, 20.0, 50.0), table_eps=20.0)
    (name, strong), (curve_name, light) = _worst_grids(config)
    assert (name, curve_name) == ("worst-case", "worst-curve")
    assert [c.eps for c in strong.cells()] == [20.0] and strong.steps == config.worst_case_steps
    assert [c.eps for c in light.cells()] == [5.0, 50.0] and light.steps == config.worst_curve_steps
    rule = strong.cells()[0].defines["rule"]
    assert f"restarts={config.worst_case_restarts}" in rule and "kappa=1.0" in rule
    assert "restarts=1" in light.cells()[0].defines["rule"]
    assert [n for n, _ in _worst_grids(config.replace(worst_curve_steps=0))] == ["worst-case"]
