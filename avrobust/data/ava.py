"""AVA-ActiveSpeaker in the layout TalkNet's preprocessing produces, batching by length, predictions.

TalkNet's ``trainTalkNet.py --evaluation`` / ``utils/tools.py`` leave this tree under ``root``::

    root/
      csv/{split}_loader.csv        one face track per line, tab-separated:
                                    entity_id  numFrames  fps  [l0,l1,...]  index
      csv/{split}_orig.csv          the AVA annotations (ground truth, with a header row)
      clips_audios/{split}/<video_id>/<entity_id>.wav          16 kHz mono int16, the track's span
      clips_videos/{split}/<video_id>/<entity_id>/<t>.jpg      face crops, named by timestamp (s)

``video_id`` is the first 11 characters of ``entity_id`` (the YouTube id), as in TalkNet's
loader. A clip is read as TalkNet's evaluation reads it: the first ``numFrames`` face crops in
timestamp order, converted to grayscale and resized to ``face_size`` (bilinear; TalkNet uses
``cv2.resize``, so pixels may differ by a level or two), and the waveform as float in [-1, 1]
(int16 / 32768), cut — or wrap-padded, like TalkNet's MFCC padding — to exactly
``round(numFrames · 16000 / fps)`` samples so clips of one length (and frame rate) batch together.

Reading JPEG needs Pillow (``pip install pillow``; the ``ava`` extra).
"""

from __future__ import annotations

import glob
import math
import os
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from .._checks import check_choice, check_int, check_number, describe
from ..metrics import ava_csv as _ava_csv
from ..metrics.ava_csv import AVARows, read_ava_ground_truth, write_ava_predictions

__all__ = [
    "AVAActiveSpeaker",
    "AVAEntry",
    "collate_clips",
    "length_batches",
    "predict_entities",
    "read_loader_csv",
    "read_wav",
    "write_predictions",
]

PathLike = str | os.PathLike[str]
SAMPLE_RATE = 16000
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class AVAEntry:
    """One face track (one line of TalkNet's loader CSV).

    Attributes:
        entity_id: the AVA entity (face track) id, e.g. ``"-5KQ66BBWC4_0900_0960:1"``.
        num_frames: frames ``T`` of the track.
        fps: the video's frame rate.
        labels: ``T`` frame labels, 1 = SPEAKING_AUDIBLE.
        index: TalkNet's last column (a random number used to order same-length tracks).
    """

    entity_id: str
    num_frames: int
    fps: float
    labels: tuple[int, ...]
    index: int = 0

    @property
    def video_id(self) -> str:
        """The first 11 characters of ``entity_id`` (TalkNet's folder name)."""
        return self.entity_id[:11]


def read_loader_csv(path: PathLike) -> list[AVAEntry]:
    """Read TalkNet's ``{split}_loader.csv`` (tab-separated, no header).

    Raises:
        FileNotFoundError: no file. ValueError: a malformed line (the message gives the line),
            a non-finite fps, a file that is not UTF-8 (a leading BOM is dropped).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"loader CSV not found: {path}")
    entries = []
    for number, line in enumerate(_ava_csv._utf8_lines(path), start=1):
        line = line.rstrip("\n\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 4:
            raise ValueError(
                f"{path}:{number}: expected tab-separated 'entity_id, numFrames, fps, "
                f"[labels], index', got {len(fields)} field(s): {line[:80]!r}"
            )
        try:
            frames = int(fields[1])
            fps = float(fields[2])
            text = fields[3].strip().lstrip("[").rstrip("]")
            labels = tuple(int(v) for v in text.split(",") if v.strip())
            index = int(fields[4]) if len(fields) > 4 and fields[4].strip() else 0
        except ValueError:
            raise ValueError(
                f"{path}:{number}: expected numFrames (int), fps (number), labels like "
                f"[0,1,1] and an int index, got {fields[1:5]!r}"
            ) from None
        if frames < 1 or not 0 < fps < math.inf or len(labels) < frames or set(labels) - {0, 1}:
            raise ValueError(
                f"{path}:{number}: expected numFrames >= 1, finite fps > 0, at least numFrames "
                f"0/1 labels, got numFrames={frames}, fps={fps:g}, {len(labels)} labels "
                f"with values {sorted(set(labels))}"
            )
        entries.append(AVAEntry(fields[0], frames, fps, labels[:frames], index))
    return entries


def read_wav(path: PathLike, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """Read a mono 16-bit PCM WAV file as float samples in [-1, 1] (int16 / 32768).

    Args:
        path: the file.
        sample_rate: the rate it must have, in Hz.

    Returns:
        ``(S,)`` float32.

    Raises:
        FileNotFoundError: no file. ValueError: not mono 16-bit PCM at ``sample_rate``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        with wave.open(os.fspath(path), "rb") as handle:
            channels, width, rate = (
                handle.getnchannels(),
                handle.getsampwidth(),
                handle.getframerate(),
            )
            data = handle.readframes(handle.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"{path}: not a readable PCM WAV file ({exc})") from None
    if channels != 1 or width != 2 or rate != sample_rate:
        raise ValueError(
            f"{path}: expected mono 16-bit PCM at {sample_rate} Hz, got {channels} channel(s), "
            f"{8 * width}-bit, {rate} Hz"
        )
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return torch.from_numpy(samples.copy())


def _read_face(path: str, size: int) -> Tensor:
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError(
            "reading AVA face crops needs Pillow: pip install pillow (or 'avrobust[ava]')"
        ) from exc
    with Image.open(path) as image:
        gray = np.asarray(image.convert("L"), dtype=np.float32)
    face = torch.from_numpy(gray.copy())
    if face.shape != (size, size):
        face = F.interpolate(
            face[None, None], size=(size, size), mode="bilinear", align_corners=False
        )[0, 0]
    return face.round().clamp(0, 255)


def _timestamp(path: str) -> float:
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        return float(stem)
    except ValueError:
        raise ValueError(
            f"{path}: face crops must be named by their timestamp in seconds (e.g. 902.36.jpg)"
        ) from None


class AVAActiveSpeaker(Dataset[tuple[dict[str, Tensor], Tensor]]):
    """AVA-ActiveSpeaker face tracks from TalkNet's preprocessed tree (a ``Dataset``).

    Args:
        root: the folder holding ``csv/``, ``clips_audios/`` and ``clips_videos/``.
        split: ``"val"`` (default), ``"train"`` or ``"test"`` (test labels are not public: every
            frame reads as speaking).
        face_size: side the face crops are resized to (TalkNet: 112).
        max_frames: keep at most this many frames of each track (``None``: whole tracks, as
            TalkNet's evaluation).
        fps: keep only tracks at this frame rate (within 0.01); ``None`` keeps all. TalkNet models
            here assume ``config.fps`` (25) frames per second for their audio features.
        sort_by_length: order the tracks by length, longest first, so that consecutive items batch
            together (:func:`avrobust.evaluate` batches consecutive items of equal shape).
        entities: keep only these entity ids (in this order).

    Returns (``dataset[i]``):
        ``(inputs, labels)``: ``inputs = {"audio": (S,) float32 in [-1, 1], "visual": (T, H, W)
        float32 in [0, 255]}`` with ``S = round(T · 16000 / fps)`` and ``labels`` ``(T,)`` int64.

    Raises:
        FileNotFoundError: the loader CSV is missing (the message shows the expected layout).
        ValueError: a bad argument or a malformed CSV line.

    Example:
        >>> data = AVAActiveSpeaker("AVA", split="val")  # doctest: +SKIP
        >>> inputs, labels = data[0]  # doctest: +SKIP
    """

    def __init__(
        self,
        root: PathLike,
        split: str = "val",
        *,
        face_size: int = 112,
        max_frames: int | None = None,
        fps: float | None = None,
        sort_by_length: bool = False,
        entities: Sequence[str] | None = None,
    ) -> None:
        self.root = os.fspath(root)
        self.split = check_choice(split, "split", ("train", "val", "test"))
        self.face_size = check_int(face_size, "face_size", min_value=1)
        self.max_frames = (
            None if max_frames is None else check_int(max_frames, "max_frames", min_value=1)
        )
        self.fps = None if fps is None else check_number(fps, "fps", min_value=0, strict=True)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"root: AVA folder not found: {self.root}")
        self.loader_csv = os.path.join(self.root, "csv", f"{self.split}_loader.csv")
        if not os.path.isfile(self.loader_csv):
            raise FileNotFoundError(
                f"root: expected TalkNet's preprocessed AVA layout, but {self.loader_csv} is "
                "missing; the tree should hold csv/{split}_loader.csv, csv/{split}_orig.csv, "
                "clips_audios/{split}/<video_id>/<entity_id>.wav and "
                "clips_videos/{split}/<video_id>/<entity_id>/<timestamp>.jpg"
            )
        self.ground_truth_csv = os.path.join(self.root, "csv", f"{self.split}_orig.csv")
        self.audio_dir = os.path.join(self.root, "clips_audios", self.split)
        self.video_dir = os.path.join(self.root, "clips_videos", self.split)
        entries = read_loader_csv(self.loader_csv)
        if self.fps is not None:
            entries = [e for e in entries if abs(e.fps - self.fps) <= 0.01]
        if entities is not None:
            if isinstance(entities, str) or not isinstance(entities, Sequence):
                raise TypeError(
                    f"entities: expected a list of entity ids, got {describe(entities)}"
                )
            known = {e.entity_id: e for e in entries}
            missing = [e for e in entities if e not in known]
            if missing:
                where = "in" if self.fps is None else f"among the tracks at fps={self.fps:g} in"
                raise ValueError(
                    f"entities: {len(missing)} ids are not {where} {self.loader_csv} "
                    f"(e.g. {missing[:3]})"
                )
            entries = [known[e] for e in entities]
        if sort_by_length:
            entries = sorted(entries, key=lambda e: (-self._frames(e), e.entity_id))
        self.entries: list[AVAEntry] = entries

    def __repr__(self) -> str:
        return f"AVAActiveSpeaker(root={self.root!r}, split={self.split!r}, tracks={len(self)})"

    def __len__(self) -> int:
        return len(self.entries)

    def _frames(self, entry: AVAEntry) -> int:
        return (
            entry.num_frames if self.max_frames is None else min(entry.num_frames, self.max_frames)
        )

    @property
    def lengths(self) -> list[int]:
        """Frames per track, in dataset order (what :func:`length_batches` groups by)."""
        return [self._frames(e) for e in self.entries]

    def face_files(self, index: int) -> list[str]:
        """The face-crop files of track ``index``, in timestamp order (all of them).

        Raises:
            FileNotFoundError: the track's folder is missing or empty.
        """
        entry = self.entries[index]
        folder = self._existing(os.path.join(self.video_dir, entry.video_id, entry.entity_id))
        files = [
            f
            for f in glob.glob(os.path.join(glob.escape(folder), "*"))
            if f.lower().endswith(_IMAGE_SUFFIXES)
        ]
        if not files:
            raise FileNotFoundError(f"no face crops (*.jpg) in {folder}")
        return sorted(files, key=_timestamp)

    def timestamps(self, index: int) -> list[float]:
        """The frame timestamps (s) of track ``index``, from its face-crop file names."""
        return [_timestamp(f) for f in self.face_files(index)][: self._frames(self.entries[index])]

    def audio_file(self, index: int) -> str:
        """The WAV file of track ``index``."""
        entry = self.entries[index]
        base = os.path.join(self.audio_dir, entry.video_id, entry.entity_id)
        return self._existing(base + ".wav")

    @staticmethod
    def _existing(path: str) -> str:
        if os.path.exists(path):
            return path
        alternative = os.path.join(os.path.dirname(path), os.path.basename(path).replace(":", "_"))
        if os.path.exists(alternative):  # some copies replace ':' in file names
            return alternative
        raise FileNotFoundError(f"not found: {path}")

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        index = check_int(index, "index")  # NumPy and tensor integers too (e.g. from a Subset)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: expected 0 <= index < {len(self)}, got {index}")
        index %= len(self)
        entry = self.entries[index]
        frames = self._frames(entry)
        files = self.face_files(index)
        if len(files) < frames:
            raise ValueError(
                f"{os.path.dirname(files[0])}: expected at least {frames} face crops "
                f"(numFrames in {self.loader_csv}), found {len(files)}"
            )
        visual = torch.stack([_read_face(f, self.face_size) for f in files[:frames]])
        audio = read_wav(self.audio_file(index))
        samples = round(frames * SAMPLE_RATE / entry.fps)
        if audio.numel() == 0:
            raise ValueError(f"{self.audio_file(index)}: the WAV file holds no samples")
        if audio.numel() < samples:  # wrap-pad, as TalkNet's loader pads its MFCC
            audio = audio[torch.arange(samples) % audio.numel()]
        labels = torch.tensor(entry.labels[:frames], dtype=torch.long)
        return {"audio": audio[:samples], "visual": visual}, labels


def length_batches(
    lengths: Sequence[int],
    max_frames: int = 2500,
    *,
    equal_lengths: bool = True,
    max_clips: int | None = None,
) -> list[list[int]]:
    """Group tracks into batches of about ``max_frames`` frames (TalkNet's batching by length).

    Tracks are taken longest first; a batch starting at a track of ``L`` frames takes up to
    ``max(max_frames // L, 1)`` tracks. With ``equal_lengths`` (for evaluation) a batch only
    holds tracks of exactly ``L`` frames, so nothing is cut; without it (TalkNet's training
    loader) it takes the next tracks whatever their length and :func:`collate_clips` cuts them to
    the shortest.

    Args:
        lengths: frames per track (e.g. :attr:`AVAActiveSpeaker.lengths`).
        max_frames: frames per batch (TalkNet's ``--batchSize``: 2500).
        equal_lengths: only batch tracks of the same length.
        max_clips: at most this many tracks per batch.

    Returns:
        Lists of track indices, usable as a ``DataLoader``'s ``batch_sampler``.

    Example:
        >>> length_batches([3, 5, 5, 3, 3], max_frames=10)
        [[1, 2], [0, 3, 4]]
        >>> length_batches([5, 4, 3], max_frames=10), length_batches([5, 4, 3], 10, equal_lengths=False)
        ([[0], [1], [2]], [[0, 1], [2]])
    """
    budget = check_int(max_frames, "max_frames", min_value=1)
    cap = None if max_clips is None else check_int(max_clips, "max_clips", min_value=1)
    for i, n in enumerate(lengths):
        if int(n) < 1:
            raise ValueError(f"lengths[{i}]: expected >= 1 frame, got {n}")
    order = sorted(range(len(lengths)), key=lambda i: (-int(lengths[i]), i))
    batches: list[list[int]] = []
    start = 0
    while start < len(order):
        length = int(lengths[order[start]])
        size = max(budget // length, 1)
        if cap is not None:
            size = min(size, cap)
        end = min(start + size, len(order))
        if equal_lengths:
            same = start
            while same < end and int(lengths[order[same]]) == length:
                same += 1
            end = same
        batches.append(order[start:end])
        start = end
    return batches


def collate_clips(
    items: Sequence[tuple[Mapping[str, Tensor], Tensor]],
) -> tuple[dict[str, Tensor], Tensor]:
    """Stack tracks into a batch, cutting each to the shortest (frames and matching samples).

    Args:
        items: ``(inputs, labels)`` pairs from :class:`AVAActiveSpeaker` (or any clips whose
            ``visual`` is ``(T, ...)``, ``audio`` ``(S,)`` and labels ``(T,)``).

    Returns:
        ``({"audio": (B, S), "visual": (B, T, H, W)}, labels (B, T))``.

    Raises:
        ValueError: no items, or clips whose audio has different samples per video frame (tracks
            at different frame rates: no common cut keeps them all aligned).
    """
    if not items:
        raise ValueError("items: expected at least one clip, got none")
    frames = min(int(y.shape[0]) for _, y in items)
    rates = [
        x.shape[-1] / int(y.shape[0])
        for inputs, y in items
        for x in inputs.values()
        if x.ndim == 1 and y.shape[0] > 0
    ]
    if rates and max(rates) > 1.01 * min(rates):  # beyond rounding: 24, 25, 30 fps differ by 4 %+
        raise ValueError(
            "items: expected clips with the same audio samples per video frame (one frame rate "
            f"per batch), got {sorted({round(r, 1) for r in rates})} samples per frame"
        )
    out: dict[str, list[Tensor]] = {}
    for inputs, labels in items:
        total = int(labels.shape[0])
        for name, x in inputs.items():
            if x.ndim >= 2 and x.shape[0] == total:  # frame-indexed (visual)
                out.setdefault(name, []).append(x[:frames])
            else:  # sample-indexed (audio): keep the same share of the clip
                keep = math.floor(x.shape[-1] * frames / total + 0.5)
                out.setdefault(name, []).append(x[..., :keep])
    stacked = {}
    for name, parts in out.items():
        shortest = min(p.shape[-1] for p in parts) if parts[0].ndim == 1 else None
        stacked[name] = torch.stack([p[..., :shortest] if shortest else p for p in parts])
    return stacked, torch.stack([y[:frames] for _, y in items])


def predict_entities(
    model: nn.Module,
    dataset: AVAActiveSpeaker,
    *,
    score_fn: Callable[[Any], Tensor] | None = None,
    max_frames: int = 2500,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Score every frame of every track: ``{entity_id: (T,) scores}`` (P(speaking) by default).

    Tracks of equal length and frame rate are scored together (:func:`length_batches` with
    ``equal_lengths``), each as its own sequence, so the scores equal TalkNet's one-track-at-a-time
    evaluation.
    """
    from ..adapters import as_avoutput
    from ..attacks import preserve_model_state

    scorer = score_fn or (lambda out: torch.softmax(out.logits.float(), dim=-1)[..., 1])
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    by_fps: dict[float, list[int]] = {}
    for i, entry in enumerate(dataset.entries):
        by_fps.setdefault(entry.fps, []).append(i)
    lengths = dataset.lengths
    batches = [
        [group[j] for j in batch]
        for group in by_fps.values()
        for batch in length_batches([lengths[i] for i in group], max_frames)
    ]
    out: dict[str, Tensor] = {}
    iterator: Iterator[list[int]] | Any = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="scoring tracks", leave=False)
    with torch.no_grad(), preserve_model_state(model, "eval"):
        for batch in iterator:
            inputs, _ = collate_clips([dataset[i] for i in batch])
            scores = scorer(as_avoutput(model(**{k: v.to(device) for k, v in inputs.items()})))
            for i, s in zip(batch, scores.cpu()):
                out[dataset.entries[i].entity_id] = s.reshape(-1)
    return out


def write_predictions(
    path: PathLike,
    ground_truth: PathLike | AVARows,
    scores: Mapping[str, Sequence[float] | Tensor | np.ndarray],
    *,
    header: bool = True,
) -> int:
    """Write predictions in the AVA CSV format, one row per ground-truth frame.

    The ``k``-th ground-truth row of an entity (in timestamp order) gets the entity's ``k``-th
    score: TalkNet's rule (its face crops are the ground-truth rows, in order), but matched per
    entity instead of by global row position. Columns and label as the AVA evaluation expects
    (:func:`~avrobust.metrics.write_ava_predictions`).

    Args:
        path: the output CSV.
        ground_truth: the ground-truth CSV (e.g. ``csv/val_orig.csv``) or its rows.
        scores: ``{entity_id: (T,) scores}``, e.g. from :func:`predict_entities`.
        header: write the header row (TalkNet); ``False`` for an AVA server submission.

    Returns:
        The number of rows written.

    Raises:
        ValueError: an entity of the ground truth without scores, or with fewer scores than
            ground-truth rows (the message names it).
    """
    rows = (
        ground_truth if isinstance(ground_truth, AVARows) else read_ava_ground_truth(ground_truth)
    )
    by_entity: dict[str, list[int]] = {}
    for i, entity in enumerate(rows.entity_id):
        by_entity.setdefault(entity, []).append(i)
    values = np.full(len(rows), np.nan)
    missing = [e for e in by_entity if e not in scores]
    if missing:
        raise ValueError(
            f"scores: {len(missing)} entities of the ground truth have no scores (e.g. {missing[:3]})"
        )
    for entity, where in by_entity.items():
        ranked = sorted(where, key=lambda i: rows.frame_timestamp[i])
        s = _ava_csv._score_array(scores[entity], f"scores[{entity!r}]")
        if s.size < len(ranked):
            raise ValueError(
                f"scores[{entity!r}]: expected {len(ranked)} scores (one per ground-truth row), "
                f"got {s.size}"
            )
        values[ranked] = s[: len(ranked)]
    write_ava_predictions(path, rows, values, header=header)
    return len(rows)
