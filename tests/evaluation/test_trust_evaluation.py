"""Issue 10, evaluate(): results files that lose nothing and never mix evaluations, synthetic data
generated on access, and clear errors for bad arguments."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import BrightLoud, assert_raises_naming, fail_writes_under
from torch import nn

import avrobust
import avrobust.evaluation
from avrobust.data.events import AVEventDataset
from avrobust.data.synthetic import SyntheticActiveSpeaker
from avrobust.evaluation import EvaluationReport, Grid, Measures, Selection, Store, evaluate
from avrobust.evaluation.records import checksum

DATA = Path(__file__).parents[1] / "data"

T, SPF, SIZE = 4, 8, 4


class Exact(BrightLoud):
    """A toy speaker detector whose weights are exact binary fractions (the same bytes on every
    machine, so a results file written elsewhere resumes here): bright and loud means speaking."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(scale, torch.tensor([0.5, 0.75, 1.25, 1.5]), 0.125)


def exact_data(n: int = 4, shift: float = 0.0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """``n`` clips of ``T`` frames built from exact binary fractions (no random numbers):
    even clips speak in all frames but the last, odd ones in the last only. ``shift`` moves the
    pixels."""
    frame = torch.arange(T)
    labels = torch.stack([(frame < T - 1) if i % 2 == 0 else (frame == T - 1) for i in range(n)])
    labels = labels.long()
    sign = labels.float() * 2 - 1
    visual = (128 + 32 * sign + shift)[:, :, None, None].expand(n, T, SIZE, SIZE).clone()
    flip = torch.tensor([1.0, -1.0]).repeat(T * SPF // 2)
    audio = (0.125 + 0.0625 * sign).repeat_interleave(SPF, dim=1) * flip
    return {"audio": audio, "visual": visual}, labels


# the grid and selection tests/data/results_v1.jsonl and results_v2.jsonl were computed with
V1_GRID = Grid(rules=["bim"], eps=[100.0], modalities=["audio", "visual"], steps=2)
ALL = Selection("all", balance=False)
GRID_FIELDS = {f.name for f in dataclasses.fields(Grid) if f.init}


def run(
    path: Path | None = None,
    data=None,
    model=None,
    *,
    computed: list[str] | None = None,
    score_fn=None,
    **kwargs,
) -> EvaluationReport:
    """``evaluate`` of the exact toy on the exact data, with the small grid (``V1_GRID``, fields
    overridden by the Grid keywords given) on every clip, kept in ``path``; ``computed`` collects
    the keys of the cells computed."""
    grid = dataclasses.replace(V1_GRID, **{k: kwargs.pop(k) for k in set(kwargs) & GRID_FIELDS})
    if computed is not None:
        kwargs["on_cell"] = lambda c: computed.append(c.key)
    return evaluate(
        Exact() if model is None else model,
        exact_data() if data is None else data,
        grid,
        selection=ALL,
        measures=Measures(score_fn=score_fn),
        store=Store(path),
        progress=False,
        **kwargs,
    )


def numbers(report: EvaluationReport) -> list[dict]:
    """The cells of a report without their wall times."""
    return [{k: v for k, v in c.to_dict().items() if k != "seconds"} for c in report.cells]


# ----------------------------------------------------------------------------- case 1: atomic


def test_a_failure_while_rewriting_the_results_file_leaves_it_intact(tmp_path, monkeypatch):
    """A resume rewrites the file (to drop a half-written last line). If that write fails half
    way (a kill, a full disk), the old file must be left as it was, not truncated: compared with
    its bytes before the run; then a plain resume recomputes only the missing cell."""
    path = tmp_path / "r.jsonl"
    run(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2]) + '\n{"kind": "cell", "key": "bim|1')  # cut short
    before = path.read_bytes()
    fail_writes_under(tmp_path, monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        run(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]  # no temporary file left
    computed: list[str] = []
    run(path, computed=computed)
    assert computed == ["bim|100.0|visual"]


# ----------------------------------------------------------------------------- case 2: lock


def test_a_second_run_on_a_results_file_in_use_is_refused(tmp_path):
    """While a live process holds ``<results>.lock``, another evaluate on that file stops at
    once with an error naming the file and the process, and leaves the file and lock alone."""
    path = tmp_path / "r.jsonl"
    run(path)
    before = path.read_bytes()
    lock = tmp_path / "r.jsonl.lock"
    lock.write_text(f"{os.getpid()} {socket.gethostname()}\n")
    message = assert_raises_naming(RuntimeError, str(path), run, path, eps=[100.0, 1000.0])
    assert f"process {os.getpid()}" in message and "r.jsonl.lock" in message
    assert path.read_bytes() == before and lock.exists()


def test_the_lock_is_released_and_a_stale_one_taken_over(tmp_path):
    """The lock exists only during a run, is removed when a run fails, and a lock left by a
    process that is no longer running is taken over with a warning naming it."""
    path = tmp_path / "r.jsonl"
    lock = tmp_path / "r.jsonl.lock"
    seen = []
    run(path, on_cell=lambda c: seen.append(lock.exists()))
    assert seen == [True, True] and not lock.exists()

    def fail(cell):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(path, eps=[1000.0], on_cell=fail)
    assert not lock.exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    lock.write_text(f"{pid} {socket.gethostname()}\n")
    with pytest.warns(UserWarning, match=rf"r\.jsonl\.lock.*process {pid}.*no longer running"):
        run(path)
    assert not lock.exists()


# ----------------------------------------------------------------------------- case 3: identity


def test_resume_refuses_other_data_of_the_same_size(tmp_path):
    """Other clips of the same number and shape (pixels moved by 1) must not resume a file of
    the first data; the same clips given another way (a Dataset instead of stacked tensors)
    resume it without computing anything."""
    path = tmp_path / "r.jsonl"
    first = run(path)
    assert_raises_naming(ValueError, "data", run, path, data=exact_data(shift=1.0))
    inputs, labels = exact_data()
    as_dataset = [({k: v[i] for k, v in inputs.items()}, labels[i]) for i in range(4)]

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return as_dataset[i]

    computed: list[str] = []
    again = run(path, data=Items(), computed=computed)
    assert computed == [] and numbers(again) == numbers(first)


def _objective(weight: float):
    def objective(out: avrobust.AVOutput, labels: torch.Tensor) -> torch.Tensor:
        loss = nn.functional.cross_entropy(out.logits.transpose(1, 2), labels, reduction="none")
        return weight * loss.mean(1)

    return objective


def test_resume_refuses_another_objective_or_score_fn_of_the_same_name(tmp_path):
    """Two lambdas (or closures) share a name; their code or captured values tell them apart.
    The same code with the same values (a new object) resumes without computing anything."""
    path = tmp_path / "r.jsonl"
    run(path, objective=_objective(1.0))
    assert_raises_naming(ValueError, "objective", run, path, objective=_objective(-1.0))
    computed: list[str] = []
    run(path, objective=_objective(1.0), computed=computed)
    assert computed == []

    other = tmp_path / "s.jsonl"
    run(other, score_fn=lambda out: out.logits.softmax(-1)[..., 1])
    assert_raises_naming(
        ValueError, "score_fn", run, other, score_fn=lambda out: out.logits.sigmoid()[..., 1]
    )
    run(other, score_fn=lambda out: out.logits.softmax(-1)[..., 1], computed=computed)
    assert computed == []


# ----------------------------------------------------------------------------- case 4: lines


def _drop_field(record):
    del record["result"]["map_adv"]


def _wrong_type(record):
    record["result"]["map_adv"] = "high"


def _edited_number(record):
    record["result"]["map_adv"] = 0.25


def _other_key(record):
    record["key"] = "bim|100.0|visual"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_drop_field, "map_adv"),
        (_wrong_type, "map_adv"),
        (_edited_number, "changed"),
        (_other_key, "bim|100.0|visual"),
    ],
)
def test_an_edited_cell_line_is_refused_with_its_line_number(tmp_path, edit, match):
    """A cell line with a missing field, a wrong type, a changed number or a key that does not
    match its result is refused, naming the file and the line, not read as a finished cell."""
    path = tmp_path / "r.jsonl"
    run(path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    edit(record)
    if match != "changed":  # as if a tool had rewritten the line, check included
        record["check"] = checksum({k: v for k, v in record.items() if k != "check"})
    lines[1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    message = assert_raises_naming(ValueError, f"{path}:2", run, path)
    assert match in message
    with pytest.raises(ValueError, match=re.escape(f"{path}:2")):
        EvaluationReport.from_results_file(path)


@pytest.mark.parametrize("where", [1, 2])
def test_a_duplicated_or_invalid_line_is_refused_with_its_line_number(tmp_path, where):
    """A cell line written twice, a second meta line, or a line that is not JSON (anywhere but
    at the very end, where a killed run leaves one) is refused, naming the file and line."""
    path = tmp_path / "r.jsonl"
    run(path)
    lines = path.read_text().splitlines()
    doubled = [*lines, lines[where - 1]]
    path.write_text("\n".join(doubled) + "\n")
    message = assert_raises_naming(ValueError, f"{path}:4", run, path)
    assert f"line {where}" in message
    path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    assert_raises_naming(ValueError, f"{path}:2", run, path)


# ----------------------------------------------------------------------------- case 5: on access


@pytest.mark.parametrize(
    "make",
    [
        lambda n: SyntheticActiveSpeaker(n, frames=4, face_size=16, seed=5),
        lambda n: AVEventDataset(n, num_classes=4, audio_length=64, image_size=16, seed=5),
    ],
)
def test_huge_synthetic_sets_cost_nothing_until_an_item_is_read(make):
    """A 10**8-clip data set is built at once in little memory (nothing per clip is stored); an
    item is the same whether read first, after others, or from another instance (seeded per
    index), compared with item i read first from a fresh instance."""
    tracemalloc.start()
    start = time.perf_counter()
    data = make(10**8)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(data) == 10**8 and seconds < 0.5 and peak < 1_000_000
    last = 10**8 - 1
    first_read = make(10**8)[last]
    other = make(10**8)
    for i in (3, 0, 12_345_678):
        other[i]
    again = other[last]
    assert torch.equal(first_read[1], again[1])
    for m in first_read[0]:
        assert torch.equal(first_read[0][m], again[0][m])


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: SyntheticActiveSpeaker(4, frames=4, face_size=16, seed=seed),
        lambda seed: AVEventDataset(4, num_classes=4, audio_length=64, image_size=16, seed=seed),
    ],
)
@pytest.mark.parametrize("seed", [2**64, 2**40])
def test_synthetic_seeds_beyond_the_generator_are_refused_when_built(make, seed):
    """Each item's generator is seeded with ``seed * 1_000_003 + index``: a seed that would
    overflow it is refused when the data set is built, naming seed, not when an item is read
    (then an 'Overflow when unpacking long long' from inside torch)."""
    assert_raises_naming(ValueError, "seed", make, seed)


def test_evaluate_command_does_not_build_every_synthetic_clip(tmp_path, monkeypatch):
    """``avrobust evaluate --data synthetic:100000000`` hands evaluate the lazy data set (no
    stacked tensors of every clip): checked by stopping at evaluate and looking at its data."""
    from avrobust.cli import main
    from avrobust.models import TalkNet

    checkpoint = tmp_path / "tiny.model"
    TalkNet("tiny", face_size=16).save_checkpoint(checkpoint)

    class Reached(Exception):
        pass

    got = {}

    def fake_evaluate(model, data, *args, **kwargs):
        got["data"] = data
        raise Reached

    def no_stacking(self, indices=None):
        raise AssertionError("every synthetic clip was built")

    monkeypatch.setattr(avrobust.evaluation, "evaluate", fake_evaluate)
    monkeypatch.setattr(SyntheticActiveSpeaker, "tensors", no_stacking)
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--model", "tiny", "--quiet"]
    argv += ["--data", "synthetic:100000000", "--out", str(tmp_path / "out")]
    with pytest.raises(Reached):
        main(argv)
    assert isinstance(got["data"], SyntheticActiveSpeaker) and len(got["data"]) == 10**8


# ----------------------------------------------------------------------------- case 6: the grid


def test_changing_only_the_grid_reuses_the_matching_cells(tmp_path):
    """eps (5, 20) after a run at (20,) computes only eps 5 and reuses eps 20 (the same numbers);
    a smaller grid afterwards reports only its cells and keeps the others in the file; rules and
    modalities work the same way."""
    path = tmp_path / "r.jsonl"
    first = run(path, eps=[20.0], modalities=["audio"])
    computed: list[str] = []
    grown = run(path, eps=[5.0, 20.0], modalities=["audio"], computed=computed)
    assert computed == ["bim|5.0|audio"]
    assert [c.key for c in grown.cells] == ["bim|5.0|audio", "bim|20.0|audio"]
    assert numbers(grown)[1] == numbers(first)[0]
    assert grown.config["eps"] == [5.0, 20.0]
    computed.clear()
    small = run(path, eps=[5.0], modalities=["audio"], computed=computed)
    assert computed == [] and [c.key for c in small.cells] == ["bim|5.0|audio"]
    wider = run(
        path, rules=["bim", "fgsm"], eps=[5.0], modalities=["visual", "audio"], computed=computed
    )
    assert computed == ["bim|5.0|visual", "fgsm|5.0|visual", "fgsm|5.0|audio"]
    assert [c.key for c in wider.cells][:2] == ["bim|5.0|visual", "bim|5.0|audio"]
    stored = EvaluationReport.from_results_file(path)
    assert len(stored.cells) == 5 and stored.config["eps"] == [20.0, 5.0]


def test_a_cell_of_the_same_key_with_other_budgets_is_still_refused(tmp_path):
    """Reuse is by what defines a cell: the same rule, eps and modalities with other budgets (or
    another rule of the same name) is a different evaluation, refused naming what differs."""
    path = tmp_path / "r.jsonl"
    grid = {"rules": ["mim"], "eps": [20.0], "modalities": ["audio"]}
    run(path, **grid)

    def louder(eps):
        return {"audio": avrobust.Linf(eps * 1e-3, bounds=(-1, 1))}

    message = assert_raises_naming(ValueError, "budgets", run, path, **grid, budgets=louder)
    assert "mim|20.0|audio" in message
    other_rule = {**grid, "rules": [avrobust.MIM(decay=0.5)]}
    assert_raises_naming(ValueError, "rules", run, path, **other_rule)


def test_a_results_file_of_format_1_still_resumes(tmp_path):
    """tests/data/results_v1.jsonl was written by evaluate() before issue 10 (format 1, grid in
    the meta line). It resumes: its two cells are reused with their stored numbers, a new eps is
    computed, a warning says the data and callables could not be checked; a second resume is
    silent and computes nothing."""
    path = tmp_path / "r.jsonl"
    shutil.copy(DATA / "results_v1.jsonl", path)
    stored = [json.loads(line)["result"] for line in path.read_text().splitlines()[1:]]
    computed: list[str] = []
    with pytest.warns(UserWarning, match=r"format 1.*data"):
        report = run(path, eps=[100.0, 1000.0], computed=computed)
    assert computed == ["bim|1000.0|audio", "bim|1000.0|visual"]
    assert [{k: c.to_dict()[k] for k in old} for c, old in zip(report.cells, stored)] == stored
    computed.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = run(path, eps=[100.0, 1000.0], computed=computed)
    assert computed == [] and numbers(again) == numbers(report)
    assert_raises_naming(ValueError, "data", run, path, data=exact_data(shift=1.0))
    as_written = EvaluationReport.from_results_file(DATA / "results_v1.jsonl")
    assert as_written.config["eps"] == [100.0] and numbers(as_written) == numbers(report)[:2]


def test_a_results_file_of_format_2_written_before_issue_11_still_resumes(tmp_path):
    """tests/data/results_v2.jsonl was written by evaluate() before issue 11 (the single-module
    evaluation with keyword arguments: rules=["bim"], eps=[100.0], modalities=["audio",
    "visual"], steps=2, select="all", balance=False) on the exact toy. It resumes with the grouped
    arguments without recomputing its cells; the cells reported are the stored ones (compared
    field by field with the file's lines, per-clip data included); a new eps is computed and
    appended after them. It predates issue 17, so it recorded the toy's weights but not its plain
    attribute (``offset``): one warning says so and the attributes are recorded (the meta line
    is rewritten, the cell lines are kept byte for byte); the next resume is silent and leaves
    the file as it is."""
    path = tmp_path / "r.jsonl"
    shutil.copy(DATA / "results_v2.jsonl", path)
    before = path.read_text().splitlines()
    stored = [json.loads(line)["result"] for line in before[1:]]
    assert len(stored) == 2 and all(r["per_clip"] is not None for r in stored)
    computed: list[str] = []
    with pytest.warns(UserWarning, match="plain attributes") as caught:
        report = run(path, computed=computed)
    assert len(caught) == 1
    assert computed == [] and path.read_text().splitlines()[1:] == before[1:]
    assert [c.to_dict() for c in report.cells] == stored
    recorded = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = run(path, computed=computed)
    assert computed == [] and path.read_bytes() == recorded and numbers(again) == numbers(report)
    grown = run(path, eps=[100.0, 1000.0], computed=computed)
    assert computed == ["bim|1000.0|audio", "bim|1000.0|visual"]
    assert [c.to_dict() for c in grown.cells[:2]] == stored
    assert path.read_bytes().startswith(recorded) and len(path.read_text().splitlines()) == 5
    warmer = Exact()
    warmer.offset = 0.25  # the same weights, another plain attribute: another evaluation
    assert_raises_naming(ValueError, "'model'", run, path, model=warmer)


# ----------------------------------------------------------------------------- case 7: score_fn


class ThreeClasses(Exact):
    def forward(self, audio, visual):
        out = super().forward(audio, visual)
        return out.logits.repeat(1, 1, 2)[..., :3]


def test_default_score_errors_name_the_model_or_data_not_score_fn():
    """With no score_fn passed, a model of 3-class logits or clip labels for frame logits get a
    message about the model's output or the labels that suggests score_fn, rather than one that
    blames a score_fn that was never given; a score_fn that was given is named."""
    message = assert_raises_naming(ValueError, "model", run, model=ThreeClasses())
    assert not message.startswith("score_fn") and "score_fn=" in message
    inputs, labels = exact_data()
    message = assert_raises_naming(ValueError, "data", run, data=(inputs, labels[:, 0]))
    assert not message.startswith("score_fn") and "score_fn=" in message and "(4,)" in message
    assert_raises_naming(ValueError, "score_fn", run, score_fn=lambda out: out.logits[..., 0, 1])


# ----------------------------------------------------------------------------- case 8: inputs


def _empty_data():
    inputs, labels = exact_data()
    return {k: v[:0] for k, v in inputs.items()}, labels[:0]


def _evaluate(data=None, model=None, **kwargs):
    """``evaluate`` of the exact toy on the exact data with the small grid, options as given."""
    args = (Exact() if model is None else model, exact_data() if data is None else data)
    return evaluate(*args, V1_GRID, **{"selection": ALL, "progress": False, **kwargs})


BAD = [
    ("Grid.rules", TypeError, lambda: Grid(rules=[3])),
    ("Grid.rules[0]", ValueError, lambda: Grid(rules=["cw"])),
    ("Grid.rules", ValueError, lambda: Grid(rules=["bim", "BIM"])),
    ("Grid.eps[0]", ValueError, lambda: Grid(eps=[float("nan")])),
    ("Grid.eps[1]", ValueError, lambda: Grid(eps=[1.0, -2.0])),
    ("Grid.eps", TypeError, lambda: Grid(eps="5")),
    ("Grid.eps", TypeError, lambda: Grid(eps=[])),
    ("Grid.modalities[0]", ValueError, lambda: Grid(modalities=["audio+audio"])),
    ("Grid.modalities[0]", TypeError, lambda: Grid(modalities=[3])),
    ("Grid.modalities", ValueError, lambda: Grid(modalities=["depth"])),
    ("Grid.modalities", ValueError, lambda: Grid(modalities=["audio", "audio"])),
    ("Grid.steps", ValueError, lambda: Grid(steps=0)),
    ("Grid.objective", TypeError, lambda: Grid(objective=3)),
    ("Grid.budgets", TypeError, lambda: Grid(budgets="push_pull")),
    ("Grid.budgets", TypeError, lambda: Grid(budgets=lambda eps: {"audio": eps, "visual": eps})),
    ("Selection.clips", ValueError, lambda: Selection("best")),
    ("Selection.clips", ValueError, lambda: _evaluate(selection=Selection([0, 99]))),
    ("Selection.clips", TypeError, lambda: Selection([True, False])),
    ("Selection.per_class", ValueError, lambda: Selection(per_class=0)),
    ("per_class", ValueError, lambda: _evaluate(selection=Selection(per_class=5))),
    ("Selection.min_accuracy", ValueError, lambda: Selection(min_accuracy=-0.1)),
    ("Selection.min_accuracy", ValueError, lambda: Selection(min_accuracy=float("nan"))),
    ("Selection.balance", TypeError, lambda: Selection(balance="yes")),
    ("Measures.ecr_embeddings", TypeError, lambda: Measures(ecr_embeddings="audio")),
    ("Measures.score_fn", TypeError, lambda: Measures(score_fn="softmax")),
    ("Store.resume", TypeError, lambda: Store(resume=1)),
    ("Store.path", TypeError, lambda: Store(3)),
    ("batch_size", ValueError, lambda: _evaluate(batch_size=0)),
    ("batch_size", TypeError, lambda: _evaluate(batch_size=2.5)),
    ("seed", ValueError, lambda: _evaluate(seed=-1)),
    ("on_cell", TypeError, lambda: _evaluate(on_cell=3)),
    ("surrogate", TypeError, lambda: _evaluate(surrogate="model.pt")),
    ("progress", TypeError, lambda: _evaluate(progress="yes")),
    ("grid", TypeError, lambda: evaluate(Exact(), exact_data(), {"rules": ["bim"]})),
    ("data", TypeError, lambda: _evaluate(data="clips.pt")),
    ("data", ValueError, lambda: _evaluate(data=_empty_data())),
    ("data", ValueError, lambda: _evaluate(data=SyntheticActiveSpeaker(0, frames=4, face_size=16))),
    ("data[0]", TypeError, lambda: _evaluate(data=({}, torch.zeros(4, T, dtype=torch.long)))),
    ("data[1]", TypeError, lambda: _evaluate(data=(exact_data()[0], exact_data()[1].float()))),
    ("data", ValueError, lambda: _evaluate(data=(exact_data()[0], exact_data()[1][:2]))),
    ("model", TypeError, lambda: _evaluate(model="model.pt")),
]


@pytest.mark.parametrize(
    ("name", "error", "call"), BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)]
)
def test_bad_arguments_are_refused_naming_them(name, error, call):
    """Each bad argument raises the expected type with a message naming the argument (a group's
    field as ``Group.field``), before any attack runs."""
    assert_raises_naming(error, name, call)


def test_a_folder_as_results_file_is_refused(tmp_path):
    """A folder passed as the store's path is refused naming the field (not an IsADirectoryError
    from deep inside)."""
    assert_raises_naming(ValueError, "Store.path", run, tmp_path)


def test_numpy_numbers_are_accepted_as_eps():
    """A NumPy float as eps (alone or in a list) gives the cell a plain float eps."""
    report = run(eps=np.float32(100.0), modalities=["audio"])
    assert report.cells[0].eps == 100.0 and type(report.cells[0].eps) is float
