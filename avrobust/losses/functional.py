r"""The four Push-Pull audio-visual interaction losses (AVIL, eqs. 6–10) as pure functions.

Every term is a quantity to **minimise**; eq. 11 adds them to the task loss with plus signs
(``L2`` and ``L3`` carry their own minus signs). Each function takes frame embeddings
``z_audio, z_visual`` of shape ``(B, T, D)`` with frame labels ``(B, T)``, or flat ``(N, D)``
with ``(N,)`` labels (1 = speech, 0 = non-speech), and an optional boolean ``mask`` shaped like
the labels (``False`` = padded frame, left out of every sum and count).

**C classes (our extension, not the paper's).** With ``num_classes=C`` the labels are class
indices in ``[0, C)`` and there is one centre per class present in the batch: L1 is the mean,
over the pairs of present classes, of the pair's centre cosines (audio plus visual), and L2, L3,
L4 sum the paper's per-class parts over the present classes. With two classes (or labels that
use only classes 0 and 1) every term is the paper's. See ``docs/avil.md``.

Conventions (see ``docs/avil.md``):

* Centres are pooled over all unmasked frames of the batch (eq. 6), ``K_s``/``K_n`` counting
  the speech/non-speech frames.
* ``cos(x, y) = x·y / (max(‖x‖, g)·max(‖y‖, g))`` with the norm guard ``g = GUARD = 1e-8``: the
  exact cosine whenever both norms reach ``g``, and 0 (with finite gradients) when a vector is zero.
* A class without frames has count 0; its centre is the zero vector and every average over it
  is ``(sum over no frames) / max(K, 1) = 0``. Its part of a term is therefore an exact zero that
  stays connected to the graph (zero gradients, never NaN).
* float16/bfloat16 embeddings are computed in float32.
* NaN/Inf embeddings are refused (``ValueError`` naming ``z_audio`` or ``z_visual``): the check
  shares the one device sync per call that the label check makes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from .._checks import check_number
from ._frames import FrameGroups, frame_groups

__all__ = [
    "GUARD",
    "TERMS",
    "FrameGroups",
    "avil_l1",
    "avil_l2",
    "avil_l3",
    "avil_l4",
    "class_centres",
    "cosine_similarity",
    "frame_groups",
]

GUARD = 1e-8
"""Norm floor ``g`` of :func:`cosine_similarity` (a numerical guard, not a budget)."""


def __getattr__(name: str) -> float:
    """``EPS``, the old name of :data:`GUARD`, still reads for one release (with a warning)."""
    if name == "EPS":
        warnings.warn(
            "avrobust.losses.functional.EPS is deprecated: use GUARD (eps names only budget "
            "radii in avrobust)",
            DeprecationWarning,
            stacklevel=2,
        )
        return GUARD
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cosine_similarity(x: Tensor, y: Tensor, guard: float = GUARD) -> Tensor:
    """Cosine similarity along the last dim, guarded: ``x·y / (max(‖x‖, g)·max(‖y‖, g))``.

    Args:
        x: ``(..., D)``.
        y: ``(..., D)``, broadcastable with ``x``.
        guard: the norm floor ``g > 0``; a zero vector gives similarity 0 with finite gradients.

    Returns:
        ``(...)`` similarities in [-1, 1].

    Raises:
        ValueError: ``guard`` not a number > 0.
    """
    guard = check_number(guard, "guard", min_value=0.0, strict=True)
    nx = torch.linalg.vector_norm(x, dim=-1).clamp_min(guard)
    ny = torch.linalg.vector_norm(y, dim=-1).clamp_min(guard)
    return (x * y).sum(-1) / (nx * ny)


def class_centres(
    z: Tensor, labels: Tensor, mask: Tensor | None = None, *, num_classes: int = 2
) -> Tensor:
    r"""Class centres of eq. 6 for one modality: ``c_s = 1/K_s Σ_{i∈S} z_i``, ``c_n`` likewise.

    Args:
        z: ``(B, T, D)`` or ``(N, D)`` frame embeddings.
        labels: ``(B, T)`` or ``(N,)``, 1 = speech, 0 = non-speech (class indices in
            ``[0, num_classes)`` for more classes).
        mask: optional bool shaped like ``labels``.
        num_classes: the class count ``C`` (>= 2).

    Returns:
        ``(C, D)``: row ``k`` the centre of class ``k`` (two classes: row 0 the non-speech
        centre ``c_n``, row 1 the speech centre ``c_s``); the row of a class without frames is
        the zero vector.
    """
    groups = frame_groups(z, z, labels, mask, num_classes=num_classes)
    return groups.centres(groups.audio)


def _l1(g: FrameGroups) -> Tensor:
    """Mean over pairs of present classes of the centre cosines (two classes: eq. 7)."""
    c_a, c_v = g.centres(g.audio), g.centres(g.visual)
    present = (g.counts > 0).to(c_a.dtype)
    pairs = torch.triu(present[:, None] * present[None, :], diagonal=1)
    cos = cosine_similarity(c_a[:, None], c_a[None, :])
    cos = cos + cosine_similarity(c_v[:, None], c_v[None, :])
    return (pairs * cos).sum() / pairs.sum().clamp_min(1.0)


def _l2(g: FrameGroups) -> Tensor:
    c_a, c_v = g.centres(g.audio), g.centres(g.visual)
    own_a, own_v = c_a.index_select(0, g.labels), c_v.index_select(0, g.labels)
    per_frame = cosine_similarity(own_a, g.audio) + cosine_similarity(own_v, g.visual)
    return -g.class_mean(per_frame).sum()


def _l3(g: FrameGroups) -> Tensor:
    return -cosine_similarity(g.centres(g.audio), g.centres(g.visual)).sum()


def _l4(g: FrameGroups) -> Tensor:
    distance = torch.linalg.vector_norm(g.visual - g.audio, dim=-1)
    return g.class_mean(distance).sum()


def avil_l1(
    z_audio: Tensor,
    z_visual: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    *,
    num_classes: int = 2,
) -> Tensor:
    r"""L1, intra-modality inter-class dispersion (eq. 7), minimised.

    ``L1 = cos(c_{a-s}, c_{a-ns}) + cos(c_{v-s}, c_{v-ns})``: pushes the speech and non-speech
    centres of each modality apart. In [-2, 2]. A batch without speech (or without non-speech)
    frames gives exactly 0 with zero gradients: both cosines involve the missing centre.
    C classes (ours): the mean over the pairs of classes present in the batch of
    ``cos(c_{a-j}, c_{a-k}) + cos(c_{v-j}, c_{v-k})``; still in [-2, 2]; 0 with fewer than two
    classes present.

    Args:
        z_audio: ``(B, T, D_a)`` or ``(N, D_a)`` audio frame embeddings.
        z_visual: ``(B, T, D_v)`` or ``(N, D_v)`` visual frame embeddings.
        labels: ``(B, T)`` or ``(N,)`` 0/1 (1 = speech), integer or bool.
        mask: optional bool shaped like ``labels``; ``False`` marks padded frames.
        num_classes: the class count ``C`` (keyword-only; >= 2): labels are then class
            indices in ``[0, C)`` (see the module docstring for the C-class terms, ours).

    Returns:
        0-d tensor (float32 for half-precision inputs).

    Example:
        >>> import torch
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> avil_l1(z, z, torch.tensor([1, 0]))
        tensor(0.)
    """
    return _l1(
        frame_groups(z_audio, z_visual, labels, mask, same_dim=False, num_classes=num_classes)
    )


def avil_l2(
    z_audio: Tensor,
    z_visual: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    *,
    num_classes: int = 2,
) -> Tensor:
    r"""L2, intra-modality intra-class compactness (eq. 8), minimised.

    ``L2 = -(1/K_s Σ_{i∈S} [cos(c_{a-s}, e_{a,i}) + cos(c_{v-s}, e_{v,i})]
    + 1/K_n Σ_{i∈N} [cos(c_{a-ns}, e_{a,i}) + cos(c_{v-ns}, e_{v,i})])``: pulls every frame
    towards its own class centre, per modality. In [-4, 4]. The average over a class without
    frames is 0; the other class's average stays. C classes (ours): the sum of the per-class
    averages over the classes present, in ``[-2P, 2P]`` for ``P`` classes present.

    Args:
        z_audio: ``(B, T, D_a)`` or ``(N, D_a)`` audio frame embeddings.
        z_visual: ``(B, T, D_v)`` or ``(N, D_v)`` visual frame embeddings.
        labels: ``(B, T)`` or ``(N,)`` 0/1 (1 = speech), integer or bool.
        mask: optional bool shaped like ``labels``; ``False`` marks padded frames.
        num_classes: the class count ``C`` (keyword-only; >= 2): labels are then class
            indices in ``[0, C)`` (see the module docstring for the C-class terms, ours).

    Returns:
        0-d tensor (float32 for half-precision inputs).
    """
    return _l2(
        frame_groups(z_audio, z_visual, labels, mask, same_dim=False, num_classes=num_classes)
    )


def avil_l3(
    z_audio: Tensor,
    z_visual: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    *,
    num_classes: int = 2,
) -> Tensor:
    r"""L3, inter-modality intra-class alignment, centre-based (eq. 9), minimised.

    ``L3 = -(cos(c_{a-s}, c_{v-s}) + cos(c_{a-ns}, c_{v-ns}))``: pulls the audio and visual
    centres of each class together. In [-2, 2]. The cosine of a class without frames is 0; the
    other class's stays. Needs ``D_a == D_v``. C classes (ours): ``-Σ_k cos(c_{a-k}, c_{v-k})``
    over the classes present, in ``[-P, P]``.

    Args:
        z_audio: ``(B, T, D)`` or ``(N, D)`` audio frame embeddings.
        z_visual: ``(B, T, D)`` or ``(N, D)`` visual frame embeddings.
        labels: ``(B, T)`` or ``(N,)`` 0/1 (1 = speech), integer or bool.
        mask: optional bool shaped like ``labels``; ``False`` marks padded frames.
        num_classes: the class count ``C`` (keyword-only; >= 2): labels are then class
            indices in ``[0, C)`` (see the module docstring for the C-class terms, ours).

    Returns:
        0-d tensor (float32 for half-precision inputs).
    """
    return _l3(frame_groups(z_audio, z_visual, labels, mask, num_classes=num_classes))


def avil_l4(
    z_audio: Tensor,
    z_visual: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    *,
    num_classes: int = 2,
) -> Tensor:
    r"""L4, inter-modality intra-class distance, sample-based (eq. 10, typo fixed), minimised.

    ``L4 = 1/K_s Σ_{i∈S} ‖e_{v,i} - e_{a,i}‖₂ + 1/K_n Σ_{i∈N} ‖e_{v,i} - e_{a,i}‖₂``: pulls each
    frame's audio and visual embeddings together (the paper prints ``Σ_{i∈N}`` in the first sum;
    it is the speech set). ``>= 0``, in embedding units. The mean over a class without frames
    is 0; the other class's stays. Needs ``D_a == D_v``. C classes (ours): the sum of the
    per-class mean distances over the classes present.

    Args:
        z_audio: ``(B, T, D)`` or ``(N, D)`` audio frame embeddings.
        z_visual: ``(B, T, D)`` or ``(N, D)`` visual frame embeddings.
        labels: ``(B, T)`` or ``(N,)`` 0/1 (1 = speech), integer or bool.
        mask: optional bool shaped like ``labels``; ``False`` marks padded frames.
        num_classes: the class count ``C`` (keyword-only; >= 2): labels are then class
            indices in ``[0, C)`` (see the module docstring for the C-class terms, ours).

    Returns:
        0-d tensor (float32 for half-precision inputs).
    """
    return _l4(frame_groups(z_audio, z_visual, labels, mask, num_classes=num_classes))


TERMS: dict[str, Callable[[FrameGroups], Tensor]] = {"l1": _l1, "l2": _l2, "l3": _l3, "l4": _l4}
"""Term name -> kernel over :class:`FrameGroups` (used by :class:`avrobust.losses.AVILoss`)."""
