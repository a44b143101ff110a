"""AVIL terms (Push-Pull eqs. 6–10) and AVILoss: references, gradients, edge cases, geometry."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_raises_naming
from hypothesis import given, settings
from hypothesis import strategies as st

from avrobust.losses import AVILoss, class_centres, cosine_similarity
from avrobust.losses import functional as F

GUARD = 1e-8


# --------------------------------------------------------------------------- naive references
# A literal, frame-by-frame reading of eqs. 6–10 on Python floats. The only conventions shared
# with the library are the documented ones: an empty class has a zero centre and contributes 0,
# and cos uses max(norm, 1e-8) in the denominator.
def _vec(t: torch.Tensor) -> list[list[float]]:
    return t.reshape(-1, t.shape[-1]).double().tolist()


def _cos(x: list[float], y: list[float]) -> float:
    dot = sum(a * b for a, b in zip(x, y))
    nx = max(math.sqrt(sum(a * a for a in x)), GUARD)
    ny = max(math.sqrt(sum(b * b for b in y)), GUARD)
    return dot / (nx * ny)


def _centre(e: list[list[float]], idx: list[int]) -> list[float]:
    if not idx:
        return [0.0] * len(e[0])
    return [sum(e[i][d] for i in idx) / len(idx) for d in range(len(e[0]))]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def naive_terms(e_a, e_v, labels, mask=None) -> dict[str, float]:
    a, v = _vec(e_a), _vec(e_v)
    y = labels.reshape(-1).tolist()
    m = [True] * len(y) if mask is None else mask.reshape(-1).tolist()
    S = [i for i in range(len(y)) if m[i] and y[i] == 1]
    N = [i for i in range(len(y)) if m[i] and y[i] == 0]
    c_as, c_ans, c_vs, c_vns = _centre(a, S), _centre(a, N), _centre(v, S), _centre(v, N)
    l1 = _cos(c_as, c_ans) + _cos(c_vs, c_vns)
    l2 = -(
        _mean([_cos(c_as, a[i]) + _cos(c_vs, v[i]) for i in S])
        + _mean([_cos(c_ans, a[i]) + _cos(c_vns, v[i]) for i in N])
    )
    l3 = -(_cos(c_as, c_vs) + _cos(c_ans, c_vns))

    def dist(i: int) -> float:
        return math.sqrt(sum((v[i][d] - a[i][d]) ** 2 for d in range(len(a[i]))))

    l4 = _mean([dist(i) for i in S]) + _mean([dist(i) for i in N])  # first sum over S (typo fix)
    return {"l1": l1, "l2": l2, "l3": l3, "l4": l4}


ALL_TERMS = {"l1": F.avil_l1, "l2": F.avil_l2, "l3": F.avil_l3, "l4": F.avil_l4}


def batch(seed: int = 0, b: int = 3, t: int = 7, d: int = 5, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    e_a = torch.randn(b, t, d, generator=g, dtype=dtype)
    e_v = torch.randn(b, t, d, generator=g, dtype=dtype)
    labels = torch.randint(0, 2, (b, t), generator=g)
    mask = torch.rand(b, t, generator=g) > 0.2
    return e_a, e_v, labels, mask


# --------------------------------------------------------------------------- equals the equations
@pytest.mark.parametrize("name", ALL_TERMS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_term_matches_naive_loop(name: str, seed: int) -> None:
    e_a, e_v, labels, mask = batch(seed)
    assert float(ALL_TERMS[name](e_a, e_v, labels)) == pytest.approx(
        naive_terms(e_a, e_v, labels)[name], abs=1e-5
    )
    assert float(ALL_TERMS[name](e_a, e_v, labels, mask)) == pytest.approx(
        naive_terms(e_a, e_v, labels, mask)[name], abs=1e-5
    )


@pytest.mark.parametrize("name", ALL_TERMS)
def test_flat_and_batched_layouts_agree(name: str) -> None:
    e_a, e_v, labels, mask = batch(3)
    batched = ALL_TERMS[name](e_a, e_v, labels, mask)
    flat = ALL_TERMS[name](
        e_a.reshape(-1, 5), e_v.reshape(-1, 5), labels.reshape(-1), mask.reshape(-1)
    )
    dropped = ALL_TERMS[name](e_a[mask], e_v[mask], labels[mask])
    torch.testing.assert_close(batched, flat)
    torch.testing.assert_close(batched, dropped)


def test_l4_first_sum_is_over_speech_frames() -> None:
    # Speech frames have audio == visual, non-speech frames differ by 3: L4 = 0 + 3 (the typo's
    # reading, both sums over N, would give 3 * K_n / K_s + 3 = 3 * 2 / 1 + 3 = 9).
    e_a = torch.zeros(3, 2)
    e_v = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    assert float(F.avil_l4(e_a, e_v, torch.tensor([1, 0, 0]))) == pytest.approx(3.0)


def test_signs_are_quantities_to_minimise() -> None:
    # Perfect geometry: classes opposite, every frame on its centre, audio == visual.
    e = torch.tensor([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [-1.0, 0.0]])
    y = torch.tensor([1, 1, 0, 0])
    values = {name: float(fn(e, e, y)) for name, fn in ALL_TERMS.items()}
    assert values == pytest.approx({"l1": -2.0, "l2": -4.0, "l3": -2.0, "l4": 0.0})


def test_cosine_similarity_guard_floors_each_norm() -> None:
    """``guard`` is the norm floor of eq. 6's cosine: with both norms (1e-3, 2e-3) below a guard of
    1e-2 the value is ``dot / guard**2 = 2e-6 / 1e-4`` (hand-computed), not 1; a guard <= 0 is
    refused naming ``guard``."""
    x, y = torch.tensor([1e-3, 0.0], dtype=torch.float64), torch.tensor([2e-3, 0.0]).double()
    assert float(cosine_similarity(x, y, guard=1e-2)) == pytest.approx(2e-6 / 1e-4)
    assert float(cosine_similarity(x, y)) == pytest.approx(1.0)
    assert_raises_naming(ValueError, "guard", cosine_similarity, x, y, guard=0.0)


def test_old_eps_constant_reads_as_guard_with_a_deprecation_warning() -> None:
    """``functional.EPS`` (the guard's old name) still reads, equals ``GUARD`` and warns."""
    with pytest.warns(DeprecationWarning, match="use GUARD"):
        value = F.EPS
    assert value == F.GUARD == 1e-8
    with pytest.raises(AttributeError, match="no_such_name"):
        F.no_such_name  # noqa: B018


def test_class_centres_and_cosine() -> None:
    e = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    centres = class_centres(e, torch.tensor([1, 0, 1]))
    torch.testing.assert_close(centres, torch.tensor([[3.0, 4.0], [3.0, 4.0]]))
    assert float(cosine_similarity(torch.zeros(3), torch.ones(3))) == 0.0
    torch.testing.assert_close(
        cosine_similarity(e[0], e[1]), torch.nn.functional.cosine_similarity(e[0], e[1], dim=0)
    )


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ALL_TERMS)
def test_gradcheck_float64(name: str) -> None:
    e_a, e_v, labels, mask = batch(4, b=2, t=4, d=3, dtype=torch.float64)
    e_a.requires_grad_(True)
    e_v.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, v: ALL_TERMS[name](a, v, labels, mask), (e_a, e_v), eps=1e-6, atol=1e-5
    )


@pytest.mark.parametrize("name", ALL_TERMS)
@pytest.mark.parametrize("present", [0, 1])
def test_single_class_batch_is_finite_and_missing_class_is_zero(name: str, present: int) -> None:
    e_a, e_v, _, _ = batch(5)
    e_a.requires_grad_(True)
    e_v.requires_grad_(True)
    labels = torch.full((3, 7), present)
    value = ALL_TERMS[name](e_a, e_v, labels)
    assert value.requires_grad and torch.isfinite(value)
    value.backward()
    assert torch.isfinite(e_a.grad).all() and torch.isfinite(e_v.grad).all()
    # Only the present class's part remains (the naive reference drops the empty class).
    assert float(value.detach()) == pytest.approx(naive_terms(e_a, e_v, labels)[name], abs=1e-5)
    if name == "l1":  # both cosines involve the missing centre: exact zero, zero gradients
        assert float(value.detach()) == 0.0
        assert not e_a.grad.any() and not e_v.grad.any()


@pytest.mark.parametrize("name", ALL_TERMS)
def test_all_masked_batch_gives_connected_zero(name: str) -> None:
    e_a, e_v, labels, _ = batch(6)
    e_a.requires_grad_(True)
    value = ALL_TERMS[name](e_a, e_v, labels, torch.zeros(3, 7, dtype=torch.bool))
    value.backward()
    assert float(value.detach()) == 0.0 and value.grad_fn is not None
    assert not e_a.grad.any()


@pytest.mark.parametrize("name", ALL_TERMS)
def test_masked_frames_get_no_gradient_and_labels_there_are_ignored(name: str) -> None:
    e_a, e_v, labels, mask = batch(7)
    e_a.requires_grad_(True)
    garbage = labels.masked_fill(~mask, -100)  # e.g. an ignore index on padding
    ALL_TERMS[name](e_a, e_v, garbage, mask).backward()
    assert not e_a.grad[~mask].any()
    assert e_a.grad[mask].abs().sum() > 0


def test_half_precision_is_computed_in_float32() -> None:
    e_a, e_v, labels, _ = batch(8)
    value = AVILoss()(e_a.half(), e_v.bfloat16(), labels)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, AVILoss()(e_a.half().float(), e_v.bfloat16().float(), labels))


# --------------------------------------------------------------------------- geometry (paper §3.3)
def _optimise(term: str, labels: torch.Tensor, e_a: torch.Tensor, e_v: torch.Tensor):
    """Minimise one term alone over free embeddings (a bare Adam, lr 0.05, 150 steps)."""
    params = [e_a.clone(), e_v.clone()]
    moments = [[torch.zeros_like(p), torch.zeros_like(p)] for p in params]
    for step in range(1, 151):
        for p in params:
            p.requires_grad_(True)
        grads = torch.autograd.grad(ALL_TERMS[term](*params, labels), params)
        with torch.no_grad():
            for p, g, (m, v) in zip(params, grads, moments):
                m.mul_(0.9).add_(g, alpha=0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                p.sub_(0.05 * (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8))
    return params[0].detach(), params[1].detach()


@pytest.fixture
def free_embeddings():
    g = torch.Generator().manual_seed(11)
    shared = torch.randn(8, generator=g) * 2  # a common offset: classes start close together
    e_a = shared + torch.randn(40, 8, generator=g)
    e_v = shared + torch.randn(40, 8, generator=g)
    labels = torch.arange(40) % 2
    return e_a, e_v, labels


def _centre_cos(e: torch.Tensor, labels: torch.Tensor) -> float:
    c = class_centres(e, labels)
    return float(cosine_similarity(c[1], c[0]))


def test_l1_pushes_speech_and_non_speech_centres_apart(free_embeddings) -> None:
    e_a, e_v, y = free_embeddings
    before = [_centre_cos(e_a, y), _centre_cos(e_v, y)]
    after = [_centre_cos(e, y) for e in _optimise("l1", y, e_a, e_v)]
    assert min(before) > 0.5 and max(after) < -0.9


def test_l2_pulls_frames_to_their_class_centre(free_embeddings) -> None:
    e_a, e_v, y = free_embeddings
    e_a, e_v = e_a - e_a.mean(0), e_v - e_v.mean(0)  # no common offset: frames start scattered

    def compactness(e: torch.Tensor) -> float:
        c = class_centres(e, y)
        return float(cosine_similarity(c[y], e).mean())

    before = [compactness(e_a), compactness(e_v)]
    after = [compactness(e) for e in _optimise("l2", y, e_a, e_v)]
    assert max(before) < 0.6 and min(after) > 0.99


def test_l3_pulls_audio_and_visual_centres_of_a_class_together(free_embeddings) -> None:
    e_a, e_v, y = free_embeddings
    e_v = -e_v  # start with audio and visual centres far apart

    def alignment(a: torch.Tensor, v: torch.Tensor) -> list[float]:
        return cosine_similarity(class_centres(a, y), class_centres(v, y)).tolist()

    assert max(alignment(e_a, e_v)) < -0.5
    assert min(alignment(*_optimise("l3", y, e_a, e_v))) > 0.99


def test_l4_pulls_each_frames_audio_and_visual_together(free_embeddings) -> None:
    e_a, e_v, y = free_embeddings
    before = float((e_v - e_a).norm(dim=1).mean())
    a, v = _optimise("l4", y, e_a, e_v)
    assert float((v - a).norm(dim=1).mean()) < 0.05 * before


# --------------------------------------------------------------------------- AVILoss
def test_avil_loss_is_weighted_sum_and_logs_terms() -> None:
    e_a, e_v, labels, mask = batch(9)
    e_a.requires_grad_(True)
    crit = AVILoss(weight=[0.1, 0.2, 0.3, 0.4])
    total = crit(e_a, e_v, labels, mask)
    reference = naive_terms(e_a, e_v, labels, mask)
    expected = sum(w * reference[n] for w, n in zip([0.1, 0.2, 0.3, 0.4], ["l1", "l2", "l3", "l4"]))
    assert float(total.detach()) == pytest.approx(expected, abs=1e-5)
    assert list(crit.last_terms) == ["l1", "l2", "l3", "l4"]
    assert all(not v.requires_grad for v in crit.last_terms.values())
    assert float(crit.last_terms["l2"]) == pytest.approx(reference["l2"], abs=1e-5)


def test_avil_loss_term_selection_and_dict_weights() -> None:
    e_a, e_v, labels, _ = batch(10)
    crit = AVILoss(weight={"l1": 0.5, "L4": 2.0})
    assert crit.terms == ("l1", "l4") and crit.weights == {"l1": 0.5, "l4": 2.0}
    expected = 0.5 * F.avil_l1(e_a, e_v, labels) + 2.0 * F.avil_l4(e_a, e_v, labels)
    torch.testing.assert_close(crit(e_a, e_v, labels), expected)
    assert "l1" in repr(crit)


def test_sync_without_process_group_is_local() -> None:
    e_a, e_v, labels, mask = batch(12)
    torch.testing.assert_close(
        AVILoss(sync=True)(e_a, e_v, labels, mask), AVILoss()(e_a, e_v, labels, mask)
    )


def test_l1_l2_allow_different_embedding_sizes() -> None:
    e_a, _, labels, _ = batch(13)
    e_v = torch.randn(3, 7, 9)
    assert torch.isfinite(AVILoss(terms=("l1", "l2"))(e_a, e_v, labels))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.floats(0.01, 100.0))
def test_property_frame_order_and_scale(seed: int, scale: float) -> None:
    e_a, e_v, labels, mask = batch(seed, b=2, t=5, d=4)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(seed))
    flat = [x.reshape(10, -1)[perm] for x in (e_a, e_v)]
    for name, fn in ALL_TERMS.items():
        value = fn(e_a, e_v, labels, mask)
        permuted = fn(*flat, labels.reshape(-1)[perm], mask.reshape(-1)[perm])
        torch.testing.assert_close(value, permuted, atol=1e-5, rtol=1e-5)
        if name != "l4":  # cosine terms do not see a common positive scale
            torch.testing.assert_close(
                fn(e_a * scale, e_v * scale, labels, mask), value, atol=1e-4, rtol=1e-4
            )


# --------------------------------------------------------------------------- bad input
def test_errors_embeddings_and_labels() -> None:
    e_a, e_v, labels, _ = batch(14)
    crit = AVILoss()
    with pytest.raises(ValueError, match=r"z_audio, z_visual: batch/time shapes must match"):
        crit(e_a, e_v[:, :6], labels)
    with pytest.raises(ValueError, match=r"z_audio, z_visual: batch/time shapes must match"):
        crit(e_a, e_v[:2], labels)
    with pytest.raises(ValueError, match=r"labels: expected shape \(3, 7\).*got \(3, 6\)"):
        crit(e_a, e_v, labels[:, :6])
    with pytest.raises(
        ValueError, match=r"labels: expected 0 \(non-speech\) or 1 .*got values \[2\]"
    ):
        crit(e_a, e_v, labels + 1)
    with pytest.raises(TypeError, match=r"labels: expected an integer or bool tensor.*float32"):
        crit(e_a, e_v, labels.float())
    with pytest.raises(ValueError, match=r"z_audio: empty batch, got shape \(0, 7, 5\)"):
        crit(e_a[:0], e_v[:0], labels[:0])
    with pytest.raises(ValueError, match=r"their sizes D must match, got 5 and 4"):
        crit(e_a, e_v[..., :4], labels)
    with pytest.raises(TypeError, match=r"z_audio: expected a floating-point tensor"):
        crit(labels[..., None], e_v, labels)
    with pytest.raises(ValueError, match=r"z_visual: expected a tensor with 2 or 3 dimensions"):
        crit(e_a, e_v[0, 0], labels)


def test_errors_mask() -> None:
    e_a, e_v, labels, mask = batch(15)
    with pytest.raises(ValueError, match=r"mask: expected shape \(3, 7\), got \(3, 6\)"):
        AVILoss()(e_a, e_v, labels, mask[:, :6])
    with pytest.raises(TypeError, match=r"mask: expected a bool tensor"):
        AVILoss()(e_a, e_v, labels, mask.long())


def test_errors_constructor() -> None:
    with pytest.raises(
        ValueError, match=r"terms\[1\]: expected one of \['l1', 'l2', 'l3', 'l4'\], got 'l5'"
    ):
        AVILoss(terms=("l1", "l5"))
    with pytest.raises(ValueError, match=r"weight\['l2'\]: must be a finite number >= 0, got -0.1"):
        AVILoss(weight=[0.1, -0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match=r"weight\['l1'\]: must be a finite number >= 0, got -1"):
        AVILoss(weight=-1.0)
    with pytest.raises(ValueError, match=r"weight: expected one weight per term \(2 for"):
        AVILoss(terms=("l1", "l4"), weight=[0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match=r"weight: the keys must be the terms"):
        AVILoss(terms=("l1",), weight={"l4": 0.1})
    with pytest.raises(ValueError, match=r"terms: expected distinct names"):
        AVILoss(terms=("l1", "l1"))
    with pytest.raises(TypeError, match=r"terms: expected a sequence of names"):
        AVILoss(terms="l1")
    with pytest.raises(TypeError, match=r"sync: expected a bool"):
        AVILoss(sync=1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- C classes (ours)
# The extension of eqs. 6–10 to C classes is ours (docs/avil.md): one centre per class present
# in the batch; L1 the mean over pairs of present classes of the centre cosines (per modality,
# summed), L2/L3/L4 the sums over present classes of the paper's per-class parts.
def naive_multiclass(e_a, e_v, labels, classes: int, mask=None) -> dict[str, float]:
    """A literal loop over classes and frames of the C-class terms, on Python floats."""
    a, v = _vec(e_a), _vec(e_v)
    y = labels.reshape(-1).tolist()
    m = [True] * len(y) if mask is None else mask.reshape(-1).tolist()
    members = {k: [i for i in range(len(y)) if m[i] and y[i] == k] for k in range(classes)}
    present = [k for k in range(classes) if members[k]]
    c_a = {k: _centre(a, members[k]) for k in present}
    c_v = {k: _centre(v, members[k]) for k in present}
    pairs = [(j, k) for j in present for k in present if j < k]
    l1 = _mean([_cos(c_a[j], c_a[k]) + _cos(c_v[j], c_v[k]) for j, k in pairs])
    l2 = -sum(_mean([_cos(c_a[k], a[i]) + _cos(c_v[k], v[i]) for i in members[k]]) for k in present)
    l3 = -sum(_cos(c_a[k], c_v[k]) for k in present)

    def dist(i: int) -> float:
        return math.sqrt(sum((v[i][d] - a[i][d]) ** 2 for d in range(len(a[i]))))

    l4 = sum(_mean([dist(i) for i in members[k]]) for k in present)
    return {"l1": l1, "l2": l2, "l3": l3, "l4": l4}


def multiclass_batch(seed: int, classes: int = 4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    e_a = torch.randn(3, 6, 5, generator=g, dtype=dtype)
    e_v = torch.randn(3, 6, 5, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (3, 6), generator=g)
    mask = torch.rand(3, 6, generator=g) > 0.2
    return e_a, e_v, labels, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_classes_equal_the_paper_to_float64_resolution(seed: int) -> None:
    """With num_classes=2 (and with num_classes=4 on labels that only use classes 0 and 1)
    every term equals the paper's literal eqs. 6-10 (naive loop) to float64 resolution, and
    AVILoss(num_classes=2) gives the default AVILoss's value."""
    e_a, e_v, labels, mask = batch(seed, dtype=torch.float64)
    reference = naive_terms(e_a, e_v, labels, mask)
    for name, fn in ALL_TERMS.items():
        for classes in (2, 4):
            value = float(fn(e_a, e_v, labels, mask, num_classes=classes))
            assert value == pytest.approx(reference[name], abs=1e-12, rel=1e-12)
    default = AVILoss(weight=[0.1, 0.2, 0.3, 0.4])(e_a, e_v, labels, mask)
    two = AVILoss(weight=[0.1, 0.2, 0.3, 0.4], num_classes=2)(e_a, e_v, labels, mask)
    assert float(two) == float(default)


@pytest.mark.parametrize("seed", [3, 4])
def test_four_classes_match_the_naive_class_loop(seed: int) -> None:
    """num_classes=4: each term equals the literal loop over the classes present (float64),
    with and without a mask; class_centres gives one centre per class."""
    e_a, e_v, labels, mask = multiclass_batch(seed)
    for name, fn in ALL_TERMS.items():
        for m in (None, mask):
            value = float(fn(e_a, e_v, labels, m, num_classes=4))
            expected = naive_multiclass(e_a, e_v, labels, 4, m)[name]
            assert value == pytest.approx(expected, abs=1e-12, rel=1e-12)
    centres = class_centres(e_a, labels, num_classes=4)
    assert centres.shape == (4, 5)
    torch.testing.assert_close(centres[2], e_a[labels == 2].mean(0))


@pytest.mark.parametrize("seed", [5, 6])
def test_four_classes_do_not_depend_on_the_class_ids(seed: int) -> None:
    """Relabelling the classes by a permutation of 0..3 changes no term (float64)."""
    e_a, e_v, labels, mask = multiclass_batch(seed)
    crit = AVILoss(num_classes=4)
    before = crit.compute_terms(e_a, e_v, labels, mask)
    perm = torch.tensor([2, 0, 3, 1])
    after = crit.compute_terms(e_a, e_v, perm[labels], mask)
    for name in before:
        torch.testing.assert_close(after[name], before[name], atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("present", [0, 3])
def test_four_classes_one_class_present_is_finite(present: int) -> None:
    """A 4-class batch holding one class gives finite values and gradients; L1 (no pair of
    present classes) is exactly 0 with zero gradients."""
    e_a, e_v, _, _ = multiclass_batch(7)
    e_a.requires_grad_(True)
    e_v.requires_grad_(True)
    labels = torch.full((3, 6), present)
    crit = AVILoss(num_classes=4)
    total = crit(e_a, e_v, labels)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(e_a.grad).all()
    assert torch.isfinite(e_v.grad).all()
    assert float(crit.last_terms["l1"]) == 0.0
    terms = {n: float(v) for n, v in crit.last_terms.items()}
    assert terms == pytest.approx(naive_multiclass(e_a, e_v, labels, 4), abs=1e-12)


def test_four_classes_gradcheck_float64() -> None:
    """The 4-class terms have correct gradients (gradcheck, float64)."""
    e_a, e_v, labels, mask = multiclass_batch(8)
    e_a, e_v = e_a[:2, :3, :3].clone(), e_v[:2, :3, :3].clone()
    e_a.requires_grad_(True)
    e_v.requires_grad_(True)
    crit = AVILoss(num_classes=4, weight=[0.1, 0.2, 0.3, 0.4])
    assert torch.autograd.gradcheck(
        lambda a, v: crit(a, v, labels[:2, :3], mask[:2, :3]), (e_a, e_v), eps=1e-6, atol=1e-5
    )


def test_l1_over_four_classes_pushes_every_pair_of_centres_apart() -> None:
    """Minimising the 4-class L1 alone makes every pair of class centres dissimilar (the mean
    pairwise cosine of 4 centres cannot go below -1/3: it ends near it)."""
    g = torch.Generator().manual_seed(12)
    shared = torch.randn(8, generator=g) * 2
    e_a, e_v = shared + torch.randn(40, 8, generator=g), shared + torch.randn(40, 8, generator=g)
    y = torch.arange(40) % 4
    params = [e_a.clone().requires_grad_(True), e_v.clone().requires_grad_(True)]
    optimiser = torch.optim.Adam(params, lr=0.05)
    for _ in range(150):
        optimiser.zero_grad()
        F.avil_l1(*params, y, num_classes=4).backward()
        optimiser.step()
    centres = class_centres(params[0].detach(), y, num_classes=4)
    cos = cosine_similarity(centres[:, None], centres[None, :])
    off = cos[~torch.eye(4, dtype=torch.bool)]
    assert float(off.max()) < 0.0 and float(off.mean()) < -0.3


def test_num_classes_errors() -> None:
    """Labels outside [0, num_classes) are refused naming labels; a num_classes below 2 or not
    an int is refused naming num_classes."""
    e_a, e_v, labels, _ = multiclass_batch(9)
    message = assert_raises_naming(ValueError, "labels", AVILoss(num_classes=3), e_a, e_v, labels)
    assert "[3]" in message and "0 to 2" in message
    assert_raises_naming(ValueError, "num_classes", AVILoss, num_classes=1)
    assert_raises_naming(TypeError, "num_classes", AVILoss, num_classes=2.5)
    assert_raises_naming(ValueError, "num_classes", F.avil_l2, e_a, e_v, labels, num_classes=0)
