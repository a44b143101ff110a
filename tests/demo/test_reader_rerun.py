"""Issue 19.5, end to end on the test preset: the files counted include the whole XAB folder,
and a rerun that reads everything from the caches keeps the first run's wall times in
summary.md (and results.json) and says it read the caches."""

from __future__ import annotations

import json
import os
import re

import pytest

from avrobust.demo import run_demo


def _wall(summary: str) -> str:
    return next(line for line in summary.splitlines() if line.startswith("Wall time"))


@pytest.mark.slow
def test_a_cached_rerun_keeps_the_first_runs_times_and_counts_the_xab_folder(tmp_path) -> None:
    first = run_demo(tmp_path, "test", progress=False)
    xab = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(tmp_path / "xab_test")
        for name in names
    )
    assert len(xab) > 10 and set(xab) <= set(first.files)  # every file of the XAB folder
    assert "first run" not in _wall(first.summary)
    again = run_demo(tmp_path, "test", progress=False)
    line = _wall(again.summary)
    assert "first run" in line and "from the caches" in line
    numbers = re.findall(r"(\d+) s", _wall(first.summary))[:2]
    assert re.findall(r"training/loading (\d+) s, attacks (\d+) s", line)[0] == tuple(numbers)
    assert again.seconds["train"] == pytest.approx(first.seconds["train"])
    assert again.seconds["evaluate"] == pytest.approx(first.seconds["evaluate"])
    saved = json.loads((tmp_path / "results.json").read_text())["seconds"]
    assert saved["train"] == pytest.approx(first.seconds["train"])  # a third run keeps them too
    assert len(again.files) == len(first.files)
