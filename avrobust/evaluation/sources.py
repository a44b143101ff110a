"""Data sources of an evaluation, seen as numbered clips handed out in batches.

:class:`Source` adapts the three kinds of data :func:`~avrobust.evaluation.evaluate` takes (a
map-style ``Dataset`` of ``(inputs, labels)`` items, an iterable of batches, one pair of stacked
tensors) to one interface: :meth:`Source.size` and :meth:`Source.batches` over chosen clip ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, RandomSampler
from torch.utils.data.distributed import DistributedSampler

from .._checks import check_int, describe

__all__ = ["MAX_CLIPS", "SAME_EVERY_PASS", "Batch", "Source", "check_loader"]

Batch = tuple[dict[str, Tensor], Tensor]

MAX_CLIPS = 1_000_000
"""The default cap on the clips of data of unknown length (:func:`~avrobust.evaluation.evaluate`'s
``max_clips``): more, and the data is taken for an endless iterable and refused."""

SAME_EVERY_PASS = (
    "evaluate reads the data once for the clean pass and once more per grid cell, and a clip "
    "must be the same every time: pass a map-style Dataset, a list of batches, or a "
    "DataLoader(dataset, shuffle=False) without random augmentation"
)


class Source:
    """A data source seen as numbered clips, handed out in batches of selected clips.

    Args:
        data: a map-style ``Dataset`` of ``(inputs, labels)`` items, an ``IterableDataset`` of
            such items (batched here, in the order it gives them), an iterable of
            ``(inputs, labels)`` batches that gives the same batches each time, or one pair
            ``(inputs, labels)`` of stacked tensors (see :func:`~avrobust.evaluation.evaluate`).
        batch_size: clips per batch (datasets and stacked tensors; an iterable of batches keeps
            its own).
        max_clips: data of unknown length (an iterable without ``len``) that gives more clips
            than this in one pass is refused as endless (``itertools.cycle`` of batches, a
            stream that repeats), instead of filling the memory.

    Raises:
        TypeError: ``data`` of none of these kinds (a bare tensor or array, a list of dicts),
            or an iterator that can be read only once (a generator, ``iter(loader)``,
            ``itertools.cycle``) (the message names ``data``); inputs that are not tensors,
            labels that are not integers (``data[1]``, ``data batch 3 labels``, ``data[7]
            labels``), when their batch or clip is read.
        ValueError: stacked inputs and labels of different batch sizes (a batch's too, when
            it is read); a ``DataLoader`` that shuffles or shards (:func:`check_loader`); more
            than ``max_clips`` clips of data of unknown length; meta tensors; a ``Dataset``
            that raises ``IndexError`` below its ``len()``.
    """

    def __init__(self, data: Any, batch_size: int, *, max_clips: int = MAX_CLIPS) -> None:
        self.batch_size = batch_size
        self.max_clips = check_int(max_clips, "max_clips", min_value=1)
        self.stacked: Batch | None = None
        self.dataset: Dataset[Any] | None = None
        self.iterable: Iterable[Any] | None = None
        self.items = False  # the iterable gives single clips (an IterableDataset), not batches
        check_loader(data)
        if isinstance(data, (Tensor, np.ndarray)):
            raise TypeError(
                f"data: got a bare {type(data).__name__} {describe(data)}, but evaluate needs "
                "the labels and every modality by name: pass (inputs, labels) with inputs a "
                "dict {modality: tensor}, e.g. ({'audio': audio, 'visual': visual}, labels)"
            )
        if isinstance(data, (tuple, list)) and data and isinstance(data[0], Mapping):
            if len(data) > 1 and all(isinstance(d, Mapping) for d in data):
                raise TypeError(
                    f"data: expected (inputs, labels) pairs, got {describe(data)} of dicts; "
                    "split each into (inputs dict, labels), e.g. ({'audio': a, 'visual': v}, y)"
                )
            if len(data) != 2:
                raise ValueError(
                    f"data: looks like stacked tensors (its first element is the inputs dict) "
                    f"but has {len(data)} elements; pass the pair (inputs, labels)"
                )
            self.stacked = _checked_batch(data[0], data[1], "data[0]", "data[1]")
        elif isinstance(data, IterableDataset):
            self.iterable, self.items = data, True
        elif (
            isinstance(data, Dataset) and hasattr(data, "__getitem__") and hasattr(data, "__len__")
        ):
            self.dataset = data
        elif isinstance(data, Iterator):
            raise TypeError(
                f"data: got {type(data).__name__}, an iterator that can be read only once (a "
                "generator, iter(loader), itertools.cycle or map), but " + SAME_EVERY_PASS
            )
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
        """Number of clips (``None`` for an iterable: unknown until iterated)."""
        if self.stacked is not None:
            return int(self.stacked[1].shape[0])
        if self.dataset is not None:
            return len(self.dataset)  # type: ignore[arg-type]
        return None

    def _capped(self, offset: int) -> None:
        """Refuse data of unknown length once it has given more than ``max_clips`` clips."""
        if offset > self.max_clips:
            raise ValueError(
                f"data: gave more than max_clips={self.max_clips} clips in one pass and has no "
                "len(): an endless iterable (itertools.cycle, a stream that repeats)? Pass data "
                "that ends, or raise evaluate's max_clips if it is truly this large"
            )

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
        yield from self._grouped((i, _read(dataset, i)) for i in chosen)

    def _numbered_items(self, ids: Sequence[int] | None) -> Iterator[tuple[int, Any]]:
        """The wanted clips of an ``IterableDataset``, numbered in the order it gives them."""
        wanted = None if ids is None else set(ids)
        for i, item in enumerate(() if self.iterable is None else self.iterable):
            self._capped(i + 1)
            if wanted is None or i in wanted:
                yield i, item

    def _grouped(self, items: Iterable[tuple[int, Any]]) -> Iterator[tuple[list[int], Batch]]:
        """Numbered ``(inputs, labels)`` clips stacked into batches of up to ``batch_size``
        clips of equal shapes, in the order given."""
        group: list[int] = []
        batch: list[Batch] = []
        shapes: Any = None
        for i, item in items:
            inputs, labels = _split_item(item, f"data[{i}]")
            item_shapes = ({k: tuple(v.shape) for k, v in inputs.items()}, tuple(labels.shape))
            if batch and (item_shapes != shapes or len(batch) == self.batch_size):
                yield group, _stack(batch)
                group, batch = [], []
            shapes = item_shapes
            group.append(i)
            batch.append((inputs, labels))
        if batch:
            yield group, _stack(batch)

    def _iterable_batches(self, ids: Sequence[int] | None) -> Iterator[tuple[list[int], Batch]]:
        if self.items:
            yield from self._grouped(self._numbered_items(ids))
            return
        wanted = None if ids is None else set(ids)
        offset = 0
        for number, batch in enumerate(() if self.iterable is None else self.iterable):
            inputs, labels = _split_item(batch, f"data batch {number}", batched=True)
            size = int(labels.shape[0])
            rows = [r for r in range(size) if wanted is None or offset + r in wanted]
            if rows:
                index = torch.tensor(rows, dtype=torch.long)
                picked = ({k: v[index] for k, v in inputs.items()}, labels[index])
                yield [offset + r for r in rows], picked
            offset += size
            self._capped(offset)


def _read(dataset: Any, i: int) -> Any:
    """``dataset[i]``; an ``IndexError`` below ``len(dataset)`` names the clip and the length."""
    try:
        return dataset[i]
    except IndexError as error:
        raise ValueError(
            f"data[{i}]: reading it raised IndexError ({error}), but len(data) is "
            f"{len(dataset)}: a Dataset must give every index below its len()"
        ) from error


def _split_item(item: Any, name: str, *, batched: bool = False) -> Batch:
    """An ``(inputs, labels, ...)`` item or batch, checked (``batched``: a batch, whose
    inputs and labels must share the batch size)."""
    if not (isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], Mapping)):
        raise TypeError(
            f"{name}: expected (inputs, labels) with inputs a dict of tensors, got {describe(item)}"
        )
    if batched:
        return _checked_batch(item[0], item[1], f"{name} inputs", f"{name} labels")
    return _check_inputs(item[0], name), _check_labels(item[1], f"{name} labels", batched=False)


def _checked_batch(inputs: Any, labels: Any, inputs_name: str, labels_name: str) -> Batch:
    """Stacked inputs and labels, checked, with one batch size."""
    checked = (_check_inputs(inputs, inputs_name), _check_labels(labels, labels_name))
    shapes = {k: tuple(v.shape) for k, v in checked[0].items()}
    sizes = {shape[0] if shape else None for shape in shapes.values()}
    if sizes != {int(checked[1].shape[0])}:
        where = inputs_name.rsplit(" ", 1)[0] if " " in inputs_name else "data"
        raise ValueError(
            f"{where}: inputs and labels must share the batch size (their first dimension), "
            f"got inputs {shapes} and labels {tuple(checked[1].shape)}; single clips (a "
            "DataLoader with batch_size=None) go in a map-style Dataset or an IterableDataset"
        )
    return checked


def _stack(items: list[Batch]) -> Batch:
    inputs = {k: torch.stack([x[k] for x, _ in items]) for k in items[0][0]}
    return inputs, torch.stack([y for _, y in items])


def _check_inputs(inputs: Any, name: str) -> dict[str, Tensor]:
    if not isinstance(inputs, Mapping) or not inputs:
        raise TypeError(f"{name}: expected a non-empty dict of tensors, got {describe(inputs)}")
    for key, value in inputs.items():
        if not isinstance(value, Tensor):
            raise TypeError(
                f"{name}[{key!r}]: expected a tensor, got {describe(value)}; convert it "
                "with torch.as_tensor"
            )
        _refuse_meta(value, f"{name}[{key!r}]")
    return dict(inputs)


def _check_labels(labels: Any, name: str, *, batched: bool = True) -> Tensor:
    """Integer labels: ``(B,)`` or ``(B, T)`` for a batch, ``()`` or ``(T,)`` for one clip
    (``batched=False``); lists and NumPy arrays are converted."""
    if not isinstance(labels, Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError):
            pass
    shape = "(B,) or frame labels (B, T)" if batched else "() or frame labels (T,)"
    ranks = (1, 2) if batched else (0, 1)
    if not isinstance(labels, Tensor) or labels.ndim not in ranks or labels.is_complex():
        raise TypeError(f"{name}: expected integer labels {shape}, got {describe(labels)}")
    _refuse_meta(labels, name)
    if labels.is_floating_point():
        raise TypeError(
            f"{name}: expected integer labels (class indices, 1 = speaking), got dtype "
            f"{labels.dtype}; float labels of whole numbers (0./1. for a BCE loss) go as "
            "labels.long()"
        )
    return labels


def _refuse_meta(x: Tensor, name: str) -> None:
    if x.is_meta:
        raise ValueError(
            f"{name}: a tensor on the meta device holds no values to evaluate; pass the data itself"
        )


def check_loader(data: Any) -> None:
    """Refuse a ``DataLoader`` whose sampler gives other clips on another pass or on another
    rank: a shuffling one (``shuffle=True``, a ``RandomSampler``) or a ``DistributedSampler``
    (each rank would see a part of the data; :func:`~avrobust.evaluation.evaluate` shards the
    batches over the ranks itself). Other data passes through; content that changes between
    passes anyway (random augmentation) is caught when the clips are read again.

    Raises:
        ValueError: naming ``data``, the sampler and the fix.
    """
    if not isinstance(data, DataLoader):
        return
    samplers = [data.sampler, getattr(data.batch_sampler, "sampler", None)]
    if any(isinstance(s, DistributedSampler) for s in samplers):
        raise ValueError(
            "data: a DataLoader with a DistributedSampler gives each rank a part of the data, "
            "but evaluate wants every rank to get the whole data (the same on every rank) and "
            "shards the batches over the ranks itself: pass DataLoader(dataset, shuffle=False) "
            "without the DistributedSampler"
        )
    if any(isinstance(s, RandomSampler) for s in samplers):
        raise ValueError(
            "data: a DataLoader with shuffle=True (a RandomSampler) gives other clips in "
            "another order on every pass, but " + SAME_EVERY_PASS
        )
