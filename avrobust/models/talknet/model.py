"""TalkNet (Tao et al., ACM MM 2021), from waveform samples and face pixels to frame scores."""

from __future__ import annotations

import math
import os
import warnings
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..._checks import check_tensor, describe
from ..._types import AVOutput
from ..features import MFCC, LinearSpectrogram, wrap_to_frames
from .checkpoint import (
    LoadReport,
    _load_state,
    avrobust_to_official,
    load_official_state_dict,
    read_state_dict,
    save_official_checkpoint,
)
from .config import TalkNetConfig
from .layers import AttentionLayer, AudioEncoder, VisualConv1D, VisualFrontend, VisualTCN

__all__ = ["TalkNet"]

FEATURES_PER_FRAME = 4  # the audio encoder halves time twice: 4 feature frames per video frame


class TalkNet(nn.Module):
    """TalkNet active speaker detection, differentiable from waveform and pixels, official weights.

    The forward pass is the official one (``model/talkNetModel.py``): audio features (the MFCC of
    python_speech_features, computed here in PyTorch) -> audio encoder -> ``e_a``; faces ->
    3-D conv + ResNet-18 -> visualTCN -> visualConv1D -> ``e_v``; cross-attention
    ``z_a = crossA2V(src=e_a, tar=e_v)``, ``z_v = crossV2A(src=e_v, tar=e_a)`` (both from the
    original ``e_a, e_v``); self-attention over ``[z_a, z_v]`` (audio first); three heads. Each
    clip of a batch is its own sequence, so a batch gives what its clips give one by one (the
    official B = 1 behaviour).

    Inputs:
        - ``audio``: ``(B, S)`` (or ``(B, 1, S)``) 16 kHz mono waveform, float in [-1, 1]. It is
          multiplied by ``config.audio_scale`` (32768) before the MFCC, so the features equal the
          official ones computed on int16 samples. ``S`` should be ``T / fps`` seconds
          (``640 T`` samples at 25 fps); see ``config.audio_align``.
        - ``visual``: ``(B, T, H, W)`` (or ``(B, T, 1, H, W)``) grayscale faces with pixel values
          0-255 (float or uint8), ``H = W = config.face_size`` (112), ``config.fps`` (25) frames
          per second. Normalised inside: ``(p / 255 - 0.4161) / 0.1688``.

    Output: :class:`~avrobust.AVOutput` with

        - ``logits``: ``(B, T, 2)`` from the audio-visual head (class 1 = speaking);
        - ``heads``: ``{"audio": (B, T, 2), "visual": (B, T, 2)}``, the audio-only and visual-only
          training heads on ``z_a``, ``z_v``;
        - ``embeddings``: ``"audio"`` = ``e_a``, ``"visual"`` = ``e_v`` (front-end embeddings,
          ``(B, T, D)``, what AVIL works on); ``"audio_cross"`` = ``z_a``, ``"visual_cross"`` =
          ``z_v`` (cross-attended, ``(B, T, D)``, what ECR measures; equal to ``e_a, e_v`` without
          cross-attention). ``D = 128`` officially.

    Args:
        config: a :class:`TalkNetConfig` or the name of a variant (``"talknet"``,
            ``"nc_talknet"``, ``"spec_talknet"``, ``"tiny"``).
        **overrides: fields of the configuration to change, e.g. ``face_size=32``.

    Attributes:
        head_weights: weights of the extra heads in the training loss (``objective="training"``):
            ``{"audio": 0.4, "visual": 0.4}``.

    Example:
        >>> import torch
        >>> model = TalkNet("tiny").eval()
        >>> out = model(audio=torch.zeros(1, 3 * 640), visual=torch.zeros(1, 3, 64, 64))
        >>> out.logits.shape, out.embeddings["audio"].shape
        (torch.Size([1, 3, 2]), torch.Size([1, 3, 64]))
    """

    head_weights: ClassVar[dict[str, float]] = {"audio": 0.4, "visual": 0.4}

    def __init__(self, config: TalkNetConfig | str = "talknet", **overrides: Any) -> None:
        super().__init__()
        if isinstance(config, str):
            config = TalkNetConfig.variant(config, **overrides)
        elif isinstance(config, TalkNetConfig):
            config = config.replace(**overrides)
        else:
            raise TypeError(
                f"config: expected a TalkNetConfig or a variant name, got {describe(config)}"
            )
        self.config = config
        embed = config.embed_dim
        rate = 25.0 / config.fps  # AVA loader: window and hop scale with the frame rate
        self.audio_frontend: MFCC | LinearSpectrogram
        if config.features == "mfcc":
            self.audio_frontend = MFCC(
                sample_rate=config.sample_rate,
                winlen=0.025 * rate,
                winstep=0.010 * rate,
                numcep=config.numcep,
                input_scale=config.audio_scale,
            )
        else:
            self.audio_frontend = LinearSpectrogram(
                sample_rate=config.sample_rate, winlen=0.025 * rate, winstep=0.010 * rate
            )
        self.visualFrontend = VisualFrontend(config.visual_stem_channels, config.visual_channels)
        self.visualTCN = VisualTCN(config.visual_channels[-1], config.visual_tcn_blocks)
        self.visualConv1D = VisualConv1D(config.visual_channels[-1], config.visual_hidden, embed)
        self.audioEncoder = AudioEncoder(
            config.audio_layers, config.audio_channels, config.se_reduction
        )

        def attention(width: int) -> AttentionLayer:
            return AttentionLayer(width, config.attention_heads, config.dropout, config.ffn_mult)

        self.crossA2V: AttentionLayer | None = None
        self.crossV2A: AttentionLayer | None = None
        if config.cross_attention:
            self.crossA2V = attention(embed)
            self.crossV2A = attention(embed)
        self.selfAV = attention(2 * embed)
        self.head_av = nn.Linear(2 * embed, config.num_classes)
        self.head_a = nn.Linear(embed, config.num_classes)
        self.head_v = nn.Linear(embed, config.num_classes)

    # ------------------------------------------------------------------------------ stages

    def audio_features(self, audio: Tensor, num_frames: int) -> Tensor:
        """Waveform -> the audio encoder's input, aligned to ``4 T`` feature frames.

        Args:
            audio: ``(B, S)`` waveform in [-1, 1].
            num_frames: ``T``, the number of video frames.

        Returns:
            ``(B, 4 T, F)`` features (``F = 13`` MFCC coefficients, or spectrogram bins).

        Raises:
            ValueError: a waveform length that does not fit ``T`` frames; the message gives the
                lengths accepted.
        """
        cfg = self.config
        length = audio.shape[-1]
        wanted = FEATURES_PER_FRAME * num_frames
        have = self.audio_frontend.num_frames(length)
        per_frame = cfg.sample_rate / cfg.fps
        if cfg.audio_align == "strict":
            if have != wanted:
                low, high = self.audio_frontend.samples_for_frames(wanted)
                raise ValueError(
                    f"audio: expected {low} to {high} samples, which give {wanted} feature frames "
                    f"(4 per video frame, T={num_frames}), got {length} samples ({have} frames); "
                    f"or use audio_align='wrap' to accept about {round(per_frame * num_frames)} samples"
                )
        else:
            low = max(1, math.floor(per_frame * (num_frames - 1)))
            high = math.ceil(per_frame * (num_frames + 1))
            if not low <= length <= high:
                raise ValueError(
                    f"audio: expected about {round(per_frame * num_frames)} samples "
                    f"({num_frames} video frames at {cfg.fps:g} fps, {cfg.sample_rate} Hz; "
                    f"{low} to {high} accepted), got {length}. Are audio and video the same clip "
                    f"and the audio sampled at {cfg.sample_rate} Hz?"
                )
        # the AVA loader's numpy 'wrap' padding: repeat rows from the start, as ASDMFCC does
        return wrap_to_frames(self.audio_frontend(audio), wanted)

    def encode_audio(self, features: Tensor) -> Tensor:
        """Audio features ``(B, 4 T, F)`` -> front-end embeddings ``e_a`` ``(B, T, D)``."""
        return self.audioEncoder(features)

    def encode_visual(self, visual: Tensor) -> Tensor:
        """Faces ``(B, T, H, W)``, pixels 0-255 -> front-end embeddings ``e_v`` ``(B, T, D)``."""
        x = (visual / 255.0 - self.config.pixel_mean) / self.config.pixel_std
        x = self.visualFrontend(x).transpose(1, 2)  # (B, C, T)
        x = self.visualConv1D(self.visualTCN(x))
        return x.transpose(1, 2)

    def cross_attend(self, e_a: Tensor, e_v: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-attention: ``(z_a, z_v) = (crossA2V(e_a, e_v), crossV2A(e_v, e_a))``, ``(B, T, D)``."""
        if self.crossA2V is None or self.crossV2A is None:
            return e_a, e_v
        return self.crossA2V(src=e_a, tar=e_v), self.crossV2A(src=e_v, tar=e_a)

    def forward_features(self, features: Tensor, visual: Tensor) -> AVOutput:
        """Run the network on precomputed audio features (the official model's own input).

        Args:
            features: ``(B, 4 T, F)`` audio features, e.g. the official MFCC ``(B, 4 T, 13)``.
            visual: ``(B, T, H, W)`` grayscale faces, pixels 0-255.

        Returns:
            The same :class:`~avrobust.AVOutput` as :meth:`forward`.

        Raises:
            ValueError: ``features`` without exactly 4 frames per video frame, or bad faces.
        """
        visual = self._check_visual(visual)
        check_tensor(features, "features", ndims=(3,), floating=True)
        steps = visual.shape[1]
        if features.shape[0] != visual.shape[0] or features.shape[1] != FEATURES_PER_FRAME * steps:
            raise ValueError(
                f"features: expected shape ({visual.shape[0]}, {FEATURES_PER_FRAME * steps}, F) "
                f"(4 feature frames per video frame, T={steps}), got {tuple(features.shape)}"
            )
        return self._network(features, visual)

    def forward(self, audio: Tensor, visual: Tensor) -> AVOutput:
        """Score every video frame: is the face speaking?

        Args:
            audio: ``(B, S)`` or ``(B, 1, S)`` waveform, float in [-1, 1], ``config.sample_rate``.
            visual: ``(B, T, H, W)`` or ``(B, T, 1, H, W)`` grayscale faces, pixels 0-255.

        Returns:
            :class:`~avrobust.AVOutput` (see the class docstring).

        Raises:
            TypeError: integer audio. ValueError: wrong shapes, colour frames, a waveform length
                that does not fit ``T`` frames, different batch sizes.
        """
        visual = self._check_visual(visual)
        audio = self._check_audio(audio, visual.shape[0])
        self._warn_on_units(audio, visual)
        features = self.audio_features(audio, visual.shape[1])
        return self._network(features, visual)

    def _network(self, features: Tensor, visual: Tensor) -> AVOutput:
        dtype = self.head_av.weight.dtype
        e_a = self.encode_audio(features.to(dtype))
        e_v = self.encode_visual(visual.to(dtype))
        z_a, z_v = self.cross_attend(e_a, e_v)
        joint = torch.cat([z_a, z_v], dim=-1)  # audio first, as the official back-end
        joint = self.selfAV(src=joint, tar=joint)
        return AVOutput(
            logits=self.head_av(joint),
            heads={"audio": self.head_a(z_a), "visual": self.head_v(z_v)},
            embeddings={"audio": e_a, "visual": e_v, "audio_cross": z_a, "visual_cross": z_v},
        )

    # ------------------------------------------------------------------------------ checks

    def _check_visual(self, visual: Tensor) -> Tensor:
        check_tensor(visual, "visual", ndims=(4, 5))
        size = self.config.face_size
        shape = tuple(visual.shape)
        expected = f"(B, T, {size}, {size}) grayscale faces"
        colour = (
            f"visual: expected {expected}, got shape {shape}, which looks like colour frames; "
            "convert to grayscale first (e.g. 0.299 R + 0.587 G + 0.114 B, as cv2.COLOR_BGR2GRAY)"
        )
        if visual.ndim == 5:
            if shape[2] == 1 or shape[-1] == 1:  # (B, T, 1, H, W) or (B, T, H, W, 1)
                visual = visual.squeeze(2 if shape[2] == 1 else -1)
            elif shape[2] in (3, 4) or shape[-1] in (3, 4):
                raise ValueError(colour)
            else:
                raise ValueError(
                    f"visual: expected {expected} or (B, T, 1, {size}, {size}), got shape {shape}"
                )
        elif shape[-1] in (3, 4) and shape[-2] != size:  # e.g. one clip (T, H, W, 3)
            raise ValueError(colour)
        if visual.shape[-2:] != (size, size):
            raise ValueError(
                f"visual: expected {expected} ({size}x{size}, config.face_size), got "
                f"{visual.shape[-2]}x{visual.shape[-1]} faces (shape {shape}); resize the crops"
            )
        if visual.shape[1] < 1:
            raise ValueError(f"visual: expected at least one frame, got shape {shape}")
        if not visual.is_floating_point():
            visual = visual.float()
        return visual

    def _check_audio(self, audio: Tensor, batch: int) -> Tensor:
        if isinstance(audio, Tensor) and not audio.is_floating_point():
            raise TypeError(
                f"audio: expected a float waveform in [-1, 1] (divide int16 samples by 32768), "
                f"got dtype {audio.dtype}"
            )
        check_tensor(audio, "audio", ndims=(2, 3), floating=True)
        if audio.ndim == 3:
            if audio.shape[1] != 1:
                raise ValueError(
                    f"audio: expected mono (B, S) or (B, 1, S), got shape {tuple(audio.shape)}"
                )
            audio = audio.squeeze(1)
        if audio.shape[0] != batch:
            raise ValueError(
                f"audio: expected the batch size of visual ({batch}), got shape {tuple(audio.shape)}"
            )
        return audio

    def _warn_on_units(self, audio: Tensor, visual: Tensor) -> None:
        if audio.numel() == 0 or visual.numel() == 0:
            return
        with torch.no_grad():
            peak_audio, peak_pixel = torch.stack(
                [
                    audio.detach().abs().amax().to(torch.float32),
                    visual.detach().amax().to(torch.float32),
                ]
            ).tolist()
        if peak_audio > 1.0:
            warnings.warn(
                f"audio: samples reach {peak_audio:.4g}, outside [-1, 1]; TalkNet expects float "
                f"samples in [-1, 1] and scales them by {self.config.audio_scale:g} itself",
                stacklevel=5,  # the caller of model(...)
            )
        if 0.0 < peak_pixel <= 1.0:
            warnings.warn(
                f"visual: every pixel is within [0, 1] (max {peak_pixel:.4g}); TalkNet expects "
                "grayscale pixel values 0-255 and normalises them itself",
                stacklevel=5,  # the caller of model(...)
            )

    # ------------------------------------------------------------------------- checkpoints

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike[str],
        config: TalkNetConfig | str = "talknet",
        *,
        map_location: Any = "cpu",
        strict: bool = True,
        **overrides: Any,
    ) -> TalkNet:
        """Build a model and load an official checkpoint (``pretrain_AVA.model``, ...) or one saved by :meth:`save_checkpoint`.

        Args:
            path: the checkpoint file (a flat state dict, official layout).
            config: configuration or variant name (the official weights fit ``"talknet"``).
            map_location: where the tensors are loaded (default CPU).
            strict: raise on missing (other than ``num_batches_tracked``), unexpected or wrongly
                shaped keys.
            **overrides: configuration fields to change (non-architectural ones such as
                ``audio_align``).

        Returns:
            The model in eval mode.

        Raises:
            TypeError: ``path`` is not a str or ``os.PathLike`` (e.g. ``None``).
            FileNotFoundError: no file, or ``path`` is a directory (the message says which).
            ValueError: a NUL byte in ``path``; not a state dict; weights holding NaN or Inf,
                integer/bool/complex values for float weights or a negative ``running_var`` (the
                message names the file and the keys); keys that do not fit
                (:class:`~avrobust.models.talknet.CheckpointMismatchError` lists them).

        Example:
            >>> model = TalkNet.from_checkpoint("pretrain_AVA.model")  # doctest: +SKIP
        """
        model = cls(config, **overrides)
        state = read_state_dict(path, map_location=map_location)
        _load_state(model, state, strict=strict, source=f"checkpoint {os.fspath(path)!r}")
        return model.eval()

    def load_official_state_dict(
        self, state_dict: dict[str, Tensor], *, strict: bool = True
    ) -> LoadReport:
        """Load weights in the official layout (see :func:`~avrobust.models.talknet.load_official_state_dict`)."""
        return load_official_state_dict(self, state_dict, strict=strict)

    def official_state_dict(self) -> dict[str, Tensor]:
        """The state dict in the official layout (``model.`` / ``lossAV.FC.`` / ``lossA.FC.`` / ``lossV.FC.``)."""
        return avrobust_to_official(self.state_dict())

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Save the weights in the official layout (loadable by the official ``loadParameters``)."""
        save_official_checkpoint(self, path)

    def extra_repr(self) -> str:
        return f"features={self.config.features!r}, cross_attention={self.config.cross_attention}, face_size={self.config.face_size}"
