"""Seeded synthetic audio-visual event data: class-specific sounds and pictures, no download.

Each of ``K`` classes has a sound and a picture:

* **sound** (waveform in [-1, 1] at ``sample_rate`` Hz): a pattern ``k % 3`` (0 pure tone,
  1 rising chirp ``f -> 1.6 f``, 2 band-limited noise ``f ± 15 %``) at a base frequency ``f_k``
  spaced geometrically between 250 Hz and ``0.3 * sample_rate``; per clip a random phase,
  amplitude ``U(0.3, 0.7)`` and frequency jitter ``±3 %``, plus white noise of std ``audio_noise``.
* **picture** (RGB in [0, 1]): a shape ``k % 4`` (0 disk, 1 square, 2 striped square, 3 checkered
  square) in a colour ``k % 6`` of a fixed palette (so classes up to 12 differ in the pair), at a
  random position and size on a dark random background, plus pixel noise of std ``visual_noise``.

Three knobs make a modality less reliable, so audio-visual fusion has something to gain and attacks
on one stream something to exploit:

* the noise levels ``audio_noise`` / ``visual_noise``;
* ``audio_missing`` / ``visual_missing``: the probability that a clip's sound (picture) carries no
  class information (noise only; an empty background). A unimodal classifier then cannot beat
  ``1 - p + p / K``, while a fused one can use the other stream: the two are drawn independently;
* ``audio_mismatch`` / ``visual_mismatch``: the probability that the sound (picture) comes from
  another, random class (as in Kinetics-Sounds, where sound and picture are not always related).

Item ``i`` is generated from its own generator seeded with ``(seed, i)``: the same dataset object
(or another one with the same arguments) always returns the same clip, in any order, across
processes; nothing is stored.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._checks import check_fraction, check_int, check_number

__all__ = ["AVEventDataset"]

_PALETTE = torch.tensor(
    [[1.0, 0.2, 0.2], [0.2, 0.9, 0.2], [0.3, 0.4, 1.0], [1.0, 0.9, 0.2], [0.9, 0.3, 0.9],
     [0.2, 0.9, 0.9]]
)  # fmt: skip


class AVEventDataset(Dataset[tuple[dict[str, Tensor], Tensor]]):
    """Synthetic audio-visual event clips generated on the fly (a ``torch.utils.data.Dataset``).

    Args:
        num_samples: number of clips ``N``; labels cycle ``0, 1, …, K-1`` (balanced classes).
        num_classes: number of classes ``K`` (2 to 12).
        audio_length: waveform length ``S`` in samples.
        sample_rate: sampling rate in Hz (sets the class frequencies; ``S / sample_rate`` seconds).
        image_size: image side ``H = W`` in pixels (at least 16).
        audio_noise: std of the additive white noise on the waveform (signal amplitude 0.3–0.7).
        visual_noise: std of the additive pixel noise (pixels in [0, 1]).
        audio_missing: probability in [0, 1] that the sound is noise only.
        visual_missing: probability in [0, 1] that the picture is an empty noisy background.
        audio_mismatch: probability in [0, 1] that the sound comes from another class.
        visual_mismatch: probability in [0, 1] that the picture comes from another class.
        seed: the dataset's seed, in ``(-2**32, 2**32)``; use different seeds for train and
            test sets.

    Returns (``dataset[i]``):
        ``(inputs, label)``: ``inputs = {"audio": (S,) float32 in [-1, 1], "visual": (3, H, W)
        float32 in [0, 1]}`` and a 0-d int64 label. The default ``DataLoader`` collation stacks them
        into ``{"audio": (B, S), "visual": (B, 3, H, W)}`` and ``(B,)``, ready for ``model(**inputs)``.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range (the message names it).

    Example:
        >>> data = AVEventDataset(10, num_classes=4, seed=1)
        >>> inputs, label = data[5]
        >>> tuple(inputs["audio"].shape), tuple(inputs["visual"].shape), int(label)
        ((2048,), (3, 32, 32), 1)
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int = 8,
        *,
        audio_length: int = 2048,
        sample_rate: int = 8000,
        image_size: int = 32,
        audio_noise: float = 0.2,
        visual_noise: float = 0.2,
        audio_missing: float = 0.0,
        visual_missing: float = 0.0,
        audio_mismatch: float = 0.0,
        visual_mismatch: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.num_samples = check_int(num_samples, "num_samples", min_value=0)
        self.num_classes = check_int(num_classes, "num_classes", min_value=2)
        if self.num_classes > 12:
            raise ValueError(f"num_classes: must be <= 12, got {num_classes}")
        self.audio_length = check_int(audio_length, "audio_length", min_value=64)
        self.sample_rate = check_int(sample_rate, "sample_rate", min_value=1000)
        self.image_size = check_int(image_size, "image_size", min_value=16)
        self.audio_noise = check_number(audio_noise, "audio_noise", min_value=0.0)
        self.visual_noise = check_number(visual_noise, "visual_noise", min_value=0.0)
        self.audio_missing = check_fraction(audio_missing, "audio_missing")
        self.visual_missing = check_fraction(visual_missing, "visual_missing")
        self.audio_mismatch = check_fraction(audio_mismatch, "audio_mismatch")
        self.visual_mismatch = check_fraction(visual_mismatch, "visual_mismatch")
        self.seed = check_int(seed, "seed")
        if not -(2**32) < self.seed < 2**32:  # item i's generator: seed * 1_000_003 + i, 63 bits
            raise ValueError(f"seed: must be in (-2**32, 2**32), got {seed}")
        top = 0.3 * self.sample_rate
        self.frequencies = 250.0 * (top / 250.0) ** torch.linspace(0, 1, self.num_classes)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        index = check_int(index, "index")  # NumPy and tensor integers too (e.g. from a Subset)
        if not -self.num_samples <= index < self.num_samples:
            raise IndexError(f"index: expected 0 <= index < {self.num_samples}, got {index}")
        index %= self.num_samples
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        label = index % self.num_classes
        a_cls = self._maybe_other(label, self.audio_mismatch, gen)
        v_cls = self._maybe_other(label, self.visual_mismatch, gen)
        audio = self.sound(a_cls, gen, _happens(self.audio_missing, gen))
        visual = self.picture(v_cls, gen, _happens(self.visual_missing, gen))
        return {"audio": audio, "visual": visual}, torch.tensor(label)

    def tensors(self) -> tuple[dict[str, Tensor], Tensor]:
        """All clips at once: ``({"audio": (N, S), "visual": (N, 3, H, W)}, labels (N,))``."""
        items = [self[i] for i in range(self.num_samples)]
        inputs = {m: torch.stack([x[m] for x, _ in items]) for m in ("audio", "visual")}
        return inputs, torch.stack([y for _, y in items])

    def _maybe_other(self, label: int, p: float, gen: torch.Generator) -> int:
        """``label``, or with probability ``p`` a uniformly drawn different class."""
        if _happens(p, gen):
            shift = int(torch.randint(1, self.num_classes, (), generator=gen))
            return (label + shift) % self.num_classes
        return label

    def sound(self, cls: int, gen: torch.Generator, missing: bool = False) -> Tensor:
        """One ``(S,)`` waveform of class ``cls`` in [-1, 1] (noise only if ``missing``)."""
        t = torch.arange(self.audio_length) / self.sample_rate
        f = float(self.frequencies[cls]) * (1 + 0.06 * (float(torch.rand((), generator=gen)) - 0.5))
        phase = 2 * math.pi * float(torch.rand((), generator=gen))
        kind = cls % 3
        if kind == 0:
            wave = torch.sin(2 * math.pi * f * t + phase)
        elif kind == 1:
            sweep = 0.6 * f / (2 * t[-1].clamp_min(1e-9))
            wave = torch.sin(2 * math.pi * (f * t + sweep * t**2) + phase)
        else:
            wave = self._band_noise(f, gen)
        amplitude = 0.0 if missing else 0.3 + 0.4 * float(torch.rand((), generator=gen))
        noise = self.audio_noise * torch.randn(self.audio_length, generator=gen)
        return (amplitude * wave + noise).clamp(-1, 1)

    def _band_noise(self, f: float, gen: torch.Generator) -> Tensor:
        """White noise band-limited to ``f ± 15 %``, scaled to a sine's RMS (1/√2)."""
        spectrum = torch.randn(self.audio_length // 2 + 1, 2, generator=gen)
        freqs = torch.fft.rfftfreq(self.audio_length, 1 / self.sample_rate)
        keep = ((freqs - f).abs() <= 0.15 * f).float()
        wave = torch.fft.irfft(torch.view_as_complex(spectrum) * keep, n=self.audio_length)
        return wave / wave.pow(2).mean().sqrt().clamp_min(1e-12) / math.sqrt(2)

    def picture(self, cls: int, gen: torch.Generator, missing: bool = False) -> Tensor:
        """One ``(3, H, W)`` image of class ``cls`` in [0, 1] (no shape if ``missing``)."""
        n = self.image_size
        u = torch.rand(4, generator=gen)
        half = n * (0.2 + 0.1 * float(u[0]))
        cy, cx = (n / 2 + (u[1:3] - 0.5) * n / 3).tolist()
        y, x = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
        dy, dx = y - cy, x - cx
        square = (dy.abs() <= half) & (dx.abs() <= half)
        shape = cls % 4
        if shape == 0:
            mask = dy**2 + dx**2 <= half**2
        elif shape == 1:
            mask = square
        elif shape == 2:
            mask = square & (
                torch.div(dy + half, max(half / 3, 1.0), rounding_mode="floor") % 2 == 0
            )
        else:
            cell = max(half / 2, 1.0)
            checker = torch.div(dy + half, cell, rounding_mode="floor") + torch.div(
                dx + half, cell, rounding_mode="floor"
            )
            mask = square & (checker % 2 == 0)
        background = 0.3 * float(u[3])
        image = torch.full((3, n, n), background)
        if not missing:
            image = torch.where(mask, _PALETTE[cls % 6].view(3, 1, 1), image)
        noise = self.visual_noise * torch.randn(3, n, n, generator=gen)
        return (image + noise).clamp(0, 1)


def _happens(p: float, gen: torch.Generator) -> bool:
    """A Bernoulli(p) draw (consumes no randomness when ``p == 0``)."""
    return p > 0 and float(torch.rand((), generator=gen)) < p
