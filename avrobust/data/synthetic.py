"""Seeded synthetic active-speaker clips: the four situations of Push-Pull §2.1, no download.

A clip is a face track (grayscale crops, 25 fps) and the audio heard with it (16 kHz), cut into
segments; each segment is one of four situations:

====  ======================  =========================================================  =====
code  name                    audio / face                                               label
====  ======================  =========================================================  =====
0     ``speaking``            the target's voice; the mouth opens with its loudness       1
1     ``other_speaker``       someone else's voice; the face is still, or (with           0
                              probability ``desync``) the mouth moves out of sync
2     ``mouth_no_speech``     no voice (noise only); the mouth moves (chewing, grinning)  0
3     ``silence``             no voice; the face is still                                  0
====  ======================  =========================================================  =====

Only ``speaking`` is labelled speaking (as in AVA, where speech from someone else is not the
target's), so neither stream alone tells the label: the audio says *someone* speaks, the face
says the mouth moves, and the model must join them.

**Voices** are harmonic series (fundamental ``f0`` 90–250 Hz with a slow vibrato, amplitudes
``1/k``) under a syllabic loudness envelope (3–6 syllables per second, random strengths), peak
amplitude about 0.3. **Faces** are a bright ellipse on a darker background with two eyes and a
dark mouth whose height follows a per-frame opening in [0, 1] (the mean loudness envelope of
that frame's 640 samples when speaking), with a small head jitter and pixel noise.

``difficulty`` in [0, 1] turns every knob at once: the audio noise floor, the pixel noise, the
head jitter, the lighting flicker, how far the mouth moves, and ``desync`` (``0.5 · difficulty``),
the share of ``other_speaker`` segments whose mouth moves out of sync (the hardest case).

Item ``i`` is generated from its own ``torch.Generator`` seeded with ``(seed, i)``: the same
arguments always give the same clip, in any order, in any process; nothing is stored.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .._checks import check_fraction, check_int, check_number, describe

__all__ = ["SITUATIONS", "SyntheticActiveSpeaker", "SyntheticClip"]

SITUATIONS: tuple[str, ...] = ("speaking", "other_speaker", "mouth_no_speech", "silence")
"""Situation names by code (Push-Pull §2.1); only code 0 (``speaking``) is labelled 1."""

SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640


@dataclass(frozen=True)
class SyntheticClip:
    """One generated clip with its ground truth.

    Attributes:
        audio: ``(640 T,)`` float32 waveform in [-1, 1], 16 kHz.
        visual: ``(T, H, W)`` float32 grayscale face crops, pixel values 0–255, 25 fps.
        labels: ``(T,)`` int64 frame labels, 1 = the target speaks (``speaking``).
        situations: ``(T,)`` int64 situation codes (indices into :data:`SITUATIONS`).
        mouth: ``(T,)`` float32 mouth opening in [0, 1] drawn in each frame.
    """

    audio: Tensor
    visual: Tensor
    labels: Tensor
    situations: Tensor
    mouth: Tensor


def _probabilities(value: Sequence[float] | None) -> Tensor:
    if value is None:
        return torch.tensor([0.5, 1 / 6, 1 / 6, 1 / 6])
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 4:
        raise TypeError(
            "situation_weights: expected 4 non-negative weights (speaking, other_speaker, "
            f"mouth_no_speech, silence), got {describe(value)}"
        )
    weights = [
        check_number(w, f"situation_weights[{i}]", min_value=0.0) for i, w in enumerate(value)
    ]
    if sum(weights) <= 0:
        raise ValueError(f"situation_weights: expected a positive sum, got {weights}")
    return torch.tensor(weights) / sum(weights)


class SyntheticActiveSpeaker(Dataset[tuple[dict[str, Tensor], Tensor]]):
    """Synthetic active-speaker clips generated on the fly (a ``torch.utils.data.Dataset``).

    Args:
        num_clips: number of clips ``N``.
        frames: frames per clip ``T`` (25 fps, so ``T / 25`` seconds); audio has ``640 T`` samples.
        face_size: side of the square face crops in pixels (>= 16); TalkNet's ``tiny`` variant
            takes any size via ``face_size=``.
        difficulty: in [0, 1]; 0 is clean and easy, 1 noisy with many out-of-sync faces
            (see the module docstring).
        segment_frames: ``(shortest, longest)`` segment length in frames; a clip is cut into
            segments of lengths drawn uniformly in this range (the last one cut at ``T``).
        situation_weights: relative frequencies of the four situations (``speaking``,
            ``other_speaker``, ``mouth_no_speech``, ``silence``); default ``(3, 1, 1, 1) / 6``, so
            about half of the frames are speaking.
        seed: the dataset's seed in ``[0, 2**32)``; use different seeds for training and
            held-out sets.

    Returns (``dataset[i]``):
        ``(inputs, labels)`` with ``inputs = {"audio": (640 T,) float32 in [-1, 1],
        "visual": (T, H, W) float32 in [0, 255]}`` and ``labels`` ``(T,)`` int64. The default
        ``DataLoader`` collation stacks them into ``(B, 640 T)``, ``(B, T, H, W)`` and ``(B, T)``,
        ready for ``TalkNet(...)(**inputs)``. :meth:`clip` also gives the situations.

    Raises:
        TypeError, ValueError: an argument of the wrong type or out of range (the message names it).

    Example:
        >>> data = SyntheticActiveSpeaker(4, frames=10, face_size=32, seed=1)
        >>> inputs, labels = data[2]
        >>> tuple(inputs["audio"].shape), tuple(inputs["visual"].shape), tuple(labels.shape)
        ((6400,), (10, 32, 32), (10,))
        >>> _, again = data[2]
        >>> bool(torch.equal(again, labels))  # the same clip every time
        True
    """

    def __init__(
        self,
        num_clips: int,
        *,
        frames: int = 16,
        face_size: int = 32,
        difficulty: float = 0.5,
        segment_frames: tuple[int, int] = (6, 16),
        situation_weights: Sequence[float] | None = None,
        seed: int = 0,
    ) -> None:
        self.num_clips = check_int(num_clips, "num_clips", min_value=0)
        self.frames = check_int(frames, "frames", min_value=1)
        self.face_size = check_int(face_size, "face_size", min_value=16)
        self.difficulty = check_fraction(difficulty, "difficulty")
        if not isinstance(segment_frames, (tuple, list)) or len(segment_frames) != 2:
            raise TypeError(
                f"segment_frames: expected a pair (shortest, longest), got {describe(segment_frames)}"
            )
        low = check_int(segment_frames[0], "segment_frames[0]", min_value=1)
        high = check_int(segment_frames[1], "segment_frames[1]", min_value=1)
        if low > high:
            raise ValueError(f"segment_frames: expected shortest <= longest, got ({low}, {high})")
        self.segment_frames = (low, high)
        self.situation_weights = _probabilities(situation_weights)
        self.seed = check_int(seed, "seed", min_value=0)
        if self.seed >= 2**32:  # item i's generator gets seed * 1_000_003 + i: keep it in 63 bits
            raise ValueError(f"seed: must be < 2**32 (4294967296), got {seed}")
        self.desync = 0.5 * self.difficulty

    def __repr__(self) -> str:
        return (
            f"SyntheticActiveSpeaker(num_clips={self.num_clips}, frames={self.frames}, "
            f"face_size={self.face_size}, difficulty={self.difficulty:g}, seed={self.seed})"
        )

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> tuple[dict[str, Tensor], Tensor]:
        clip = self.clip(index)
        return {"audio": clip.audio, "visual": clip.visual}, clip.labels

    def tensors(self, indices: Sequence[int] | None = None) -> tuple[dict[str, Tensor], Tensor]:
        """Clips stacked into one batch: ``({"audio": (B, 640 T), "visual": (B, T, H, W)}, (B, T))``.

        Args:
            indices: which clips (default: all ``N``).

        Raises:
            MemoryError: the clips need more memory than the machine has free (checked before
                any is made): iterate the dataset instead (clips are made on access), or pass
                fewer ``indices``.
        """
        chosen = range(self.num_clips) if indices is None else indices
        self._check_memory(len(chosen))
        clips = [self.clip(int(i)) for i in chosen]
        if not clips:
            size = self.face_size
            empty = {
                "audio": torch.zeros(0, SAMPLES_PER_FRAME * self.frames),
                "visual": torch.zeros(0, self.frames, size, size),
            }
            return empty, torch.zeros(0, self.frames, dtype=torch.long)
        inputs = {
            "audio": torch.stack([c.audio for c in clips]),
            "visual": torch.stack([c.visual for c in clips]),
        }
        return inputs, torch.stack([c.labels for c in clips])

    def _check_memory(self, count: int) -> None:
        """Refuse stacking ``count`` clips when they (twice: the clips, then the batch) need more
        than the memory available (Linux, macOS; unchecked where the OS does not say)."""
        per_clip = 4 * self.frames * (SAMPLES_PER_FRAME + self.face_size**2) + 8 * self.frames
        free = _available_memory()
        if free is None:
            return
        needed = 2 * count * per_clip
        if free > 0 and needed > free:
            raise MemoryError(
                f"tensors: {count} clips need about {needed / 2**30:.1f} GiB (the clips and "
                f"their batch), but {free / 2**30:.1f} GiB are available; iterate the dataset "
                "instead (clips are made on access, e.g. pass it to avrobust.evaluate or a "
                "DataLoader), or pass fewer indices"
            )

    # ------------------------------------------------------------------ generation

    def clip(self, index: int) -> SyntheticClip:
        """Generate clip ``index`` with its situations and mouth openings.

        Raises:
            IndexError: ``index`` outside ``[-N, N)``.
        """
        index = check_int(index, "index")  # NumPy and tensor integers too (e.g. from a Subset)
        if not -self.num_clips <= index < self.num_clips:
            raise IndexError(f"index: expected 0 <= index < {self.num_clips}, got {index}")
        index %= self.num_clips
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        situations = self._situations(gen)
        frames = self.frames
        samples = SAMPLES_PER_FRAME * frames
        t = torch.arange(samples, dtype=torch.float64) / SAMPLE_RATE
        env_target = _envelope(t, gen)
        env_other = _envelope(t, gen)
        env_mouth = _envelope(t, gen)
        per_sample = situations.repeat_interleave(SAMPLES_PER_FRAME)
        speech = torch.zeros(samples, dtype=torch.float64)
        for code, env in ((0, env_target), (1, env_other)):
            f0 = 90 + 160 * _uniform(gen)
            if bool((situations == code).any()):  # a voice only where it is heard
                speech = torch.where(per_sample == code, _voice(t, f0, gen) * env, speech)
        noise_std = 0.003 + 0.03 * self.difficulty
        noise = noise_std * torch.randn(samples, generator=gen, dtype=torch.float64)
        audio = (0.3 * speech + noise).clamp(-1, 1).to(torch.float32)

        frame_env = {
            name: env.view(frames, SAMPLES_PER_FRAME).mean(dim=1)
            for name, env in (("target", env_target), ("mouth", env_mouth))
        }
        moving_other = torch.rand(frames, generator=gen) < self.desync
        # one draw per segment of other_speaker: out of sync or still
        segment_start = torch.ones(frames, dtype=torch.bool)
        segment_start[1:] = situations[1:] != situations[:-1]
        segment_id = torch.cumsum(segment_start.long(), 0) - 1
        moving_other = moving_other[segment_start][segment_id]
        mouth = torch.full((frames,), 0.05, dtype=torch.float64)
        mouth = torch.where(situations == 0, frame_env["target"], mouth)
        moves = (situations == 2) | ((situations == 1) & moving_other)
        mouth = torch.where(moves, frame_env["mouth"], mouth)
        visual = self._faces(mouth.to(torch.float32), gen)
        return SyntheticClip(
            audio=audio,
            visual=visual,
            labels=(situations == 0).long(),
            situations=situations,
            mouth=mouth.to(torch.float32),
        )

    def _situations(self, gen: torch.Generator) -> Tensor:
        out = torch.empty(self.frames, dtype=torch.long)
        low, high = self.segment_frames
        start = 0
        while start < self.frames:
            length = int(torch.randint(low, high + 1, (1,), generator=gen))
            kind = int(torch.multinomial(self.situation_weights, 1, generator=gen))
            out[start : start + length] = kind
            start += length
        return out

    def _faces(self, mouth: Tensor, gen: torch.Generator) -> Tensor:
        """Render ``(T, H, W)`` faces whose mouth height follows ``mouth`` ``(T,)`` in [0, 1]."""
        size, frames, hard = self.face_size, mouth.shape[0], self.difficulty
        coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        yy, xx = coords.view(1, -1, 1), coords.view(1, 1, -1)
        jitter = (0.005 + 0.025 * hard) * torch.randn(frames, 2, generator=gen)
        jitter = torch.cumsum(jitter, 0).clamp(-0.06, 0.06)
        cx = (0.5 + 0.04 * (2 * _uniform(gen) - 1) + jitter[:, 0]).view(-1, 1, 1)
        cy = (0.5 + 0.04 * (2 * _uniform(gen) - 1) + jitter[:, 1]).view(-1, 1, 1)
        soft = 1.2 / size  # edge width: about one pixel
        skin = 140 + 50 * _uniform(gen)
        background = 40 + 50 * _uniform(gen) + 20 * yy
        face = _inside(xx, yy, cx, cy, 0.34, 0.44, soft)
        image = background + (skin - background) * face
        for side in (-1, 1):
            eye = _inside(xx, yy, cx + side * 0.14, cy - 0.12, 0.06, 0.035, soft)
            image = image - 0.6 * skin * eye
        swing = 0.06 + 0.06 * (1 - 0.5 * hard)  # how far the mouth opens at full loudness
        height = 0.02 + swing * mouth.view(-1, 1, 1)
        lips = _inside(xx, yy, cx, cy + 0.2, 0.16, height, soft)
        image = image - 0.75 * skin * lips
        flicker = 1 + (0.01 + 0.05 * hard) * torch.randn(frames, 1, 1, generator=gen)
        image = image * flicker
        pixel_noise = 1.0 + 8.0 * hard
        image = image + pixel_noise * torch.randn(frames, size, size, generator=gen)
        return image.clamp(0, 255)


def _uniform(gen: torch.Generator) -> float:
    return float(torch.rand(1, generator=gen))


def _inside(
    xx: Tensor,
    yy: Tensor,
    cx: Tensor | float,
    cy: Tensor | float,
    rx: float,
    ry: Tensor | float,
    soft: float,
) -> Tensor:
    """Soft indicator (0..1) of an axis-aligned ellipse, with an edge about ``soft`` wide."""
    dist = torch.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    scale = soft / min(rx, float(torch.as_tensor(ry).min()))
    return torch.sigmoid((1 - dist) / scale)


def _envelope(t: Tensor, gen: torch.Generator) -> Tensor:
    """Syllabic loudness in [0, 1]: raised-cosine syllables at 3–6 Hz with random strengths."""
    rate = 3 + 3 * _uniform(gen)
    phase = 2 * math.pi * _uniform(gen)
    cycle = rate * t + phase / (2 * math.pi)
    syllable = torch.floor(cycle).long()
    strengths = 0.35 + 0.65 * torch.rand(int(syllable.max() - syllable.min()) + 1, generator=gen)
    strength = strengths.to(torch.float64)[syllable - syllable.min()]
    return strength * (0.5 - 0.5 * torch.cos(2 * math.pi * cycle)) ** 1.5


def _voice(t: Tensor, f0: float, gen: torch.Generator) -> Tensor:
    """A voiced, harmonic waveform with peak about 1: harmonics ``1/k`` below 3 kHz, vibrato."""
    vibrato = 1 + 0.04 * torch.sin(2 * math.pi * (4 + 2 * _uniform(gen)) * t)
    cycles = torch.remainder(torch.cumsum(f0 * vibrato, 0) / SAMPLE_RATE, 1.0)
    harmonics = torch.arange(1, int(3000 // (1.05 * f0)) + 1, dtype=torch.float32)
    offsets = 2 * math.pi * torch.rand(harmonics.numel(), generator=gen)
    angle = (2 * math.pi * cycles.to(torch.float32))[:, None] * harmonics + offsets
    wave = (torch.sin(angle) / harmonics).sum(dim=1).to(torch.float64)
    return wave / wave.abs().max().clamp_min(1e-8)


def _available_memory() -> int | None:
    """Bytes of memory a new allocation can get: Linux's ``MemAvailable`` (free memory plus the
    page cache the kernel can drop: "free" alone is often a small part of it), else the free
    physical pages; ``None`` where the OS does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
