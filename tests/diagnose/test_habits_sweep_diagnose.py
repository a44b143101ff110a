"""Issue 17, the sweep of diagnose: one warning per finding, arguments checked by name, and
batch_coupling on data it cannot measure."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import assert_raises_naming, budgets_for, make_inputs, make_model

import avrobust

LABELS = torch.tensor([0, 1, 0])
QUICK = {"steps": 1, "restarts": 1, "queries": 2, "noise_draws": 1, "scales": (1.0, 2.0)}


def test_diagnose_warns_once_about_data_in_other_units():
    inputs = make_inputs()
    inputs["visual"] = inputs["visual"] / 255  # frames in [0, 1] under 0-255 budgets
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        avrobust.diagnose(make_model(), inputs, LABELS, budgets_for("linf"), **QUICK)
    units = [w for w in caught if "other units" in str(w.message)]
    assert len(units) == 1, [str(w.message)[:80] for w in units]
    assert units[0].filename == __file__


@pytest.mark.parametrize("seed, exc", [(None, TypeError), (1.5, TypeError), (-1, ValueError)])
def test_diagnose_checks_its_seed(seed, exc):
    assert_raises_naming(
        exc, "seed", avrobust.diagnose, make_model(), make_inputs(), LABELS,
        budgets_for("linf"), seed=seed, **QUICK,
    )  # fmt: skip


def test_batch_coupling_refuses_nan_inputs_by_name():
    inputs = make_inputs()
    inputs["audio"][1] = float("nan")
    assert_raises_naming(
        ValueError, "inputs['audio']", avrobust.batch_coupling, make_model(), inputs
    )
