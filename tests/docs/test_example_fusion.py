"""examples/fusion_defenses.py runs in fast mode and prints the slides' table shapes."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
import torch

from avrobust.metrics.ri import RobustnessRow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fusion_defenses.py"


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


def test_fast_run_reports_progress_on_stderr(capsys):
    """Each stage (every fusion, every defense model and row, the geometry) says so on stderr,
    with the elapsed seconds, while the tables stay on stdout."""
    load().main(["--fast"])
    captured = capsys.readouterr()
    err = captured.err
    assert "fusion 5/5 (gated_concat): trained and attacked" in err
    assert "defense model 8/8 (MinSim+ExFMem) fine-tuned" in err
    assert "defense row 10/10 (MinSim+ExFMem, BPDA attack) attacked" in err
    assert "embedding geometry measured" in err
    assert all(line.startswith("[") and " s] " in line for line in err.strip().splitlines())
    assert "fusion 1/5" not in captured.out


def test_attacks_run_in_chunks_with_the_same_result(monkeypatch):
    """robustness() attacks at most cfg.attack_batch clips at once (bounded memory), and the
    chunked accuracy equals the one of a single batch (float64 model and data, so that BIM's
    sign steps do not depend on the batch size)."""
    import avrobust
    from avrobust.models.event import AVEventNet

    module = load()
    sizes = []

    class Spy(avrobust.MultimodalAttack):
        def __call__(self, inputs, labels, *args, **kwargs):
            sizes.append(len(labels))
            return super().__call__(inputs, labels, *args, **kwargs)

    monkeypatch.setattr(avrobust, "MultimodalAttack", Spy)
    cfg = module.replace(module.FAST, test=40, attack_batch=16)
    _, (inputs, labels) = module.make_data(cfg)
    data = ({m: x.double() for m, x in inputs.items()}, labels)
    torch.manual_seed(0)
    model = AVEventNet(cfg.classes, "concat", dim=cfg.dim, width=cfg.width).double().eval()
    chunked = module.robustness(model, data, cfg, "training")
    assert sizes and max(sizes) <= 16 and sum(sizes) == 3 * 40  # three attacks, 40 clips each
    whole = module.robustness(model, data, module.replace(cfg, attack_batch=1000), "training")
    for field in ("clean", "audio", "visual", "audiovisual"):  # the same clips fooled
        assert getattr(chunked, field) == pytest.approx(getattr(whole, field), abs=1e-4)
