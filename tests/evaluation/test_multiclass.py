"""``evaluate`` on multi-class tasks (issue 12): top-1 accuracy per cell, refusals, selection, RI.

The measure is chosen from the logits' class count: AP for 2-class logits (the AVA evaluation,
unchanged), top-1 accuracy for C > 2 classes (clip-level for ``(B, C)`` logits, frame-level for
``(B, T, C)``). Every accuracy here is compared with scikit-learn's ``accuracy_score`` on
predictions recomputed outside ``evaluate`` (an independent reference); the adversarial clips are
recomputed by running the same attack (same rule, steps, budgets and cell seed) by hand.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import assert_raises_naming
from sklearn.metrics import accuracy_score

import avrobust
from avrobust.data.events import AVEventDataset
from avrobust.evaluation import (
    CellResult,
    EvaluationReport,
    Grid,
    Measures,
    Selection,
    Store,
    balanced_per_class,
    evaluate,
)
from avrobust.evaluation.runner import CellMeasures
from avrobust.evaluation.selection import CleanPass, choose
from avrobust.metrics.ri import RobustnessRow, robustness_table
from avrobust.models.event import AVEventNet
from avrobust.testing import TinyAV

CLASSES = 4
MODALITIES = ["audio", "visual", "audio+visual"]


def event_budgets(eps: float) -> dict[str, avrobust.Budget]:
    """Budgets of the event model's inputs: waveform in [-1, 1], image pixels in [0, 1]."""
    return {
        "audio": avrobust.Linf(eps, bounds=(-1.0, 1.0)),
        "visual": avrobust.Linf(eps, bounds=(0.0, 1.0)),
    }


GRID = Grid(rules=["bim"], eps=[0.05], modalities=MODALITIES, budgets=event_budgets, steps=2)
ALL = Selection(clips="all", balance=False)


def event_model(seed: int = 0) -> AVEventNet:
    torch.manual_seed(seed)
    return AVEventNet(num_classes=CLASSES, dim=8, width=4).eval()


def event_data(n: int = 8) -> AVEventDataset:
    return AVEventDataset(n, num_classes=CLASSES, audio_length=256, image_size=16, seed=1)


def stacked(data: AVEventDataset) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    items = [data[i] for i in range(len(data))]
    inputs = {m: torch.stack([x[m] for x, _ in items]) for m in ("audio", "visual")}
    return inputs, torch.stack([y for _, y in items])


@pytest.fixture(scope="module")
def event_report() -> EvaluationReport:
    return evaluate(event_model(), event_data(), GRID, selection=ALL, progress=False)


def test_four_class_event_model_gives_per_cell_top1_accuracy(event_report) -> None:
    """Every cell of a 4-class event model reports top-1 accuracy (clean and adversarial) equal
    to scikit-learn's accuracy_score on the clean predictions and on the predictions for the
    same attack run by hand; the success rate is the fraction of clips whose top-1 is wrong
    under attack, the frame error rate 1 - accuracy; mAP is undefined (NaN)."""
    model = event_model()
    inputs, labels = stacked(event_data())
    with torch.no_grad():
        clean_pred = model(**inputs).logits.argmax(-1)
    for cell, grid_cell in zip(event_report.cells, GRID.cells()):
        assert cell.measure == "accuracy" and cell.classes == CLASSES
        assert cell.accuracy_clean == pytest.approx(accuracy_score(labels, clean_pred))
        attack = avrobust.MultimodalAttack(
            model,
            budgets=GRID.budgets_at(grid_cell.eps, grid_cell.modalities),
            rule=grid_cell.rule,
            steps=GRID.steps,
            objective=GRID.objective,
            seed=grid_cell.seed(0),
        )
        adv = attack(inputs, labels).inputs
        with torch.no_grad():
            adv_pred = model(**adv).logits.argmax(-1)
        assert cell.accuracy_adv == pytest.approx(accuracy_score(labels, adv_pred))
        assert cell.success_rate == pytest.approx(float((adv_pred != labels).float().mean()))
        assert cell.frame_error_rate == pytest.approx(1 - cell.accuracy_adv)
        assert math.isnan(cell.map_clean) and math.isnan(cell.map_adv)
        assert cell.per_clip["adv"] == [[int(p)] for p in adv_pred]


def test_ri_table_from_evaluate_on_the_event_model(event_report) -> None:
    """Tian & Xu's ✓AV/✗A/✗V/✗AV row of a multi-class model is in accuracy %: clean = the joint
    cell's clean accuracy, ✗A/✗V/✗AV the adversarial accuracy of the audio, visual and joint
    cells; robustness_table prints it (RI 0 against itself)."""
    row = event_report.robustness_row("bim", 0.05)
    cells = {c.attacked: c for c in event_report.cells}
    assert row == RobustnessRow(
        clean=100 * cells["audio+visual"].accuracy_clean,
        audio=100 * cells["audio"].accuracy_adv,
        visual=100 * cells["visual"].accuracy_adv,
        audiovisual=100 * cells["audio+visual"].accuracy_adv,
    )
    table = robustness_table({"Concat": row}, baseline="Concat")
    assert table.splitlines()[2].endswith(" 0.00 |")
    assert f"{row.clean:.2f}" in table
    with pytest.raises(ValueError, match="measure"):
        event_report.robustness_row("bim", 0.05, measure="ap")


def test_multiclass_report_rows_table_and_clean_are_in_accuracy(event_report, tmp_path) -> None:
    """A multi-class report's rows, text table and clean summary give accuracy (%), not mAP."""
    row = event_report.rows()[0]
    assert "map_adv" not in row
    assert row["accuracy_adv"] == pytest.approx(100 * event_report.cells[0].accuracy_adv)
    assert "acc adv" in event_report.table()
    clean = event_report.clean
    assert clean["measure"] == "accuracy" and clean["classes"] == CLASSES
    assert clean["accuracy_all"] == pytest.approx(event_report.cells[0].accuracy_clean)
    assert sum(clean["classes_selected"].values()) == clean["samples_selected"] == 8
    saved = event_report.save(tmp_path, plots=False)
    assert json.loads(open(saved[1]).read())["cells"][0]["measure"] == "accuracy"


def test_multiclass_results_file_resumes_with_the_same_numbers(tmp_path) -> None:
    """A results file of a multi-class run resumes: the cells are read back (accuracy fields
    included) and equal the ones computed, and from_results_file gives the same RI row."""
    path = tmp_path / "events.jsonl"
    first = evaluate(
        event_model(), event_data(), GRID, selection=ALL, store=Store(path), progress=False
    )
    again = evaluate(
        event_model(), event_data(), GRID, selection=ALL, store=Store(path), progress=False
    )
    assert [c.to_dict() for c in again.cells] == [c.to_dict() for c in first.cells]
    read = EvaluationReport.from_results_file(path)
    assert read.robustness_row("bim", 0.05) == first.robustness_row("bim", 0.05)


class FrameEvents(TinyAV):
    """A frame-level 4-class TinyAV: logits ``(B, T, 4)``."""

    def __init__(self) -> None:
        torch.manual_seed(3)
        super().__init__(num_classes=CLASSES, frames=4, frame_level=True, dim=8)


def frame_data() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    inputs = {
        "audio": torch.rand(6, 640, generator=g) * 2 - 1,
        "visual": torch.rand(6, 4, 16, 16, generator=g) * 255,
    }
    return inputs, torch.randint(0, CLASSES, (6, 4), generator=g)


def test_frame_logits_give_frame_level_accuracy() -> None:
    """(B, T, C) logits with (B, T) labels: accuracy is over frames (scikit-learn on the
    flattened frames), a clip counts as broken when more than half of its frames are wrong."""
    model = FrameEvents().eval()
    inputs, labels = frame_data()
    grid = Grid(rules=["fgsm"], eps=[50.0], modalities=["audio+visual"], steps=1)
    report = evaluate(model, (inputs, labels), grid, selection=ALL, progress=False)
    cell = report.cells[0]
    with torch.no_grad():
        clean_pred = model(**inputs).logits.argmax(-1)
    assert cell.accuracy_clean == pytest.approx(
        accuracy_score(labels.reshape(-1), clean_pred.reshape(-1))
    )
    adv_pred = torch.tensor(cell.per_clip["adv"])
    assert cell.accuracy_adv == pytest.approx(
        accuracy_score(labels.reshape(-1), adv_pred.reshape(-1))
    )
    broken = ((adv_pred != labels).float().mean(1) > 0.5).float().mean()
    assert cell.success_rate == pytest.approx(float(broken)) and cell.frames == 24


def test_labels_beyond_the_classes_are_refused_naming_the_data() -> None:
    """Labels with a class index >= C (or < 0) are refused before any attack, naming the data
    and the model's class count; so are clip labels for frame logits and float labels."""
    inputs, labels = stacked(event_data())
    message = assert_raises_naming(
        ValueError, "data", evaluate, event_model(), (inputs, labels + 1), GRID,
        selection=ALL, progress=False,
    )  # fmt: skip
    assert "4 classes" in message and "4" in message
    frame_inputs, frame_labels = frame_data()
    message = assert_raises_naming(
        ValueError, "data", evaluate, FrameEvents(), (frame_inputs, frame_labels[:, 0]), GRID,
        selection=ALL, progress=False,
    )  # fmt: skip
    assert "(6,)" in message
    assert_raises_naming(
        TypeError, "data", evaluate, event_model(), (inputs, labels.float()), GRID,
        selection=ALL, progress=False,
    )  # fmt: skip


def test_binary_labels_on_a_multiclass_model_are_refused_unless_accuracy_is_asked() -> None:
    """Labels that are all 0/1 with C > 2 classes are ambiguous (a binary task on the wrong
    model?): refused naming the model; Measures(measure="accuracy") says they are class
    indices, and the cell is then top-1 accuracy."""
    inputs, labels = stacked(event_data())
    binary = labels % 2
    message = assert_raises_naming(
        ValueError, "model", evaluate, event_model(), (inputs, binary), GRID,
        selection=ALL, progress=False,
    )  # fmt: skip
    assert "measure='accuracy'" in message
    report = evaluate(
        event_model(), (inputs, binary), GRID, selection=ALL, progress=False,
        measures=Measures(measure="accuracy"),
    )  # fmt: skip
    assert report.cells[0].measure == "accuracy"


def p_first(out: avrobust.AVOutput) -> torch.Tensor:
    """A binary score of a multi-class model: P(class 1)."""
    return torch.softmax(out.logits, -1)[..., 1]


def test_ap_on_a_multiclass_model_is_refused_naming_the_model() -> None:
    """AP asked of a model with C > 2 classes is refused naming the model: without score_fn
    (no score per label), and with a binary score_fn while the attack's objective is the
    cross-entropy over the C classes (it would attack another task than the one scored: the
    issue's silent run). A callable objective of the binary task is accepted."""
    inputs, labels = stacked(event_data())
    binary = labels % 2
    for measures in (Measures(measure="ap"), Measures(score_fn=p_first)):
        message = assert_raises_naming(
            ValueError, "model", evaluate, event_model(), (inputs, binary), GRID,
            selection=ALL, progress=False, measures=measures,
        )  # fmt: skip
        assert "4" in message

    def binary_ce(out: avrobust.AVOutput, y: torch.Tensor) -> torch.Tensor:
        p = p_first(out).clamp(1e-6, 1 - 1e-6)
        return -(y * p.log() + (1 - y) * (1 - p).log())

    grid = Grid(rules=["bim"], eps=[0.05], modalities=["audio"], budgets=event_budgets,
                steps=1, objective=binary_ce)  # fmt: skip
    report = evaluate(
        event_model(), (inputs, binary), grid, selection=ALL, progress=False,
        measures=Measures(score_fn=p_first),
    )  # fmt: skip
    assert report.cells[0].measure == "ap" and 0 <= report.cells[0].map_adv <= 1


def test_class_score_fn_gives_top1_of_its_scores() -> None:
    """A score_fn returning class scores shaped like the logits (..., C) is used for top-1: here
    the scores reverse the class order, so the clean accuracy is that of argmin of the logits."""
    inputs, labels = stacked(event_data())
    model = event_model()
    report = evaluate(
        model, (inputs, labels), GRID, selection=ALL, progress=False,
        measures=Measures(score_fn=lambda out: -out.logits),
    )  # fmt: skip
    with torch.no_grad():
        pred = model(**inputs).logits.argmin(-1)
    assert report.cells[0].accuracy_clean == pytest.approx(accuracy_score(labels, pred))


def test_measures_checks_its_measure() -> None:
    """Measures.measure is one of auto/ap/accuracy, keyword-only."""
    assert_raises_naming(ValueError, "Measures.measure", Measures, measure="f1")
    assert_raises_naming(TypeError, "Measures.measure", Measures, measure=3)
    with pytest.raises(TypeError):
        Measures(None, None, "accuracy")  # type: ignore[misc]


class Given(torch.nn.Module):
    """A stub multi-class model whose logits are its input ``x (B, C)`` scaled by 10."""

    def forward(self, x: torch.Tensor) -> avrobust.AVOutput:
        return avrobust.AVOutput(10 * x)


def test_correct_clips_are_top1_correct_and_balanced_per_class() -> None:
    """Selection("correct") on a multi-class model keeps clips whose top-1 is right and draws the
    same number from every class (the smallest class's count: here class 3 has one correct
    clip, so one clip of each class), at random but seeded; the clean summary counts them."""
    labels = torch.tensor([0, 1, 2, 3] * 3)
    predicted = labels.clone()
    predicted[[7, 11]] = 0  # two of the three class-3 clips wrong
    predicted[[4]] = 2  # one class-0 clip wrong
    x = torch.nn.functional.one_hot(predicted, CLASSES).float()
    grid = Grid(rules=["fgsm"], eps=[0.01], modalities=["x"], steps=1,
                budgets=lambda e: {"x": avrobust.Linf(e)})  # fmt: skip
    report = evaluate(Given(), ({"x": x}, labels), grid, progress=False)
    chosen = report.selection
    assert all(predicted[i] == labels[i] for i in chosen)
    assert sorted(int(labels[i]) for i in chosen) == [0, 1, 2, 3]
    assert 3 in chosen  # the only correct class-3 clip
    assert report.clean["classes_selected"] == {"0": 1, "1": 1, "2": 1, "3": 1}
    assert report.clean["samples_correct"] == 9
    assert report.clean["accuracy_all"] == pytest.approx(9 / 12)
    assert report.clean["accuracy_selected"] == 1.0
    again = evaluate(Given(), ({"x": x}, labels), grid, progress=False, seed=0)
    assert again.selection == chosen


def test_balanced_per_class_draws_equal_counts_and_refuses_an_empty_class() -> None:
    """balanced_per_class takes per_class (default: the smallest class's count) clips of every
    class, the same draw for the same seed; a class without candidates is refused."""
    ids, classes = list(range(12)), [0, 0, 0, 1, 1, 2, 2, 2, 2, 1, 0, 2]
    chosen = balanced_per_class(ids, classes, seed=3)
    picked = [classes[i] for i in chosen]
    assert sorted(picked) == [0, 0, 0, 1, 1, 1, 2, 2, 2] and chosen == sorted(chosen)
    assert chosen == balanced_per_class(ids, classes, seed=3)
    assert len(balanced_per_class(ids, classes, per_class=2, seed=0)) == 6
    assert_raises_naming(ValueError, "per_class", balanced_per_class, ids, classes, per_class=4)
    assert_raises_naming(
        ValueError, "classes", balanced_per_class, ids[:3], classes[:3], all_classes=[0, 1]
    )
    assert_raises_naming(ValueError, "classes", balanced_per_class, ids, classes[:3])


def test_choose_balances_the_classes_of_a_multiclass_record() -> None:
    """choose() on a hand-made multi-class record: the correct clips, balanced over the classes
    of the data; without balancing, per_class cuts to per_class x classes clips."""
    n = 9
    classes = [0, 1, 2] * 3
    correct = [True, True, True, True, False, True, True, False, False]
    ones = [torch.ones(1)] * n
    found = CleanPass(list(range(n)), correct, [False] * n, ones, ones, [b""] * n,
                      classes=classes, num_classes=3)  # fmt: skip
    chosen = choose(found, Selection("correct"), seed=0)
    assert sorted(classes[i] for i in chosen) == [0, 1, 2]  # class 1 has one correct clip
    assert all(correct[i] for i in chosen)
    assert choose(found, Selection("all", balance=False, per_class=1), seed=0) == [0, 1, 2]


def test_cell_measures_of_predictions_equal_sklearn() -> None:
    """CellMeasures fed multi-class predictions batch by batch: accuracy (clean, adv) equals
    scikit-learn's accuracy_score on all batches at once; success = clips with more than half
    of their frames wrong."""
    g = torch.Generator().manual_seed(0)
    measures = CellMeasures({"audio": avrobust.Linf(0.1)})
    parts = []
    for _ in range(3):
        labels = torch.randint(0, 5, (3, 4), generator=g)
        clean, adv = (
            torch.randint(0, 5, (3, 4), generator=g),
            torch.randint(0, 5, (3, 4), generator=g),
        )
        measures.add_predictions(clean, adv, labels, classes=5)
        measures.add_change("audio", torch.zeros(3, 8), torch.full((3, 8), 0.1))
        parts.append((clean, adv, labels))
    result = measures.result("bim", 0.1, seconds=0.0)
    clean, adv, labels = (torch.cat(t) for t in zip(*parts))
    assert result.accuracy_clean == pytest.approx(
        accuracy_score(labels.reshape(-1), clean.reshape(-1))
    )
    assert result.accuracy_adv == pytest.approx(accuracy_score(labels.reshape(-1), adv.reshape(-1)))
    broken = ((adv != labels).float().mean(1) > 0.5).float().mean()
    assert result.success_rate == pytest.approx(float(broken)) and result.classes == 5


def test_binary_cells_also_carry_threshold_accuracy() -> None:
    """A binary cell keeps AP as its measure; its accuracy fields are the frame accuracy at the
    0.5 threshold (accuracy_adv = 1 - frame_error_rate), checked against scikit-learn."""
    measures = CellMeasures({"audio": avrobust.Linf(0.1)})
    clean, adv = torch.tensor([[0.9, 0.2], [0.6, 0.4]]), torch.tensor([[0.1, 0.7], [0.6, 0.4]])
    labels = torch.tensor([[1, 0], [1, 1]])
    measures.add_scores(clean, adv, labels)
    measures.add_change("audio", torch.zeros(2, 8), torch.full((2, 8), 0.1))
    result = measures.result("bim", 0.1, seconds=0.0)
    assert result.measure == "ap" and result.classes == 2
    flat = labels.reshape(-1)
    assert result.accuracy_clean == accuracy_score(flat, (clean >= 0.5).long().reshape(-1))
    assert result.accuracy_adv == accuracy_score(flat, (adv >= 0.5).long().reshape(-1))
    assert result.accuracy_adv == pytest.approx(1 - result.frame_error_rate)


def test_old_cell_results_load_with_default_accuracy_fields() -> None:
    """A CellResult dict written before the accuracy fields existed loads as an AP cell of a
    2-class task with NaN accuracy and writes back without the new fields (so a resumed file's
    cells equal its lines); robustness_row in accuracy then says it was not recorded."""
    old = {"rule": "bim", "eps": 1.0, "modalities": ["audio"], "map_clean": 0.9, "map_adv": 0.5,
           "success_rate": 0.1, "frame_error_rate": 0.2, "snr_db": {}, "psnr_db": {}}  # fmt: skip
    cell = CellResult.from_dict(old)
    assert cell.measure == "ap" and cell.classes == 2 and math.isnan(cell.accuracy_adv)
    written = cell.to_dict()
    assert not {"measure", "classes", "accuracy_clean", "accuracy_adv"} & set(written)
    assert {k: written[k] for k in old} == {**old, "modalities": ["audio"]}
    cells = [
        CellResult.from_dict({**old, "modalities": mods}) for mods in (["audio"], ["visual"],
                                                                      ["audio", "visual"])
    ]  # fmt: skip
    report = EvaluationReport({}, {}, [], cells)
    assert report.robustness_row("bim", 1.0).audio == pytest.approx(50.0)
    assert_raises_naming(ValueError, "measure", report.robustness_row, "bim", 1.0,
                         measure="accuracy")  # fmt: skip


def test_correct_samples_of_a_multiclass_model_are_top1_correct() -> None:
    """correct_samples marks a clip of a multi-class model correct when its top-1 is right
    (checked against the predictions the stub is given); no clip is 'speaking'."""
    from avrobust.evaluation import correct_samples

    labels = torch.tensor([0, 1, 2, 3, 2])
    predicted = torch.tensor([0, 2, 2, 3, 1])
    x = torch.nn.functional.one_hot(predicted, CLASSES).float()
    ids, correct, positive = correct_samples(Given(), ({"x": x}, labels))
    assert ids == list(range(5)) and correct == (predicted == labels).tolist()
    assert positive == [False] * 5


def test_the_measure_is_part_of_the_results_file_identity(tmp_path) -> None:
    """A results file written with Measures(measure="accuracy") is refused by a run with
    another measure setting (naming Store.path and the differing 'measure'), resumed by one with
    the same."""
    labels = torch.tensor([0, 1, 2, 3] * 2)
    x = torch.nn.functional.one_hot(labels, CLASSES).float()
    grid = Grid(rules=["fgsm"], eps=[0.01], modalities=["x"], steps=1,
                budgets=lambda e: {"x": avrobust.Linf(e)})  # fmt: skip
    path = tmp_path / "r.jsonl"
    accuracy = Measures(measure="accuracy")
    evaluate(Given(), ({"x": x}, labels), grid, measures=accuracy, store=Store(path),
             progress=False)  # fmt: skip
    message = assert_raises_naming(
        ValueError, "Store.path", evaluate, Given(), ({"x": x}, labels), grid,
        store=Store(path), progress=False,
    )  # fmt: skip
    assert "'measure'" in message
    again = evaluate(Given(), ({"x": x}, labels), grid, measures=accuracy, store=Store(path),
                     progress=False)  # fmt: skip
    assert again.cells[0].accuracy_clean == 1.0
