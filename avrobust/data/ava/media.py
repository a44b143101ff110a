"""Reading one track's media: the WAV file as float samples, face crops as grayscale frames."""

from __future__ import annotations

import os
import wave

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .tracks import PathLike

__all__ = ["SAMPLE_RATE", "read_face", "read_wav", "timestamp"]

SAMPLE_RATE = 16000
"""AVA's audio rate in TalkNet's tree, in Hz."""


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
        reason = str(exc) or f"{type(exc).__name__}: the file is empty, cut short or no WAV"
        raise ValueError(f"{path}: not a readable PCM WAV file ({reason})") from None
    if channels != 1 or width != 2 or rate != sample_rate:
        raise ValueError(
            f"{path}: expected mono 16-bit PCM at {sample_rate} Hz, got {channels} channel(s), "
            f"{8 * width}-bit, {rate} Hz"
        )
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return torch.from_numpy(samples.copy())


def read_face(path: str, size: int) -> Tensor:
    """One face crop as a ``(size, size)`` float32 grayscale frame in [0, 255] (bilinear resize).

    Raises:
        ImportError: Pillow is not installed.
    """
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


def timestamp(path: str) -> float:
    """A face crop's timestamp in seconds, from its file name (``902.36.jpg -> 902.36``).

    Raises:
        ValueError: the name is not a number.
    """
    stem = os.path.splitext(os.path.basename(path))[0]
    try:
        return float(stem)
    except ValueError:
        raise ValueError(
            f"{path}: face crops must be named by their timestamp in seconds (e.g. 902.36.jpg)"
        ) from None
