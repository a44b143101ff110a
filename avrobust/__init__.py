"""avrobust: adversarial attacks on, and defenses of, audio-visual PyTorch models.

The contract: models are called as ``model(**inputs)`` with ``inputs: dict[str, Tensor]`` keyed by
modality name and return :class:`AVOutput`; :func:`wrap` gives any ``nn.Module`` that contract.
"""

from . import defenses, losses, metrics
from ._types import AttackResult, AVOutput
from .adapters import WrappedModel, wrap
from .attacks import (
    BIM,
    FGSM,
    L2,
    MIM,
    PGD,
    Budget,
    CrossEntropyObjective,
    Linf,
    MultimodalAttack,
    StepRule,
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
from .evaluation import CellResult, EvaluationReport, Grid, Measures, Selection, Store, evaluate
from .losses import AVILoss, MinSimLoss

__version__ = "0.1.0"

__all__ = [
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
    "EvaluationReport",
    "FeatureMemory",
    "Grid",
    "Linf",
    "Measures",
    "MinSimLoss",
    "MultimodalAttack",
    "Selection",
    "StepRule",
    "Store",
    "WrappedModel",
    "__version__",
    "adversarial_batch",
    "defenses",
    "evaluate",
    "losses",
    "metrics",
    "modality_mixup",
    "preserve_model_state",
    "push_pull_budgets",
    "snr_eps",
    "wrap",
]
