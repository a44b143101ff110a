"""WorstCase: avrobust.default_ensemble as a cell of evaluate's grid.

The independent reference of a worst-case cell is :func:`avrobust.default_ensemble` called
directly on the same clips, with the cell's budgets and seed (``GridCell.seed``), its candidates
scored on the target model by hand: the cell must give the same numbers. The model is a small
float64 TinyAV with frame logits, left in training mode (the evaluation must not change it).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from helpers import assert_raises_naming, assert_same_model, make_inputs, make_model, snapshot

import avrobust
from avrobust.cli import main
from avrobust.evaluation import (
    CellResult,
    EvaluationReport,
    Grid,
    Measures,
    Selection,
    Store,
    WorstCase,
    evaluate,
)
from avrobust.evaluation.store import read_results

EPS, STEPS, SEED = 30.0, 3, 3
FAST = WorstCase(queries=10, targets=1)
QUIET: dict[str, Any] = {"selection": Selection(clips="all", balance=False), "progress": False}


def _model(seed: int = 0, **kwargs: Any) -> avrobust.testing.TinyAV:
    return make_model(seed, frame_level=True, **kwargs).double()


def _data(n: int = 8) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    labels = (torch.rand(n, 4, generator=g) < 0.5).long()
    return make_inputs(batch=n, seed=1, dtype=torch.float64), labels


def _scores(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """P(speaking) of the model in eval mode, as evaluate scores a batch (its mode restored)."""
    with torch.no_grad(), avrobust.preserve_model_state(model, "eval"):
        return torch.softmax(model(**inputs).logits.float(), dim=-1)[..., 1]


def _direct(attacker, data, grid: Grid, cell_index: int = 0, seed: int = SEED):
    """default_ensemble called directly on every clip with the cell's budgets and seed."""
    cell = grid.cells()[cell_index]
    rule = cell.rule
    ensemble = avrobust.default_ensemble(
        attacker,
        grid.budgets_at(cell.eps, cell.modalities),
        steps=grid.steps,
        seed=cell.seed(seed),
        targets=rule.targets,
        queries=rule.queries,
    )
    return ensemble(*data)


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def run(data):
    """One evaluation of three worst-case cells and its model (and the model's state before)."""
    model = _model()
    before = snapshot(model)
    grid = Grid(rules=[FAST], eps=[EPS], modalities=["audio", "visual", "audio+visual"],
                steps=STEPS)  # fmt: skip
    report = evaluate(model, data, grid, seed=SEED, **QUIET)
    return model, before, grid, report


def test_the_cell_reproduces_default_ensemble_called_directly(run, data) -> None:
    """The joint cell's adversarial scores, accuracy, success rate and per-attack breakdown are
    those of default_ensemble run directly (scored on the model by hand); the attack did harm
    but not all (a mix of broken and robust clips), the model and the clips are untouched."""
    model, before, grid, report = run
    inputs, labels = data
    clean_inputs = {k: v.clone() for k, v in inputs.items()}
    cell = report.cell("worst-case", EPS, "audio+visual")
    direct = _direct(model, data, grid, cell_index=2)
    scores = _scores(model, direct.inputs)
    right = ((scores >= 0.5).long() == labels).double()
    assert cell.accuracy_adv == pytest.approx(float(right.mean()), abs=1e-12)
    assert cell.per_clip is not None
    assert cell.per_clip["adv"] == [[float(str(v)) for v in row] for row in scores.numpy()]
    assert cell.success_rate == pytest.approx(float(direct.success.double().mean()), abs=1e-12)
    assert cell.broken_by == direct.broken_by
    assert list(cell.broken_by) == ["apgd-ce", "apgd-t-margin", "square"]
    assert sum(cell.broken_by.values()) == round(cell.success_rate * cell.samples)
    assert cell.accuracy_adv < cell.accuracy_clean and 0 < cell.success_rate < 1
    assert_same_model(before, model)
    assert all(torch.equal(clean_inputs[k], inputs[k]) for k in inputs)


def test_every_perturbation_stays_inside_its_budget(run) -> None:
    """linf of each attacked modality <= its budget (push_pull_budgets: audio eps*1e-4, video
    eps*0.1 grey levels; up to the float32 rounding of the clips the runner measures it on: half
    an ulp of the largest value, 1 or 255, for each of x and x_adv); an unattacked modality's
    embeddings do not move (ECR 0)."""
    _, _, _, report = run
    budgets = avrobust.push_pull_budgets(EPS)
    largest = {"audio": 1.0, "visual": 255.0}
    for cell in report.cells:
        for m in cell.modalities:
            rounding = torch.finfo(torch.float32).eps * largest[m]
            assert 0 < cell.linf[m] <= budgets[m].eps + rounding, (cell.key, m)
    assert report.cell("worst-case", EPS, "audio").ecr["visual"] == 0.0
    assert report.cell("worst-case", EPS, "visual").ecr["audio"] == 0.0


def test_the_name_and_the_object_give_worst_case_cells() -> None:
    """The name "worst-case" (any case) means WorstCase(); a cell's rule name is "worst-case",
    its key "worst-case|eps|set", and what defines it holds the settings (queries, targets)."""
    grid = Grid(rules=("pgd", WorstCase(queries=500)), eps=[20], modalities=["audio+visual"])
    keys = [c.key for c in grid.cells()]
    assert keys == ["pgd|20.0|audio+visual", "worst-case|20.0|audio+visual"]
    cell = grid.cells()[1]
    assert cell.rule_name == "worst-case" and cell.rule == WorstCase(queries=500)
    assert cell.defines["rule"] == "WorstCase(queries=500, targets=9)"
    assert grid.config()["rules"] == ["pgd", "worst-case"]
    named = Grid(rules="Worst-Case", eps=[20], modalities=["audio"])
    assert named.rules == ("worst-case",) and named.cells()[0].rule == WorstCase()
    assert named.cells()[0].defines["rule"] == "WorstCase(queries=1000, targets=9)"
    assert_raises_naming(ValueError, "Grid.rules", Grid, rules=["worst-case", WorstCase()])


def l2_budgets(eps: float) -> dict[str, avrobust.Budget]:
    return {"audio": avrobust.L2(eps * 1e-3), "visual": avrobust.Linf(eps * 0.1)}


def test_bad_settings_are_refused_naming_the_argument() -> None:
    """queries and targets are ints >= 1, keyword-only; Square needs L-inf budgets: an L2 budget
    of an attacked modality is refused when the Grid is built, naming Grid.budgets (an L2
    budget of a modality the grid does not attack, or a grid without worst-case cells, is fine)."""
    assert_raises_naming(TypeError, "WorstCase.queries", WorstCase, queries="10")
    assert_raises_naming(ValueError, "WorstCase.queries", WorstCase, queries=0)
    assert_raises_naming(TypeError, "WorstCase.targets", WorstCase, targets=1.5)
    assert_raises_naming(ValueError, "WorstCase.targets", WorstCase, targets=0)
    with pytest.raises(TypeError):
        WorstCase(500)  # type: ignore[misc]
    assert WorstCase(queries=torch.tensor(7)).queries == 7  # integer-like: a Python int
    message = assert_raises_naming(
        TypeError, "Grid.budgets", Grid, rules=["worst-case"], budgets=l2_budgets
    )
    assert "'audio'" in message and "Linf" in message and "eps=1" in message
    assert Grid(rules=["pgd"], budgets=l2_budgets).rules == ("pgd",)
    assert Grid(rules=["worst-case"], budgets=l2_budgets, modalities=["visual"]).rules
    message = assert_raises_naming(ValueError, "Grid.rules[0]", Grid, rules=["cw"])
    assert "worst-case" in message
    assert_raises_naming(TypeError, "Grid.rules[1]", Grid, rules=["pgd", avrobust.Ensemble])


def test_changed_settings_are_refused_and_the_same_resume(tmp_path, data) -> None:
    """A finished worst-case cell is read back (nothing computed) when the settings are the
    same; with other queries the file's cell is not reused: the run is refused, naming
    Grid.rules and both settings, and Store(resume=False) computes the cell anew."""
    path = tmp_path / "results.jsonl"
    model, computed = _model(), []

    def run(rule: Any, *, resume: bool = True) -> EvaluationReport:
        grid = Grid(rules=[rule], eps=[EPS], modalities=["audio+visual"], steps=STEPS)
        store = Store(path, resume=resume)
        return evaluate(model, data, grid, store=store, on_cell=lambda c: computed.append(c.key),
                        seed=SEED, **QUIET)  # fmt: skip

    first = run(FAST)
    key = f"worst-case|{EPS!r}|audio+visual"
    assert computed == [key]
    again = run(WorstCase(queries=10, targets=1))
    assert computed == [key] and again.cells == first.cells  # broken_by included
    message = assert_raises_naming(ValueError, "Grid.rules", run, WorstCase(queries=20, targets=1))
    assert "WorstCase(queries=10, targets=1)" in message
    assert "WorstCase(queries=20, targets=1)" in message
    other = run(WorstCase(queries=20, targets=1), resume=False)
    assert computed == [key, key] and other.cells[0].broken_by is not None
    stored = read_results(path).cells[key]
    assert stored.defines["rule"] == "WorstCase(queries=20, targets=1)"
    assert EvaluationReport.from_results_file(path).cells == other.cells


def test_with_a_surrogate_the_ensemble_is_built_on_it(data) -> None:
    """surrogate=: the perturbation is crafted on the surrogate (default_ensemble on it) and
    scored on the target; the target's own attack gives other numbers."""
    target, surrogate = _model(0), _model(7)
    grid = Grid(rules=[FAST], eps=[EPS], modalities=["audio+visual"], steps=STEPS)
    report = evaluate(target, data, grid, surrogate=surrogate, seed=SEED, **QUIET)
    cell = report.cells[0]
    scores = _scores(target, _direct(surrogate, data, grid).inputs)
    assert cell.per_clip is not None
    assert cell.per_clip["adv"] == [[float(str(v)) for v in row] for row in scores.numpy()]
    own = _scores(target, _direct(target, data, grid).inputs)
    assert not torch.equal(scores, own)


def test_grid_objective_does_not_apply_to_worst_case_cells(data) -> None:
    """The ensemble picks its own objectives (CE, then the margin): a worst-case cell is the
    same whatever Grid.objective says (a name or a callable); a PGD cell of the same grid
    follows it."""
    model = _model()

    def margin(out: avrobust.AVOutput, labels: torch.Tensor) -> torch.Tensor:
        return avrobust.MarginObjective()(out, labels)

    cells = []
    for objective in ("training", "inference", margin):
        grid = Grid(rules=["pgd", FAST], eps=[EPS], modalities=["audio+visual"], steps=STEPS,
                    objective=objective)  # fmt: skip
        report = evaluate(model, data, grid, seed=SEED, **QUIET)
        cells.append(report.cells)
    worst = [c[1] for c in cells]
    assert all(_same_numbers(worst[0], w) for w in worst[1:])
    assert not _same_numbers(cells[0][0], cells[1][0])  # the PGD cell follows Grid.objective


def _same_numbers(a: CellResult, b: CellResult) -> bool:
    return a.per_clip == b.per_clip and a.broken_by == b.broken_by and a.linf == b.linf


def test_the_report_lists_worst_case_cells(run, tmp_path) -> None:
    """report.cell, rows (with the per-attack breakdown), table and the JSON round trip handle
    the rule name "worst-case"; a cell without a breakdown (a step rule, an older file) keeps
    its JSON line unchanged (no broken_by key)."""
    _, _, _, report = run
    cell = report.cell("WORST-CASE", EPS, ("audio", "visual"))
    assert cell.rule == "worst-case" and cell.key == f"worst-case|{EPS!r}|audio+visual"
    rows = {r["attacked"]: r for r in report.rows()}
    assert cell.broken_by is not None
    assert rows["audio+visual"]["broken_by_square"] == cell.broken_by["square"]
    assert "worst-case" in report.table()
    assert CellResult.from_dict(cell.to_dict()) == cell
    older = {k: v for k, v in cell.to_dict().items() if k != "broken_by"}
    plain = CellResult.from_dict(older)
    assert plain.broken_by is None and plain.to_dict() == older
    without = EvaluationReport(report.config, report.clean, report.selection, [plain])
    assert "broken_by_square" not in without.rows()[0]


def test_a_binary_score_of_a_multiclass_model_is_refused(data) -> None:
    """The ensemble attacks the model's C-class task (CE, margin over the C classes, the labels
    as class indices); a binary score_fn of a C > 2 model (allowed for step rules with a
    callable objective) would measure another task: refused before any cell is computed,
    naming Grid.rules."""
    model = _model(num_classes=4)

    def speaking(out: avrobust.AVOutput) -> torch.Tensor:
        return torch.softmax(out.logits.float(), dim=-1)[..., 1:].sum(-1)

    def loss(out: avrobust.AVOutput, labels: torch.Tensor) -> torch.Tensor:
        return -(speaking(out) - labels.float()).abs().mean(-1)

    grid = Grid(rules=["bim", FAST], eps=[EPS], modalities=["audio"], steps=1, objective=loss)
    measures = Measures(score_fn=speaking)
    computed: list[str] = []
    message = assert_raises_naming(ValueError, "Grid.rules", evaluate, model, data, grid,
                                   measures=measures, on_cell=computed.append, **QUIET)  # fmt: skip
    assert computed == [] and f"worst-case|{EPS!r}|audio" in message
    step = Grid(rules=["bim"], eps=[EPS], modalities=["audio"], steps=1, objective=loss)
    assert evaluate(model, data, step, measures=measures, **QUIET).cells[0].rule == "bim"


def test_the_command_accepts_worst_case(tmp_path, capsys) -> None:
    """avrobust evaluate --rules worst-case,pgd parses (it stops at the missing checkpoint,
    after the rules); an unknown rule's error still lists worst-case."""
    argv = ["evaluate", "--checkpoint", str(tmp_path / "none.model"), "--data", "synthetic"]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--rules", "Worst-Case,pgd"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--checkpoint: file not found" in err
    with pytest.raises(SystemExit) as info:
        main([*argv, "--rules", "cw"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "--rules:" in err and "worst-case" in err


# ----------------------------------------------------------------------------- batches, ranks

RANK_GRID = Grid(rules=[FAST], eps=[100.0], modalities=["audio+visual"], steps=2)


def _three_batches() -> EvaluationReport:
    """A worst-case cell over 7 clips in batches of 3 (on 2 ranks: batch 1 on rank 1)."""
    return evaluate(_model(), _data(7), RANK_GRID, batch_size=3, seed=SEED, **QUIET)


def _rank_work(rank: int, out_dir: str) -> dict[str, Any]:
    return _three_batches().to_dict()


def test_the_breakdown_is_summed_over_the_batches() -> None:
    """broken_by of a cell over 3 batches is the sum of default_ensemble's breakdowns called
    directly on each batch (every batch breaks some clips here)."""
    (inputs, labels), model = _data(7), _model()
    parts = [
        _direct(model, ({k: v[i : i + 3] for k, v in inputs.items()}, labels[i : i + 3]),
                RANK_GRID).broken_by
        for i in range(0, 7, 3)
    ]  # fmt: skip
    assert all(sum(p.values()) > 0 for p in parts)
    summed = {name: sum(p[name] for p in parts) for name in parts[0]}
    assert _three_batches().cells[0].broken_by == summed


WORLD = 2


@pytest.mark.slow
@pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)
def test_two_ranks_give_the_one_process_cell(tmp_path: Path) -> None:
    """2 gloo ranks give the 1-process worst-case cell, per-clip values and the per-attack
    breakdown (summed over the batches of both ranks) included; only the time differs."""
    from helpers import run_on_gloo_ranks

    alone = _three_batches().to_dict()
    results = run_on_gloo_ranks(_rank_work, tmp_path, world=WORLD)
    expected = [{k: v for k, v in c.items() if k != "seconds"} for c in alone["cells"]]
    assert expected[0]["broken_by"] and math.isfinite(expected[0]["map_adv"])
    for result in results:
        assert isinstance(result, dict)
        assert [{k: v for k, v in c.items() if k != "seconds"} for c in result["cells"]] == expected
