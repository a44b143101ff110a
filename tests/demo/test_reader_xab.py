"""Issue 19.5, what a reader sees: the XAB trials' A/B order and X are drawn per trial from the
seeded generator, balanced over the trials, so both orders occur (under the default seed the
four demo trials all put the genuine clip first before), and the answer key matches the files."""

from __future__ import annotations

import csv

import pytest
import torch

from avrobust.export import export_pairs


def _clips(count: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    clean = {"audio": 0.1 * torch.randn(count, 64, generator=g)}
    adversarial = {"audio": clean["audio"] + 1e-3 * torch.randn(count, 64, generator=g)}
    return clean, adversarial


@pytest.mark.parametrize("seed", [0, 1, 2, 42])
@pytest.mark.parametrize("count", [2, 4, 5])
def test_both_orders_occur_and_the_key_matches(tmp_path, seed: int, count: int) -> None:
    clean, adversarial = _clips(count)
    export_pairs(tmp_path, clean, adversarial, frames=False, seed=seed)
    with open(tmp_path / "xab_key.csv") as handle:
        key = list(csv.DictReader(handle))
    assert len(key) == count
    firsts = [row["A"] for row in key]
    xs = [row["X is"] for row in key]
    assert set(firsts) == {"genuine", "adversarial"}, firsts  # both orders occur
    assert set(xs) == {"A", "B"}, xs
    assert abs(firsts.count("genuine") - firsts.count("adversarial")) <= 1  # balanced
    assert abs(xs.count("A") - xs.count("B")) <= 1
    for row in key:
        trial, pair = tmp_path / "xab" / row["trial"], tmp_path / row["pair"]
        for role in ("A", "B"):
            assert (trial / f"{role}.wav").read_bytes() == (pair / f"{row[role]}.wav").read_bytes()
        assert (trial / "X.wav").read_bytes() == (trial / f"{row['X is']}.wav").read_bytes()


def test_the_order_is_seeded_and_varies_with_the_seed(tmp_path) -> None:
    clean, adversarial = _clips(6)
    texts = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        export_pairs(tmp_path / name, clean, adversarial, frames=False, seed=seed)
        texts.append((tmp_path / name / "xab_key.csv").read_text())
    assert texts[0] == texts[1]
    assert texts[0] != texts[2]
