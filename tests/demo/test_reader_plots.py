"""Issue 19.5, what a reader sees in the plots (read through the matplotlib objects): units on
eps_av, the worst case as a marker at the budget where it was computed (not a line from 0), the
mAP floor as a labelled horizontal line, one panel per model so that the bands stay apart, and
ECR bars with axis labels, model names and intervals."""

from __future__ import annotations

import numpy as np
import pytest

from avrobust.demo import PRESETS
from avrobust.evaluation import CellResult, EvaluationReport
from avrobust.metrics import average_precision

pytest.importorskip("matplotlib")
import matplotlib.pyplot as plt

from avrobust.demo.plots import ecr_figure, model_figure, models_figure

_LABELS = [np.array([1, 1, 0, 0]) if i % 2 else np.array([1, 0, 0, 0]) for i in range(8)]  # 37.5 %


def _cell(rule: str, eps: float, noise: float, modalities=("audio", "visual")) -> CellResult:
    g = np.random.default_rng(int(eps) + len(rule))
    clean = [y.astype(float) for y in _LABELS]
    adv = [y + noise * g.standard_normal(4) for y in _LABELS]
    flat = np.concatenate(_LABELS)
    return CellResult(
        rule=rule, eps=eps, modalities=modalities,
        map_clean=float(average_precision(np.concatenate(clean), flat)),
        map_adv=float(average_precision(np.concatenate(adv), flat)),
        success_rate=0.0, frame_error_rate=0.0, ecr={"audio": 0.4, "visual": 0.1},
        samples=8, frames=int(flat.size),
        per_clip={"labels": [y.tolist() for y in _LABELS], "clean": [c.tolist() for c in clean],
                  "adv": [a.tolist() for a in adv],
                  "ecr": {"audio": [0.3, 0.5] * 4, "visual": [0.05, 0.15] * 4}},
    )  # fmt: skip


def _setting():
    config = PRESETS["test"].replace(rules=("pgd",), eps_grid=(5.0, 10.0, 20.0), table_eps=20.0)
    reports = {}
    for k, noise in zip("ABCDE", (2.0, 1.0, 1.5, 0.8, 0.5)):
        cells = [_cell("pgd", e, noise * e / 20) for e in config.eps_grid]
        cells += [_cell("pgd", 20.0, noise, ("audio",))]
        cells += [_cell("worst-case", e, 3 * noise * e / 20) for e in (10.0, 20.0)]
        reports[k] = EvaluationReport({}, {}, list(range(8)), cells)
    return config, reports


def _worst_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_label().startswith("worst case")]


def _floor_lines(ax):
    return [ln for ln in ax.get_lines() if "speaking frames" in ln.get_label()]


@pytest.mark.parametrize("which", ["model", "models"])
def test_mAP_panels_mark_worst_case_floor_and_units(which) -> None:
    config, reports = _setting()
    if which == "model":
        fig = model_figure(config, reports, "A")
    else:
        fig = models_figure(config, reports, {})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    plt.close(fig)
    for ax in axes:
        assert "1e-4" in ax.get_xlabel() and "pixel" in ax.get_xlabel()  # units of eps_av
        (floor,) = _floor_lines(ax)
        assert list(floor.get_ydata()) == [37.5, 37.5] and "37.5 %" in floor.get_label()
    av = [ax for ax in axes if _worst_lines(ax)]
    assert av, "the worst case is drawn"
    for ax in av:
        (worst,) = _worst_lines(ax)
        # only where computed (10 and 20, not 5 nor from 0), the markers joined
        assert list(worst.get_xdata()) == [10.0, 20.0]
        assert worst.get_linestyle() == "-" and worst.get_marker() not in (None, "None", "")
    for ax in axes:
        for line in ax.get_lines():  # no other line reaches into the worst case's values
            label = line.get_label().lower()
            assert "worst" not in label or list(line.get_xdata()) == [10.0, 20.0]


def test_models_are_small_multiples_one_band_each() -> None:
    config, reports = _setting()
    fig = models_figure(config, reports, {})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in axes]
    bands = [len(ax.collections) for ax in axes]
    plt.close(fig)
    assert len(axes) == len(reports)
    for key, title in zip(reports, titles):
        assert title.replace("\n", " ") == config.model_label(key)
    assert all(n >= 1 for n in bands)  # a band (and the worst case's interval) per panel


def test_ecr_has_axis_labels_model_names_and_intervals() -> None:
    config, reports = _setting()
    fig = ecr_figure(config, reports)
    ax = fig.axes[0]
    ticks = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]
    xlabel, ylabel = ax.get_xlabel(), ax.get_ylabel()
    bars = [p for c in ax.containers if hasattr(c, "patches") and c.patches for p in c.patches]
    errs = [c for c in ax.collections if c.get_label() == "_intervals"]
    plt.close(fig)
    assert xlabel and "ECR" in ylabel
    assert ticks == [config.model_label(k) for k in reports]
    segments = [s for c in errs for s in c.get_segments()]
    assert len(segments) == len(bars) == 2 * len(reports)
    assert all(s[1][1] > s[0][1] > 0.0 for s in segments)  # real intervals, not zero-width
