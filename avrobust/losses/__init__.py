"""Training losses: the Push-Pull audio-visual interaction loss (AVIL).

``AVILoss`` is the module to add to a training loop; the four terms are pure functions in
:mod:`avrobust.losses.functional`.
"""

from . import functional
from .avil import AVILoss
from .functional import avil_l1, avil_l2, avil_l3, avil_l4, class_centres, cosine_similarity
from .minsim import MaxSimLoss, MinSimLoss, av_similarity

__all__ = [
    "AVILoss",
    "MaxSimLoss",
    "MinSimLoss",
    "av_similarity",
    "avil_l1",
    "avil_l2",
    "avil_l3",
    "avil_l4",
    "class_centres",
    "cosine_similarity",
    "functional",
]
