"""Evaluation measures: pure functions (:mod:`avrobust.metrics.functional`) and streaming twins.

* ECR, the embedding change ratio of Push-Pull §4.3 (lower = more robust embeddings);
* frame-level AP as the AVA-ActiveSpeaker evaluation computes it ("mAP"), frame accuracy, ROC-AUC,
  the attack success rate;
* perceptibility of a perturbation: SNR, PSNR, the largest change (L∞);
* AVA CSV reading/writing joined on ``(entity_id, frame_timestamp)``.

One naming scheme: a functional measure and its streaming twin share one name, snake_case and
CamelCase (acronyms in capitals): ``ecr``/:class:`ECR`, ``accuracy``/:class:`Accuracy`,
``roc_auc``/:class:`ROCAUC`, ``average_precision``/:class:`AveragePrecision`,
``success_rate``/:class:`SuccessRate`, ``snr``/:class:`SNR` (dB), ``psnr``/:class:`PSNR` (dB),
``max_abs``/:class:`MaxAbs`. The old names ``ava_average_precision``, ``MeanAveragePrecision`` and
``snr_db`` still import, with a ``DeprecationWarning``, for one release.
"""

from . import functional
from ._deprecated import deprecated_attribute
from .ava_csv import (
    AVARows,
    evaluate_ava_csv,
    join_ava,
    read_ava_ground_truth,
    read_ava_predictions,
    write_ava_ground_truth,
    write_ava_predictions,
)
from .functional import (
    accuracy,
    average_precision,
    ecr,
    ecr_per_frame,
    roc_auc,
    success_rate,
)
from .geometry import ConvexityResult, DensityResult, convexity_ratio, knn_density
from .perceptibility import PSNR, SNR, MaxAbs, max_abs, psnr, snr
from .ri import RobustnessRow, relative_improvement, robustness_table
from .streaming import ECR, ROCAUC, Accuracy, AveragePrecision, StreamingMetric, SuccessRate

__all__ = [
    "ECR",
    "PSNR",
    "ROCAUC",
    "SNR",
    "AVARows",
    "Accuracy",
    "AveragePrecision",
    "ConvexityResult",
    "DensityResult",
    "MaxAbs",
    "RobustnessRow",
    "StreamingMetric",
    "SuccessRate",
    "accuracy",
    "average_precision",
    "convexity_ratio",
    "ecr",
    "ecr_per_frame",
    "evaluate_ava_csv",
    "functional",
    "join_ava",
    "knn_density",
    "max_abs",
    "psnr",
    "read_ava_ground_truth",
    "read_ava_predictions",
    "relative_improvement",
    "robustness_table",
    "roc_auc",
    "snr",
    "success_rate",
    "write_ava_ground_truth",
    "write_ava_predictions",
]


def __getattr__(name: str) -> object:
    """The old names (``ava_average_precision``, ``MeanAveragePrecision``, ``snr_db``), with a
    ``DeprecationWarning``."""
    return deprecated_attribute(
        __name__, name, ("ava_average_precision", "MeanAveragePrecision", "snr_db")
    )
