"""Audio-visual event recognition models in the style of Tian & Xu (CVPR 2021), small enough for a CPU.

Tian & Xu's network is a 1-D CNN on the raw waveform (8 conv layers, 512-d, global max over time), a
ResNet-18 on one RGB frame (512-d, global average pool) and a linear classifier on the fused
feature. :class:`AVEventNet` keeps that layout at a laptop scale: three conv blocks per stream,
ReLU features (so both features are non-negative, as in the paper, and their cosine lies in
``[0, 1]``), any of the five fusions of :mod:`avrobust.models.fusion`, an optional feature memory
(ExFMem) between the encoders and the fusion, and a linear classifier.
:class:`UnimodalEventNet` is the single-stream baseline.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from .._checks import check_choice, check_int, check_tensor, describe
from .._types import AVOutput
from .fusion import FUSIONS, make_fusion

__all__ = ["AVEventNet", "AudioEncoder", "UnimodalEventNet", "VisualEncoder"]


def _block1d(cin: int, cout: int, kernel: int, stride: int) -> list[nn.Module]:
    return [nn.Conv1d(cin, cout, kernel, stride, kernel // 2), nn.BatchNorm1d(cout), nn.ReLU()]


def _block2d(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU()]


class AudioEncoder(nn.Module):
    """1-D CNN on the raw waveform, global max over time (as Tian & Xu's ``ANet``).

    Three blocks ``Conv1d -> BatchNorm -> ReLU`` (kernels 15/9/5, strides 4/2/2) with max-pooling
    between them; the receptive field is long enough to tell tones and chirps apart at 8 kHz.

    Args:
        dim: output feature width ``D``.
        width: channels of the first block (the second has ``2 * width``).

    Inputs:
        audio: ``(B, S)`` or ``(B, 1, S)`` waveform, samples in [-1, 1], ``S >= 64``.

    Output:
        ``(B, D)`` non-negative features.
    """

    def __init__(self, dim: int = 64, width: int = 16) -> None:
        super().__init__()
        check_int(dim, "dim", min_value=1)
        check_int(width, "width", min_value=1)
        self.net = nn.Sequential(
            *_block1d(1, width, 15, 4),
            nn.MaxPool1d(2),
            *_block1d(width, 2 * width, 9, 2),
            nn.MaxPool1d(2),
            *_block1d(2 * width, dim, 5, 2),
            nn.AdaptiveMaxPool1d(1),
            nn.Flatten(),
        )

    def forward(self, audio: Tensor) -> Tensor:
        """``(B, S)`` or ``(B, 1, S)`` -> ``(B, D)``."""
        check_tensor(audio, "audio", ndims=(2, 3), floating=True)
        if audio.ndim == 3 and audio.shape[1] != 1:
            raise ValueError(f"audio: expected (B, S) or (B, 1, S), got {tuple(audio.shape)}")
        if audio.shape[-1] < 64:
            raise ValueError(f"audio: expected at least 64 samples, got {audio.shape[-1]}")
        return self.net(audio.reshape(audio.shape[0], 1, -1))


class VisualEncoder(nn.Module):
    """Small 2-D CNN on one image, global average pool (the role of ResNet-18 in Tian & Xu).

    Three blocks ``Conv2d 3x3 -> BatchNorm -> ReLU`` with strides 2, 2, 1 (cheap on a CPU).

    Args:
        dim: output feature width ``D``.
        width: channels of the first block (the second has ``2 * width``).

    Inputs:
        visual: ``(B, 3, H, W)`` RGB or ``(B, 1, H, W)`` grey image, pixels in [0, 1]
            (grey is repeated to three channels), ``H, W >= 4``.

    Output:
        ``(B, D)`` non-negative features.
    """

    def __init__(self, dim: int = 64, width: int = 16) -> None:
        super().__init__()
        check_int(dim, "dim", min_value=1)
        check_int(width, "width", min_value=1)
        self.net = nn.Sequential(
            *_block2d(3, width, 2),
            *_block2d(width, 2 * width, 2),
            *_block2d(2 * width, dim, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, visual: Tensor) -> Tensor:
        """``(B, 3, H, W)`` or ``(B, 1, H, W)`` -> ``(B, D)``."""
        check_tensor(visual, "visual", ndims=(4,), floating=True)
        if visual.shape[1] not in (1, 3) or min(visual.shape[2:]) < 4:
            raise ValueError(
                f"visual: expected (B, 3, H, W) or (B, 1, H, W) with H, W >= 4, "
                f"got {tuple(visual.shape)}"
            )
        return self.net(visual.expand(-1, 3, -1, -1) - 0.5)


class AVEventNet(nn.Module):
    """Audio-visual event classifier: two encoders, a fusion by name, a linear head.

    ``forward(audio, visual)`` computes ``z_a = AudioEncoder(audio)``, ``z_v = VisualEncoder(visual)``,
    optionally denoises them with ``memory`` (ExFMem), then ``logits = Linear(fusion(z_a, z_v))``.

    Args:
        num_classes: number of event classes ``K``.
        fusion: ``"sum"``, ``"concat"`` (default, the released code's), ``"film"``, ``"gated_sum"``
            or ``"gated_concat"``; see :mod:`avrobust.models.fusion`.
        dim: feature width ``D`` of both encoders.
        width: first-block channels of both encoders.
        memory: optional module mapping ``{"audio": (B, D), "visual": (B, D)}`` to denoised features
            of the same shapes, e.g. :class:`avrobust.defenses.memory.FeatureMemory`. It can also be
            set later as ``model.memory = ...``.
        **fusion_options: passed to :func:`avrobust.models.fusion.make_fusion`.

    Inputs:
        audio: ``(B, S)`` or ``(B, 1, S)`` waveform in [-1, 1].
        visual: ``(B, 3, H, W)`` or ``(B, 1, H, W)`` image in [0, 1].

    Output:
        :class:`avrobust.AVOutput` with ``logits (B, K)`` and ``embeddings={"audio": z_a (B, D),
        "visual": z_v (B, D)}``: the encoders' features *before* the memory (what MinSim acts on
        and what feature banks are built from).

    Example:
        >>> import torch
        >>> model = AVEventNet(num_classes=5, fusion="film", dim=8).eval()
        >>> out = model(audio=torch.zeros(2, 512), visual=torch.zeros(2, 3, 16, 16))
        >>> tuple(out.logits.shape), tuple(out.embeddings["audio"].shape)
        ((2, 5), (2, 8))
    """

    def __init__(
        self,
        num_classes: int,
        fusion: str = "concat",
        dim: int = 64,
        width: int = 16,
        memory: nn.Module | None = None,
        **fusion_options: bool,
    ) -> None:
        super().__init__()
        check_int(num_classes, "num_classes", min_value=2)
        self.fusion_name = check_choice(  # "gated-sum" as make_fusion accepts it
            fusion.replace("-", "_") if isinstance(fusion, str) else fusion, "fusion", FUSIONS
        )
        self.audio_encoder = AudioEncoder(dim, width)
        self.visual_encoder = VisualEncoder(dim, width)
        self.fusion = make_fusion(self.fusion_name, dim, dim, **fusion_options)
        self.classifier = nn.Linear(self.fusion.out_dim, num_classes)
        if memory is not None and not callable(memory):
            raise TypeError(
                "memory: expected a module mapping {'audio': (B, D), 'visual': (B, D)} to "
                f"denoised features, or None, got {describe(memory)}"
            )
        self.memory = memory

    def classify(self, z_audio: Tensor, z_visual: Tensor) -> Tensor:
        """The head alone: ``z_a (..., D), z_v (..., D) -> logits (..., K)`` (no memory)."""
        return self.classifier(self.fusion(z_audio, z_visual))

    def forward(self, audio: Tensor, visual: Tensor) -> AVOutput:
        """See the class docstring.

        Raises:
            ValueError: ``audio`` and ``visual`` have different batch sizes, or bad shapes.
            TypeError: an input that is not a floating-point tensor.
        """
        z_audio, z_visual = self.audio_encoder(audio), self.visual_encoder(visual)
        if z_audio.shape[0] != z_visual.shape[0]:
            raise ValueError(
                f"visual: expected the batch size of audio ({z_audio.shape[0]}), got "
                f"{tuple(visual.shape)}"
            )
        g_a, g_v = z_audio, z_visual
        if self.memory is not None:
            denoised = self.memory({"audio": z_audio, "visual": z_visual})
            g_a, g_v = denoised["audio"], denoised["visual"]
        return AVOutput(self.classify(g_a, g_v), embeddings={"audio": z_audio, "visual": z_visual})


class UnimodalEventNet(nn.Module):
    """Single-modality baseline: one encoder of :class:`AVEventNet` and a linear head.

    It takes both inputs as keywords, so ``model(**inputs)`` works on audio-visual batches, and
    ignores the other modality (attacking that modality cannot change its output).

    Args:
        num_classes: number of event classes ``K``.
        modality: ``"audio"`` or ``"visual"``.
        dim: feature width ``D``.
        width: first-block channels of the encoder.

    Output:
        :class:`avrobust.AVOutput` with ``logits (B, K)`` and ``embeddings={modality: (B, D)}``.

    Raises:
        ValueError: the used modality is missing from the call.
    """

    def __init__(
        self, num_classes: int, modality: str = "audio", dim: int = 64, width: int = 16
    ) -> None:
        super().__init__()
        check_int(num_classes, "num_classes", min_value=2)
        self.modality = check_choice(modality, "modality", ("audio", "visual"))
        encoder = AudioEncoder if self.modality == "audio" else VisualEncoder
        self.encoder = encoder(dim, width)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, audio: Tensor | None = None, visual: Tensor | None = None) -> AVOutput:
        """See the class docstring."""
        inputs: Mapping[str, Tensor | None] = {"audio": audio, "visual": visual}
        x = inputs[self.modality]
        if x is None:
            raise ValueError(f"{self.modality}: this {self.modality}-only model needs it, got None")
        f = self.encoder(x)
        return AVOutput(self.classifier(f), embeddings={self.modality: f})
