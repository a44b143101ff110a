"""The attack loop's bookkeeping of outcomes: per-sample success, the best candidate per sample,
and the mean over EOT passes. Nothing here is public."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ._guards import finite_rows

__all__ = ["Candidates", "mean_over_passes", "successes"]


def mean_over_passes(
    losses: list[Tensor], logits: list[Tensor], grads: list[tuple[Tensor | None, ...]], count: int
) -> tuple[Tensor, Tensor, list[Tensor | None]]:
    """The mean loss, logits and gradients (of ``count`` inputs) over EOT passes; one pass is
    returned as it is (bit-identical). A gradient that is ``None`` in a pass counts as zeros
    there, and stays ``None`` when it is in every pass."""
    if len(losses) == 1:
        return losses[0], logits[0], list(grads[0]) if count else []
    k = len(losses)
    mean: list[Tensor | None] = []
    for i in range(count):
        parts = [part for g in grads if (part := g[i]) is not None]
        mean.append(torch.stack(parts).sum(dim=0) / k if parts else None)
    return torch.stack(losses).mean(dim=0), torch.stack(logits).mean(dim=0), mean


def successes(logits: Tensor, labels: Tensor, targeted: bool) -> tuple[Tensor, Tensor | None]:
    """``(success (N,), frame_success (N, T) or None)`` of logits against checked labels.

    Untargeted: the prediction differs from the label; targeted: it equals the target. Frame
    logits ``(N, T, C)``: a sample succeeds when more than half of its frames do. A sample with
    NaN/Inf logits never succeeds."""
    pred = logits.argmax(dim=-1)
    hit = pred == labels if targeted else pred != labels
    hit = hit & finite_rows(logits).view((-1,) + (1,) * (hit.ndim - 1))
    if hit.ndim == 1:
        return hit, None
    return hit.float().mean(dim=1) > 0.5, hit


class Candidates:
    """Keeps, per sample, the adversarial candidate with the highest objective seen so far.

    A candidate whose logits hold NaN/Inf or whose objective is NaN scores ``-inf``: it is kept
    only when nothing else was offered for that sample. When the offers carry ``hit``, a rank
    per candidate (whether it is a successful attack, 0 or 1, for clip labels; how many of its
    frames are, for frame labels), a candidate of higher rank beats one of lower rank and the
    objective decides between two of the same rank (APGD's choice, see :class:`avrobust.APGD`).
    """

    def __init__(self) -> None:
        self.score: Tensor | None = None
        self.loss: Tensor | None = None
        self.inputs: dict[str, Tensor] = {}
        self.logits: Tensor | None = None
        self.hit: Tensor | None = None

    def offer(
        self,
        loss: Tensor,
        inputs: Mapping[str, Tensor],
        logits: Tensor,
        hit: Tensor | None = None,
    ) -> None:
        valid = finite_rows(logits) & ~torch.isnan(loss)
        score = torch.where(valid, loss, torch.full_like(loss, -float("inf")))
        if self.score is None or self.loss is None or self.logits is None:
            self.score, self.loss, self.logits, self.hit = score, loss, logits, hit
            self.inputs = {n: x.detach() for n, x in inputs.items()}
            return
        better = score > self.score
        if hit is not None and self.hit is not None:
            better = (hit > self.hit) | ((hit == self.hit) & better)
            self.hit = torch.where(better, hit, self.hit)
        self.score = torch.where(better, score, self.score)
        self.loss = torch.where(better, loss, self.loss)
        self.logits = torch.where(
            better.view((-1,) + (1,) * (logits.ndim - 1)), logits, self.logits
        )
        for n, x in inputs.items():
            mask = better.view((-1,) + (1,) * (x.ndim - 1))
            self.inputs[n] = torch.where(mask, x.detach(), self.inputs[n])

    def part(self, index: slice) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor | None]:
        """``(loss, inputs, logits, hit)`` of the samples in ``index``."""
        if self.loss is None or self.logits is None:
            raise RuntimeError("no candidate was offered")  # unreachable: every run offers one
        inputs = {n: x[index] for n, x in self.inputs.items()}
        hit = None if self.hit is None else self.hit[index]
        return self.loss[index], inputs, self.logits[index], hit
