"""Shipped models (TalkNet and its variants), differentiable audio front-ends, and the registry."""

from __future__ import annotations

from .features import MFCC, LinearSpectrogram, mfcc
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
    "MFCC",
    "TALKNET_VARIANTS",
    "CheckpointMismatchError",
    "LinearSpectrogram",
    "TalkNet",
    "TalkNetConfig",
    "create_model",
    "list_models",
    "mfcc",
    "register_model",
    "speaking_logit",
    "speaking_probability",
    "talknet_loss",
    "talknet_objective",
]
