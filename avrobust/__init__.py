"""avrobust: adversarial attacks on, and defenses of, audio-visual PyTorch models.

The contract: models are called as ``model(**inputs)`` with ``inputs: dict[str, Tensor]`` keyed by
modality name and return :class:`AVOutput`; :func:`wrap` gives any ``nn.Module`` that contract.
"""

from . import defenses, losses, metrics, transforms
from ._types import AttackResult, AVOutput
from .adapters import WrappedModel, wrap
from .attacks import (
    APGD,
    BIM,
    FGSM,
    L2,
    MIM,
    PGD,
    Budget,
    CrossEntropyObjective,
    DLRObjective,
    Ensemble,
    Linf,
    MarginObjective,
    MultimodalAttack,
    SquareAttack,
    StepRule,
    default_ensemble,
    feature_budgets,
    preserve_model_state,
    push_pull_budgets,
    snr_eps,
)
from .defenses import (
    AdversarialBatch,
    AdversarialTraining,
    FeatureMemory,
    adversarial_batch,
    modality_mixup,
)
from .diagnostics import Diagnosis, batch_coupling, diagnose
from .evaluation import (
    CellResult,
    EvaluationReport,
    Grid,
    Measures,
    Selection,
    Store,
    WorstCase,
    evaluate,
)
from .losses import AVILoss, MinSimLoss

__version__ = "0.1.0"

__all__ = [
    "APGD",
    "BIM",
    "FGSM",
    "L2",
    "MIM",
    "PGD",
    "AVILoss",
    "AVOutput",
    "AdversarialBatch",
    "AdversarialTraining",
    "AttackResult",
    "Budget",
    "CellResult",
    "CrossEntropyObjective",
    "DLRObjective",
    "Diagnosis",
    "Ensemble",
    "EvaluationReport",
    "FeatureMemory",
    "Grid",
    "Linf",
    "MarginObjective",
    "Measures",
    "MinSimLoss",
    "MultimodalAttack",
    "Selection",
    "SquareAttack",
    "StepRule",
    "Store",
    "WorstCase",
    "WrappedModel",
    "__version__",
    "adversarial_batch",
    "batch_coupling",
    "default_ensemble",
    "defenses",
    "diagnose",
    "evaluate",
    "feature_budgets",
    "losses",
    "metrics",
    "modality_mixup",
    "preserve_model_state",
    "push_pull_budgets",
    "snr_eps",
    "transforms",
    "wrap",
]
