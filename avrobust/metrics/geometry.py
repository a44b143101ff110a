"""Embedding-geometry measures in the spirit of Li et al. (ICASSP 2022): convexity and density.

Li et al. propose a convexity and a density measure of each modality's embeddings, but their paper
text is not available to us and their released code has no density measure, so:

* :func:`convexity_ratio` follows the procedure of their released notebook
  (``Adversary_MMTLF-pgd-audio-rerun-Copy1.ipynb``, AudioSetDoneRight): for each class ``c``, take
  ordered pairs ``(i, j)`` of embeddings of class ``c``, draw ``λ ~ U(0, 1)`` per pair, feed
  ``λ e_i + (1 − λ) e_j`` through the classifier head alone and count the fraction whose
  probability for ``c`` is at least ``threshold`` (0.1, sigmoid, as the notebook). The notebook
  takes the *first* pairs of ``itertools.permutations`` (``pairing="sequential"``), so most pairs
  share the first sample; ``pairing="random"`` (default) draws pairs uniformly instead.
* :func:`knn_density` is **our own definition** (not the paper's): on L2-normalised embeddings, the
  density of a class is the inverse of its members' mean Euclidean distance to their ``k`` nearest
  same-class neighbours (range ``[0.5, ∞)``: 0.5 when neighbours are antipodal; larger is denser).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_choice, check_finite_tensor, check_int, check_number, check_tensor

__all__ = ["ConvexityResult", "DensityResult", "convexity_ratio", "knn_density"]

Embeddings = Tensor | Mapping[str, Tensor]


@dataclass(frozen=True)
class ConvexityResult:
    """What :func:`convexity_ratio` returns.

    Attributes:
        per_class: ``(C,)`` fraction in [0, 1] of interpolated points the head keeps in the class;
            NaN for classes with fewer than two members.
        overall: mean of ``per_class`` over the classes that have pairs (NaN if none).
        pairs: ``(C,)`` number of pairs scored per class.
    """

    per_class: Tensor
    overall: float
    pairs: Tensor


@dataclass(frozen=True)
class DensityResult:
    """What :func:`knn_density` returns (our definition; see the module docstring).

    Attributes:
        per_class: ``(C,)`` density per class; NaN for classes with fewer than two members.
        overall: inverse of the mean k-NN distance over all points that have neighbours.
        radius: ``(N,)`` each point's mean distance to its same-class neighbours (NaN if none),
            float64 on the embeddings' device.
    """

    per_class: Tensor
    overall: float
    radius: Tensor


def _class_members(labels: Tensor, num_classes: int | None) -> list[Tensor]:
    """Indices of each class, for ``(N,)`` integer labels or ``(N, C)`` multi-hot labels."""
    if labels.ndim == 2:
        return [torch.nonzero(labels[:, c] > 0).flatten() for c in range(labels.shape[1])]
    if labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(
            f"labels: expected (N,) int or (N, C) multi-hot, "
            f"got shape {tuple(labels.shape)} and dtype {labels.dtype}"
        )
    count = int(labels.max()) + 1 if num_classes is None and labels.numel() else num_classes or 0
    return [torch.nonzero(labels == c).flatten() for c in range(count)]


def _pairs(members: Tensor, n: int, pairing: str, gen: torch.Generator) -> Tensor:
    """``(P, 2)`` ordered pairs of distinct members: first ``n`` permutations, or ``n`` random."""
    if pairing == "sequential":
        chosen = list(itertools.islice(itertools.permutations(members.tolist(), 2), n))
        return torch.tensor(chosen, dtype=torch.long).reshape(-1, 2)
    m = len(members)
    first = torch.randint(m, (n,), generator=gen)
    second = (first + torch.randint(1, m, (n,), generator=gen)) % m
    return torch.stack([members[first], members[second]], dim=1)


def _take(embeddings: Embeddings, index: Tensor) -> Embeddings:
    if isinstance(embeddings, Tensor):
        return embeddings[index.to(embeddings.device)]
    return {k: v[index.to(v.device)] for k, v in embeddings.items()}


def _lerp_tensor(a: Tensor, b: Tensor, lam: Tensor) -> Tensor:
    w = lam.to(a).view((-1,) + (1,) * (a.ndim - 1))
    return w * a + (1 - w) * b


def _lerp(a: Embeddings, b: Embeddings, lam: Tensor) -> Embeddings:
    """``λ a + (1 − λ) b`` per row, for a tensor or a dict of tensors (same λ for every entry)."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return _lerp_tensor(a, b, lam)
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        raise TypeError(
            f"embeddings: expected a tensor or a dict of tensors, got {type(a).__name__}"
        )
    return {k: _lerp_tensor(a[k], b[k], lam) for k in a}


def _check_rows(embeddings: Embeddings, n: int) -> None:
    """Raise unless the embeddings (each entry of a dict) have ``n`` rows, one per label."""
    named = embeddings.items() if isinstance(embeddings, Mapping) else [(None, embeddings)]
    for key, value in named:
        name = "embeddings" if key is None else f"embeddings[{key!r}]"
        check_tensor(value, name)
        if value.ndim < 1 or len(value) != n:
            raise ValueError(f"{name}: expected {n} rows (= len(labels)), got {tuple(value.shape)}")
        if value.is_floating_point():
            check_finite_tensor(value, name)


@torch.no_grad()
def convexity_ratio(
    embeddings: Embeddings,
    labels: Tensor,
    head: Callable[[Embeddings], Tensor],
    *,
    num_pairs: int = 2000,
    threshold: float | None = 0.1,
    activation: str = "sigmoid",
    pairing: str = "random",
    num_classes: int | None = None,
    seed: int = 0,
) -> ConvexityResult:
    """Li et al.'s convexity check (procedure of their released notebook; see the module docstring).

    Args:
        embeddings: ``(N, ...)`` embeddings the head takes, or a dict of such tensors (e.g. both
            modalities' features for a fusion head; all entries are interpolated with the same λ).
        labels: ``(N,)`` class indices or ``(N, C)`` multi-hot labels.
        head: maps a batch of (interpolated) embeddings, in the same structure, to ``(P, C)`` logits.
        num_pairs: pairs per class (the notebook: 2,000).
        threshold: the point counts when ``p_c >= threshold`` (notebook: 0.1); ``None`` counts it
            when ``c`` is the arg-max class instead (advisable for single-label softmax heads).
        activation: ``"sigmoid"`` (multi-label, the notebook's) or ``"softmax"``.
        pairing: ``"random"`` (uniform ordered pairs of distinct members) or ``"sequential"``
            (the first ``num_pairs`` of ``itertools.permutations``, as the notebook).
        num_classes: ``C`` for integer labels (default: ``max(labels) + 1``).
        seed: seed of the pair and λ draws.

    Returns:
        :class:`ConvexityResult`.

    Raises:
        TypeError, ValueError: bad arguments (the message names the argument), NaN/Inf embeddings
            or a head that returns NaN/Inf logits (a NaN probability would count as leaving the
            class).
    """
    num_pairs = check_int(num_pairs, "num_pairs", min_value=1)
    activation = check_choice(activation, "activation", ("sigmoid", "softmax"))
    pairing = check_choice(pairing, "pairing", ("random", "sequential"))
    if threshold is not None:
        threshold = check_number(threshold, "threshold", min_value=0.0)
    check_tensor(labels, "labels", ndims=(1, 2))
    _check_rows(embeddings, len(labels))
    gen = torch.Generator().manual_seed(seed)
    ratios, counts = [], []
    for c, members in enumerate(_class_members(labels, num_classes)):
        if len(members) < 2:
            ratios.append(float("nan"))
            counts.append(0)
            continue
        pairs = _pairs(members, num_pairs, pairing, gen)
        lam = torch.rand(len(pairs), generator=gen)
        points = _lerp(_take(embeddings, pairs[:, 0]), _take(embeddings, pairs[:, 1]), lam)
        logits = check_finite_tensor(check_tensor(head(points), "head"), "head (its logits)")
        probs = torch.sigmoid(logits) if activation == "sigmoid" else logits.softmax(-1)
        kept = probs.argmax(-1) == c if threshold is None else probs[:, c] >= threshold
        ratios.append(float(kept.float().mean()))
        counts.append(len(pairs))
    per_class = torch.tensor(ratios, dtype=torch.float64)
    valid = per_class[~per_class.isnan()]
    overall = float(valid.mean()) if len(valid) else float("nan")
    return ConvexityResult(per_class, overall, torch.tensor(counts))


def knn_density(
    embeddings: Tensor, labels: Tensor, k: int = 10, num_classes: int | None = None
) -> DensityResult:
    """k-nearest-neighbour density of each class's embeddings (**our definition**, not Li et al.'s).

    On unit-normalised embeddings ``ê = e / ‖e‖``, point ``i`` has radius ``r_i`` = mean Euclidean
    distance to its ``k`` nearest other members of its class (``r ∈ [0, 2]``); class density is
    ``1 / mean_{i ∈ c} r_i`` and ``overall = 1 / mean_i r_i``. Normalising makes the measure
    invariant to the embeddings' scale, so modalities and models can be compared.

    Args:
        embeddings: ``(N, D)`` (or ``(N, ...)``, flattened) embeddings of one modality.
        labels: ``(N,)`` class indices.
        k: neighbours per point; classes with ``<= k`` members use all their other members (with
            a warning).
        num_classes: ``C`` (default: ``max(labels) + 1``).

    Returns:
        :class:`DensityResult`.

    Raises:
        TypeError, ValueError: bad shapes, NaN/Inf embeddings or ``k < 1``.

    Example:
        >>> e = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
        >>> knn_density(e, torch.tensor([0, 0, 1, 1]), k=1).per_class.round(decimals=1).tolist()
        [10.0, 10.0]
    """
    check_tensor(embeddings, "embeddings", floating=True)
    check_tensor(labels, "labels", ndims=(1,))
    if embeddings.ndim < 2 or len(embeddings) != len(labels):
        raise ValueError(
            f"embeddings: expected (N, D) with N = len(labels) = {len(labels)}, "
            f"got {tuple(embeddings.shape)}"
        )
    k = check_int(k, "k", min_value=1)
    check_finite_tensor(embeddings.detach(), "embeddings")
    flat = embeddings.detach().reshape(len(embeddings), -1).double()
    e = torch.nn.functional.normalize(flat, dim=-1)
    radius = torch.full((len(e),), float("nan"), dtype=torch.float64, device=e.device)
    per_class = []
    for c, members in enumerate(_class_members(labels, num_classes)):
        members = members.to(e.device)
        if len(members) < 2:
            per_class.append(float("nan"))
            continue
        if len(members) <= k:
            warnings.warn(f"knn_density: class {c} has {len(members)} members, k={k}; using "
                          f"{len(members) - 1} neighbours", stacklevel=2)  # fmt: skip
        dist = torch.cdist(e[members], e[members])
        dist.fill_diagonal_(float("inf"))
        near = dist.topk(min(k, len(members) - 1), largest=False).values
        radius[members] = near.mean(-1)
        per_class.append(float(1 / radius[members].mean()))
    valid = radius[~radius.isnan()]
    overall = float(1 / valid.mean()) if len(valid) else float("nan")
    return DensityResult(torch.tensor(per_class, dtype=torch.float64), overall, radius)
