"""CellBootstrap.accuracy: the frame accuracy of each bootstrap resample of a cell's clips,
compared with scikit-learn's accuracy_score on the explicitly resampled frames."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

from avrobust.bootstrap import CellBootstrap


def cell(classes: int = 2, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    lengths = [4, 4, 3, 5, 4, 1]  # clips of unequal length: frames pooled, not clip means
    labels = [rng.integers(0, classes, n).tolist() for n in lengths]
    if classes == 2:
        adv = [rng.random(n).tolist() for n in lengths]
        adv[0][0] = 0.5  # on the threshold: class 1
    else:
        adv = [rng.integers(0, classes, n).tolist() for n in lengths]
    return SimpleNamespace(classes=classes, per_clip={"labels": labels, "adv": adv, "clean": adv})


@pytest.mark.parametrize("classes", [2, 4])
def test_accuracy_equals_sklearn_on_the_resampled_frames(classes: int) -> None:
    c, boot = cell(classes), CellBootstrap(resamples=20, seed=3)
    samples = boot.accuracy(c)
    assert samples is not None and samples.shape == (20,)
    counts = boot.counts(len(c.per_clip["labels"]))
    for r in range(20):
        y, p = [], []
        for clip, k in enumerate(counts[r]):
            for _ in range(int(k)):
                y += c.per_clip["labels"][clip]
                scores = c.per_clip["adv"][clip]
                p += [int(s >= 0.5) for s in scores] if classes == 2 else scores
        assert samples[r] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert len(set(samples.tolist())) > 1, "every resample the same: the test shows nothing"


def test_accuracy_without_per_clip_values_is_none() -> None:
    assert CellBootstrap().accuracy(SimpleNamespace(per_clip=None, classes=2)) is None
