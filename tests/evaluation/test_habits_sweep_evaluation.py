"""Issue 17, the evaluation sweep: bad input a researcher passes to evaluate, its helpers and the
bootstrap, each answered with an error that names the argument and the fix (or a correct result)
instead of a raw torch/Python message or a silent wrong number."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming
from test_evaluation import ClipDataset, Toy, make_data
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

import avrobust
from avrobust.bootstrap import (
    CellBootstrap,
    bootstrap_map,
    bootstrap_mean,
    clip_counts,
    percentile_interval,
)
from avrobust.evaluation import (
    EvaluationReport,
    Grid,
    Measures,
    Selection,
    balanced_per_class,
    balanced_subset,
    correct_samples,
    evaluate,
)

ONE = Grid(rules=["bim"], eps=[100.0], modalities=["audio"], steps=1)
DATA = make_data(8)
X, Y = DATA


def run(data=DATA, model=None, grid=ONE, **kwargs):
    kwargs = {"selection": Selection(clips="all"), "progress": False, **kwargs}
    return evaluate(Toy() if model is None else model, data, grid, **kwargs)


def batches(inputs=X, labels=Y, size=4):
    return [
        ({k: v[i : i + size] for k, v in inputs.items()}, labels[i : i + size])
        for i in range(0, labels.shape[0], size)
    ]


class Items(Dataset):
    def __init__(self, items, length=None):
        self.items, self.length = items, length

    def __len__(self):
        return len(self.items) if self.length is None else self.length

    def __getitem__(self, i):
        return self.items[i]


def items(make):
    return Items([make({k: v[i] for k, v in X.items()}, Y[i]) for i in range(8)])


class Stream(IterableDataset):
    def __iter__(self):
        return (({k: v[i] for k, v in X.items()}, Y[i]) for i in range(8))


# ----------------------------------------------------------------------------- data


def _meta(inputs):
    return {k: v.to("meta") for k, v in inputs.items()}


BAD_DATA = [
    ("a bare tensor", lambda: X["audio"], TypeError, ["data", "Tensor", "(inputs, labels)"]),
    ("a numpy array", lambda: X["audio"].numpy(), TypeError, ["data", "ndarray"]),
    ("(inputs,)", lambda: (X,), ValueError, ["data", "(inputs, labels)", "1"]),
    ("(inputs, labels, extra)", lambda: (X, Y, None), ValueError, ["data", "(inputs, labels)"]),
    (
        "unbatched items from DataLoader(batch_size=None)",
        lambda: DataLoader(ClipDataset(DATA), batch_size=None),
        ValueError,
        ["data batch 0", "batch size", "batch_size=None"],
    ),
    (
        "a batch with 4 inputs and 3 labels",
        lambda: [({k: v[:4] for k, v in X.items()}, Y[:3])],
        ValueError,
        ["data batch 0", "batch size", "(3, 6)"],
    ),
    (
        "a batch whose modalities disagree",
        lambda: [({"audio": X["audio"][:4], "visual": X["visual"][:3]}, Y[:4])],
        ValueError,
        ["data batch 0", "batch size"],
    ),
    (
        "Dataset items with numpy inputs",
        lambda: items(lambda x, y: ({k: v.numpy() for k, v in x.items()}, y)),
        TypeError,
        ["data[0]['audio']", "tensor"],
    ),
    (
        "a Dataset whose len() is too long",
        lambda: Items(items(lambda x, y: (x, y)).items, 10),
        ValueError,
        ["data[8]", "len(data)"],
    ),
    (
        "float labels in a list of batches",
        lambda: batches(labels=Y.float()),
        TypeError,
        ["data batch 0 labels", "long()"],
    ),
    (
        "float labels in Dataset items",
        lambda: items(lambda x, y: (x, y.float())),
        TypeError,
        ["data[0] labels", "long()"],
    ),
    ("meta inputs", lambda: (_meta(X), Y), ValueError, ["data[0]['audio']", "meta"]),
    ("meta labels", lambda: (X, Y.to("meta")), ValueError, ["data[1]", "meta"]),
]


@pytest.mark.parametrize(
    ("data", "kind", "fragments"), [c[1:] for c in BAD_DATA], ids=[c[0] for c in BAD_DATA]
)
def test_bad_data_is_refused_naming_it(data, kind, fragments) -> None:
    with pytest.raises(kind) as info:
        run(data())
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


GOOD_DATA = [
    ("[inputs, labels] as a list", lambda: [X, Y]),
    ("a DataLoader over an IterableDataset", lambda: DataLoader(Stream(), batch_size=4)),
    ("numpy labels", lambda: (X, Y.numpy())),
    ("list labels", lambda: (X, Y.tolist())),
]


@pytest.mark.parametrize("data", [c[1] for c in GOOD_DATA], ids=[c[0] for c in GOOD_DATA])
def test_data_of_every_kind_gives_the_stacked_reference(data) -> None:
    reference, report = run(), run(data())
    assert report.clean == reference.clean
    for a, b in zip(reference.cells, report.cells):
        assert a.map_adv == b.map_adv and a.success_rate == b.success_rate
        assert a.ecr == pytest.approx(b.ecr)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16])
def test_integer_inputs_of_an_attacked_modality_are_refused_before_the_model_runs(dtype) -> None:
    visual = X["visual"].to(dtype)
    grid = Grid(rules=["bim"], eps=[100.0], modalities=["visual"], steps=1)
    message = assert_raises_naming(
        TypeError, "data[0]['visual']", run, ({**X, "visual": visual}, Y), grid=grid
    )
    assert "float()" in message


@pytest.mark.parametrize(
    ("inputs", "missing"),
    [
        ({**X, "text": torch.zeros(8, 3)}, "text"),
        ({"audio": X["audio"]}, "visual"),
        ({"audio": X["audio"], "video": X["visual"]}, "video"),
    ],
)
def test_modalities_the_model_does_not_take_name_the_forward_and_wrap(inputs, missing) -> None:
    message = assert_raises_naming(TypeError, "model", run, (inputs, Y))
    assert missing in message and "avrobust.wrap" in message


# ----------------------------------------------------------------------------- models


class Output(nn.Module):
    def __init__(self, how, classes=2):
        super().__init__()
        self.toy, self.how = Toy(), how

    def forward(self, audio, visual):
        return self.how(self.toy(audio=audio, visual=visual))


def _margin(out):
    return out.logits[..., 1] - out.logits[..., 0]


class Positional(nn.Module):
    def __init__(self):
        super().__init__()
        self.toy = Toy()

    def forward(self, x, y):
        return self.toy(audio=x, visual=y)


def test_one_logit_per_label_says_to_return_two_class_logits() -> None:
    message = assert_raises_naming(ValueError, "model", run, model=Output(_margin))
    assert "one logit per label" in message and "torch.stack([-z / 2, z / 2], -1)" in message
    clip = Output(lambda o: _margin(o).mean(1))
    message = assert_raises_naming(ValueError, "model", run, (X, Y[:, 0]), model=clip, batch_size=2)
    assert "one logit per label" in message


def test_a_scalar_output_is_refused_naming_the_model() -> None:
    assert_raises_naming(ValueError, "model", run, model=Output(lambda o: o.logits.sum()))


def test_a_model_on_the_meta_device_is_refused() -> None:
    assert_raises_naming(ValueError, "model", run, model=Toy().to("meta"))


def test_a_surrogate_of_another_task_is_refused() -> None:
    four = Output(lambda o: torch.cat([o.logits, o.logits], -1))
    message = assert_raises_naming(ValueError, "surrogate", run, surrogate=four)
    assert "4" in message and "2" in message


def test_a_surrogate_with_another_forward_names_the_surrogate() -> None:
    message = assert_raises_naming(TypeError, "surrogate", run, surrogate=Positional())
    assert "avrobust.wrap" in message


def test_scores_outside_0_1_warn_that_the_threshold_is_0_5() -> None:
    with pytest.warns(UserWarning, match=r"Measures.score_fn: .*outside \[0, 1\]"):
        run(measures=Measures(score_fn=_margin))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(measures=Measures(score_fn=lambda o: o.logits.softmax(-1)[..., 1]))


def test_an_objective_of_the_wrong_signature_is_refused_when_the_grid_is_built() -> None:
    message = assert_raises_naming(TypeError, "Grid.objective", Grid, objective=lambda out: out)
    assert "(AVOutput, labels)" in message


@pytest.mark.parametrize(
    ("budgets", "fragment"),
    [(lambda eps: {"audio": avrobust.Linf(-eps)}, "Linf.eps"), (lambda: {}, "positional")],
)
def test_a_budget_function_that_fails_is_named(budgets, fragment) -> None:
    message = assert_raises_naming((TypeError, ValueError), "Grid.budgets", Grid, budgets=budgets)
    assert fragment in message and "eps=1" in message


# ----------------------------------------------------------------------------- arguments


def test_numpy_and_torch_indices_and_eps_are_taken() -> None:
    assert Selection(clips=np.array([3, 1])).clips == (3, 1)
    assert Selection(clips=torch.tensor([0, 2])).clips == (0, 2)
    assert Grid(eps=torch.tensor([1.0, 2.0])).eps == (1.0, 2.0)
    assert Grid(eps=torch.tensor(5.0)).eps == (5.0,)
    assert_raises_naming(TypeError, "Selection.clips", Selection, clips=np.array([True, False]))


def test_a_seed_beyond_64_bits_is_refused_naming_seed() -> None:
    assert_raises_naming(ValueError, "seed", run, seed=2**70)


def test_correct_samples_checks_the_model_and_its_forward() -> None:
    assert_raises_naming(TypeError, "model", correct_samples, None, DATA)
    assert_raises_naming(TypeError, "model", correct_samples, Toy(), ({**X, "text": X["audio"]}, Y))


@pytest.mark.parametrize(
    ("ids", "positive", "kind", "name"),
    [
        ([0, 1, 2, 3], [0.9, 0.2, 0.7, 0.1], TypeError, "positive[0]"),
        ([0, 1], ["True", "False"], TypeError, "positive[0]"),
        ([0, 0, 1, 1], [True, True, False, False], ValueError, "ids"),
        (None, [True], TypeError, "ids"),
        ([0.0, 1.0], [True, False], TypeError, "ids[0]"),
    ],
)
def test_balanced_subset_refuses_what_is_not_indices_and_flags(ids, positive, kind, name) -> None:
    assert_raises_naming(kind, name, balanced_subset, ids, positive)


def test_balanced_subset_and_per_class_give_python_ints() -> None:
    for chosen in (
        balanced_subset(torch.tensor([0, 1]), torch.tensor([True, False])),
        balanced_subset(np.array([0, 1]), np.array([True, False])),
        balanced_per_class(torch.tensor([0, 1]), torch.tensor([0, 1])),
    ):
        assert chosen == [0, 1] and all(type(i) is int for i in chosen)
    assert_raises_naming(TypeError, "classes[0]", balanced_per_class, [0, 1, 2], [0.0, 1.5, 1.0])


def test_cannot_balance_the_classes_says_the_same_fix_as_the_binary_task() -> None:
    message = assert_raises_naming(
        ValueError, "cannot balance", balanced_per_class, [0, 1], [0, 0], all_classes=[0, 1]
    )
    assert "Selection(balance=False)" in message and "--no-balance" in message


# ----------------------------------------------------------------------------- report


@pytest.fixture(scope="module")
def report():
    return run(
        grid=Grid(
            rules=["bim"], eps=[100.0], modalities=["audio", "visual", "audio+visual"], steps=1
        )
    )


def test_report_lookups_name_their_argument(report, tmp_path) -> None:
    assert_raises_naming(TypeError, "eps", report.cell, "bim", None, "audio")
    assert_raises_naming(TypeError, "rule", report.cell, None, 100.0, "audio")
    assert_raises_naming(TypeError, "eps", report.plot_ecr, tmp_path / "e.png", eps="x")
    assert_raises_naming(TypeError, "plots", report.save, tmp_path, plots="no")
    assert_raises_naming(ValueError, "name", report.save, tmp_path, "runs/a", plots=False)
    assert_raises_naming(TypeError, "path", EvaluationReport.from_results_file, None)


# ----------------------------------------------------------------------------- bootstrap

S = [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]
L = [[1, 0], [0, 1], [1, 1]]
COUNTS = clip_counts(3, resamples=20)


@pytest.mark.parametrize(
    ("call", "kind", "fragment"),
    [
        (lambda: bootstrap_map(S, L, -COUNTS), ValueError, "counts"),
        (lambda: bootstrap_map(S, L, COUNTS + 0.5), ValueError, "counts"),
        (lambda: bootstrap_map([["a", "b"]] * 3, L, COUNTS), TypeError, "scores[0]"),
        (
            lambda: bootstrap_mean([1.0, 2.0, 3.0], np.zeros((2, 3), dtype=int)),
            ValueError,
            "counts",
        ),
        (lambda: bootstrap_mean([], np.zeros((2, 0), dtype=int)), ValueError, "values"),
        (lambda: bootstrap_mean([[1.0, 2.0, 3.0]], COUNTS), ValueError, "values"),
        (lambda: percentile_interval(np.arange(10.0), level=95), ValueError, "0.95"),
        (lambda: percentile_interval(np.array([1.0, np.inf])), ValueError, "samples"),
        (lambda: percentile_interval(["a", "b"]), TypeError, "samples"),
        (lambda: clip_counts(10**6, resamples=10**6), ValueError, "resamples"),
    ],
)
def test_bootstrap_helpers_refuse_bad_input(call, kind, fragment) -> None:
    assert_raises_naming(kind, fragment, call)


def test_cell_bootstrap_names_which_and_the_cell(report) -> None:
    boot = CellBootstrap(resamples=10)
    assert_raises_naming(ValueError, "which", boot.map, report.cells[0], "adversarial")
    assert_raises_naming(ValueError, "which", boot.accuracy, report.cells[0], "x")
    assert_raises_naming(TypeError, "cell", boot.map, report.cells[0].to_dict())
    assert_raises_naming(TypeError, "cell", boot.ecr, None, "audio")
    multi = type(report.cells[0])(
        **{**report.cells[0].__dict__, "classes": 4, "measure": "accuracy"}
    )
    message = assert_raises_naming(ValueError, "cell", boot.map, multi)
    assert "accuracy" in message
    assert boot.map(report.cells[0]).shape == (10,)
    assert math.isfinite(boot.interval(boot.map(report.cells[0]))[0])


def test_a_cell_dict_without_a_field_names_it(report) -> None:
    data = {k: v for k, v in report.cells[0].to_dict().items() if k != "map_adv"}
    message = assert_raises_naming(ValueError, "map_adv", type(report.cells[0]).from_dict, data)
    assert "CellResult.to_dict()" in message


def test_a_results_folder_that_cannot_hold_the_lock_says_so(tmp_path, monkeypatch) -> None:
    import errno
    import os

    from avrobust.evaluation import Store

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "open", refuse)
    message = assert_raises_naming(OSError, "Store.path", run, store=Store(tmp_path / "r.jsonl"))
    assert "lock file" in message and "Permission denied" in message
