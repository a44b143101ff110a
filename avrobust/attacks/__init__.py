"""Multimodal attacks: one loop (:class:`MultimodalAttack`), step rules and per-modality budgets."""

from .attack import MultimodalAttack, preserve_model_state
from .budgets import L2, Budget, Linf, push_pull_budgets, snr_eps
from .objectives import CrossEntropyObjective, Objective, as_objective, per_sample_ce
from .rules import BIM, FGSM, MIM, PGD, StepRule, as_rule, list_rules

__all__ = [
    "BIM",
    "FGSM",
    "L2",
    "MIM",
    "PGD",
    "Budget",
    "CrossEntropyObjective",
    "Linf",
    "MultimodalAttack",
    "Objective",
    "StepRule",
    "as_objective",
    "as_rule",
    "list_rules",
    "per_sample_ce",
    "preserve_model_state",
    "push_pull_budgets",
    "snr_eps",
]
