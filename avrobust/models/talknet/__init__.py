"""TalkNet: the model, its configuration and variants, official checkpoints, loss and scores."""

from __future__ import annotations

from functools import partial

from ..registry import register_model
from .checkpoint import (
    CheckpointMismatchError,
    LoadReport,
    avrobust_to_official,
    load_official_state_dict,
    official_to_avrobust,
    read_state_dict,
    save_official_checkpoint,
)
from .config import TALKNET_VARIANTS, TalkNetConfig
from .loss import speaking_logit, speaking_probability, talknet_loss, talknet_objective
from .model import TalkNet

__all__ = [
    "TALKNET_VARIANTS",
    "CheckpointMismatchError",
    "LoadReport",
    "TalkNet",
    "TalkNetConfig",
    "avrobust_to_official",
    "load_official_state_dict",
    "official_to_avrobust",
    "read_state_dict",
    "save_official_checkpoint",
    "speaking_logit",
    "speaking_probability",
    "talknet_loss",
    "talknet_objective",
]

for _name in TALKNET_VARIANTS:
    register_model(_name, partial(TalkNet, _name), overwrite=True)
