"""The material of Push-Pull's XAB listening/viewing test (§4.2), written by the demo with
:func:`avrobust.export.export_pairs`."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..attacks import MultimodalAttack, push_pull_budgets
from ..export import ExportedPair, export_pairs
from ..models import TalkNet
from .config import DemoConfig

__all__ = ["export_examples"]


def export_examples(
    out: str,
    config: DemoConfig,
    trained: Mapping[str, TalkNet],
    data: tuple[dict[str, Tensor], Tensor],
    selection: Sequence[int],
) -> list[ExportedPair]:
    """Push-Pull's XAB material in ``out/xab_test``: (A) under the audio-visual PGD attack at
    ``table_eps``, two speaking and two not-speaking clips of ``selection`` (§4.2), as WAV files,
    PNG frames and (where pillow is installed) GIFs.

    Returns:
        The pairs written (none when ``selection`` is empty).
    """
    inputs, labels = data
    speaking = [i for i in selection if float(labels[i].float().mean()) > 0.5][:2]
    silent = [i for i in selection if float(labels[i].float().mean()) <= 0.5][:2]
    chosen = torch.tensor(speaking + silent, dtype=torch.long)
    if chosen.numel() == 0:
        return []
    clean = {k: v[chosen] for k, v in inputs.items()}
    attack = MultimodalAttack(
        trained["A"],
        budgets=push_pull_budgets(config.table_eps),
        rule="pgd",
        steps=config.attack_steps,
        seed=config.seed,
    )
    result = attack(clean, labels[chosen])
    return export_pairs(
        os.path.join(out, "xab_test"),
        clean,
        result.inputs,
        labels=labels[chosen],
        gif=importlib.util.find_spec("PIL") is not None,  # moving faces where pillow is there
        seed=config.seed,
    )
