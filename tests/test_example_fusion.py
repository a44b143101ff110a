"""examples/fusion_defenses.py runs in fast mode and prints the slides' table shapes."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import torch

from avrobust.metrics.ri import RobustnessRow

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fusion_defenses.py"


def load():
    spec = importlib.util.spec_from_file_location("fusion_defenses", EXAMPLE)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["fusion_defenses"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_fast_run_prints_both_tables(capsys):
    threads = torch.get_num_threads()
    start = time.perf_counter()
    tables = load().main(["--fast"])
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert elapsed < 25
    assert torch.get_num_threads() == threads  # the example restores the thread count
    assert list(tables["fusions"]) == ["sum", "concat", "film", "gated_sum", "gated_concat"]
    defenses = tables["defenses"]
    assert {"None", "MinSim", "ExFMem", "MinSim+ExFMem", "Unimodal A", "Unimodal V"} <= set(
        defenses
    )
    rows = [*tables["fusions"].values(), *defenses.values()]
    assert all(isinstance(r, RobustnessRow) and 0 <= r.clean <= 100 for r in rows)
    # an audio-only model cannot be hurt by a visual-only attack, and vice versa
    assert defenses["Unimodal A"].visual == defenses["Unimodal A"].clean
    assert defenses["Unimodal V"].audio == defenses["Unimodal V"].clean
    assert "| method | ✓AV | ✗A | ✗V | ✗AV | Avg | RI |" in out
    assert "| None |" in out and "| 0.00 |" in out
    assert "convexity (AV head)" in out
