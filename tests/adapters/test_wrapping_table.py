"""Issue 18: every row of docs/wrapping.md's table of ``wrap`` calls runs verbatim on a stand-in
with the real model's forward signature and output structure (tests/adapters/real_signatures.py),
and gives logits of the shape the model's task has."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from real_signatures import build

import avrobust
import avrobust.transforms
from avrobust import wrap

PAGE = Path(__file__).resolve().parents[2] / "docs" / "wrapping.md"
ROW = re.compile(r"^\| (?P<pattern>[^|]*?\((?P<model>[^)]+)\)) \| (?P<call>.*) \|$", re.M)


def rows() -> dict[str, list[str]]:
    """Model name -> the code spans of its row's call cell."""
    table = PAGE.read_text().split("`wrap` calls", 1)[1]
    found = {m["model"]: re.findall(r"`([^`]+)`", m["call"]) for m in ROW.finditer(table)}
    return found


def test_the_table_has_the_five_models():
    assert sorted(rows()) == ["AVE", "Light-ASD", "LoCoNet", "SyncNet", "TalkNet"]


@pytest.mark.parametrize("name", ["TalkNet", "Light-ASD", "SyncNet", "AVE", "LoCoNet"])
def test_table_row_runs_verbatim_on_the_real_signature(name):
    """The row's ``wrap(...)`` (and any statement after it) runs as written; the wrapper's
    logits have the task's shape, without a warning."""
    spans = rows()[name]
    namespace: dict[str, object] = {"wrap": wrap, "avrobust": avrobust, "torch": torch, "F": F}
    namespace.update(build(name))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        wrapped = eval(spans[0], namespace)
        for statement in spans[1:]:
            exec(statement, namespace)
        out = wrapped(**namespace["inputs"])  # type: ignore[arg-type]
    assert out.logits.shape == namespace["logits"]
    assert torch.isfinite(out.logits).all()
