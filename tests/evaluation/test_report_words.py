"""Reports name the model by a name (the one given, else its class name), use the task's own
class words (neutral unless given, e.g. speaking for active speaker detection) and grammatical
counts. Before issue 18 they named the model by a hash, called class 1 "speaking" for every
binary task (SyncNet's in-sync too) and said "(1 classes)"."""

from __future__ import annotations

import dataclasses

import pytest
from helpers import assert_raises_naming
from test_evaluation import Toy, make_data

import avrobust
from avrobust.evaluation import SPEAKING_CLASSES, Grid, Measures, Selection, evaluate
from avrobust.evaluation.reporting import counted

GRID = Grid(rules=["bim"], eps=[100.0], modalities=["audio"], steps=1)
QUIET = {"selection": Selection(clips="all"), "progress": False}


@pytest.fixture(scope="module")
def data():
    return make_data(8)


def _title(report) -> str:
    return report.table().splitlines()[0] + " | " + report._title()


def test_the_report_names_the_model_by_its_class_or_the_name_given(data) -> None:
    report = evaluate(Toy(), data, GRID, **QUIET)
    assert report.name == "Toy" and report._title().startswith("Toy: 8 of 8 clips")
    wrapped = avrobust.wrap(Toy())
    assert evaluate(wrapped, data, GRID, **QUIET)._title().startswith("Toy: ")
    named = evaluate(Toy(), data, GRID, name="SyncNet (in sync)", **QUIET)
    assert named._title().startswith("SyncNet (in sync): ")
    assert_raises_naming(TypeError, "name", evaluate, Toy(), data, GRID, name="", **QUIET)
    assert_raises_naming(TypeError, "name", evaluate, Toy(), data, GRID, name=3, **QUIET)


def test_binary_class_words_are_neutral_unless_given(data) -> None:
    neutral = evaluate(Toy(), data, GRID, **QUIET)
    positives = neutral.clean["positives_selected"]
    assert f"({positives} of class 1)" in _title(neutral) and "speaking" not in _title(neutral)
    asd = evaluate(Toy(), data, GRID, measures=Measures(class_names=SPEAKING_CLASSES), **QUIET)
    assert f"({positives} speaking)" in _title(asd)
    sync = Measures(class_names=("out of sync", "in sync"))
    assert f"({positives} in sync)" in _title(evaluate(Toy(), data, GRID, measures=sync, **QUIET))


def test_counts_are_grammatical(data) -> None:
    assert [counted(n, "class", "classes") for n in (0, 1, 2)] == [
        "0 classes",
        "1 class",
        "2 classes",
    ]
    report = evaluate(Toy(), data, GRID, **QUIET)
    one = dataclasses.replace(report, clean={**report.clean, "classes_selected": {"3": 8}})
    assert "(1 class)" in _title(one) and "(1 classes)" not in _title(one)


@pytest.mark.parametrize(
    ("names", "kind"), [("ab", TypeError), (("speaking",), ValueError), ((1, 2), TypeError)]
)
def test_class_names_are_checked(names, kind) -> None:
    assert_raises_naming(kind, "Measures.class_names", Measures, class_names=names)
