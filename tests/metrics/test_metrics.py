"""Metrics: ECR, AVA-style AP, accuracy, ROC-AUC, perceptibility; functional and streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from avrobust import metrics as M


# --------------------------------------------------------------------------- an independent AVA AP
def ava_ap_reference(scores, labels, order: str = "stable") -> float:
    """The AVA-ActiveSpeaker / VOC formula, written from its description, with plain loops.

    ``order="stable"``: one operating point per frame, ties in input order.
    ``order="group"``: one operating point per distinct score.
    """
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    idx = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    precision, recall = [], []
    tp = 0
    for rank, i in enumerate(idx, start=1):
        tp += int(labels[i])
        last_of_tie = rank == len(idx) or scores[idx[rank]] != scores[i]
        if order == "stable" or last_of_tie:
            precision.append(tp / rank)
            recall.append(tp / labels.sum())
    mrec = [0.0, *recall, 1.0]
    mpre = [0.0, *precision, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum(
        (mrec[i + 1] - mrec[i]) * mpre[i + 1]
        for i in range(len(mrec) - 1)
        if mrec[i + 1] != mrec[i]
    )


def random_scores(seed: int, n: int = 300, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.35
    scores = rng.random(n) + 0.4 * labels  # informative but imperfect
    if decimals is not None:
        scores = np.round(scores, decimals)
    return scores, labels


@pytest.mark.parametrize("seed", range(4))
def test_ap_matches_independent_ava_formula_random_scores(seed: int) -> None:
    scores, labels = random_scores(seed)
    expected = ava_ap_reference(scores, labels)
    for ties in ("group", "stable"):  # no ties: both modes agree
        assert float(M.average_precision(scores, labels, ties=ties)) == pytest.approx(
            expected, abs=1e-12
        )


@pytest.mark.parametrize("seed", range(4))
def test_ap_matches_independent_ava_formula_tied_scores(seed: int) -> None:
    scores, labels = random_scores(seed, decimals=1)  # about 15 distinct values: many ties
    stable = float(M.average_precision(scores, labels, ties="stable"))
    group = float(M.average_precision(scores, labels, ties="group"))
    assert stable == pytest.approx(ava_ap_reference(scores, labels, "stable"), abs=1e-12)
    assert group == pytest.approx(ava_ap_reference(scores, labels, "group"), abs=1e-12)
    # "group" does not depend on frame order; "stable" (one point per frame) can.
    perm = np.random.default_rng(seed).permutation(len(scores))
    assert float(M.average_precision(scores[perm], labels[perm])) == pytest.approx(group)


def test_tie_modes_on_a_hand_case() -> None:
    # Two frames tied, positive first in input order.
    assert float(M.average_precision([0.5, 0.5], [1, 0], ties="stable")) == 1.0
    assert float(M.average_precision([0.5, 0.5], [0, 1], ties="stable")) == 0.5
    assert float(M.average_precision([0.5, 0.5], [1, 0], ties="group")) == 0.5


def test_ap_differs_from_sklearn_by_interpolation_only() -> None:
    # Ranked labels 1, 0, 1, 1: precision at the hits is 1, 2/3, 3/4. sklearn averages those;
    # the AVA script first makes precision non-increasing from the right (2/3 -> 3/4).
    scores, labels = [0.9, 0.8, 0.7, 0.6], [1, 0, 1, 1]
    assert average_precision_score(labels, scores) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert float(M.average_precision(scores, labels)) == pytest.approx((1 + 3 / 4 + 3 / 4) / 3)
    # Where precision already falls monotonically at the hits, the two agree.
    assert float(M.average_precision(scores, [1, 1, 0, 1])) == pytest.approx(
        average_precision_score([1, 1, 0, 1], scores)
    )


@pytest.mark.parametrize("seed", range(3))
def test_ap_vs_sklearn_on_random_scores(seed: int) -> None:
    scores, labels = random_scores(seed, n=2000)
    ours = float(M.average_precision(scores, labels))
    theirs = average_precision_score(labels, scores)
    assert ours > theirs  # interpolation only raises precision
    # Without interpolation our ranking reproduces sklearn exactly: the gap is the interpolation.
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    assert precision[hits].mean() == pytest.approx(theirs, abs=1e-12)


def test_ap_perfect_and_worst() -> None:
    assert float(M.average_precision([0.9, 0.1], [1, 0])) == 1.0
    assert float(M.average_precision(torch.tensor([[0.1, 0.9]]), torch.tensor([[1, 0]]))) == 0.5


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 60),
    decimals=st.sampled_from([None, 1]),
)
def test_property_ap_range_and_monotone_invariance(seed: int, n: int, decimals) -> None:
    scores, labels = random_scores(seed, n=n, decimals=decimals)
    labels[0] = True
    ap = float(M.average_precision(scores, labels))
    assert 0 < ap <= 1
    assert ap >= average_precision_score(labels, scores) - 1e-12
    # A strictly increasing transform keeps the ranking (and the ties): same AP.
    assert float(M.average_precision(np.exp(3 * scores), labels)) == pytest.approx(ap)


# --------------------------------------------------------------------------- ROC-AUC, accuracy
@pytest.mark.parametrize("decimals", [None, 1])
def test_roc_auc_matches_sklearn(decimals) -> None:
    scores, labels = random_scores(5, n=500, decimals=decimals)
    assert float(M.roc_auc(scores, labels)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12
    )


def test_accuracy_forms() -> None:
    scores = torch.tensor([[0.2, 0.7, 0.5], [0.9, 0.1, 0.4]])
    labels = torch.tensor([[0, 1, 0], [1, 1, 0]])
    assert float(M.accuracy(scores, labels)) == pytest.approx(4 / 6)  # 0.5 counts as positive
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert float(M.accuracy(scores, labels, mask=mask)) == pytest.approx(4 / 5)
    logits = torch.stack([1 - scores, scores], dim=-1)
    # argmax: the 0.5/0.5 tie goes to class 0, which is right for that frame
    assert float(M.accuracy(logits, labels)) == pytest.approx(5 / 6)
    assert float(M.accuracy(scores.logit(), labels, threshold=0.0)) == pytest.approx(4 / 6)


# --------------------------------------------------------------------------- ECR
def test_ecr_matches_loop_and_mask() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 4, generator=g)
    z_adv = z + 0.3 * torch.randn(2, 5, 4, generator=g)
    frames = [(z[b, t], z_adv[b, t]) for b in range(2) for t in range(5)]
    ratios = [float((a - b).norm() / a.norm()) for a, b in frames]
    assert float(M.ecr(z, z_adv)) == pytest.approx(sum(ratios) / 10, rel=1e-6)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, :2] = True
    assert float(M.ecr(z, z_adv, mask)) == pytest.approx(sum(ratios[:2]) / 2, rel=1e-6)
    assert float(M.ecr(z, z)) == 0.0


def test_streaming_ecr_per_modality_equals_functional() -> None:
    g = torch.Generator().manual_seed(1)
    clean = {m: torch.randn(6, 3, 4, generator=g) for m in ("audio", "visual")}
    adv = {m: z + torch.randn(6, 3, 4, generator=g) for m, z in clean.items()}
    metric = M.ECR()
    for part in (slice(0, 2), slice(2, 6)):
        metric.update({m: z[part] for m, z in clean.items()}, {m: z[part] for m, z in adv.items()})
    out = metric.compute()
    for m in clean:
        assert float(out[m]) == pytest.approx(float(M.ecr(clean[m], adv[m])), rel=1e-6)
    metric.reset()
    metric.update(clean["audio"], adv["audio"])
    assert float(metric.compute()) == pytest.approx(float(M.ecr(clean["audio"], adv["audio"])))
    assert M.ECR.higher_is_better is False


# --------------------------------------------------------------------------- streaming ranking
def test_streaming_map_rocauc_accuracy_equal_functional() -> None:
    scores, labels = random_scores(7, n=400, decimals=2)
    s, y = torch.tensor(scores), torch.tensor(labels)
    streams = (M.AveragePrecision(), M.ROCAUC(), M.Accuracy())
    for metric in streams:
        for part in torch.arange(400).split(97):
            metric.update(s[part], y[part])
    assert float(streams[0].compute()) == pytest.approx(float(M.average_precision(s, y)))
    assert float(streams[1].compute()) == pytest.approx(roc_auc_score(labels, scores))
    assert float(streams[2].compute()) == pytest.approx(float(M.accuracy(s, y)))
    streams[0].reset()
    with pytest.raises(ValueError, match=r"AveragePrecision.compute: no frame seen yet"):
        streams[0].compute()


def test_streaming_map_mask() -> None:
    metric = M.AveragePrecision()
    metric.update(
        torch.tensor([0.9, 0.1, 0.8]), torch.tensor([1, 1, 0]), torch.tensor([True, False, True])
    )
    assert float(metric.compute()) == 1.0


# --------------------------------------------------------------------------- perceptibility
def test_snr_psnr_max_abs_against_formulas() -> None:
    g = torch.Generator().manual_seed(2)
    audio = torch.rand(3, 1, 800, generator=g) * 2 - 1  # (B, C, S)
    delta = 1e-3 * torch.randn(3, 1, 800, generator=g)
    delta[2] = 0
    a, d = audio.double().numpy(), delta.double().numpy()
    expected = [10 * math.log10((a[i] ** 2).sum() / (d[i] ** 2).sum()) for i in range(2)]
    snr = M.snr(audio, audio + delta)
    assert snr[:2].tolist() == pytest.approx(expected, rel=1e-4)
    assert snr[2] == math.inf
    video = torch.rand(2, 3, 1, 8, 8, generator=g) * 200  # (B, T, C, H, W), 0-255 scale
    dv = torch.zeros_like(video)
    dv[0, 0, 0, 0, 0] = 4.0
    mse = 16 / dv[0].numel()
    psnr = M.psnr(video, video + dv)
    assert float(psnr[0]) == pytest.approx(10 * math.log10(255**2 / mse), rel=1e-6)
    assert psnr[1] == math.inf
    assert M.max_abs(video, video + dv).tolist() == pytest.approx([4.0, 0.0])


# --------------------------------------------------------------------------- bad input
def test_errors_ap() -> None:
    with pytest.raises(
        ValueError, match=r"scores, labels: expected the same number of frames, got 3 scores"
    ):
        M.average_precision([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(ValueError, match=r"scores: expected finite values, got 1 NaN/Inf"):
        M.average_precision([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError, match=r"labels: AP is undefined without a positive frame"):
        M.average_precision([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match=r"labels: expected 0/1 .*got values \[2\]"):
        M.average_precision([0.1, 0.2], [2, 0])
    with pytest.raises(TypeError, match=r"labels: expected an integer or bool tensor of 0/1"):
        M.average_precision([0.1, 0.2], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"ties: expected one of \['group', 'stable'\]"):
        M.average_precision([0.1, 0.2], [1, 0], ties="random")
    with pytest.raises(ValueError, match=r"scores: expected at least one frame"):
        M.average_precision([], np.array([], dtype=int))
    with pytest.raises(ValueError, match=r"labels: ROC-AUC needs both classes, got 2 positive"):
        M.roc_auc([0.1, 0.2], [1, 1])


def test_errors_ecr_and_perceptibility() -> None:
    with pytest.raises(
        ValueError, match=r"z_clean, z_adv: shapes must match, got \(2, 3, 4\) and \(2, 3, 5\)"
    ):
        M.ecr(torch.ones(2, 3, 4), torch.ones(2, 3, 5))
    with pytest.raises(ValueError, match=r"mask: expected a bool tensor of shape \(2, 3\)"):
        M.ecr(torch.ones(2, 3, 4), torch.ones(2, 3, 4), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"z_clean, z_adv: keys differ"):
        M.ECR().update({"audio": torch.ones(2, 3)}, {"visual": torch.ones(2, 3)})
    with pytest.raises(TypeError, match=r"z_clean, z_adv: expected two tensors or two dicts"):
        M.ECR().update({"audio": torch.ones(2, 3)}, torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"ECR.compute: no frame seen yet"):
        M.ECR().compute()
    with pytest.raises(ValueError, match=r"clean, adversarial: shapes must match"):
        M.snr(torch.ones(2, 10), torch.ones(2, 11))
    with pytest.raises(ValueError, match=r"clean: expected a batch \(B, \.\.\.\) with ndim >= 2"):
        M.max_abs(torch.ones(10), torch.ones(10))
    with pytest.raises(ValueError, match=r"data_range: must be a finite number > 0"):
        M.psnr(torch.ones(2, 10), torch.ones(2, 10), data_range=0)
    with pytest.raises(ValueError, match=r"scores, labels: expected scores of shape \(2,\)"):
        M.accuracy(torch.ones(3), torch.ones(2, dtype=torch.long))
