"""Read and write the AVA-ActiveSpeaker CSV layouts; join predictions to ground truth by key.

Ground truth: ``video_id, frame_timestamp, entity_box_x1, entity_box_y1, entity_box_x2,
entity_box_y2, label, entity_id`` (extra columns such as ``label_id, instance_id`` are ignored),
``label`` one of ``SPEAKING_AUDIBLE`` (the positive class), ``SPEAKING_NOT_AUDIBLE``,
``NOT_SPEAKING``. Predictions: the same eight columns with ``label`` always
``SPEAKING_AUDIBLE``, then ``score`` (P(speaking)). Files may have a header row (TalkNet's
``val_orig.csv``) or not (the official AVA files and server submissions): a first row with a
``video_id`` field is read as a header and columns are then found by name (in any order; names
are matched case-insensitively, so ``VIDEO_ID,...`` is a header too). Files are read as UTF-8
(a leading byte-order mark is dropped); another encoding is refused with the file's name.
Timestamps, boxes and scores must be finite numbers: ``inf`` or ``nan`` is refused with the file
and line (``inf`` and ``-inf`` would otherwise collide as join keys).

Rows are joined on ``(entity_id, frame_timestamp)``, never by row order; timestamps are matched
to the microsecond.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from .._checks import describe
from .functional import _numbers, average_precision

__all__ = [
    "AVA_LABELS",
    "POSITIVE_LABEL",
    "AVARows",
    "evaluate_ava_csv",
    "join_ava",
    "read_ava_ground_truth",
    "read_ava_predictions",
    "write_ava_ground_truth",
    "write_ava_predictions",
]

POSITIVE_LABEL = "SPEAKING_AUDIBLE"
AVA_LABELS = (POSITIVE_LABEL, "SPEAKING_NOT_AUDIBLE", "NOT_SPEAKING")
_COLUMNS = (
    "video_id",
    "frame_timestamp",
    "entity_box_x1",
    "entity_box_y1",
    "entity_box_x2",
    "entity_box_y2",
    "label",
    "entity_id",
)
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class AVARows:
    """Rows of an AVA-ActiveSpeaker CSV, column by column.

    Attributes:
        video_id: ``N`` video ids.
        frame_timestamp: ``(N,)`` float64, seconds.
        boxes: ``(N, 4)`` float64 ``x1, y1, x2, y2`` (normalised image coordinates in AVA).
        label: ``N`` labels from :data:`AVA_LABELS`.
        entity_id: ``N`` face-track ids.
        score: ``(N,)`` float64 P(speaking) for predictions, ``None`` for ground truth.
    """

    video_id: list[str]
    frame_timestamp: np.ndarray
    boxes: np.ndarray
    label: list[str]
    entity_id: list[str]
    score: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.entity_id)

    @property
    def positive(self) -> np.ndarray:
        """``(N,)`` bool, ``label == "SPEAKING_AUDIBLE"``."""
        return np.array([lab == POSITIVE_LABEL for lab in self.label], dtype=bool)

    def keys(self) -> list[tuple[str, int]]:
        """Join keys ``(entity_id, timestamp in microseconds)``, one per row.

        Raises:
            ValueError: a NaN/Inf timestamp (``inf`` and ``-inf`` would map to one key).
        """
        bad = np.flatnonzero(~np.isfinite(self.frame_timestamp))
        if bad.size:
            raise ValueError(
                f"AVARows.frame_timestamp: expected finite seconds, got {bad.size} NaN/Inf, e.g. "
                f"{self.frame_timestamp[bad[0]]} in row {bad[0]} ({self.entity_id[bad[0]]})"
            )
        micros = np.rint(self.frame_timestamp * 1e6).astype(np.int64).tolist()
        return list(zip(self.entity_id, micros))


def _utf8_lines(path: PathLike) -> Iterator[str]:
    """The lines of a UTF-8 text file, ends kept, without a leading BOM.

    Raises:
        ValueError: the file is not UTF-8 (the message names it).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such AVA CSV file")
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"{os.fspath(path)}: expected an AVA CSV file, got a folder; give the file in it "
            "(e.g. csv/val_orig.csv for the ground truth, or the predictions CSV)"
        )
    with open(path, encoding="utf-8-sig", newline="") as handle:
        try:
            yield from handle
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{os.fspath(path)}: not UTF-8 text ({exc.reason}: byte "
                f"0x{exc.object[exc.start]:02x}); save the file as UTF-8"
            ) from None


def _read(path: PathLike, with_score: bool) -> AVARows:
    needed = (*_COLUMNS, "score") if with_score else _COLUMNS
    reader = csv.reader(_utf8_lines(path))
    rows = [(reader.line_num, row) for row in reader if row]
    where = list(range(len(needed)))
    has_header = bool(rows) and "video_id" in [f.strip().lower() for f in rows[0][1]]
    if has_header:
        header = [name.strip() for name in rows.pop(0)[1]]
        lowered = [name.lower() for name in header]
        missing = [name for name in needed if name not in lowered]
        if missing:
            raise ValueError(f"{path}: the header lacks the columns {missing}, got {header}")
        where = [lowered.index(name) for name in needed]
    columns: list[list[str]] = [[] for _ in needed]
    for number, row in rows:
        if len(row) <= max(where):
            raise ValueError(f"{path}:{number}: expected {len(needed)} columns, got {len(row)}")
        for column, index in zip(columns, where):
            column.append(row[index].strip())
    return _to_rows(path, columns, [number for number, _ in rows], with_score)


def _floats(path: PathLike, name: str, values: list[str], lines: list[int]) -> np.ndarray:
    """A column as float64; a non-number or a NaN/Inf is refused with the file and line."""
    try:
        out = np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(i for i, v in enumerate(values) if not _is_float(v))
        raise ValueError(
            f"{path}:{lines[bad]}: column {name!r}: expected a number, got {values[bad]!r}"
        ) from None
    finite = np.isfinite(out)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ValueError(
            f"{path}:{lines[bad]}: column {name!r}: expected a finite number, got "
            f"{values[bad]!r} ({int((~finite).sum())} NaN/Inf in the column)"
        )
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _to_rows(
    path: PathLike, columns: list[list[str]], lines: list[int], with_score: bool
) -> AVARows:
    labels = columns[6]
    unknown = sorted(set(labels) - set(AVA_LABELS))
    if unknown:
        raise ValueError(
            f"{path}: column 'label': expected one of {list(AVA_LABELS)}, got {unknown}"
        )
    boxes = np.stack([_floats(path, _COLUMNS[i], columns[i], lines) for i in range(2, 6)], axis=1)
    score = _floats(path, "score", columns[8], lines) if with_score else None
    return AVARows(
        video_id=columns[0],
        frame_timestamp=_floats(path, "frame_timestamp", columns[1], lines),
        boxes=boxes.reshape(-1, 4),
        label=labels,
        entity_id=columns[7],
        score=score,
    )


def read_ava_ground_truth(path: PathLike) -> AVARows:
    """Read a ground-truth CSV (with or without header).

    Args:
        path: the CSV file, e.g. ``ava_activespeaker_val_v1.0.csv`` or TalkNet's ``val_orig.csv``.

    Returns:
        :class:`AVARows` with ``score=None``.

    Raises:
        ValueError: missing columns, a non-numeric or NaN/Inf timestamp or box, an unknown label
            (the message gives the file and line), a file that is not UTF-8.
    """
    return _read(path, with_score=False)


def read_ava_predictions(path: PathLike) -> AVARows:
    """Read a prediction CSV: the ground-truth columns plus ``score``.

    Raises:
        ValueError: as :func:`read_ava_ground_truth`, or a row without a finite numeric score.
    """
    return _read(path, with_score=True)


def _check_rows(rows: object) -> AVARows:
    if not isinstance(rows, AVARows):
        raise TypeError(
            f"rows: expected AVARows (e.g. from read_ava_ground_truth), got {describe(rows)}"
        )
    for name in ("frame_timestamp", "boxes"):
        bad = int((~np.isfinite(getattr(rows, name))).sum())
        if bad:
            raise ValueError(f"rows.{name}: expected finite numbers, got {bad} NaN/Inf")
    return rows


def _score_array(values: object, name: str) -> np.ndarray:
    """Scores as ``(N,)`` float64 from a tensor, array or sequence of real numbers, all finite.

    Raises:
        TypeError: not real numbers (strings such as ``"0.3"`` are refused, not converted).
        ValueError: a NaN/Inf score.
    """
    array = (
        values.detach().cpu().double().numpy()
        if isinstance(values, Tensor)
        else _numbers(values, name)
    )
    array = array.reshape(-1).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name}: expected finite scores, got {bad.size} NaN/Inf (e.g. {array[bad[0]]} at {bad[0]})"
        )
    return array


def _write(
    path: PathLike, rows: AVARows, labels: Sequence[str], scores: np.ndarray | None, header: bool
) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow([*_COLUMNS, "score"] if scores is not None else _COLUMNS)
        for i in range(len(rows)):
            row = [rows.video_id[i], repr(float(rows.frame_timestamp[i]))]
            row += [repr(float(v)) for v in rows.boxes[i]] + [labels[i], rows.entity_id[i]]
            writer.writerow(row if scores is None else [*row, repr(float(scores[i]))])


def write_ava_ground_truth(path: PathLike, rows: AVARows, *, header: bool = True) -> None:
    """Write ground-truth rows (the 8 AVA columns); numbers are written exactly (``repr``).

    Args:
        path: output file.
        rows: the rows; ``rows.score`` is ignored.
        header: write the column names first (TalkNet's layout); ``False`` for the AVA layout.

    Raises:
        TypeError: ``rows`` is not :class:`AVARows`.
        ValueError: a NaN/Inf timestamp or box (nothing is written).
    """
    _write(path, _check_rows(rows), rows.label, None, header)


def write_ava_predictions(
    path: PathLike,
    rows: AVARows,
    scores: Sequence[float] | np.ndarray | None = None,
    *,
    header: bool = True,
) -> None:
    """Write a prediction CSV: the rows' keys and boxes, label ``SPEAKING_AUDIBLE``, and a score.

    Args:
        path: output file.
        rows: the frames (typically the ground-truth rows, so boxes match).
        scores: ``(N,)`` P(speaking) aligned with ``rows``; ``None`` uses ``rows.score``.
        header: write the column names first; ``False`` for an AVA server submission.

    Raises:
        TypeError: ``rows`` is not :class:`AVARows`, or scores that are not real numbers (e.g.
            strings).
        ValueError: no scores, a count that differs from the rows, a NaN/Inf score, timestamp or
            box (nothing is written).
    """
    _check_rows(rows)
    given = rows.score if scores is None else scores
    values = None if given is None else _score_array(given, "scores")
    if values is None or len(values) != len(rows):
        got = "none" if values is None else str(len(values))
        raise ValueError(f"scores: expected one score per row ({len(rows)}), got {got}")
    _write(path, rows, [POSITIVE_LABEL] * len(rows), values, header)


def _duplicates(keys: list[tuple[str, int]], what: str) -> None:
    repeated = [(key, n) for key, n in Counter(keys).items() if n > 1]
    if repeated:
        shown = ", ".join(f"{e}@{t / 1e6:g}s ×{n}" for (e, t), n in repeated[:5])
        raise ValueError(
            f"{what}: {len(repeated)} (entity_id, frame_timestamp) keys occur more than once, "
            f"e.g. {shown}"
        )


def _examples(keys: list[tuple[str, int]]) -> str:
    return f" (e.g. {', '.join(f'{e}@{t / 1e6:g}s' for e, t in keys[:3])})" if keys else ""


def join_ava(
    ground_truth: AVARows, predictions: AVARows, *, box_tolerance: float | None = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """Match every ground-truth row to its prediction on ``(entity_id, frame_timestamp)``.

    Args:
        ground_truth: from :func:`read_ava_ground_truth`.
        predictions: from :func:`read_ava_predictions`.
        box_tolerance: boxes of matched rows must agree within this (as in the official script);
            ``None`` skips the check.

    Returns:
        ``(scores, labels)``, both ``(N,)`` in ground-truth order: float64 scores and bool
        ``label == SPEAKING_AUDIBLE``; ready for :func:`~avrobust.metrics.average_precision`.

    Raises:
        ValueError: duplicated keys in either file, ground-truth rows without a prediction,
            predictions without a ground-truth row, a prediction label other than
            ``SPEAKING_AUDIBLE``, mismatched boxes, or predictions without scores.
    """
    if predictions.score is None:
        raise ValueError("predictions: expected rows with a score, got ground-truth rows")
    bad = sorted(set(predictions.label) - {POSITIVE_LABEL})
    if bad:
        raise ValueError(f"predictions: every label must be {POSITIVE_LABEL!r}, got {bad}")
    gt_keys, pred_keys = ground_truth.keys(), predictions.keys()
    _duplicates(gt_keys, "ground truth")
    _duplicates(pred_keys, "predictions")
    where = {key: i for i, key in enumerate(pred_keys)}
    missing = [key for key in gt_keys if key not in where]
    known = set(gt_keys)
    extra = [key for key in pred_keys if key not in known]
    if missing or extra:
        raise ValueError(
            f"predictions: {len(missing)} ground-truth rows have no prediction{_examples(missing)}"
            f" and {len(extra)} predictions have no ground-truth row{_examples(extra)}; rows are "
            "matched on (entity_id, frame_timestamp)"
        )
    index = np.array([where[key] for key in gt_keys], dtype=np.int64)
    if box_tolerance is not None:
        gap = np.abs(predictions.boxes[index] - ground_truth.boxes).max(axis=1)
        if (gap > box_tolerance).any():
            row = int(np.argmax(gap > box_tolerance))
            raise ValueError(
                f"predictions: {int((gap > box_tolerance).sum())} boxes differ from the ground "
                f"truth by more than {box_tolerance:g}, e.g. {gt_keys[row][0]} "
                f"@{ground_truth.frame_timestamp[row]:g}s"
            )
    return predictions.score[index], ground_truth.positive


def evaluate_ava_csv(
    ground_truth: PathLike, predictions: PathLike, *, ties: str = "group"
) -> float:
    """Frame AP of a prediction CSV against a ground-truth CSV, as the AVA evaluation computes it.

    Args:
        ground_truth: ground-truth CSV path.
        predictions: prediction CSV path.
        ties: see :func:`~avrobust.metrics.average_precision`.

    Returns:
        AP in [0, 1] (the official script prints it ×100 as "average precision").
    """
    scores, labels = join_ava(
        read_ava_ground_truth(ground_truth), read_ava_predictions(predictions)
    )
    return float(average_precision(scores, labels, ties=ties))
