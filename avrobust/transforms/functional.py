"""The functions behind :mod:`avrobust.transforms`, differentiable in their float input.

Audio: :func:`asd_mfcc` (python_speech_features MFCC with the ASD framing), :func:`kaldi_fbank`
(:func:`torchaudio.compliance.kaldi.fbank`, batched), :func:`vggish_log_mel` and
:func:`vggish_patches` (VGGish's log-mel examples), :func:`syncnet_mfcc` (SyncNet's
``(B, 1, 13, 20)`` MFCC) and :func:`loconet_log_mel` (LoCoNet's ``(B, 1, 4 T, 64)`` log-mel). Video: :func:`to_float`,
:func:`flip_channels`, :func:`grey`, :func:`normalize`.
"""

from __future__ import annotations

from ._audio_functional import (
    ASD_FEATURES_PER_FRAME,
    KALDI_FBANK_DEFAULTS,
    asd_mfcc,
    asd_video_frames,
    kaldi_fbank,
    vggish_log_mel,
    vggish_mel_matrix,
    vggish_patches,
    wrap_to_frames,
)
from ._model_frontends import SYNCNET_FRAMES, loconet_log_mel, syncnet_mfcc
from ._video_functional import BT601_LUMA, flip_channels, grey, normalize, to_float

__all__ = [
    "ASD_FEATURES_PER_FRAME",
    "BT601_LUMA",
    "KALDI_FBANK_DEFAULTS",
    "SYNCNET_FRAMES",
    "asd_mfcc",
    "asd_video_frames",
    "flip_channels",
    "grey",
    "kaldi_fbank",
    "loconet_log_mel",
    "normalize",
    "syncnet_mfcc",
    "to_float",
    "vggish_log_mel",
    "vggish_mel_matrix",
    "vggish_patches",
    "wrap_to_frames",
]
