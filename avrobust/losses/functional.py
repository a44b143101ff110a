r"""The four Push-Pull audio-visual interaction losses (AVIL, eqs. 6–10) as pure functions.

Every term is a quantity to **minimise**; eq. 11 adds them to the task loss with plus signs
(``L2`` and ``L3`` carry their own minus signs). Each function takes frame embeddings
``z_audio, z_visual`` of shape ``(B, T, D)`` with frame labels ``(B, T)``, or flat ``(N, D)``
with ``(N,)`` labels (1 = speech, 0 = non-speech), and an optional boolean ``mask`` shaped like
the labels (``False`` = padded frame, left out of every sum and count).

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
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_finite_tensor, check_number, check_tensor, describe
from ._distributed import gather_frames, is_distributed

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


@dataclass(frozen=True)
class FrameGroups:
    """A batch's frames, flattened and split by class; shared by the four terms.

    Attributes:
        audio: ``(N, D_a)`` audio frame embeddings.
        visual: ``(N, D_v)`` visual frame embeddings.
        weights: ``(2, N)`` class membership, row 0 non-speech, row 1 speech; 0 for masked frames.
        labels: ``(N,)`` int64 class per frame (0 where masked).
    """

    audio: Tensor
    visual: Tensor
    weights: Tensor
    labels: Tensor

    @property
    def counts(self) -> Tensor:
        """``(2,)`` frame counts ``(K_n, K_s)``."""
        return self.weights.sum(dim=1)

    def class_mean(self, values: Tensor) -> Tensor:
        """Per-class mean of per-frame ``values (N,)``: ``(2,)``, 0 for an empty class."""
        return (self.weights @ values) / self.counts.clamp_min(1.0)

    def centres(self, z: Tensor) -> Tensor:
        """Class centres of eq. 6 for ``z (N, D)``: ``(2, D)`` (non-speech, speech); 0 if empty."""
        return (self.weights @ z) / self.counts.clamp_min(1.0)[:, None]


def _check_pair(z_audio: object, z_visual: object, same_dim: bool) -> tuple[Tensor, Tensor]:
    z_a = check_tensor(z_audio, "z_audio", ndims=(2, 3), floating=True)
    z_v = check_tensor(z_visual, "z_visual", ndims=(2, 3), floating=True)
    if z_a.shape[:-1] != z_v.shape[:-1]:
        raise ValueError(
            "z_audio, z_visual: batch/time shapes must match, got "
            f"{tuple(z_a.shape)} and {tuple(z_v.shape)}"
        )
    if same_dim and z_a.shape[-1] != z_v.shape[-1]:
        raise ValueError(
            "z_audio, z_visual: L3 and L4 compare audio with visual embeddings, so their sizes D "
            f"must match, got {z_a.shape[-1]} and {z_v.shape[-1]}"
        )
    if z_a.shape[:-1].numel() == 0:
        raise ValueError(f"z_audio: empty batch, got shape {tuple(z_a.shape)}")
    return z_a, z_v


def _check_labels(labels: object, mask: object, lead: torch.Size) -> tuple[Tensor, Tensor]:
    y = check_tensor(labels, "labels")
    if y.is_floating_point() or y.is_complex():
        raise TypeError(f"labels: expected an integer or bool tensor of 0/1, got dtype {y.dtype}")
    if y.shape != lead:
        raise ValueError(
            f"labels: expected shape {tuple(lead)} (the embeddings' leading dims), "
            f"got {tuple(y.shape)}"
        )
    if mask is None:
        return y, torch.ones_like(y, dtype=torch.bool)
    m = check_tensor(mask, "mask")
    if m.dtype != torch.bool:
        raise TypeError(f"mask: expected a bool tensor (True = real frame), got {describe(m)}")
    if m.shape != lead:
        raise ValueError(f"mask: expected shape {tuple(lead)}, got {tuple(m.shape)}")
    return y, m


def _check_values(z_a: Tensor, z_v: Tensor, y: Tensor, m: Tensor, check_finite: bool) -> None:
    """Labels 0/1 in unmasked frames and, if ``check_finite``, finite embeddings: one device sync."""
    bad = m & (y != 0) & (y != 1)
    flags = [bad.any()]
    if check_finite:
        flags += [~torch.isfinite(z_a).all(), ~torch.isfinite(z_v).all()]
    labels_bad, *not_finite = torch.stack([f.to(z_a.device) for f in flags]).tolist()
    if labels_bad:
        found = sorted({int(v) for v in y[bad].unique()[:5]})
        raise ValueError(
            f"labels: expected 0 (non-speech) or 1 (speech) in unmasked frames, got values {found}"
            " (pass mask=... to leave padded frames out)"
        )
    for name, z, flag in zip(("z_audio", "z_visual"), (z_a, z_v), not_finite):
        if flag:
            check_finite_tensor(z.detach(), name)


def frame_groups(
    z_audio: Tensor,
    z_visual: Tensor,
    labels: Tensor,
    mask: Tensor | None = None,
    *,
    same_dim: bool = True,
    sync: bool = False,
    check_finite: bool = True,
) -> FrameGroups:
    """Validate, flatten and group a batch's frames by class (the shared first step of every term).

    Args:
        z_audio: ``(B, T, D)`` or ``(N, D)`` audio frame embeddings, floating point.
        z_visual: same leading shape as ``z_audio``.
        labels: ``(B, T)`` or ``(N,)``, integer or bool, 1 = speech, 0 = non-speech.
        mask: optional bool, shaped like ``labels``; ``False`` frames are left out.
        same_dim: require equal embedding sizes (needed by L3 and L4).
        sync: under an initialised ``torch.distributed`` group with more than one process,
            gather the frames of every rank (differentiably), so every statistic is global.
        check_finite: refuse NaN/Inf embeddings (``torch.isfinite(...).all()``, read in the same
            device sync as the label check, so it costs no extra sync).

    Returns:
        :class:`FrameGroups`.

    Raises:
        TypeError: non-tensors, non-float embeddings, float labels, non-bool mask.
        ValueError: mismatched shapes, empty batch, labels other than 0/1, NaN/Inf embeddings
            (with ``check_finite``).
    """
    z_a, z_v = _check_pair(z_audio, z_visual, same_dim)
    y, m = _check_labels(labels, mask, z_a.shape[:-1])
    _check_values(z_a, z_v, y, m, check_finite)
    dtype = torch.promote_types(torch.promote_types(z_a.dtype, z_v.dtype), torch.float32)
    z_a = z_a.reshape(-1, z_a.shape[-1]).to(dtype)
    z_v = z_v.reshape(-1, z_v.shape[-1]).to(dtype)
    y, m = y.reshape(-1), m.reshape(-1)
    speech = (m & (y == 1)).to(dtype)
    weights = torch.stack([m.to(dtype) - speech, speech])
    if sync and is_distributed():
        z_a, z_v, weights = gather_frames(z_a, z_v, weights)
    return FrameGroups(z_a, z_v, weights, weights[1].round().long())


def class_centres(z: Tensor, labels: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Class centres of eq. 6 for one modality: ``c_s = 1/K_s Σ_{i∈S} z_i``, ``c_n`` likewise.

    Args:
        z: ``(B, T, D)`` or ``(N, D)`` frame embeddings.
        labels: ``(B, T)`` or ``(N,)``, 1 = speech, 0 = non-speech.
        mask: optional bool shaped like ``labels``.

    Returns:
        ``(2, D)``: row 0 the non-speech centre ``c_n``, row 1 the speech centre ``c_s``; the row
        of a class without frames is the zero vector.
    """
    groups = frame_groups(z, z, labels, mask)
    return groups.centres(groups.audio)


def _l1(g: FrameGroups) -> Tensor:
    c_a, c_v = g.centres(g.audio), g.centres(g.visual)
    return cosine_similarity(c_a[1], c_a[0]) + cosine_similarity(c_v[1], c_v[0])


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
    z_audio: Tensor, z_visual: Tensor, labels: Tensor, mask: Tensor | None = None
) -> Tensor:
    r"""L1, intra-modality inter-class dispersion (eq. 7), minimised.

    ``L1 = cos(c_{a-s}, c_{a-ns}) + cos(c_{v-s}, c_{v-ns})``: pushes the speech and non-speech
    centres of each modality apart. In [-2, 2]. A batch without speech (or without non-speech)
    frames gives exactly 0 with zero gradients: both cosines involve the missing centre.

    Args:
        z_audio: ``(B, T, D_a)`` or ``(N, D_a)`` audio frame embeddings.
        z_visual: ``(B, T, D_v)`` or ``(N, D_v)`` visual frame embeddings.
        labels: ``(B, T)`` or ``(N,)`` 0/1 (1 = speech), integer or bool.
        mask: optional bool shaped like ``labels``; ``False`` marks padded frames.

    Returns:
        0-d tensor (float32 for half-precision inputs).

    Example:
        >>> import torch
        >>> z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> avil_l1(z, z, torch.tensor([1, 0]))
        tensor(0.)
    """
    return _l1(frame_groups(z_audio, z_visual, labels, mask, same_dim=False))


def avil_l2(
    z_audio: Tensor, z_visual: Tensor, labels: Tensor, mask: Tensor | None = None
) -> Tensor:
    r"""L2, intra-modality intra-class compactness (eq. 8), minimised.

    ``L2 = -(1/K_s Σ_{i∈S} [cos(c_{a-s}, e_{a,i}) + cos(c_{v-s}, e_{v,i})]
    + 1/K_n Σ_{i∈N} [cos(c_{a-ns}, e_{a,i}) + cos(c_{v-ns}, e_{v,i})])``: pulls every frame
    towards its own class centre, per modality. In [-4, 4]. The average over a class without
    frames is 0; the other class's average stays.

    Args:
        z_audio: ``(B, T, D_a)`` or ``(N, D_a)`` audio frame embeddings.
        z_visual: ``(B, T, D_v)`` or ``(N, D_v)`` visual frame embeddings.
        labels: ``(B, T)`` or ``(N,)`` 0/1 (1 = speech), integer or bool.
        mask: optional bool shaped like ``labels``; ``False`` marks padded frames.

    Returns:
        0-d tensor (float32 for half-precision inputs).
    """
    return _l2(frame_groups(z_audio, z_visual, labels, mask, same_dim=False))


def avil_l3(
    z_audio: Tensor, z_visual: Tensor, labels: Tensor, mask: Tensor | None = None
) -> Tensor:
    r"""L3, inter-modality intra-class alignment, centre-based (eq. 9), minimised.

    ``L3 = -(cos(c_{a-s}, c_{v-s}) + cos(c_{a-ns}, c_{v-ns}))``: pulls the audio and visual
    centres of each class together. In [-2, 2]. The cosine of a class without frames is 0; the
    other class's stays. Needs ``D_a == D_v``.

    Args:
        z_audio: ``(B, T, D)`` or ``(N, D)`` audio frame embeddings.
        z_visual: ``(B, T, D)`` or ``(N, D)`` visual frame embeddings.
        labels: ``(B, T)`` or ``(N,)`` 0/1 (1 = speech), integer or bool.
        mask: optional bool shaped like ``labels``; ``False`` marks padded frames.

    Returns:
        0-d tensor (float32 for half-precision inputs).
    """
    return _l3(frame_groups(z_audio, z_visual, labels, mask))


def avil_l4(
    z_audio: Tensor, z_visual: Tensor, labels: Tensor, mask: Tensor | None = None
) -> Tensor:
    r"""L4, inter-modality intra-class distance, sample-based (eq. 10, typo fixed), minimised.

    ``L4 = 1/K_s Σ_{i∈S} ‖e_{v,i} - e_{a,i}‖₂ + 1/K_n Σ_{i∈N} ‖e_{v,i} - e_{a,i}‖₂``: pulls each
    frame's audio and visual embeddings together (the paper prints ``Σ_{i∈N}`` in the first sum;
    it is the speech set). ``>= 0``, in embedding units. The mean over a class without frames
    is 0; the other class's stays. Needs ``D_a == D_v``.

    Args:
        z_audio: ``(B, T, D)`` or ``(N, D)`` audio frame embeddings.
        z_visual: ``(B, T, D)`` or ``(N, D)`` visual frame embeddings.
        labels: ``(B, T)`` or ``(N,)`` 0/1 (1 = speech), integer or bool.
        mask: optional bool shaped like ``labels``; ``False`` marks padded frames.

    Returns:
        0-d tensor (float32 for half-precision inputs).
    """
    return _l4(frame_groups(z_audio, z_visual, labels, mask))


TERMS: dict[str, Callable[[FrameGroups], Tensor]] = {"l1": _l1, "l2": _l2, "l3": _l3, "l4": _l4}
"""Term name -> kernel over :class:`FrameGroups` (used by :class:`avrobust.losses.AVILoss`)."""
