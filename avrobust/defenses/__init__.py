"""Defenses that plug into a user's own training loop.

* :func:`adversarial_batch` / :class:`AdversarialTraining`: adversarial training without a trainer.
* The Push-Pull loss lives in :mod:`avrobust.losses` (:class:`avrobust.losses.AVILoss`).
"""

from .adversarial import AdversarialBatch, AdversarialTraining, adversarial_batch

__all__ = ["AdversarialBatch", "AdversarialTraining", "adversarial_batch"]
