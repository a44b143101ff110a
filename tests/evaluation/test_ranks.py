"""evaluate across torch.distributed ranks: 2 CPU processes (gloo) give the 1-process report.

The 2-rank run shards the selected clips' batches over the ranks (batch k on rank k mod 2),
gathers the per-batch measures and writes the results file on rank 0 only. Its report must
equal the 1-process one cell by cell (every measure and every per-clip value; only the timing
differs), for a deterministic rule (BIM) and one with a random start (PGD: each batch's start
comes from the cell's seed alone, so it does not depend on the rank that attacks the batch).
A resumed 2-rank run reuses every stored cell on both ranks and computes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from helpers import run_on_gloo_ranks
from test_evaluation import Toy, make_data

from avrobust.evaluation import Grid, Selection, Store, evaluate
from avrobust.evaluation.store import read_results

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

WORLD = 2
GRID = Grid(rules=["bim", "pgd"], eps=[300.0], modalities=["audio", "audio+visual"], steps=2)
SETTINGS: dict[str, Any] = {
    "selection": Selection(clips="all"),
    "batch_size": 3,
    "seed": 4,
    "progress": False,
}


class Broken(Toy):
    """Fails while attacked on rank 1 only (the clean pass, on rank 0, goes through)."""

    def forward(self, audio: torch.Tensor, visual: torch.Tensor):  # type: ignore[override]
        if torch.is_grad_enabled() and dist.is_initialized() and dist.get_rank() == 1:
            raise RuntimeError("broken on rank 1")
        return super().forward(audio, visual)


def _run(path: Path, resume: bool) -> tuple[dict, list[str]]:
    torch.manual_seed(0)
    computed: list[str] = []
    report = evaluate(
        Toy(),
        make_data(10),
        GRID,
        store=Store(path=str(path), resume=resume),
        on_cell=lambda cell: computed.append(cell.key),
        **SETTINGS,
    )
    return report.to_dict(), computed


def _work(rank: int, out_dir: str) -> dict[str, Any]:
    """What one rank runs: a fresh and a resumed evaluation, one with a single batch, one whose
    model fails on a rank."""
    path = Path(out_dir) / "ranks.jsonl"
    first = _run(path, resume=False)
    lines = path.read_text().count("\n")
    lines += 100 * (path.parent / "ranks.jsonl.lock").exists()
    dist.barrier()
    second = _run(path, resume=True)
    one_batch = evaluate(Toy(), make_data(10), GRID, **{**SETTINGS, "batch_size": 16})
    try:
        evaluate(Broken(), make_data(10), GRID, **SETTINGS)
        failure = ""
    except RuntimeError as error:
        failure = str(error)
    result = {"first": first, "second": second, "lines": lines, "failure": failure}
    result["one_batch"] = one_batch.to_dict()
    return result


def _without_timing(report: dict) -> dict:
    cells = [{k: v for k, v in c.items() if k != "seconds"} for c in report["cells"]]
    return {**report, "cells": cells}


def _assert_close(got: object, expected: object, where: str) -> None:
    """Equal structure, numbers equal to float tolerance (NaN equals NaN)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for key in expected:
            _assert_close(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected, strict=True)):
            _assert_close(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12, nan_ok=True), where
    else:
        assert got == expected, where


@pytest.fixture(scope="module")
def ranks_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """One 2-process gloo run of every case (spawning costs about 2 s); its folder and what
    each rank saved."""
    folder = tmp_path_factory.mktemp("ranks")
    return folder, run_on_gloo_ranks(_work, folder, world=WORLD)  # type: ignore[return-value]


def _assert_same_report(got: dict, expected: dict) -> None:
    got, expected = _without_timing(got), _without_timing(expected)
    assert got.keys() == expected.keys()
    for key in expected:
        if key != "cells":
            assert got[key] == expected[key], key
    assert len(got["cells"]) == len(expected["cells"])
    for mine, ref in zip(got["cells"], expected["cells"], strict=True):
        _assert_close(mine, ref, ref["rule"] + str(ref["modalities"]))


@pytest.mark.timeout(600)  # 10 s idle; spawning torch processes on a loaded 2-core machine is slow
def test_two_gloo_ranks_give_the_one_process_report(
    ranks_run: tuple[Path, list[dict]], tmp_path: Path
) -> None:
    """Same cells (all measures and per-clip values) on both ranks as in one process, for BIM
    and PGD (random start); rank 0 alone writes the file (meta + one line per cell, no
    duplicate, lock released); a resume computes nothing on any rank."""
    folder, ranks = ranks_run
    single, computed = _run(tmp_path / "single.jsonl", resume=False)
    assert len(computed) == len(GRID.cells()) == 4
    for r, res in enumerate(ranks):
        report, fresh = res["first"]
        assert fresh == computed, f"rank {r} computed other cells"
        _assert_same_report(report, single)
        resumed, again = res["second"]
        assert again == [], f"rank {r} recomputed cells on resume"
        assert _without_timing(resumed) == _without_timing(report)
    assert ranks[0]["lines"] == ranks[1]["lines"] == 1 + len(GRID.cells())
    stored = read_results(folder / "ranks.jsonl")
    assert sorted(stored.cells) == sorted(read_results(tmp_path / "single.jsonl").cells)
    assert not (folder / "ranks.jsonl.lock").exists()


@pytest.mark.timeout(600)  # 10 s idle; spawning torch processes on a loaded 2-core machine is slow
def test_ranks_without_a_batch_and_a_failing_rank(ranks_run: tuple[Path, list[dict]]) -> None:
    """Fewer batches than ranks (rank 1 attacks nothing) still gives the 1-process report; an
    error on one rank is raised on every rank instead of leaving the others waiting."""
    _, ranks = ranks_run
    torch.manual_seed(0)
    single = evaluate(Toy(), make_data(10), GRID, **{**SETTINGS, "batch_size": 16}).to_dict()
    for res in ranks:
        _assert_same_report(res["one_batch"], single)
        assert res["failure"] == "broken on rank 1"
