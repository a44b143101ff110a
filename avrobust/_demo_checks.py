"""Validation of :class:`avrobust.demo.DemoConfig`: every setting checked when the config is made,
so a bad one stops the demo before any training, with a message naming the setting."""

from __future__ import annotations

from typing import Any

from ._checks import check_bool, check_choice, check_int, check_number, describe

__all__ = ["check_demo_config"]

_AVIL_TERMS = ("l1", "l2", "l3", "l4")
_RULES = ("fgsm", "bim", "mim", "pgd")
#: seeds must fit the per-model seeds derived from them (``seed * 1000 + k``) in any generator
MAX_SEED = 2**32 - 1


def _terms(value: Any, name: str, choices: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{name}: expected a tuple of names among {choices}, got {describe(value)}")
    for item in value:
        check_choice(item, name, choices)
    return tuple(value)


def _fraction(value: Any, name: str) -> None:
    if check_number(value, name, min_value=0.0) > 1:
        raise ValueError(f"{name}: must be a number in [0, 1], got {value!r}")


def check_demo_config(config: Any) -> dict[str, Any]:
    """Check every field of a ``DemoConfig``; return the normalised tuple fields to set.

    Raises:
        TypeError: a setting of the wrong type (the message names it).
        ValueError: a setting out of range (the message names it).
    """
    for name in ("train_clips", "test_clips", "frames", "batch_size", "attack_steps"):
        check_int(getattr(config, name), name, min_value=1)
    for name in ("train_steps", "finetune_steps", "adv_steps", "per_class", "seed"):
        check_int(getattr(config, name), name, min_value=0)
    if config.seed > MAX_SEED:
        raise ValueError(f"seed: must be an int in [0, {MAX_SEED}], got {config.seed}")
    check_int(config.face_size, "face_size", min_value=16)  # the synthetic data's smallest
    _fraction(config.difficulty, "difficulty")
    _fraction(config.adv_ratio, "adv_ratio")
    check_number(config.lr, "lr", min_value=0.0, strict=True)
    check_number(config.avil_weight, "avil_weight", min_value=0.0)
    check_number(config.adv_eps, "adv_eps", min_value=0.0, strict=True)
    check_number(config.tie_margin, "tie_margin", min_value=0.0)
    check_choice(config.adv_rule, "adv_rule", _RULES)
    check_bool(config.extras, "extras")
    fields: dict[str, tuple[Any, ...]] = {
        "avil_single": _terms(config.avil_single, "avil_single", _AVIL_TERMS),
        "avil_pair": _terms(config.avil_pair, "avil_pair", _AVIL_TERMS),
        "rules": _terms(config.rules, "rules", _RULES),
        "modalities": _terms(config.modalities, "modalities", ("audio", "visual", "audio+visual")),
    }
    grid = config.eps_grid
    if not isinstance(grid, (tuple, list)) or not grid:
        raise ValueError(f"eps_grid: expected a non-empty tuple of eps_av values, got {grid!r}")
    fields["eps_grid"] = tuple(
        check_number(e, f"eps_grid[{i}]", min_value=0.0, strict=True) for i, e in enumerate(grid)
    )
    if len(set(fields["eps_grid"])) != len(grid):
        raise ValueError(f"eps_grid: expected distinct values, got {list(grid)}")
    table = check_number(config.table_eps, "table_eps", min_value=0.0, strict=True)
    if table not in fields["eps_grid"]:
        raise ValueError(f"table_eps: must be one of eps_grid {list(grid)}, got {table:g}")
    return fields
