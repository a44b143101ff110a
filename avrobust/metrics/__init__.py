"""Evaluation measures: pure functions (:mod:`avrobust.metrics.functional`) and streaming twins.

* ECR, the embedding change ratio of Push-Pull §4.3 (lower = more robust embeddings);
* frame-level AP as the AVA-ActiveSpeaker evaluation computes it ("mAP"), frame accuracy, ROC-AUC;
* perceptibility of a perturbation: audio SNR, video PSNR, max-abs;
* AVA CSV reading/writing joined on ``(entity_id, frame_timestamp)``.
"""

from . import functional
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
    ava_average_precision,
    ecr,
    ecr_per_frame,
    max_abs,
    psnr,
    roc_auc,
    snr_db,
)
from .geometry import ConvexityResult, DensityResult, convexity_ratio, knn_density
from .ri import RobustnessRow, relative_improvement, robustness_table
from .streaming import ECR, ROCAUC, Accuracy, MeanAveragePrecision, StreamingMetric

__all__ = [
    "ECR",
    "ROCAUC",
    "AVARows",
    "Accuracy",
    "ConvexityResult",
    "DensityResult",
    "MeanAveragePrecision",
    "RobustnessRow",
    "StreamingMetric",
    "accuracy",
    "ava_average_precision",
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
    "snr_db",
    "write_ava_ground_truth",
    "write_ava_predictions",
]
