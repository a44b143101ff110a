"""MinSim and MaxSim: the audio-visual (dis)similarity losses of Tian & Xu (CVPR 2021).

``L_Sim = z_a · z_v / max(‖z_a‖₂ ‖z_v‖₂, η)`` (slides: ``f_a``, ``f_v``; ``η`` is the numerical
guard, argument ``guard``), averaged over the batch and added to the cross-entropy with weight 1.0
(``L = L_CE + L_Sim``). Minimising it (MinSim) pushes the audio and
visual features apart; the ablation MaxSim minimises ``-L_Sim``. With non-negative (ReLU) features
``L_Sim`` lies in ``[0, 1]``. The released code uses ``F.cosine_similarity`` instead, whose guard
clamps each norm separately; the two agree whenever neither norm is tiny.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_finite_tensor, check_number, check_tensor

__all__ = ["MaxSimLoss", "MinSimLoss", "av_similarity"]


def av_similarity(z_audio: Tensor, z_visual: Tensor, guard: float = 1e-8) -> Tensor:
    """Guarded cosine similarity ``z_a · z_v / max(‖z_a‖₂ ‖z_v‖₂, η)`` over the last dimension.

    Args:
        z_audio: audio embeddings ``(..., D)``, e.g. ``(B, D)`` or ``(B, T, D)``.
        z_visual: visual embeddings of the same shape.
        guard: the guard ``η > 0`` (slides) against division by ~0 for (near-)zero embeddings.

    Returns:
        ``(...)`` similarities in [-1, 1] (``(B,)`` for ``(B, D)`` inputs); 0 where a feature is 0.

    Raises:
        TypeError: not floating-point tensors.
        ValueError: shapes differ, or ``guard <= 0``.
    """
    check_tensor(z_audio, "z_audio", floating=True)
    check_tensor(z_visual, "z_visual", floating=True)
    if z_audio.shape != z_visual.shape or z_audio.ndim < 1:
        raise ValueError(
            f"z_audio and z_visual: expected the same shape (..., D), got "
            f"{tuple(z_audio.shape)} and {tuple(z_visual.shape)}"
        )
    guard = check_number(guard, "guard", min_value=0.0, strict=True)
    dot = (z_audio * z_visual).sum(-1)
    norms = torch.linalg.vector_norm(z_audio, dim=-1) * torch.linalg.vector_norm(z_visual, dim=-1)
    return dot / norms.clamp_min(guard)


class MinSimLoss(nn.Module):
    """MinSim: ``weight · mean(L_Sim(z_audio, z_visual))``, a loss to minimise added to the task loss.

    Args:
        weight: the loss weight (1.0 in the slides; the code's comments suggest 0.8 for
            Kinetics-Sounds).
        guard: the guard ``η`` of :func:`av_similarity`.
        check_finite: refuse NaN/Inf embeddings with a ``ValueError`` naming ``z_audio`` or
            ``z_visual``
            (default). The check is one ``torch.isfinite(...).all()`` per call, read on the host:
            one device sync per step on a GPU. ``False`` skips it (a NaN feature then gives a NaN
            loss).

    Inputs:
        z_audio: audio embeddings ``(B, D)`` or ``(B, T, D)`` (e.g. ``output.embeddings["audio"]``).
        z_visual: visual embeddings, same shape.

    Output:
        A 0-d tensor: the weighted mean similarity (differentiable).

    Example:
        >>> f = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
        >>> round(float(MinSimLoss()(f, torch.tensor([[0.0, 1.0], [1.0, 1.0]]))), 4)
        0.5
    """

    sign = 1.0

    def __init__(
        self, weight: float = 1.0, guard: float = 1e-8, *, check_finite: bool = True
    ) -> None:
        super().__init__()
        self.weight = check_number(weight, "weight", min_value=0.0)
        self.guard = check_number(guard, "guard", min_value=0.0, strict=True)
        check_bool(check_finite, "check_finite")
        self.check_finite = check_finite

    def forward(self, z_audio: Tensor, z_visual: Tensor) -> Tensor:
        """See the class docstring."""
        similarity = av_similarity(z_audio, z_visual, self.guard)
        if self.check_finite and not bool(
            torch.isfinite(z_audio).all() & torch.isfinite(z_visual).all()
        ):
            check_finite_tensor(z_audio.detach(), "z_audio")
            check_finite_tensor(z_visual.detach(), "z_visual")
        return self.sign * self.weight * similarity.mean()

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, guard={self.guard:g}, check_finite={self.check_finite}"


class MaxSimLoss(MinSimLoss):
    """MaxSim, Tian & Xu's ablation: ``-weight · mean(L_Sim(z_audio, z_visual))``, minimised.

    Minimising it makes the audio and visual embeddings *more* alike. Same arguments as
    :class:`MinSimLoss`.

    Example:
        >>> f = torch.tensor([[1.0, 0.0]])
        >>> float(MaxSimLoss(weight=2.0)(f, f))
        -2.0
    """

    sign = -1.0
