"""The frames of a batch grouped by class: the checked, shared first step of every AVIL term.

:func:`frame_groups` validates the embeddings, labels and mask (one device sync), flattens the
frames and gives each class's membership weights (:class:`FrameGroups`); under
``torch.distributed`` it gathers every rank's frames. Re-exported by
:mod:`avrobust.losses.functional`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_finite_tensor, check_int, check_tensor, describe
from ._distributed import gather_frames, is_distributed

__all__ = ["FrameGroups", "frame_groups"]


@dataclass(frozen=True)
class FrameGroups:
    """A batch's frames, flattened and split by class; shared by the four terms.

    Attributes:
        audio: ``(N, D_a)`` audio frame embeddings.
        visual: ``(N, D_v)`` visual frame embeddings.
        weights: ``(C, N)`` class membership, row ``k`` class ``k`` (two classes: row 0
            non-speech, row 1 speech); 0 for masked frames.
        labels: ``(N,)`` int64 class per frame (0 where masked).
    """

    audio: Tensor
    visual: Tensor
    weights: Tensor
    labels: Tensor

    @property
    def counts(self) -> Tensor:
        """``(C,)`` frame counts per class (two classes: ``(K_n, K_s)``)."""
        return self.weights.sum(dim=1)

    def class_mean(self, values: Tensor) -> Tensor:
        """Per-class mean of per-frame ``values (N,)``: ``(C,)``, 0 for an empty class."""
        return (self.weights @ values) / self.counts.clamp_min(1.0)

    def centres(self, z: Tensor) -> Tensor:
        """Class centres of eq. 6 for ``z (N, D)``: ``(C, D)`` (two classes: non-speech,
        speech); the zero vector for a class without frames."""
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


def _check_values(
    z_a: Tensor, z_v: Tensor, y: Tensor, m: Tensor, check_finite: bool, classes: int = 2
) -> None:
    """Labels in ``[0, classes)`` in unmasked frames and, if ``check_finite``, finite
    embeddings: one device sync."""
    bad = m & ((y < 0) | (y >= classes)) if classes > 2 else m & (y != 0) & (y != 1)
    flags = [bad.any()]
    if check_finite:
        flags += [~torch.isfinite(z_a).all(), ~torch.isfinite(z_v).all()]
    labels_bad, *not_finite = torch.stack([f.to(z_a.device) for f in flags]).tolist()
    if labels_bad:
        found = sorted({int(v) for v in y[bad].unique()[:5]})
        expected = (
            f"class indices 0 to {classes - 1}" if classes > 2 else "0 (non-speech) or 1 (speech)"
        )
        raise ValueError(
            f"labels: expected {expected} in unmasked frames, got values {found}"
            " (pass mask=... to leave padded frames out"
            + (", num_classes=... for more classes)" if classes == 2 else ")")
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
    num_classes: int = 2,
) -> FrameGroups:
    """Validate, flatten and group a batch's frames by class (the shared first step of every term).

    Args:
        z_audio: ``(B, T, D)`` or ``(N, D)`` audio frame embeddings, floating point.
        z_visual: same leading shape as ``z_audio``.
        labels: ``(B, T)`` or ``(N,)``, integer or bool, 1 = speech, 0 = non-speech (class
            indices in ``[0, num_classes)`` for more classes).
        mask: optional bool, shaped like ``labels``; ``False`` frames are left out.
        same_dim: require equal embedding sizes (needed by L3 and L4).
        sync: under an initialised ``torch.distributed`` group with more than one process,
            gather the frames of every rank (differentiably), so every statistic is global.
        check_finite: refuse NaN/Inf embeddings (``torch.isfinite(...).all()``, read in the same
            device sync as the label check, so it costs no extra sync).
        num_classes: the class count ``C`` (>= 2; 2 is the paper's speech / non-speech).

    Returns:
        :class:`FrameGroups`.

    Raises:
        TypeError: non-tensors, non-float embeddings, float labels, non-bool mask, a
            non-integer ``num_classes``.
        ValueError: mismatched shapes, empty batch, labels outside ``[0, C)`` (0/1 for two
            classes), NaN/Inf embeddings (with ``check_finite``), ``num_classes`` below 2.
    """
    classes = check_int(num_classes, "num_classes", min_value=2)
    z_a, z_v = _check_pair(z_audio, z_visual, same_dim)
    y, m = _check_labels(labels, mask, z_a.shape[:-1])
    _check_values(z_a, z_v, y, m, check_finite, classes)
    dtype = torch.promote_types(torch.promote_types(z_a.dtype, z_v.dtype), torch.float32)
    z_a = z_a.reshape(-1, z_a.shape[-1]).to(dtype)
    z_v = z_v.reshape(-1, z_v.shape[-1]).to(dtype)
    y, m = y.reshape(-1), m.reshape(-1)
    if classes == 2:
        speech = (m & (y == 1)).to(dtype)
        weights = torch.stack([m.to(dtype) - speech, speech])
    else:
        own = torch.where(m, y.long(), torch.zeros_like(y, dtype=torch.long))
        weights = torch.nn.functional.one_hot(own, classes).t().to(dtype) * m.to(dtype)
    if sync and is_distributed():
        z_a, z_v, weights = gather_frames(z_a, z_v, weights)
    ids = torch.arange(classes, dtype=dtype, device=weights.device)
    return FrameGroups(z_a, z_v, weights, (ids @ weights).round().long())
