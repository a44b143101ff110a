"""The base of the streaming metrics (:class:`StreamingMetric`) and their distributed helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor

from .._checks import check_bool, describe
from ..losses._distributed import all_gather_cat, is_distributed

__all__ = ["StreamingMetric"]


def _comm_device() -> torch.device:
    """Where collectives run: the current GPU for NCCL, the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class StreamingMetric(ABC):
    """Base of the streaming metrics: ``update(...)``, ``compute()``, ``reset()``.

    Attributes:
        higher_is_better: whether a larger value means a better model (``None``: neither).
        sync: combine the states of all ``torch.distributed`` ranks in ``compute``.
    """

    higher_is_better: ClassVar[bool | None] = None

    def __init__(self, *, sync: bool = False) -> None:
        check_bool(sync, "sync")
        self.sync = sync
        self.reset()

    @abstractmethod
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Add one batch."""

    @abstractmethod
    def compute(self) -> Any:
        """The measure over everything added since the last ``reset``."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every batch."""

    def merge(self, other: StreamingMetric) -> None:
        """Add ``other``'s state to this one, as if this metric had also seen ``other``'s batches,
        after its own (to combine shards computed apart: per batch, per process).

        Raises:
            TypeError: ``other`` is not a metric of the same class.
        """
        if type(other) is not type(self):
            raise TypeError(f"other: expected a {type(self).__name__}, got {describe(other)}")
        self._merge(other)

    def _merge(self, other: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot merge states")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sync={self.sync})"

    def _reduce_sum(self, value: Tensor) -> Tensor:
        """``value`` summed over the ranks (with ``sync``), on the CPU."""
        if self.sync and is_distributed():
            value = value.to(_comm_device(), copy=True)
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value.cpu()

    def _gather_rows(self, rows: Tensor) -> Tensor:
        """``(n, k)`` float64 rows of every rank (with ``sync``), concatenated, on the CPU."""
        if not (self.sync and is_distributed()):
            return rows
        marked = torch.cat([rows, torch.ones(rows.shape[0], 1, dtype=rows.dtype)], dim=1)
        gathered = all_gather_cat(marked.to(_comm_device())).cpu()
        return gathered[gathered[:, -1] == 1][:, :-1]  # padding rows carry a 0 mark
