"""Shipped models (TalkNet and its variants), differentiable audio front-ends, and the registry."""

from __future__ import annotations

from .event import AudioEncoder, AVEventNet, UnimodalEventNet, VisualEncoder
from .features import MFCC, LinearSpectrogram, mfcc
from .fusion import (
    FUSIONS,
    ConcatFusion,
    FiLMFusion,
    Fusion,
    GatedConcatFusion,
    GatedSumFusion,
    SumFusion,
    make_fusion,
)
from .registry import create_model, list_models, register_model
from .talknet import (
    TALKNET_VARIANTS,
    CheckpointMismatchError,
    TalkNet,
    TalkNetConfig,
    speaking_logit,
    speaking_probability,
    talknet_loss,
    talknet_objective,
)

__all__ = [
    "FUSIONS",
    "MFCC",
    "TALKNET_VARIANTS",
    "AVEventNet",
    "AudioEncoder",
    "CheckpointMismatchError",
    "ConcatFusion",
    "FiLMFusion",
    "Fusion",
    "GatedConcatFusion",
    "GatedSumFusion",
    "LinearSpectrogram",
    "SumFusion",
    "TalkNet",
    "TalkNetConfig",
    "UnimodalEventNet",
    "VisualEncoder",
    "create_model",
    "list_models",
    "make_fusion",
    "mfcc",
    "register_model",
    "speaking_logit",
    "speaking_probability",
    "talknet_loss",
    "talknet_objective",
]
