"""MinSim and MaxSim: the audio-visual (dis)similarity losses of Tian & Xu (CVPR 2021).

``L_Sim = f_a · f_v / max(‖f_a‖₂ ‖f_v‖₂, η)`` (slides), averaged over the batch and added to the
cross-entropy with weight 1.0 (``L = L_CE + L_Sim``). Minimising it (MinSim) pushes the audio and
visual features apart; the ablation MaxSim minimises ``-L_Sim``. With non-negative (ReLU) features
``L_Sim`` lies in ``[0, 1]``. The released code uses ``F.cosine_similarity`` instead, whose guard
clamps each norm separately; the two agree whenever neither norm is tiny.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_finite_tensor, check_number, check_tensor

__all__ = ["MaxSimLoss", "MinSimLoss", "av_similarity"]


def av_similarity(f_a: Tensor, f_v: Tensor, eta: float = 1e-8) -> Tensor:
    """Guarded cosine similarity ``f_a · f_v / max(‖f_a‖₂ ‖f_v‖₂, η)`` over the last dimension.

    Args:
        f_a: audio features ``(..., D)``, e.g. ``(B, D)`` or ``(B, T, D)``.
        f_v: visual features of the same shape.
        eta: the guard ``η > 0`` against division by ~0 for (near-)zero features.

    Returns:
        ``(...)`` similarities in [-1, 1] (``(B,)`` for ``(B, D)`` inputs); 0 where a feature is 0.

    Raises:
        TypeError: not floating-point tensors.
        ValueError: shapes differ, or ``eta <= 0``.
    """
    check_tensor(f_a, "f_a", floating=True)
    check_tensor(f_v, "f_v", floating=True)
    if f_a.shape != f_v.shape or f_a.ndim < 1:
        raise ValueError(
            f"f_a and f_v: expected the same shape (..., D), got {tuple(f_a.shape)} "
            f"and {tuple(f_v.shape)}"
        )
    eta = check_number(eta, "eta", min_value=0.0, strict=True)
    dot = (f_a * f_v).sum(-1)
    norms = torch.linalg.vector_norm(f_a, dim=-1) * torch.linalg.vector_norm(f_v, dim=-1)
    return dot / norms.clamp_min(eta)


class MinSimLoss(nn.Module):
    """MinSim: ``weight · mean(L_Sim(f_a, f_v))``, a loss to minimise added to the task loss.

    Args:
        weight: the loss weight (1.0 in the slides; the code's comments suggest 0.8 for
            Kinetics-Sounds).
        eta: the guard ``η`` of :func:`av_similarity`.
        check_finite: refuse NaN/Inf features with a ``ValueError`` naming ``f_a`` or ``f_v``
            (default). The check is one ``torch.isfinite(...).all()`` per call, read on the host:
            one device sync per step on a GPU. ``False`` skips it (a NaN feature then gives a NaN
            loss).

    Inputs:
        f_a: audio features ``(B, D)`` or ``(B, T, D)`` (e.g. ``output.embeddings["audio"]``).
        f_v: visual features, same shape.

    Output:
        A 0-d tensor: the weighted mean similarity (differentiable).

    Example:
        >>> f = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> round(float(MinSimLoss()(f, torch.tensor([[0.0, 1.0], [1.0, 1.0]]))), 4)
        0.5
    """

    sign = 1.0

    def __init__(
        self, weight: float = 1.0, eta: float = 1e-8, *, check_finite: bool = True
    ) -> None:
        super().__init__()
        self.weight = check_number(weight, "weight", min_value=0.0)
        self.eta = check_number(eta, "eta", min_value=0.0, strict=True)
        check_bool(check_finite, "check_finite")
        self.check_finite = check_finite

    def forward(self, f_a: Tensor, f_v: Tensor) -> Tensor:
        """See the class docstring."""
        similarity = av_similarity(f_a, f_v, self.eta)
        if self.check_finite and not bool(torch.isfinite(f_a).all() & torch.isfinite(f_v).all()):
            check_finite_tensor(f_a.detach(), "f_a")
            check_finite_tensor(f_v.detach(), "f_v")
        return self.sign * self.weight * similarity.mean()

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, eta={self.eta:g}, check_finite={self.check_finite}"


class MaxSimLoss(MinSimLoss):
    """MaxSim, Tian & Xu's ablation: ``-weight · mean(L_Sim(f_a, f_v))``, minimised.

    Minimising it makes the audio and visual features *more* alike. Same arguments as
    :class:`MinSimLoss`.

    Example:
        >>> f = torch.tensor([[1.0, 0.0]])
        >>> float(MaxSimLoss(weight=2.0)(f, f))
        -2.0
    """

    sign = -1.0
