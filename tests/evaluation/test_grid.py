"""The grid (avrobust.evaluation.grid) and a cell's measures (avrobust.evaluation.runner), no attack.

The grid is checked once when built; its cells come in grid order with what defines them.
``CellMeasures`` is fed hand-made batches and compared with the functional metrics computed on
the whole set at once (the independent reference).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import assert_raises_naming

import avrobust
from avrobust.evaluation import Grid
from avrobust.evaluation.runner import CellMeasures
from avrobust.metrics import average_precision, ecr, max_abs, psnr, snr


def test_cells_come_in_grid_order_with_what_defines_them():
    """rule, then eps, then modality set; each cell's definition holds the rule's repr and the
    budgets of its attacked modalities only (as a results file stores them)."""
    grid = Grid(
        rules=["bim", avrobust.MIM(decay=0.5)], eps=[2, 1.0], modalities=["visual", "audio+visual"]
    )
    keys = [c.key for c in grid.cells()]
    assert keys[:3] == ["bim|2.0|visual", "bim|2.0|audio+visual", "bim|1.0|visual"]
    assert len(keys) == 2 * 2 * 2 and keys[-1] == "mim|1.0|audio+visual"
    first = grid.cells()[0]
    assert first.defines == {
        "rule": "BIM()",
        "budgets": {"visual": repr(avrobust.push_pull_budgets(2.0)["visual"])},
    }
    assert grid.cells()[-1].defines["rule"] == repr(avrobust.MIM(decay=0.5))
    assert set(grid.cells()[1].defines["budgets"]) == {"audio", "visual"}


def test_fields_are_normalised_and_a_replaced_grid_is_checked_again():
    """Names are lower-cased, eps become floats, modality sets tuples; dataclasses.replace
    builds a new grid that is checked like the first."""
    grid = Grid(rules="PGD", eps=5, modalities=["audio,visual"])
    assert (
        grid.rules == ("pgd",) and grid.eps == (5.0,) and grid.modalities == (("audio", "visual"),)
    )
    assert dataclasses.replace(grid, eps=[1, 2]).eps == (1.0, 2.0)
    assert_raises_naming(ValueError, "Grid.eps", dataclasses.replace, grid, eps=[1, 1])
    assert grid == Grid(rules=["pgd"], eps=[5.0], modalities=[("audio", "visual")])


def test_cell_seeds_depend_on_the_cell_not_on_the_order():
    """A cell's seed comes from the run's seed and its key: the same in any grid holding it."""
    small = {c.key: c.seed(3) for c in Grid(eps=[2.0]).cells()}
    large = {c.key: c.seed(3) for c in Grid(eps=[1.0, 2.0]).cells()}
    assert all(large[k] == v for k, v in small.items())
    assert len(set(large.values())) == len(large)


def test_budgets_that_lack_an_attacked_modality_are_refused_when_built():
    """The budgets are asked once per eps when the grid is built: a modality they lack is
    refused then, naming Grid.modalities and the eps."""

    def audio_only(eps: float) -> dict:
        return {"audio": avrobust.Linf(eps, bounds=(-1, 1))}

    message = assert_raises_naming(ValueError, "Grid.modalities", Grid, budgets=audio_only)
    assert "['visual']" in message and "eps=1" in message
    assert Grid(budgets=audio_only, modalities=["audio"]).config()["budget_repr"]["1.0"] == {
        "audio": repr(avrobust.Linf(1.0, bounds=(-1, 1)))
    }


def _batches(seed: int = 0):
    """Three hand-made batches of 3 clips x 4 frames: scores, labels, embeddings, inputs."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        labels = (torch.rand(3, 4, generator=g) < 0.5).long()
        labels[0, 0], labels[1, 0] = 1, 0  # both classes in every batch
        clean, adv = torch.rand(3, 4, generator=g), torch.rand(3, 4, generator=g)
        z, z_adv = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
        x = torch.rand(3, 16, generator=g) * 255
        x_adv = (x + torch.randn(3, 16, generator=g)).clamp(0, 255)
        x_adv[2] = x[2]  # an untouched clip: SNR and PSNR +inf, left out of the means
        yield clean, adv, labels, z, z_adv, x, x_adv


def test_cell_measures_equal_the_functional_metrics_on_all_batches_at_once():
    """CellMeasures fed batch by batch gives, for every measure, what the functional metric
    gives on the concatenated batches: mAP, success (more than half of a clip's frames wrong),
    frame error rate, ECR, the mean finite SNR/PSNR and the largest change."""
    budgets = {"visual": avrobust.Linf(1.0, bounds=(0, 255))}
    measures = CellMeasures(budgets)
    parts = list(_batches())
    for clean, adv, labels, z, z_adv, x, x_adv in parts:
        measures.add_scores(clean, adv, labels)
        measures.add_embeddings({"visual": z}, {"visual": z_adv})
        measures.add_change("visual", x, x_adv)
    result = measures.result("bim", 1.0, seconds=0.0)
    clean, adv, labels, z, z_adv, x, x_adv = (torch.cat(t) for t in zip(*parts))
    assert result.map_clean == float(average_precision(clean, labels))
    assert result.map_adv == float(average_precision(adv, labels))
    wrong = ((adv >= 0.5).long() != labels).float()
    assert result.success_rate == pytest.approx(float((wrong.mean(1) > 0.5).float().mean()))
    assert result.frame_error_rate == pytest.approx(float(wrong.mean()))
    assert result.ecr["visual"] == pytest.approx(float(ecr(z, z_adv)), rel=1e-6)
    ratios = snr(x, x_adv)
    assert int(torch.isfinite(ratios).sum()) == 6  # every batch's untouched clip left out
    assert result.snr_db["visual"] == pytest.approx(float(ratios[torch.isfinite(ratios)].mean()))
    peak = psnr(x, x_adv, data_range=255.0)
    assert result.psnr_db["visual"] == pytest.approx(float(peak[torch.isfinite(peak)].mean()))
    assert result.linf["visual"] == float(max_abs(x, x_adv).max())
    assert result.samples == 9 and result.frames == 36
    assert len(result.per_clip["adv"]) == 9 and len(result.per_clip["ecr"]["visual"]) == 9


def test_psnr_only_for_bounded_budgets():
    """A budget without finite bounds gets SNR and L-inf but no PSNR (no peak to divide by)."""
    measures = CellMeasures({"audio": avrobust.Linf(0.1)})
    x = torch.ones(2, 8)
    measures.add_scores(torch.tensor([0.9, 0.1]), torch.tensor([0.9, 0.9]), torch.tensor([1, 0]))
    measures.add_change("audio", x, x + 0.1)
    result = measures.result("pgd", 0.1, seconds=0.0)
    assert result.psnr_db == {} and result.snr_db["audio"] == pytest.approx(20.0, rel=1e-6)
    assert result.ecr == {} and result.success_rate == 0.5
