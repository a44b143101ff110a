"""examples/train_avil.py runs in fast mode and shows what it claims."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_avil.py"


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location("train_avil_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module  # one torch thread: set for the whole suite in tests/conftest.py


def test_train_avil_fast(example, capsys) -> None:
    results = example.main(["--fast"])
    printed = capsys.readouterr().out
    assert "clean mAP" in printed and "defended" in printed
    base, defended = results["baseline"], results["defended"]
    for r in (base, defended):
        assert r["clean_map"] > 0.95  # the synthetic task is learnable
        assert r["adv_map"] < r["clean_map"]  # and the PGD attack bites
        assert 0 < r["ecr_audio"] < 10 and 0 < r["ecr_visual"] < 10
        assert 5 < r["snr_db"] < 40 and 20 < r["psnr_db"] < 60
        assert r["history"]["task"][-1] < r["history"]["task"][0]
    history = defended["history"]
    assert set(history) == {"task", "l1", "l2", "l3", "l4"}
    assert all(math.isfinite(v) for name in ("l1", "l2", "l3", "l4") for v in history[name])
    assert base["history"]["l1"] == []  # the baseline never used AVIL
    # On held-out clips AVIL training gave the geometry of §3.3: every term lower than baseline.
    for name in ("l1", "l2", "l3", "l4"):
        assert defended[f"test_{name}"] < base[f"test_{name}"], name
    # And the paper's claim at this seed (about 98 vs 89 mAP under PGD): more robust.
    assert defended["adv_map"] > base["adv_map"]
    assert "AVIL terms on held-out" in printed


class _Stop(Exception):
    pass


def test_env_var_selects_fast_mode(example, monkeypatch) -> None:
    monkeypatch.setenv("AVROBUST_FAST", "1")
    seen: dict[str, int] = {}

    def fake_train(defended: bool, data, steps: int, seed: int):
        seen["steps"], seen["clips"] = steps, data[1].shape[0]
        raise _Stop

    monkeypatch.setattr(example, "train", fake_train)
    with pytest.raises(_Stop):
        example.main([])
    assert seen == {"steps": 60, "clips": 96}
