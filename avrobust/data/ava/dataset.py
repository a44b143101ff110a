"""The AVA-ActiveSpeaker ``Dataset`` over TalkNet's preprocessed tree."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..._checks import check_choice, check_int, check_number, describe
from .media import SAMPLE_RATE, read_face, read_wav, timestamp
from .tracks import AVAEntry, PathLike, read_loader_csv

__all__ = ["AVAActiveSpeaker"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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
        return sorted(files, key=timestamp)

    def timestamps(self, index: int) -> list[float]:
        """The frame timestamps (s) of track ``index``, from its face-crop file names."""
        return [timestamp(f) for f in self.face_files(index)][: self._frames(self.entries[index])]

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
        visual = torch.stack([read_face(f, self.face_size) for f in files[:frames]])
        audio = read_wav(self.audio_file(index))
        samples = round(frames * SAMPLE_RATE / entry.fps)
        if audio.numel() == 0:
            raise ValueError(f"{self.audio_file(index)}: the WAV file holds no samples")
        if audio.numel() < samples:  # wrap-pad, as TalkNet's loader pads its MFCC
            audio = audio[torch.arange(samples) % audio.numel()]
        labels = torch.tensor(entry.labels[:frames], dtype=torch.long)
        return {"audio": audio[:samples], "visual": visual}, labels
