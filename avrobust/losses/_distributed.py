"""Differentiable all-gather of frame batches for ``AVILoss(sync=True)``.

Ranks may hold different numbers of frames (the last batch of an epoch, masks): each rank pads
its frames to the largest count with zero-weight rows before gathering, so padding never enters
a sum or a count.

Gradient convention (the one of ``torch.distributed.nn.all_gather``): every rank computes the
same global loss, and the backward pass sums the gradients of all ranks for each rank's own
frames. ``DistributedDataParallel`` then averages parameter gradients over the ``W`` ranks, so
each parameter receives exactly the gradient of the single-process loss on the concatenated
batch. (Seen from one rank alone, the gradient w.r.t. its own embeddings is ``W`` times that
single-process gradient, which DDP's averaging divides out.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather_cat", "gather_frames", "is_distributed"]


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherCat(torch.autograd.Function):
    """Concatenate equal-sized ``(n, ...)`` tensors of all ranks along dim 0, differentiably."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rows = (rank * x.shape[0], (rank + 1) * x.shape[0])
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        start, stop = ctx.rows
        return total[start:stop]


def all_gather_cat(x: Tensor) -> Tensor:
    """Gather ``x (n_r, ...)`` from every rank into ``(W * n_max, ...)``, padded with zeros.

    Rank ``r``'s rows sit at ``[r * n_max, r * n_max + n_r)``; the rest are zero padding.
    Differentiable (see the module docstring for the gradient convention). Every rank must call it.
    """
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.int64)
    dist.all_reduce(size, op=dist.ReduceOp.MAX)
    pad = int(size.item()) - x.shape[0]
    if pad:
        x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
    return _AllGatherCat.apply(x)  # type: ignore[no-any-return]


def gather_frames(audio: Tensor, visual: Tensor, weights: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gather flat frames of all ranks in one collective.

    Args:
        audio: ``(N_r, D_a)`` this rank's audio embeddings.
        visual: ``(N_r, D_v)`` visual embeddings.
        weights: ``(2, N_r)`` class membership (padded rows get weight 0).

    Returns:
        ``(audio, visual, weights)`` of all ranks: ``(N', D_a)``, ``(N', D_v)``, ``(2, N')``.
    """
    packed = torch.cat([audio, visual, weights.t().to(audio.dtype)], dim=1)
    packed = all_gather_cat(packed)
    d_a, d_v = audio.shape[1], visual.shape[1]
    return packed[:, :d_a], packed[:, d_a : d_a + d_v], packed[:, d_a + d_v :].t().detach()
