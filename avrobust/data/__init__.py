"""Seeded synthetic data sets (no download) and the AVA-ActiveSpeaker loader."""

from .ava import (
    AVAActiveSpeaker,
    AVAEntry,
    collate_clips,
    length_batches,
    predict_entities,
    read_loader_csv,
    read_wav,
    write_predictions,
)
from .events import AVEventDataset
from .synthetic import SITUATIONS, SyntheticActiveSpeaker, SyntheticClip

__all__ = [
    "SITUATIONS",
    "AVAActiveSpeaker",
    "AVAEntry",
    "AVEventDataset",
    "SyntheticActiveSpeaker",
    "SyntheticClip",
    "collate_clips",
    "length_batches",
    "predict_entities",
    "read_loader_csv",
    "read_wav",
    "write_predictions",
]
