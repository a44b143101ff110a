"""The metrics' one naming scheme: streaming twins equal their functional, old names warn.

Each streaming twin (SNR, PSNR, MaxAbs, SuccessRate, AveragePrecision) is fed several batches
and compared with its functional twin on all batches at once (the reference); the old names
(``ava_average_precision``, ``MeanAveragePrecision``, ``snr_db``) still import, with a
``DeprecationWarning``, and are the new objects.
"""

from __future__ import annotations

import importlib
import math
import warnings

import pytest
import torch
from helpers import assert_raises_naming

from avrobust import metrics as M


def _perturbed(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Four batches of signals and perturbed signals; one untouched sample in batch 2."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for size in (3, 1, 4, 2):
        x = torch.rand(size, 2, 50, generator=g) * 2 - 1
        x_adv = x + 0.01 * torch.randn(size, 2, 50, generator=g)
        if size == 4:
            x_adv[1] = x[1]
        out.append((x, x_adv))
    return out


@pytest.mark.parametrize(
    ("metric", "function"),
    [
        (M.SNR, M.snr),
        (lambda: M.PSNR(data_range=2.0), lambda x, y: M.psnr(x, y, data_range=2.0)),
    ],
    ids=["SNR", "PSNR"],
)
def test_perceptibility_twins_equal_the_functional_over_several_updates(metric, function):
    """The streaming mean in dB equals the mean of the functional per-sample values over every
    perturbed sample (the untouched one, +inf, is left out), to the last bit; reset forgets."""
    stream = metric()
    parts = _perturbed()
    for x, x_adv in parts:
        stream.update(x, x_adv)
    x, x_adv = (torch.cat(t) for t in zip(*parts))
    values = function(x, x_adv)
    assert int(torch.isinf(values).sum()) == 1
    assert float(stream.compute()) == float(values[torch.isfinite(values)].mean())
    stream.reset()
    assert_raises_naming(ValueError, "compute", stream.compute)
    stream.update(x[:1], x[:1])
    assert stream.compute() == math.inf  # nothing perturbed


def test_max_abs_twin_equals_the_functional_over_several_updates():
    """MaxAbs gives the largest change of any sample, as max_abs on all batches at once."""
    stream = M.MaxAbs()
    parts = _perturbed(1)
    for x, x_adv in parts:
        stream.update(x, x_adv)
    x, x_adv = (torch.cat(t) for t in zip(*parts))
    assert float(stream.compute()) == float(M.max_abs(x, x_adv).max())
    assert_raises_naming(ValueError, "MaxAbs", M.MaxAbs().compute)


def test_success_rate_twin_equals_the_functional_over_several_updates():
    """SuccessRate counts the clips with more than half of their frames wrong, as
    success_rate on all batches at once; clip labels count a wrong clip."""
    g = torch.Generator().manual_seed(2)
    scores, labels = torch.rand(10, 5, generator=g), (torch.rand(10, 5, generator=g) < 0.5).long()
    stream = M.SuccessRate()
    for part in (slice(0, 3), slice(3, 4), slice(4, 10)):
        stream.update(scores[part], labels[part])
    wrong = ((scores >= 0.5).long() != labels).float().mean(1)
    assert float(stream.compute()) == float(M.success_rate(scores, labels))
    assert float(stream.compute()) == float((wrong > 0.5).double().mean())
    assert float(M.success_rate(torch.tensor([0.9, 0.1]), torch.tensor([0, 0]))) == 0.5
    assert_raises_naming(ValueError, "scores, labels", M.success_rate, scores, labels[:, :2])


def test_average_precision_twin_equals_the_functional_over_several_updates():
    """AveragePrecision (was MeanAveragePrecision) equals average_precision on all batches."""
    g = torch.Generator().manual_seed(3)
    scores, labels = torch.rand(40, generator=g), (torch.rand(40, generator=g) < 0.4).long()
    stream = M.AveragePrecision()
    for part in (slice(0, 7), slice(7, 30), slice(30, 40)):
        stream.update(scores[part], labels[part])
    assert float(stream.compute()) == float(M.average_precision(scores, labels))


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        ("avrobust.metrics", "ava_average_precision", "average_precision"),
        ("avrobust.metrics", "MeanAveragePrecision", "AveragePrecision"),
        ("avrobust.metrics", "snr_db", "snr"),
        ("avrobust.metrics.functional", "ava_average_precision", "average_precision"),
        ("avrobust.metrics.functional", "snr_db", "snr"),
        ("avrobust.metrics.streaming", "MeanAveragePrecision", "AveragePrecision"),
    ],
)
def test_old_names_warn_and_are_the_new_objects(module, old, new):
    """An old name still imports from where it did, is the renamed object, and warns with a
    DeprecationWarning naming both names; the old names are not in __all__."""
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{old} is deprecated.*{new}"):
        value = getattr(mod, old)
    assert value is getattr(M, new)
    assert old not in getattr(mod, "__all__", [])


def test_new_names_do_not_warn_and_unknown_names_still_fail():
    """The new names import silently; a name that never existed is an AttributeError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from avrobust.metrics import SNR, AveragePrecision, average_precision, snr  # noqa: F401
    with pytest.raises(AttributeError, match="no_such_metric"):
        M.no_such_metric  # noqa: B018


def test_ecr_per_frame_guard_is_the_clean_norm_floor():
    """ecr_per_frame's numerical floor is called guard (eps means a budget radius only): an
    all-zero clean embedding divides by it; a guard that is not > 0 is refused naming it."""
    zero, moved = torch.zeros(1, 3), torch.tensor([[0.0, 3.0, 4.0]])
    assert float(M.ecr_per_frame(zero, moved, guard=0.5)) == 10.0
    assert float(M.ecr_per_frame(zero, moved)) == pytest.approx(5e12)
    assert_raises_naming(ValueError, "guard", M.ecr_per_frame, zero, moved, guard=0.0)


def _batches(seed: int) -> dict[str, tuple]:
    g = torch.Generator().manual_seed(seed)
    scores, labels = (
        torch.rand(6, 4, generator=g, dtype=torch.float64),
        torch.randint(0, 2, (6, 4), generator=g),
    )
    clean = torch.rand(6, 50, generator=g, dtype=torch.float64) * 2 - 1
    adv = (clean + 0.01 * torch.randn(6, 50, generator=g, dtype=torch.float64)).clamp(-1, 1)
    z = torch.randn(6, 4, 8, generator=g, dtype=torch.float64)
    return {
        "AveragePrecision": (scores, labels),
        "ROCAUC": (scores, labels),
        "Accuracy": (scores, labels),
        "SuccessRate": (scores[:, 0], labels[:, 0]),
        "ECR": (z, z + 0.1 * torch.randn(z.shape, generator=g, dtype=torch.float64)),
        "SNR": (clean, adv),
        "PSNR": (clean, adv),
        "MaxAbs": (clean, adv),
    }


@pytest.mark.parametrize("name", list(_batches(0)))
def test_merge_equals_one_metric_fed_both_shards(name):
    """Two metrics fed one shard each, then merged, compute what one metric fed both shards
    computes (the evaluation's ranks combine their per-batch measures this way)."""
    cls = getattr(M, name)
    first, second = _batches(1)[name], _batches(2)[name]
    make = (lambda: cls(data_range=2.0)) if name == "PSNR" else cls  # the data's [-1, 1] units
    both, a, b = make(), make(), make()
    both.update(*first)
    both.update(*second)
    a.update(*first)
    b.update(*second)
    a.merge(b)
    torch.testing.assert_close(torch.as_tensor(a.compute()), torch.as_tensor(both.compute()))
    assert_raises_naming(TypeError, "other", a.merge, object())
