"""Small models for tests, examples and benchmarks: no download, CPU-fast.

``TinyAV`` is a two-stream toy with the same input layout as the shipped audio-visual models
(waveform ``(B, S)`` or ``(B, C, S)`` and frames ``(B, T, H, W)`` or ``(B, T, C, H, W)``), BatchNorm
and dropout (so tests can prove an attack leaves their state alone), an extra head per modality and
embeddings, and an optional frame-level output.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from einops import rearrange
from torch import Tensor, nn

from ._types import AVOutput

__all__ = ["TinyAV"]


class TinyAV(nn.Module):
    """A two-stream audio-visual toy model returning :class:`avrobust.AVOutput`.

    Args:
        num_classes: number of output classes ``C``.
        frames: number of video frames ``T`` expected in ``visual``.
        frame_level: return frame logits ``(B, T, C)`` instead of clip logits ``(B, C)``.
        dim: embedding width ``D``.
        dropout: dropout probability in the fusion head (active only in train mode).

    Called as ``model(audio=..., visual=...)`` with ``audio`` ``(B, S)`` or ``(B, 1, S)`` waveform
    in [-1, 1] and ``visual`` ``(B, T, H, W)`` or ``(B, T, 1, H, W)`` frames in [0, 255]; returns
    ``AVOutput`` with ``logits`` ``(B, C)`` (or ``(B, T, C)``), ``heads={"audio", "visual"}`` of the
    same shape, and frame embeddings ``{"audio": (B, T, D), "visual": (B, T, D)}``.
    """

    head_weights: ClassVar[dict[str, float]] = {"audio": 0.4, "visual": 0.4}

    def __init__(
        self,
        num_classes: int = 2,
        frames: int = 4,
        frame_level: bool = False,
        dim: int = 16,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.frames = frames
        self.frame_level = frame_level
        self.audio_net = nn.Sequential(
            nn.Conv1d(1, 8, kernel_size=9, stride=4, padding=4),
            nn.BatchNorm1d(8),
            nn.Tanh(),
            nn.AdaptiveAvgPool1d(frames),
        )
        self.audio_proj = nn.Linear(8, dim)
        self.visual_net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=3, stride=2, padding=1),
            nn.BatchNorm2d(6),
            nn.Tanh(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.visual_proj = nn.Linear(24, dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * dim, num_classes)
        self.audio_head = nn.Linear(dim, num_classes)
        self.visual_head = nn.Linear(dim, num_classes)

    def forward(self, audio: Tensor, visual: Tensor) -> AVOutput:
        if audio.ndim == 2:
            audio = audio.unsqueeze(1)
        if visual.ndim == 5:
            visual = visual.mean(dim=2)
        b, t = visual.shape[:2]
        a = self.audio_net(audio)  # (B, 8, T)
        e_a = torch.tanh(self.audio_proj(rearrange(a, "b c t -> b t c")))
        v = self.visual_net(rearrange(visual / 255.0 - 0.5, "b t h w -> (b t) 1 h w"))
        e_v = torch.tanh(self.visual_proj(rearrange(v, "(b t) c h w -> b t (c h w)", b=b, t=t)))
        joint = self.dropout(torch.cat([e_a, e_v], dim=-1))
        logits, la, lv = self.head(joint), self.audio_head(e_a), self.visual_head(e_v)
        if not self.frame_level:
            logits, la, lv = logits.mean(1), la.mean(1), lv.mean(1)
        return AVOutput(
            logits, heads={"audio": la, "visual": lv}, embeddings={"audio": e_a, "visual": e_v}
        )
