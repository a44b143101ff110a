"""Differentiable input transforms: the front-ends third-party models expect, as ``nn.Module``s.

Give them to :func:`avrobust.wrap` (``transforms={"audio": ASDMFCC()}``) so that attacks act on
the raw waveform and pixels while the model sees its own features. Each module is a thin wrapper
over a function of :mod:`avrobust.transforms.functional` (torchaudio's style).

Audio (waveform ``(..., S)`` in [-1, 1] -> features):

- :class:`ASDMFCC`: python_speech_features MFCC with the ASD framing (int16 scale, 4 MFCC frames
  per video frame, wrap-padding to ``4 T``), as TalkNet's AVA loader;
- :class:`KaldiFbank`: Kaldi log-mel filter banks (:func:`torchaudio.compliance.kaldi.fbank`; the
  only front-end that imports torchaudio, on first use);
- :class:`VGGishPatches`: VGGish's 0.96 s log-mel patches;
- :class:`SyncNetMFCC`: SyncNet's ``(B, 1, 13, 20)`` MFCC window;
- :class:`LoCoNetLogMel`: LoCoNet's ``(B, 1, 4 T, 64)`` log-mel (VGGish's, 4 rows per frame).

Video (``(B, T, C, H, W)`` or ``(B, C, H, W)``): :class:`ToFloat`, :class:`ChannelOrder`,
:class:`Grey`, :class:`Normalize`.
"""

from __future__ import annotations

from . import functional
from .audio import ASDMFCC, KaldiFbank, LoCoNetLogMel, SyncNetMFCC, VGGishPatches
from .video import ChannelOrder, Grey, Normalize, ToFloat

__all__ = [
    "ASDMFCC",
    "ChannelOrder",
    "Grey",
    "KaldiFbank",
    "LoCoNetLogMel",
    "Normalize",
    "SyncNetMFCC",
    "ToFloat",
    "VGGishPatches",
    "functional",
]
