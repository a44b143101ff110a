"""Multimodal attacks: one loop (:class:`MultimodalAttack`), step rules and per-modality budgets."""

from .apgd import APGD
from .attack import MultimodalAttack, preserve_model_state
from .autoattack import TopKTargeted, default_ensemble
from .budgets import L2, Budget, Linf, push_pull_budgets, snr_eps
from .ensemble import Ensemble, EnsembleResult
from .feature_budgets import feature_budgets
from .objectives import (
    CrossEntropyObjective,
    DLRObjective,
    MarginObjective,
    Objective,
    as_objective,
    per_sample_ce,
)
from .rules import BIM, FGSM, MIM, PGD, StepContext, StepRule, as_rule, list_rules
from .square import SquareAttack
from .units import units_disagree

__all__ = [
    "APGD",
    "BIM",
    "FGSM",
    "L2",
    "MIM",
    "PGD",
    "Budget",
    "CrossEntropyObjective",
    "DLRObjective",
    "Ensemble",
    "EnsembleResult",
    "Linf",
    "MarginObjective",
    "MultimodalAttack",
    "Objective",
    "SquareAttack",
    "StepContext",
    "StepRule",
    "TopKTargeted",
    "as_objective",
    "as_rule",
    "default_ensemble",
    "feature_budgets",
    "list_rules",
    "per_sample_ce",
    "preserve_model_state",
    "push_pull_budgets",
    "snr_eps",
    "units_disagree",
]
