"""Validation of :class:`avrobust.demo.DemoConfig`: every setting checked when the config is made,
so a bad one stops the demo before any training, with a message naming the setting.

The names a setting may take come from the library's registries: the step rules of
:mod:`avrobust.attacks.rules` and the AVIL terms of :mod:`avrobust.losses.functional`.
"""

from __future__ import annotations

from typing import Any

from .._checks import (
    check_bool,
    check_choice,
    check_fraction,
    check_int,
    check_number,
    describe,
)
from ..attacks.rules import list_rules
from ..losses.functional import TERMS

__all__ = [
    "ARCHITECTURES",
    "MAX_RUNS",
    "MAX_SEED",
    "SURROGATES",
    "avil_term_names",
    "check_architecture",
    "check_demo_config",
    "rule_names",
]

#: seeds must fit the per-model seeds derived from them (``seed * 1000 + k``) in any generator
MAX_SEED = 2**32 - 1
#: training runs a model row may have at most (``DemoConfig.seeds``): each run's seed is
#: ``seed * 1000 + 100 * run + model``, which stays below the next ``seed``'s
MAX_RUNS = 9
_MODALITY_SETS = ("audio", "visual", "audio+visual")  # the demo's model is TalkNet
#: what a demo model may be: the tiny TalkNet, or it as Push-Pull §4.2's ncTalkNet (no
#: cross-attention) or specTalkNet (linear spectrogram): the names of ``TALKNET_VARIANTS``
ARCHITECTURES = ("talknet", "nc_talknet", "spec_talknet")
#: the architectures of the transfer surrogate (Push-Pull §4.2 crafts black-box attacks on these)
SURROGATES = ("nc_talknet", "spec_talknet")


def rule_names() -> tuple[str, ...]:
    """The step rules an attack accepts by name (``fgsm``, ``bim``, ``mim``, ``pgd``)."""
    return list_rules()


def avil_term_names() -> tuple[str, ...]:
    """The AVIL terms :class:`~avrobust.losses.AVILoss` accepts by name (``l1`` ... ``l4``)."""
    return tuple(TERMS)


def check_architecture(value: Any, name: str = "architecture") -> str:
    """One of :data:`ARCHITECTURES` (case-insensitive), lower-cased.

    Raises:
        TypeError: not a string. ValueError: not one of them (the message lists them).
    """
    return check_choice(value, name, ARCHITECTURES)


def _names(value: Any, name: str, what: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    """A tuple of names among ``choices`` (case-insensitive), unchanged."""
    among = ",".join(choices)
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name}: expected a tuple of {what} among {among}, got {describe(value)}")
    bad = [v for v in value if v.lower() not in choices]
    if bad:
        raise ValueError(f"{name}: expected {what} among {among}, got {bad}")
    return tuple(value)


def _eps_grid(config: Any) -> tuple[float, ...]:
    grid = config.eps_grid
    if not isinstance(grid, (tuple, list)) or not grid:
        raise ValueError(f"eps_grid: expected a non-empty tuple of eps_av values, got {grid!r}")
    values = tuple(
        check_number(e, f"eps_grid[{i}]", min_value=0.0, strict=True) for i, e in enumerate(grid)
    )
    if len(set(values)) != len(grid):
        raise ValueError(f"eps_grid: expected distinct values, got {list(grid)}")
    table = check_number(config.table_eps, "table_eps", min_value=0.0, strict=True)
    if table not in values:
        raise ValueError(
            f"table_eps: must be one of the eps grid {[f'{e:g}' for e in values]}, got {table:g}"
        )
    return values


def check_demo_config(config: Any) -> dict[str, Any]:
    """Check every field of a ``DemoConfig``; return the normalised fields to set (the tuples
    and the lower-cased ``surrogate``).

    Raises:
        TypeError: a setting of the wrong type (the message names it).
        ValueError: a setting out of range (the message names it).
    """
    for name in ("train_clips", "test_clips", "frames", "batch_size", "attack_steps"):
        check_int(getattr(config, name), name, min_value=1)
    for name in ("worst_case_steps", "worst_case_queries", "worst_case_restarts"):
        check_int(getattr(config, name), name, min_value=1)
    check_int(config.worst_curve_steps, "worst_curve_steps", min_value=0)
    check_number(config.worst_case_kappa, "worst_case_kappa", min_value=0.0)
    for name in ("train_steps", "finetune_steps", "adv_steps", "per_class", "seed"):
        check_int(getattr(config, name), name, min_value=0)
    if config.seed > MAX_SEED:
        raise ValueError(f"seed: must be an int in [0, {MAX_SEED}], got {config.seed}")
    check_int(config.seeds, "seeds", min_value=1)
    if config.seeds > MAX_RUNS:
        raise ValueError(
            f"seeds: expected at most {MAX_RUNS} training runs per model, got {config.seeds}"
        )
    check_int(config.face_size, "face_size", min_value=16)  # the synthetic data's smallest
    check_fraction(config.difficulty, "difficulty")
    check_fraction(config.adv_ratio, "adv_ratio")
    check_number(config.lr, "lr", min_value=0.0, strict=True)
    check_number(config.avil_weight, "avil_weight", min_value=0.0)
    check_number(config.adv_eps, "adv_eps", min_value=0.0, strict=True)
    check_number(config.tie_margin, "tie_margin", min_value=0.0)
    check_choice(config.adv_rule, "adv_rule", rule_names())
    check_bool(config.extras, "extras")
    terms, rules = avil_term_names(), rule_names()
    return {
        "surrogate": check_choice(config.surrogate, "surrogate", SURROGATES),
        "avil_single": _names(config.avil_single, "avil_single", "AVIL terms", terms),
        "avil_pair": _names(config.avil_pair, "avil_pair", "AVIL terms", terms),
        "rules": _names(config.rules, "rules", "rule names", rules),
        "modalities": _names(config.modalities, "modalities", "modality sets", _MODALITY_SETS),
        "eps_grid": _eps_grid(config),
    }
