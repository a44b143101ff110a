"""Defenses that plug into a user's own training loop.

* :func:`adversarial_batch` / :class:`AdversarialTraining`: adversarial training without a trainer.
* The Push-Pull loss lives in :mod:`avrobust.losses` (:class:`avrobust.losses.AVILoss`).
"""

from .adversarial import AdversarialBatch, AdversarialTraining, adversarial_batch
from .memory import (
    FeatureMemory,
    SparseCodingResult,
    collect_features,
    lasso_objective,
    lipschitz_constant,
    sparse_code,
)
from .mixup import MixupBatch, modality_mixup

__all__ = [
    "AdversarialBatch",
    "AdversarialTraining",
    "FeatureMemory",
    "MixupBatch",
    "SparseCodingResult",
    "adversarial_batch",
    "collect_features",
    "lasso_objective",
    "lipschitz_constant",
    "modality_mixup",
    "sparse_code",
]
