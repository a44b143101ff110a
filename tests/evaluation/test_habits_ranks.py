"""evaluate across ranks when the ranks were not given the same things (2 gloo CPU processes).

Before, a rank given other settings, other data or a DistributedSampler computed on silently
(or waited in a collective until the process group timed out), and an error on one rank reached
the others as "Connection closed by peer". Now every rank raises the same error, naming the rank
and what differs, before any attack.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from typing import Any

import pytest
import torch.distributed as dist
from helpers import run_on_gloo_ranks
from test_evaluation import GRID, ClipDataset, Toy, make_data
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from avrobust.evaluation import Selection, evaluate

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

ONE = replace(GRID, rules=["bim"], eps=[100.0], modalities=["audio"], steps=2)
SETTINGS: dict[str, Any] = {"selection": Selection(clips="all"), "batch_size": 4, "progress": False}


def _batches(data: Any, count: int) -> list[Any]:
    inputs, labels = data
    return [
        ({k: v[i : i + 4] for k, v in inputs.items()}, labels[i : i + 4])
        for i in range(0, count, 4)
    ]


def _error_of(run: Any) -> tuple[str, str]:
    """``(type, message)`` of what ``run()`` raised (``("", "")`` if nothing)."""
    try:
        run()
    except Exception as error:
        return type(error).__name__, str(error)
    return "", ""


def _work(rank: int, out_dir: str) -> dict[str, tuple[str, str]]:
    """Each case: rank 1 is given something other than rank 0."""
    data = make_data(12)
    other = rank == 1
    loader = DataLoader(ClipDataset(data), batch_size=4)
    sharded = DataLoader(
        ClipDataset(data),
        batch_size=4,
        sampler=DistributedSampler(ClipDataset(data), num_replicas=2, rank=rank, shuffle=False),
    )

    def on_cell(cell: Any) -> None:
        if other:
            raise RuntimeError(f"on_cell failed on rank {rank} for {cell.key}")

    cases = {
        "seed": lambda: evaluate(Toy(), data, ONE, **{**SETTINGS, "seed": 5 if other else 0}),
        "weights": lambda: evaluate(Toy(2.0 if other else 1.0), data, ONE, **SETTINGS),
        "sampler": lambda: evaluate(Toy(), sharded if other else loader, ONE, **SETTINGS),
        "shorter": lambda: evaluate(Toy(), _batches(data, 8 if other else 12), ONE, **SETTINGS),
        "content": lambda: evaluate(
            Toy(), _batches(make_data(12, seed=1) if other else data, 12), ONE, **SETTINGS
        ),
        "on_cell": lambda: evaluate(Toy(), data, ONE, on_cell=on_cell, **SETTINGS),
    }
    return {name: _error_of(run) for name, run in cases.items()}


@pytest.mark.slow
@pytest.mark.timeout(600)  # 12 s idle; spawning torch processes on a loaded 2-core machine is slow
def test_ranks_given_different_things_all_raise_the_same_clear_error(tmp_path) -> None:
    """A hang would end in the process group's timeout, with gloo's message instead."""
    results = run_on_gloo_ranks(_work, tmp_path, timeout_s=90.0)
    for name, pattern in {
        "seed": r"rank 1 was given other seed than rank 0",
        "weights": r"rank 1 was given other model than rank 0",
        "sampler": r"data: a DataLoader with a DistributedSampler",
        "shorter": r"data: a second pass over it gave 8 of the 12 selected clips",
        "content": r"data: clip 0 has other content on this read \(on rank 1\)",
        "on_cell": r"on_cell failed on rank 1 for bim\|100.0\|audio",
    }.items():
        for rank, found in enumerate(results):
            kind, message = found[name]  # type: ignore[index]
            assert kind, f"{name}: rank {rank} raised nothing"
            assert re.search(pattern, message), f"{name}, rank {rank}: {kind}: {message}"
