"""TalkNet configuration and its named variants (``talknet``, ``nc_talknet``, ``spec_talknet``, ``tiny``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._checks import check_bool, check_choice, check_int, check_number, describe, replace_fields

__all__ = ["TALKNET_VARIANTS", "TalkNetConfig"]


@dataclass(frozen=True)
class TalkNetConfig:
    """Every knob of :class:`~avrobust.models.TalkNet`; the defaults are the official model.

    Only the official defaults load the official checkpoints; the other values exist for the
    Push-Pull variants (no cross-attention, spectrogram features) and for small models.

    Attributes:
        features: audio front-end: ``"mfcc"`` (python_speech_features MFCC, official) or
            ``"spectrogram"`` (log linear spectrogram, specTalkNet).
        cross_attention: use the two cross-attention layers (``False``: ncTalkNet, where the
            cross-attended embeddings are the front-end embeddings).
        face_size: side of the square grayscale face crops, in pixels (official 112).
        fps: video frame rate; the MFCC window and hop scale as ``25 / fps`` (AVA loader), so
            there are always 4 feature frames per video frame.
        sample_rate: audio sample rate in Hz (TalkNet: 16000).
        audio_scale: the waveform in [-1, 1] is multiplied by this before the MFCC (32768 gives
            the int16 scale the official features are computed on). Not used by the spectrogram.
        audio_align: how a waveform is matched to the video frames: ``"wrap"`` (AVA loader:
            features wrap-padded at the end / cut to ``4 T`` rows; the waveform must be within one
            video frame of ``T / fps`` seconds) or ``"strict"`` (the waveform must give exactly
            ``4 T`` feature frames).
        numcep: MFCC coefficients (13).
        audio_layers: SE-ResNet blocks per stage of the audio encoder (4 stages).
        audio_channels: channels per audio stage; the last is the embedding size ``D``.
        se_reduction: squeeze-excitation bottleneck ratio.
        visual_stem_channels: output channels of the 3-D convolution.
        visual_channels: channels of the 4 visual ResNet stages.
        visual_tcn_blocks: depthwise-separable temporal blocks (visualTCN).
        visual_hidden: hidden channels of visualConv1D (its output is ``D``).
        attention_heads: heads of every attention layer.
        ffn_mult: feed-forward width as a multiple of the attention width.
        dropout: dropout of the attention layers.
        pixel_mean: pixel normalisation ``(p / 255 - mean) / std``.
        pixel_std: see ``pixel_mean``.
        num_classes: classes per frame (2: not speaking, speaking).
    """

    features: str = "mfcc"
    cross_attention: bool = True
    face_size: int = 112
    fps: float = 25.0
    sample_rate: int = 16000
    audio_scale: float = 32768.0
    audio_align: str = "wrap"
    numcep: int = 13
    audio_layers: tuple[int, ...] = (3, 4, 6, 3)
    audio_channels: tuple[int, ...] = (16, 32, 64, 128)
    se_reduction: int = 8
    visual_stem_channels: int = 64
    visual_channels: tuple[int, ...] = (64, 128, 256, 512)
    visual_tcn_blocks: int = 5
    visual_hidden: int = 256
    attention_heads: int = 8
    ffn_mult: int = 4
    dropout: float = 0.1
    pixel_mean: float = 0.4161
    pixel_std: float = 0.1688
    num_classes: int = 2

    def __post_init__(self) -> None:
        check_choice(self.features, "features", ("mfcc", "spectrogram"))
        check_choice(self.audio_align, "audio_align", ("wrap", "strict"))
        check_bool(self.cross_attention, "cross_attention")
        for name in ("face_size", "sample_rate", "numcep", "se_reduction", "visual_stem_channels"):
            check_int(getattr(self, name), name, min_value=1)
        for name in ("visual_hidden", "attention_heads", "ffn_mult", "num_classes"):
            check_int(getattr(self, name), name, min_value=1)
        check_int(self.visual_tcn_blocks, "visual_tcn_blocks", min_value=0)
        for name in ("fps", "audio_scale", "pixel_std"):
            check_number(getattr(self, name), name, min_value=0, strict=True)
        check_number(self.pixel_mean, "pixel_mean")
        dropout = check_number(self.dropout, "dropout", min_value=0)
        if dropout >= 1:
            raise ValueError(f"dropout: must be in [0, 1), got {dropout:g}")
        for name in ("audio_layers", "audio_channels", "visual_channels"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)):
                raise TypeError(
                    f"{name}: expected a tuple of 4 ints (one per stage), got {describe(value)}"
                )
            if len(value) != 4:
                raise ValueError(
                    f"{name}: expected a tuple of 4 ints (one per stage), got {tuple(value)!r}"
                )
            for i, item in enumerate(value):
                check_int(item, f"{name}[{i}]", min_value=1)
            object.__setattr__(self, name, tuple(value))  # lists (e.g. from JSON) become tuples
        embed = self.audio_channels[-1]
        if embed % self.attention_heads or (2 * embed) % self.attention_heads:
            raise ValueError(
                f"attention_heads: must divide the embedding size audio_channels[-1] = {embed}, "
                f"got {self.attention_heads}"
            )

    @property
    def embed_dim(self) -> int:
        """Per-modality frame embedding size ``D`` (``audio_channels[-1]``; 128 officially)."""
        return self.audio_channels[-1]

    def replace(self, **overrides: Any) -> TalkNetConfig:
        """A copy with some fields changed.

        Raises:
            TypeError: an unknown field; the message lists the known ones.
        """
        return replace_fields(self, overrides)

    @classmethod
    def variant(cls, name: str, **overrides: Any) -> TalkNetConfig:
        """The configuration of a named variant, optionally with fields changed.

        Args:
            name: one of ``TALKNET_VARIANTS`` (``"talknet"``, ``"nc_talknet"``,
                ``"spec_talknet"``, ``"tiny"``).
            **overrides: fields to change, e.g. ``face_size=32``.

        Raises:
            ValueError: unknown variant. TypeError: unknown field.

        Example:
            >>> TalkNetConfig.variant("tiny", face_size=32).face_size
            32
        """
        key = check_choice(name, "variant", TALKNET_VARIANTS)
        return TALKNET_VARIANTS[key].replace(**overrides)


TALKNET_VARIANTS: dict[str, TalkNetConfig] = {
    # The official model (Tao et al. 2021); loads pretrain_AVA.model / pretrain_TalkSet.model.
    "talknet": TalkNetConfig(),
    # Push-Pull §4.2 "ncTalkNet": no cross-attention.
    "nc_talknet": TalkNetConfig(cross_attention=False),
    # Push-Pull §4.2 "specTalkNet": log linear spectrogram instead of the MFCC.
    "spec_talknet": TalkNetConfig(features="spectrogram"),
    # Narrow and shallow, 64x64 faces: trains on a 2-core CPU in minutes.
    "tiny": TalkNetConfig(
        face_size=64,
        audio_layers=(1, 1, 1, 1),
        audio_channels=(8, 16, 32, 64),
        visual_stem_channels=16,
        visual_channels=(16, 32, 64, 128),
        visual_tcn_blocks=2,
        visual_hidden=64,
        attention_heads=4,
    ),
}
