"""Suite-wide settings. Shared helpers live in ``tests/helpers.py`` (``from helpers import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

# One intra-op thread: the suite's tensors are small, and two spinning threads on a busy 2-core
# machine made tiny ops 10-40x slower. Benchmarks, not tests, measure threading.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory):
    """One ``python -m avrobust demo --preset test`` run, as a user runs the command (a
    subprocess, one torch thread, every UserWarning an error), shared by every test that needs a
    demo folder: tests that change it copy it first. (Each demo run costs 20 s idle and over a
    minute on a busy 2-core machine: the suite ran four of them before.)"""
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "PYTHONWARNINGS": "error::UserWarning"}  # no stray warnings either
    argv = ["demo", "--preset", "test", "--out", str(out), "--quiet", "--threads", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "avrobust", *argv],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out
