"""Evaluation across ``torch.distributed`` ranks: who attacks which batch, who writes the file.

When a process group of more than one rank is initialised (``torchrun``; gloo on CPU, NCCL on
GPU), :func:`~avrobust.evaluation.evaluate` runs as follows on every rank:

- rank 0 alone takes the results file's lock, reads the file to resume, runs the clean pass and
  the selection (or reads them from the file) and starts the file; what it decided (the
  selection, the clean measures, the cells already done), or the error it met, is broadcast
  (:func:`from_main`), so every rank works on the same clips and skips the same cells;
- each cell's batches are the same on every rank (the data is read in full by each); batch
  ``k`` is attacked by rank ``k mod W`` only (:meth:`Ranks.mine`). The attack of a cell is
  seeded by the cell alone and reseeded for every batch, so a batch's random start does not
  depend on the rank that attacks it: 1-rank and W-rank runs agree for every rule;
- every rank's per-batch measures are gathered on every rank and merged in batch order
  (:func:`gather_measures`), which gives the 1-process numbers (the same sums in the same
  order); rank 0 alone appends the cell to the results file;
- every rank returns the same :class:`~avrobust.evaluation.EvaluationReport`, once rank 0 has
  written the file and released its lock; ``on_cell`` is called on every rank, the progress bar shown by rank 0 only.

The streaming metrics' own ``sync`` is not used here: their collectives refuse a rank without a
clip (fewer batches than ranks), and summing per rank would change the order of the float sums.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist

from ..losses._distributed import is_distributed

if TYPE_CHECKING:
    from .runner import CellMeasures

__all__ = ["Ranks", "current_ranks", "from_main", "gather_measures", "on_every_rank"]

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks of an evaluation.

    Attributes:
        rank: this process's rank, ``0 <= rank < world``.
        world: the number of ranks (1 without ``torch.distributed``).
    """

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that writes the results file)."""
        return self.rank == 0

    def mine(self, number: int) -> bool:
        """Whether batch ``number`` (0-based, in the data's order) is attacked by this rank."""
        return number % self.world == self.rank

    def wait(self) -> None:
        """Wait for every rank (a barrier); nothing with one rank."""
        if self.world > 1:
            dist.barrier()


def current_ranks() -> Ranks:
    """The ranks of the initialised process group; ``Ranks(0, 1)`` without one (or with one
    rank)."""
    if not is_distributed():
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size())


def _object_device() -> torch.device | None:
    """Where NCCL moves pickled objects: the current GPU (``None`` for gloo)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return None


def from_main(ranks: Ranks, compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0 alone, its result (or the error it raised) given to every rank.

    Raises:
        Exception: the one ``compute`` raised on rank 0, raised on every rank.
    """
    if ranks.world == 1:
        return compute()
    box: list[Any] = [None]
    if ranks.main:
        try:
            box = [("ok", compute())]
        except Exception as error:  # every rank must leave the broadcast, then raise
            box = [("error", _portable(error))]
    dist.broadcast_object_list(box, src=0, device=_object_device())
    kind, value = box[0]
    if kind == "error":
        raise value
    return value  # type: ignore[no-any-return]


def on_every_rank(
    ranks: Ranks,
    compute: Callable[[], T],
    *,
    shared: Callable[[T], dict[str, Any]] | None = None,
) -> T:
    """``compute()`` on every rank, then one collective that makes the ranks agree: when it
    raised on any rank, every rank raises the error of the lowest rank that failed (its own
    type and message, with a note naming the rank), instead of the others waiting in their next
    collective until the process group times out ("Connection closed by peer"); with
    ``shared``, the settings ``shared(value)`` must be equal on every rank.

    Raises:
        Exception: a rank's error from ``compute``.
        ValueError: a rank's ``shared`` settings differ from rank 0's (naming the rank and
            the settings that differ).
    """
    if ranks.world == 1:
        return compute()
    value: Any = None
    failure: Exception | None = None
    try:
        value = compute()
    except Exception as error:  # every rank must reach the gather, then raise
        failure = error
    mine = None if failure is not None or shared is None else shared(value)
    everyone: list[Any] = [None] * ranks.world
    dist.all_gather_object(everyone, (_portable(failure), mine))
    for rank, (raised, _) in enumerate(everyone):
        if raised is not None:
            raise _noted(raised, rank)
    if shared is not None:
        _check_same(everyone[0][1], [settings for _, settings in everyone])
    return value  # type: ignore[no-any-return]


def _noted(error: Exception, rank: int) -> Exception:
    """``error`` with a note that it was raised on ``rank`` (where notes exist, Python 3.11+)."""
    note = f"(raised on rank {rank} of the torch.distributed evaluation)"
    if hasattr(error, "add_note") and note not in getattr(error, "__notes__", ()):
        error.add_note(note)
    return error


def _check_same(reference: dict[str, Any], settings: Sequence[dict[str, Any]]) -> None:
    """Raise naming the first rank whose settings differ from rank 0's, and how."""
    for rank, theirs in enumerate(settings):
        keys = sorted(k for k in set(reference) | set(theirs) if reference.get(k) != theirs.get(k))
        if keys:
            shown = "; ".join(
                f"{k}: rank 0 {reference.get(k)!r}, rank {rank} {theirs.get(k)!r}" for k in keys[:4]
            )
            raise ValueError(
                f"evaluate: rank {rank} was given other {', '.join(keys)} than rank 0 ({shown}). "
                "Every rank must call evaluate with the same model weights, data and settings "
                "(evaluate shards the batches over the ranks itself)"
            )


def _portable(error: Exception | None) -> Exception | None:
    """``error`` if it can be sent to the other ranks (pickled), else a ``RuntimeError`` that
    tells it."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def gather_measures(
    ranks: Ranks,
    parts: Sequence[tuple[int, CellMeasures]],
    seconds: float,
    *,
    failure: Exception | None = None,
) -> tuple[CellMeasures, float]:
    """The measures of every rank's batches, merged in batch order, and the longest time any
    rank spent; the same on every rank.

    Args:
        ranks: this process's ranks.
        parts: ``(batch number, the batch's measures)`` of this rank's batches.
        seconds: the time this rank spent on the cell.
        failure: the error this rank met attacking its batches, if any: every rank raises
            the one of the lowest rank that failed (instead of waiting for the others).

    Raises:
        Exception: a rank's ``failure``.
        ValueError: no rank measured any batch.
    """
    everyone: list[Any] = [None] * ranks.world
    dist.all_gather_object(
        everyone, (list(parts) if failure is None else [], seconds, _portable(failure))
    )
    for _, _, error in everyone:
        if error is not None:
            raise error
    merged = sorted((p for rank_parts, _, _ in everyone for p in rank_parts), key=lambda p: p[0])
    if not merged:
        raise ValueError("data: no batch of the selected clips was attacked on any rank")
    total = merged[0][1]
    for _, part in merged[1:]:
        _absorb(total, part)
    return total, max(float(s) for _, s, _ in everyone)


def _absorb(total: CellMeasures, part: CellMeasures) -> None:
    """Add the measures of a later batch ``part`` to ``total``, as if ``total`` had been updated
    with that batch too (the streaming metrics' states, the counts, the per-clip values)."""
    total.binary, total.classes = part.binary, part.classes
    for mine, theirs in (
        (total.map_clean, part.map_clean),
        (total.map_adv, part.map_adv),
        (total.success, part.success),
        (total.accuracy, part.accuracy),
        (total.accuracy_clean, part.accuracy_clean),
        (total.ecr, part.ecr),
    ):
        mine.merge(theirs)
    for key in total.top1:
        total.top1[key] += part.top1[key]
    for means, others in ((total.snr, part.snr), (total.psnr, part.psnr), (total.linf, part.linf)):
        for m, metric in others.items():
            means[m].merge(metric)
    for key in ("labels", "clean", "adv"):
        total.per_clip[key] += part.per_clip[key]
    for m, values in part.per_clip["ecr"].items():
        total.per_clip["ecr"].setdefault(m, []).extend(values)
    total.clips += part.clips
    total.frames += part.frames
    if part.broken_by is not None:
        total.add_broken_by(part.broken_by)
