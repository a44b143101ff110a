"""Every example runs (fast mode) and says something checkable."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses in an example look their module up here
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_quickstart_runs_and_reports_every_cell(capsys):
    results = load("quickstart").main(["--fast"])
    out = capsys.readouterr().out
    assert "clean accuracy" in out and "audio+visual" in out
    assert set(results) == {"clean"} | {
        f"{r}/30/{m}" for r in ("bim", "mim", "pgd") for m in ("audio", "visual", "audio+visual")
    }
    assert all(0.0 <= v <= 1.0 for v in results.values())
    # on this seeded run no attack raised accuracy above clean
    assert all(v <= results["clean"] + 1e-9 for k, v in results.items() if k != "clean")
