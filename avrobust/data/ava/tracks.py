"""TalkNet's loader CSV: one face track per line (:class:`AVAEntry`, :func:`read_loader_csv`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ...metrics import ava_csv as _ava_csv

__all__ = ["AVAEntry", "PathLike", "read_loader_csv"]

PathLike = str | os.PathLike[str]


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
            a non-finite fps, a track listed twice, a file that is not UTF-8 (a leading BOM is
            dropped).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"loader CSV not found: {path}")
    entries = []
    seen: dict[str, int] = {}
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
        if fields[0] in seen:  # its frames would count twice in the mAP
            raise ValueError(
                f"{path}: the track {fields[0]!r} is listed twice (lines {seen[fields[0]]} and "
                f"{number}); each entity id must appear once: remove the repeated line"
            )
        seen[fields[0]] = number
        entries.append(AVAEntry(fields[0], frames, fps, labels[:frames], index))
    return entries
