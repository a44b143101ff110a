"""Data sources of an evaluation, seen as numbered clips handed out in batches.

:class:`Source` adapts the three kinds of data :func:`~avrobust.evaluation.evaluate` takes (a
map-style ``Dataset`` of ``(inputs, labels)`` items, an iterable of batches, one pair of stacked
tensors) to one interface: :meth:`Source.size` and :meth:`Source.batches` over chosen clip ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._checks import describe

__all__ = ["Batch", "Source"]

Batch = tuple[dict[str, Tensor], Tensor]


class Source:
    """A data source seen as numbered clips, handed out in batches of selected clips.

    Args:
        data: a map-style ``Dataset`` of ``(inputs, labels)`` items, an iterable of
            ``(inputs, labels)`` batches that gives the same batches each time, or one pair
            ``(inputs, labels)`` of stacked tensors (see :func:`~avrobust.evaluation.evaluate`).
        batch_size: clips per batch (datasets and stacked tensors; an iterable keeps its own).

    Raises:
        TypeError: ``data`` of none of these kinds (the message names ``data``).
        ValueError: stacked inputs and labels of different batch sizes.
    """

    def __init__(self, data: Any, batch_size: int) -> None:
        self.batch_size = batch_size
        self.stacked: Batch | None = None
        self.dataset: Dataset[Any] | None = None
        self.iterable: Iterable[Any] | None = None
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Mapping):
            inputs, labels = data
            self.stacked = (_check_inputs(inputs, "data[0]"), _check_labels(labels, "data[1]"))
            sizes = {int(x.shape[0]) for x in self.stacked[0].values()}
            if sizes != {int(self.stacked[1].shape[0])}:
                raise ValueError(
                    f"data: inputs and labels must share the batch size, got inputs "
                    f"{ {k: tuple(v.shape) for k, v in inputs.items()} } and labels "
                    f"{tuple(labels.shape)}"
                )
        elif (
            isinstance(data, Dataset) and hasattr(data, "__getitem__") and hasattr(data, "__len__")
        ):
            self.dataset = data
        elif isinstance(data, Iterable) and not isinstance(data, (str, bytes, Mapping)):
            self.iterable = data
        else:
            raise TypeError(
                "data: expected a map-style Dataset of (inputs, labels) items, an iterable of "
                "(inputs, labels) batches (e.g. a DataLoader without shuffling), or a pair "
                f"(inputs dict, labels) of stacked tensors, got {type(data).__name__} "
                f"{describe(data)}"
            )

    def size(self) -> int | None:
        """Number of clips (``None`` for a plain iterable of batches: unknown until iterated)."""
        if self.stacked is not None:
            return int(self.stacked[1].shape[0])
        if self.dataset is not None:
            return len(self.dataset)  # type: ignore[arg-type]
        return None

    def batches(self, ids: Sequence[int] | None) -> Iterator[tuple[list[int], Batch]]:
        """Yield ``(clip ids, (inputs, labels))``; ``ids=None`` means every clip."""
        if self.stacked is not None:
            inputs, labels = self.stacked
            chosen = list(range(int(labels.shape[0]))) if ids is None else list(ids)
            for start in range(0, len(chosen), self.batch_size):
                part = chosen[start : start + self.batch_size]
                index = torch.tensor(part, dtype=torch.long)
                yield part, ({k: v[index] for k, v in inputs.items()}, labels[index])
        elif self.dataset is not None:
            yield from self._dataset_batches(ids)
        else:
            yield from self._iterable_batches(ids)

    def _dataset_batches(self, ids: Sequence[int] | None) -> Iterator[tuple[list[int], Batch]]:
        dataset = self.dataset
        chosen = list(range(len(dataset))) if ids is None else list(ids)  # type: ignore[arg-type]
        group: list[int] = []
        items: list[Batch] = []
        shapes: Any = None
        for i in chosen:
            item = dataset[i]  # type: ignore[index]
            inputs, labels = _split_item(item, f"data[{i}]")
            item_shapes = ({k: tuple(v.shape) for k, v in inputs.items()}, tuple(labels.shape))
            if items and (item_shapes != shapes or len(items) == self.batch_size):
                yield group, _stack(items)
                group, items = [], []
            shapes = item_shapes
            group.append(i)
            items.append((inputs, labels))
        if items:
            yield group, _stack(items)

    def _iterable_batches(self, ids: Sequence[int] | None) -> Iterator[tuple[list[int], Batch]]:
        wanted = None if ids is None else set(ids)
        offset = 0
        for number, batch in enumerate(self.iterable or ()):
            inputs, labels = _split_item(batch, f"data batch {number}")
            inputs = _check_inputs(inputs, f"data batch {number} inputs")
            size = int(labels.shape[0])
            rows = [r for r in range(size) if wanted is None or offset + r in wanted]
            if rows:
                index = torch.tensor(rows, dtype=torch.long)
                picked = ({k: v[index] for k, v in inputs.items()}, labels[index])
                yield [offset + r for r in rows], picked
            offset += size


def _split_item(item: Any, name: str) -> Batch:
    if not (isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], Mapping)):
        raise TypeError(
            f"{name}: expected (inputs, labels) with inputs a dict of tensors, got {describe(item)}"
        )
    labels = item[1]
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels)
    return dict(item[0]), labels


def _stack(items: list[Batch]) -> Batch:
    inputs = {k: torch.stack([x[k] for x, _ in items]) for k in items[0][0]}
    return inputs, torch.stack([y for _, y in items])


def _check_inputs(inputs: Any, name: str) -> dict[str, Tensor]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise TypeError(f"{name}: expected a non-empty dict of tensors, got {describe(inputs)}")
    for key, value in inputs.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"{name}[{key!r}]: expected a tensor, got {describe(value)}")
    return dict(inputs)


def _check_labels(labels: Any, name: str) -> Tensor:
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.ndim not in (1, 2):
        raise TypeError(
            f"{name}: expected integer labels (B,) or frame labels (B, T), got {describe(labels)}"
        )
    return labels
