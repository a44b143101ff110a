"""The file writers of :mod:`avrobust.export` (re-exported there): 16-bit PCM WAV, 8-bit PNG
(written with ``zlib``) and animated GIF (pillow), each checking its values first."""

from __future__ import annotations

import os
import struct
import warnings
import wave
import zlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._checks import check_finite_tensor, check_int, check_number, describe
from .attacks.units import units_disagree

__all__ = ["write_gif", "write_png", "write_wav"]

PathLike = str | os.PathLike[str]

_AUDIO, _PIXELS = ((-1.0, 1.0), "[-1, 1]"), ((0.0, 255.0), "0-255")
_OTHER_UNITS = r"[^\n]*look like they are in other units"  # a warnings filter for the repeats


def _checked(
    data: Tensor | np.ndarray, name: str, units: tuple[tuple[float, float], str]
) -> Tensor:
    """``data`` as a float64 CPU tensor, refused when not finite, with a warning when its values
    are in other units than ``units`` (``(bounds, as written)``): clipped or black files."""
    x = torch.as_tensor(data).detach().cpu()
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name}: expected real numbers, got {describe(x)}")
    x = check_finite_tensor(x.double(), name)
    low, high = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if units_disagree(low, high, units[0]):
        warnings.warn(
            f"{name}: the values lie in [{low:.4g}, {high:.4g}] and look like they are in other "
            f"units than the file's {units[1]} (frames in [0, 1]? int16-scale audio?): they "
            "would be written clipped or nearly black; scale them (frames * 255, audio / 32768)",
            UserWarning,
            stacklevel=3,
        )
    return x


def write_wav(path: PathLike, audio: Tensor | np.ndarray, sample_rate: int = 16000) -> None:
    """Write a mono waveform in [-1, 1] as a 16-bit PCM WAV file.

    Samples are scaled by 32767, rounded and clipped to the int16 range (the perturbation of an
    ``eps_av = 5`` attack, 5e-4, is about 16 int16 steps, so it survives the rounding).

    Args:
        path: the output file.
        audio: ``(S,)`` or ``(1, S)`` float samples in [-1, 1].
        sample_rate: in Hz.

    Raises:
        ValueError: not one channel of samples, or NaN/Inf samples.
        TypeError: integer samples (PCM: divide by 32768 first).

    Warns:
        UserWarning: samples in other units than [-1, 1] (e.g. int16 scale).
    """
    if not torch.as_tensor(audio).is_floating_point():
        raise TypeError(
            f"audio: expected float samples in [-1, 1], got {describe(audio)}; integer PCM? "
            "divide it by 32768 first"
        )
    x = _checked(audio, "audio", _AUDIO)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ValueError(f"audio: expected a mono waveform (S,) or (1, S), got {describe(x)}")
    rate = check_int(sample_rate, "sample_rate", min_value=1)
    pcm = np.clip(np.rint(x.numpy() * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(os.fspath(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def write_png(path: PathLike, image: Tensor | np.ndarray, *, scale: int = 1) -> None:
    """Write an 8-bit grayscale (``(H, W)``) or RGB (``(H, W, 3)``) PNG; pixel values 0–255.

    Values are rounded and clipped to 0–255. ``scale`` repeats every pixel ``scale × scale``
    times (nearest neighbour), so small face crops can be looked at.

    Raises:
        ValueError: another shape, or NaN/Inf values.

    Warns:
        UserWarning: values in other units than 0–255 (e.g. frames in [0, 1]).
    """
    x = _checked(image, "image", _PIXELS)
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)):
        raise ValueError(f"image: expected (H, W) grayscale or (H, W, 3) RGB, got {describe(x)}")
    factor = check_int(scale, "scale", min_value=1)
    pixels = np.clip(np.rint(x.numpy()), 0, 255).astype(np.uint8)
    if factor > 1:
        pixels = pixels.repeat(factor, axis=0).repeat(factor, axis=1)
    height, width = pixels.shape[:2]
    colour = 0 if pixels.ndim == 2 else 2
    rows = pixels.reshape(height, -1)
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(height))  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
    png += _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    with open(path, "wb") as handle:
        handle.write(png)


def _pillow_image(caller: str) -> Any:
    """``PIL.Image``, or an ImportError that says how to install pillow."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            f'{caller} needs pillow: pip install "avrobust[ava]" (or pip install pillow)'
        ) from error
    return Image


def write_gif(
    path: PathLike, frames: Tensor | np.ndarray, *, fps: float = 25.0, scale: int = 1
) -> None:
    """Write grayscale frames ``(T, H, W)`` (pixel values 0–255) as a looping animated GIF.

    Values are rounded and clipped to 0–255 and written losslessly (a GIF of grayscale frames
    holds all 256 levels). ``scale`` repeats every pixel ``scale × scale`` times. GIF stores frame
    durations in hundredths of a second, so 25 fps plays exactly and other rates are rounded.

    Raises:
        ImportError: pillow is not installed (the message says how to install it).
        ValueError: another shape, NaN/Inf values, or ``fps`` not > 0.
    """
    Image = _pillow_image("write_gif")
    x = _checked(frames, "frames", _PIXELS)
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(f"frames: expected (T, H, W) grayscale frames, got {describe(x)}")
    rate = check_number(fps, "fps", min_value=0.0, strict=True)
    factor = check_int(scale, "scale", min_value=1)
    pixels = np.clip(np.rint(x.numpy()), 0, 255).astype(np.uint8)
    if factor > 1:
        pixels = pixels.repeat(factor, axis=1).repeat(factor, axis=2)
    images = [Image.fromarray(frame, mode="L") for frame in pixels]
    images[0].save(
        os.fspath(path),
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(10, round(1000 / rate / 10) * 10),  # ms, in GIF's 10 ms steps
        loop=0,
        optimize=False,
    )
