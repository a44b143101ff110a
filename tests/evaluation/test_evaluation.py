"""avrobust.evaluate: the grid, its measures, selection, surrogate, resume after interruption."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace

import pytest
import torch
from helpers import BrightLoud
from torch import nn
from torch.utils.data import DataLoader, Dataset

import avrobust
from avrobust.evaluation import (
    CellResult,
    EvaluationReport,
    Grid,
    Measures,
    Selection,
    Store,
    balanced_subset,
    correct_samples,
    evaluate,
)

T, SPF, SIZE = 6, 64, 8


class Toy(BrightLoud):
    """Speaking when the frame is bright (video about +-0.15) and loud (audio about +-0.1)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(scale, torch.linspace(0.5, 1.5, 4), 0.1)


def make_data(n: int = 16, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, T, generator=g) < 0.5).long()
    labels[0::2, : T // 2 + 1] = 1  # even clips mostly speaking, odd clips mostly not
    labels[1::2, : T // 2 + 1] = 0
    sign = labels.float() * 2 - 1
    visual = 128 + 35 * sign[:, :, None, None] + 5 * torch.randn(n, T, SIZE, SIZE, generator=g)
    amplitude = (0.1 + 0.05 * sign).repeat_interleave(SPF, dim=1)
    audio = amplitude * torch.sign(torch.randn(n, T * SPF, generator=g))
    return {"audio": audio, "visual": visual.clamp(0, 255)}, labels


class ClipDataset(Dataset):
    def __init__(self, data):
        self.inputs, self.labels = data

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.inputs.items()}, self.labels[i]


GRID = Grid(
    rules=["bim", "pgd"],
    eps=[100.0, 1000.0],
    modalities=["audio", "visual", "audio+visual"],
    steps=3,
)
QUIET = {"progress": False}


@pytest.fixture(scope="module")
def data():
    return make_data()


def strip(report: EvaluationReport) -> dict:
    out = report.to_dict()
    for cell in out["cells"]:
        cell.pop("seconds")
    return out


def flat(cell: dict | list, prefix: str = "") -> dict:
    """Every number of a cell dict, nested dicts and lists included, by its dotted path."""
    out = {}
    for k, v in cell.items() if isinstance(cell, dict) else enumerate(cell):
        if isinstance(v, (dict, list)):
            out.update(flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = v
    return out


def test_grid_cells_and_measures(data) -> None:
    model = Toy()
    report = evaluate(model, data, GRID, **QUIET)
    assert len(report.cells) == 2 * 2 * 3
    assert [c.key for c in report.cells[:3]] == [
        "bim|100.0|audio",
        "bim|100.0|visual",
        "bim|100.0|audio+visual",
    ]
    clean = report.clean
    assert 0 < clean["map_all"] <= 1 and clean["samples_total"] == 16
    assert clean["samples_selected"] == 2 * clean["positives_selected"]  # balanced
    assert clean["map_selected"] == 1.0  # every selected clip is predicted correctly
    for cell in report.cells:
        assert cell.map_clean == 1.0 and 0 <= cell.map_adv <= 1
        assert 0 <= cell.success_rate <= 1 and 0 <= cell.frame_error_rate <= 1
        assert set(cell.ecr) == {"audio", "visual"} and all(v >= 0 for v in cell.ecr.values())
        assert set(cell.snr_db) == set(cell.modalities)  # only attacked modalities
        assert set(cell.psnr_db) == set(cell.modalities)
        assert cell.samples == clean["samples_selected"] and cell.frames == cell.samples * T
    audio_only = report.cell("bim", 100.0, "audio")
    assert audio_only.ecr["visual"] == 0.0  # the video was not touched
    assert audio_only.linf["audio"] <= 100 * 1e-4 + 1e-6  # eps_a = eps_av * 1e-4
    visual_only = report.cell("bim", 100.0, ("visual",))
    assert visual_only.ecr["audio"] == 0.0 and visual_only.linf["visual"] <= 10.0 + 1e-4
    strong = report.cell("pgd", 1000.0, "audio+visual")
    assert strong.map_adv < 1.0 and strong.success_rate > 0  # a large budget flips the toy
    assert strong.map_adv <= report.cell("pgd", 100.0, "audio+visual").map_adv
    assert strong.snr_db["audio"] < audio_only.snr_db["audio"]  # a larger budget is louder
    with pytest.raises(KeyError, match=r"no cell 'mim\|100.0\|audio'"):
        report.cell("mim", 100, "audio")


def test_robustness_row_reads_the_three_cells_and_gives_ri(data) -> None:
    report = evaluate(Toy(), data, GRID, **QUIET)
    row = report.robustness_row("pgd", 1000.0)
    assert row.clean == 100 * report.cell("pgd", 1000.0, "audio+visual").map_clean
    assert row.audio == 100 * report.cell("pgd", 1000.0, "audio").map_adv
    assert row.visual == 100 * report.cell("pgd", 1000.0, "visual").map_adv
    assert row.audiovisual == 100 * report.cell("pgd", 1000.0, "audio+visual").map_adv
    weak = report.robustness_row("pgd", 100.0)
    # RI as the slides define it, written out: (clean + mean of the three attacked) differences
    by_hand = (weak.clean + (weak.audio + weak.visual + weak.audiovisual) / 3) - (
        row.clean + (row.audio + row.visual + row.audiovisual) / 3
    )
    assert weak.ri(row) == pytest.approx(by_hand) and by_hand > 0  # the smaller budget is milder
    only_joint = evaluate(Toy(), data, replace(GRID, modalities=["audio+visual"]), **QUIET)
    with pytest.raises(KeyError, match=r"no cell 'pgd\|1000\.0\|audio'"):
        only_joint.robustness_row("pgd", 1000.0)


def test_model_state_is_left_alone(data) -> None:
    model = Toy().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    evaluate(model, data, Grid(rules=["bim"], eps=[100.0], modalities=["visual"], steps=1), **QUIET)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_data_sources_agree(data) -> None:
    model = Toy()
    grid = replace(GRID, rules=["bim"], eps=[1000.0], modalities=["audio+visual"])
    from_tuple = strip(evaluate(model, data, grid, batch_size=5, **QUIET))
    from_dataset = strip(evaluate(model, ClipDataset(data), grid, batch_size=5, **QUIET))
    loader = DataLoader(ClipDataset(data), batch_size=5, shuffle=False)
    from_loader = strip(evaluate(model, loader, grid, **QUIET))
    assert from_tuple["selection"] == from_dataset["selection"] == from_loader["selection"]
    for a, b, c in zip(from_tuple["cells"], from_dataset["cells"], from_loader["cells"]):
        assert flat(a) == pytest.approx(flat(b)) and flat(a) == pytest.approx(flat(c))


def test_interrupt_and_resume_computes_each_cell_once(data, tmp_path) -> None:
    model = Toy()
    reference = strip(evaluate(model, data, GRID, seed=3, **QUIET))
    path = tmp_path / "results.jsonl"
    computed: list[str] = []

    class Interrupt(Exception):
        pass

    def stop_after_five(cell: CellResult) -> None:
        computed.append(cell.key)
        if len(computed) == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        evaluate(model, data, GRID, seed=3, store=Store(path), on_cell=stop_after_five, **QUIET)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["kind"] == "meta" and sum(r["kind"] == "cell" for r in lines) == 5
    with path.open("a") as handle:  # an interruption in the middle of writing a line
        handle.write('{"kind": "cell", "key": "pgd|1')
    resumed = evaluate(
        model, data, GRID, seed=3, store=Store(path), on_cell=lambda c: computed.append(c.key)
    )
    assert len(computed) == 12 and len(set(computed)) == 12  # no finished cell computed twice
    assert strip(resumed) == reference  # the same numbers as an uninterrupted run
    again: list[str] = []
    rerun = evaluate(
        model, data, GRID, seed=3, store=Store(path), on_cell=lambda c: again.append(c.key)
    )
    assert again == [] and strip(rerun) == reference  # a finished file is only read
    assert strip(EvaluationReport.from_results_file(path)) == reference


def test_results_file_of_another_evaluation_is_refused(data, tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    grid = replace(GRID, rules=["bim"], eps=[100.0], modalities=["audio"])
    evaluate(Toy(), data, grid, store=Store(path), **QUIET)
    with pytest.raises(ValueError, match=r"holds results of a different evaluation .*'steps'"):
        evaluate(Toy(), data, replace(grid, steps=2), store=Store(path), **QUIET)
    with pytest.raises(ValueError, match=r"different evaluation .*'model'"):
        evaluate(Toy(scale=2.0), data, grid, store=Store(path), **QUIET)  # other weights
    fresh = evaluate(Toy(), data, replace(grid, steps=2), store=Store(path, resume=False), **QUIET)
    assert fresh.config["steps"] == 2 and len(path.read_text().splitlines()) == 2


def test_surrogate_crafts_and_target_scores(data) -> None:
    target = Toy()
    flat = Toy(scale=0.0)  # zero gradients: its "attack" changes nothing
    grid = replace(GRID, rules=["bim"], eps=[1000.0], modalities=["audio+visual"])
    white = evaluate(target, data, grid, **QUIET).cells[0]
    with pytest.warns(UserWarning, match="no gradient"):  # the flat surrogate is reported
        black = evaluate(target, data, grid, surrogate=flat, **QUIET)
    assert black.config["surrogate"] is True
    assert black.cells[0].map_adv == 1.0 and white.map_adv < 1.0
    transfer = evaluate(target, data, grid, surrogate=Toy(scale=0.5), **QUIET).cells[0]
    assert transfer.map_adv == pytest.approx(white.map_adv)  # same gradient sign, same attack


def test_objectives(data) -> None:
    grid = replace(GRID, rules=["bim"], eps=[1000.0], modalities=["visual"])
    seen = []

    def objective(out: avrobust.AVOutput, labels: torch.Tensor) -> torch.Tensor:
        seen.append(out.logits.shape)
        return nn.functional.cross_entropy(
            out.logits.transpose(1, 2), labels, reduction="none"
        ).mean(1)

    for value in ("training", "inference", objective):
        report = evaluate(Toy(), data, replace(grid, objective=value), **QUIET)
        assert 0 <= report.cells[0].map_adv < 1
    assert seen and report.config["objective"].endswith("objective")


def test_select_options(data) -> None:
    grid = replace(GRID, rules=["bim"], eps=[100.0], modalities=["audio"])
    every = evaluate(Toy(), data, grid, selection=Selection("all", balance=False), **QUIET)
    assert every.selection == list(range(16)) and every.clean["samples_selected"] == 16
    some = evaluate(Toy(), data, grid, selection=Selection([0, 1, 2, 3, 5], per_class=2), **QUIET)
    assert len(some.selection) == 4 and set(some.selection) <= {0, 1, 2, 3, 5}
    ids, correct, positive = correct_samples(Toy(), data)
    assert ids == list(range(16)) and positive == [i % 2 == 0 for i in range(16)]
    assert all(correct)
    with pytest.raises(ValueError, match=r"Selection.clips: clip indices \[99\] are not in the"):
        evaluate(Toy(), data, grid, selection=Selection([0, 99]), **QUIET)


def test_balanced_subset() -> None:
    chosen = balanced_subset(list(range(10)), [i < 3 for i in range(10)], seed=1)
    assert len(chosen) == 6 and sum(i < 3 for i in chosen) == 3
    assert chosen == balanced_subset(list(range(10)), [i < 3 for i in range(10)], seed=1)
    with pytest.raises(ValueError, match=r"cannot balance .*0 speaking and 2 not-speaking"):
        balanced_subset([1, 2], [False, False])
    with pytest.raises(ValueError, match=r"per_class: asked for 5 clips per class, but only 3"):
        balanced_subset(list(range(10)), [i < 3 for i in range(10)], per_class=5)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: Grid(rules=["cw"]),
            ValueError,
            r"Grid.rules\[0\]: expected one of \['apgd', 'bim', 'fgsm', 'mim', 'pgd'\], got 'cw'",
        ),
        (lambda: Grid(rules=[]), TypeError, r"Grid.rules: expected a non-empty list"),
        (lambda: Grid(eps=[0.0]), ValueError, r"Grid.eps\[0\]: must be a finite number > 0, got 0"),
        (lambda: Grid(eps=[1.0, 1.0]), ValueError, r"Grid.eps: expected distinct values"),
        (
            lambda: Grid(modalities=["depth"]),
            ValueError,
            r"Grid.modalities: no budget for \['depth'\]",
        ),
        (
            lambda: Grid(modalities="audio"),
            TypeError,
            r"Grid.modalities: expected a list of modality sets",
        ),
        (
            lambda: Selection("best"),
            ValueError,
            r"Selection.clips: expected one of \['all', 'correct'\], got 'best'",
        ),
        (
            lambda: Grid(objective="loss"),
            ValueError,
            r"Grid.objective: expected one of \['dlr', 'inference', 'margin', 'training'\]",
        ),
        (lambda: Grid(steps=0), ValueError, r"Grid.steps: must be >= 1, got 0"),
        (
            lambda: Selection(min_accuracy=2.0),
            ValueError,
            r"Selection.min_accuracy: must be a number in \[0, 1\], got 2",
        ),
        (lambda: Store(resume="yes"), TypeError, r"Store.resume: expected a bool"),
        (
            lambda: Selection(per_class=0, balance=False),
            ValueError,
            r"Selection.per_class: must be >= 1, got 0",
        ),
        (
            lambda: Selection(per_class=1.5),
            TypeError,
            r"Selection.per_class: expected an int, got 1.5",
        ),
        (lambda: Measures(score_fn=3), TypeError, r"Measures.score_fn: expected a function"),
        (
            lambda: Measures(ecr_embeddings=["audio"]),
            TypeError,
            r"Measures.ecr_embeddings: expected a dict",
        ),
    ],
)
def test_argument_errors(build, error, match) -> None:
    """Each group refuses a bad field when it is built, naming the group and the field."""
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("name", ["grid", "selection", "measures", "store"])
def test_evaluate_refuses_a_group_of_the_wrong_type(data, name) -> None:
    """A dict where a group is expected (the old keyword style) is refused naming the group."""
    kwargs = {"grid": GRID, name: {"steps": 1}}
    with pytest.raises(TypeError, match=rf"{name}: expected an avrobust.evaluation"):
        evaluate(Toy(), data, **kwargs, **QUIET)


def test_data_errors() -> None:
    with pytest.raises(TypeError, match=r"data: expected a map-style Dataset .*got int"):
        evaluate(Toy(), 3, GRID, **QUIET)
    inputs, labels = make_data(4)
    with pytest.raises(ValueError, match=r"data: inputs and labels must share the batch size"):
        evaluate(Toy(), (inputs, labels[:2]), GRID, **QUIET)
    with pytest.raises(TypeError, match=r"data\[1\]: expected integer labels"):
        evaluate(Toy(), (inputs, labels.float()), GRID, **QUIET)
    with pytest.raises(TypeError, match=r"model: expected a torch.nn.Module"):
        evaluate("model", (inputs, labels), GRID, **QUIET)  # type: ignore[arg-type]


def test_report_outputs(data, tmp_path) -> None:
    report = evaluate(Toy(), data, GRID, **QUIET)
    text = report.table()
    lines = text.splitlines()
    assert len(lines) == 2 + len(report.cells) and "ECR audio" in lines[1] and "mAP adv" in lines[1]
    assert lines[0].startswith("clean mAP")
    files = report.save(tmp_path, "r")
    assert {p.split("/")[-1] for p in files} == {
        "r.csv",
        "r.json",
        "r.txt",
        "r_map.png",
        "r_ecr.png",
    }
    for png in ("r_map.png", "r_ecr.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert rows[0].startswith("rule,eps,attacked,map_clean,map_adv") and len(rows) == 13
    saved = json.loads((tmp_path / "r.json").read_text())
    assert len(saved["cells"]) == 12 and saved["clean"] == report.clean
    assert all(math.isfinite(r["map_adv"]) for r in report.rows())


def test_plots_say_what_to_install(data, tmp_path, monkeypatch) -> None:
    report = evaluate(Toy(), data, replace(GRID, rules=["bim"], eps=[100.0]), **QUIET)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'avrobust\[plots\]'"):
        report.plot_map(tmp_path / "x.png")
    files = report.save(tmp_path, "no_plots")  # saving still works, without the PNGs
    assert not any(f.endswith(".png") for f in files)


def test_progress_bar(data, capsys) -> None:
    evaluate(Toy(), data, replace(GRID, rules=["bim"], eps=[100.0]), progress=True)
    assert "attack cells" in capsys.readouterr().err


def test_choice_arguments_are_case_insensitive(data) -> None:
    inputs, labels = data
    labels = labels.clone()
    labels[:4] = 1 - labels[:4]  # clips 0-3 are now predicted wrongly
    grid = replace(GRID, rules=["bim"], eps=[100.0], modalities=["audio"])
    lower = evaluate(Toy(), (inputs, labels), grid, selection=Selection("correct"), **QUIET)
    upper = evaluate(
        Toy(),
        (inputs, labels),
        replace(grid, rules=["BIM"], objective="Training"),
        selection=Selection("Correct"),
        **QUIET,
    )
    assert upper.selection == lower.selection and min(upper.selection) >= 4
    assert upper.config["select"] == "correct" and upper.config["objective"] == "training"


def test_resume_refuses_other_budgets_scores_or_embeddings(data, tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    grid = replace(GRID, rules=["bim"], eps=[100.0], modalities=["audio"])
    kept = {"store": Store(path), **QUIET}

    def small(eps: float) -> dict:
        return {"audio": avrobust.Linf(eps * 1e-4, bounds=(-1, 1))}

    def large(eps: float) -> dict:
        return {"audio": avrobust.Linf(eps * 1e-3, bounds=(-1, 1))}

    large.__qualname__ = small.__qualname__  # same name, other budgets
    evaluate(Toy(), data, replace(grid, budgets=small), **kept)
    with pytest.raises(ValueError, match=r"different evaluation .*'budget_repr'"):
        evaluate(Toy(), data, replace(grid, budgets=large), **kept)
    scores = Measures(score_fn=lambda out: out.logits[..., 1])
    with pytest.raises(ValueError, match=r"different evaluation .*'score_fn'"):
        evaluate(Toy(), data, replace(grid, budgets=small), measures=scores, **kept)
    embeddings = Measures(ecr_embeddings={"audio": "visual"})
    with pytest.raises(ValueError, match=r"different evaluation .*'ecr_embeddings'"):
        evaluate(Toy(), data, replace(grid, budgets=small), measures=embeddings, **kept)
    with pytest.raises(TypeError, match=r"Grid.budgets: expected budgets\(eps\) to return a dict"):
        replace(grid, budgets=lambda eps: eps)


def test_resume_keeps_a_finished_last_line_without_newline(data, tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    grid = replace(GRID, rules=["bim"], eps=[100.0])
    reference = strip(evaluate(Toy(), data, grid, store=Store(path), **QUIET))
    text = path.read_text()
    lines = text.splitlines()
    path.write_text("\n".join(lines[:3]))  # meta + 2 cells, the newline of the last one lost
    computed: list[str] = []
    resumed = evaluate(
        Toy(), data, grid, store=Store(path), on_cell=lambda c: computed.append(c.key), **QUIET
    )
    assert computed == [json.loads(lines[3])["key"]]  # only the missing cell
    assert strip(resumed) == reference  # the same numbers

    def keys() -> list:
        text = path.read_text()
        assert text.endswith("\n")
        return [json.loads(line).get("key") for line in text.splitlines()]

    assert keys() == [json.loads(line).get("key") for line in lines]  # no finished line lost
    path.write_text(lines[0])  # only the meta line, without its newline
    evaluate(Toy(), data, grid, store=Store(path), **QUIET)
    assert keys() == [json.loads(line).get("key") for line in lines]


def test_data_that_gives_other_clips_on_a_second_pass_is_refused(data) -> None:
    inputs, labels = data
    grid = replace(GRID, rules=["bim"], eps=[100.0], modalities=["audio"])

    def batches(stop: int):
        for i in range(0, stop, 4):
            yield {k: v[i : i + 4] for k, v in inputs.items()}, labels[i : i + 4]

    class Shrinking:
        passes = 0

        def __iter__(self):
            self.passes += 1
            return batches(16 if self.passes == 1 else 8)

    with pytest.raises(TypeError, match=r"data: got generator, an iterator that can be read only"):
        evaluate(Toy(), batches(16), grid, **QUIET)  # a generator: empty the second time
    with pytest.raises(
        ValueError, match=r"data: a second pass over it gave \d+ of the \d+ selected"
    ):
        evaluate(Toy(), Shrinking(), grid, **QUIET)


def test_the_grid_takes_apgd_and_the_margin_objective(data) -> None:
    """The grid reads the attack registries: APGD with the margin loss runs as a cell, and its
    cell is at least as harmful as the clean score (keep='best' never returns a weaker point)."""
    grid = replace(GRID, rules=["apgd"], eps=[GRID.eps[-1]], objective="margin")
    report = evaluate(Toy(), data, grid, **QUIET)
    assert [c.rule for c in report.cells] == ["apgd"] * len(report.cells)
    assert all(c.map_adv <= c.map_clean for c in report.cells)
