"""Issue 19, "Done when": a run with ``--threads 1`` and one with ``--threads 2`` agree on every
verdict. By construction (every job of the demo runs on one torch thread, in this process or a
worker process: :mod:`avrobust.demo.jobs`) they agree on every number too, which is what this
test checks on the test preset: the tables and every finding, word for word."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


def _findings(summary: str) -> str:
    return summary.split("## Which of the paper's findings held here", 1)[1].split("Wall time")[0]


@pytest.mark.slow  # runs the demo once more (the shared run is the --threads 1 one)
def test_one_and_two_threads_agree_on_every_number_and_verdict(demo_folder, tmp_path) -> None:
    out = tmp_path / "two"
    argv = ["demo", "--preset", "test", "--out", str(out), "--quiet", "--threads", "2"]
    env = {**os.environ, "PYTHONWARNINGS": "error::UserWarning"}
    done = subprocess.run(
        [sys.executable, "-m", "avrobust", *argv], capture_output=True, text=True, timeout=900,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = ((d / "summary.md").read_text() for d in (demo_folder, out))
    assert "with 1 single-threaded worker" in one and "with 2 single-threaded workers" in two
    verdicts = re.findall(r"^- \*\*([a-z ]+)\*\*", _findings(one), flags=re.M)
    assert len(verdicts) >= 12  # every claim the preset tests
    assert _findings(one) == _findings(two)
    assert (demo_folder / "table.md").read_text() == (out / "table.md").read_text()
    assert (demo_folder / "table.csv").read_text() == (out / "table.csv").read_text()
