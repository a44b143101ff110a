"""Audio-visual fusion modules: Sum, Concat, FiLM, Gated-Sum and Gated-Concat.

The five fusions compared by Tian & Xu (CVPR 2021, "Can audio-visual integration strengthen
robustness under multimodal attacks?"). Each module maps an audio embedding ``z_a (..., D_a)`` and a
visual embedding ``z_v (..., D_v)`` (the arguments ``z_audio``, ``z_visual``; ``f_a``, ``f_v`` on
the slides) to a fused feature ``z_av (..., out_dim)``; leading dimensions
(batch, time) are free. ``σ`` is the logistic sigmoid and ``⊙`` the elementwise product.

============  ==========================================  ==================  ===========
name          formula                                     needs               ``out_dim``
============  ==========================================  ==================  ===========
sum           z_a + z_v                                   D_a = D_v           D
concat        [z_v ; z_a]                                 –                   D_v + D_a
film          α(z_a) ⊙ z_v + β(z_a)                       –                   D_v
gated_sum     σ(z_a) ⊙ z_v + σ(z_v) ⊙ z_a                 D_a = D_v           D
gated_concat  [σ(z_a) ⊙ z_v ; σ(z_v) ⊙ z_a]               D_a = D_v           2 D
============  ==========================================  ==================  ===========

Sources: FiLM, Gated-Sum and Gated-Concat are the slides' formulas; Sum and Concat are not written
out there. Concat puts the visual feature first, as the released code's ``Classifier_Concat`` does
(the order is immaterial to a linear classifier). The released code contains only Concat, so the form
of FiLM's α and β (here one linear map each, as in Perez et al.'s FiLM) and whether a learned layer
sits inside the gates' σ (``learned_gates=True``; the slides apply σ to the raw feature) are our
choices.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_choice, check_int, describe

__all__ = [
    "FUSIONS",
    "ConcatFusion",
    "FiLMFusion",
    "Fusion",
    "GatedConcatFusion",
    "GatedSumFusion",
    "SumFusion",
    "make_fusion",
]


class Fusion(nn.Module):
    """Base class: ``forward(z_audio (..., D_a), z_visual (..., D_v)) -> z_av (..., out_dim)``.

    Args:
        dim_audio: width ``D_a`` of the audio feature.
        dim_visual: width ``D_v`` of the visual feature (defaults to ``dim_audio``).
        same_dims: whether the fusion needs ``D_a == D_v``.

    Attributes:
        dim_audio, dim_visual: the expected feature widths.
        out_dim: width of the fused feature.

    Raises:
        TypeError: a width is not an int.
        ValueError: a width is < 1, or the widths differ where the fusion needs them equal.
    """

    def __init__(self, dim_audio: int, dim_visual: int | None = None, same_dims: bool = False):
        super().__init__()
        self.dim_audio = check_int(dim_audio, "dim_audio", min_value=1)
        self.dim_visual = check_int(
            dim_audio if dim_visual is None else dim_visual, "dim_visual", min_value=1
        )
        if same_dims and self.dim_audio != self.dim_visual:
            raise ValueError(
                f"{type(self).__name__}: dim_audio and dim_visual must be equal, "
                f"got dim_audio={self.dim_audio}, dim_visual={self.dim_visual}"
            )
        self.out_dim = self.dim_visual

    def _check(self, z_audio: Tensor, z_visual: Tensor) -> None:
        """Raise ``ValueError`` when a feature's last dimension or leading shape is wrong."""
        for name, f, dim in (
            ("z_audio", z_audio, self.dim_audio),
            ("z_visual", z_visual, self.dim_visual),
        ):
            if not isinstance(f, Tensor) or f.ndim < 1 or f.shape[-1] != dim:
                raise ValueError(
                    f"{type(self).__name__}: {name} must be a tensor of shape (..., {dim}), "
                    f"got {describe(f)}"
                )
        if z_audio.shape[:-1] != z_visual.shape[:-1]:
            raise ValueError(
                f"{type(self).__name__}: z_audio and z_visual must share their leading dimensions, "
                f"got {tuple(z_audio.shape)} and {tuple(z_visual.shape)}"
            )

    def forward(self, z_audio: Tensor, z_visual: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"dim_audio={self.dim_audio}, dim_visual={self.dim_visual}, out_dim={self.out_dim}"


class SumFusion(Fusion):
    """Sum fusion ``z_av = z_a + z_v`` (needs ``D_a == D_v``; ``out_dim = D``).

    Example:
        >>> fuse = SumFusion(4)
        >>> fuse(torch.ones(2, 4), torch.ones(2, 4))[0].tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(self, dim_audio: int, dim_visual: int | None = None) -> None:
        super().__init__(dim_audio, dim_visual, same_dims=True)

    def forward(self, z_audio: Tensor, z_visual: Tensor) -> Tensor:
        """``z_a (..., D) + z_v (..., D) -> (..., D)``."""
        self._check(z_audio, z_visual)
        return z_audio + z_visual


class ConcatFusion(Fusion):
    """Concatenation ``z_av = [z_v ; z_a]`` (visual first, as the released code; ``out_dim = D_v + D_a``).

    Example:
        >>> ConcatFusion(2, 3)(torch.zeros(1, 2), torch.ones(1, 3)).tolist()
        [[1.0, 1.0, 1.0, 0.0, 0.0]]
    """

    def __init__(self, dim_audio: int, dim_visual: int | None = None) -> None:
        super().__init__(dim_audio, dim_visual)
        self.out_dim = self.dim_audio + self.dim_visual

    def forward(self, z_audio: Tensor, z_visual: Tensor) -> Tensor:
        """``z_a (..., D_a), z_v (..., D_v) -> (..., D_v + D_a)``."""
        self._check(z_audio, z_visual)
        return torch.cat([z_visual, z_audio], dim=-1)


class FiLMFusion(Fusion):
    """FiLM fusion ``z_av = α(z_a) ⊙ z_v + β(z_a)``: audio modulates vision (``out_dim = D_v``).

    ``α`` and ``β`` are linear maps ``D_a -> D_v`` (``self.alpha``, ``self.beta``). With
    ``identity_init=True`` (default) they start at ``α ≡ 1``, ``β ≡ 0`` (zero weights, bias 1 and 0),
    so training starts from the visual feature alone; set ``False`` for PyTorch's default init.
    """

    def __init__(
        self, dim_audio: int, dim_visual: int | None = None, identity_init: bool = True
    ) -> None:
        super().__init__(dim_audio, dim_visual)
        check_bool(identity_init, "identity_init")
        self.alpha = nn.Linear(self.dim_audio, self.dim_visual)
        self.beta = nn.Linear(self.dim_audio, self.dim_visual)
        if identity_init:
            for layer, bias in ((self.alpha, 1.0), (self.beta, 0.0)):
                nn.init.zeros_(layer.weight)
                nn.init.constant_(layer.bias, bias)

    def forward(self, z_audio: Tensor, z_visual: Tensor) -> Tensor:
        """``z_a (..., D_a), z_v (..., D_v) -> (..., D_v)``."""
        self._check(z_audio, z_visual)
        return self.alpha(z_audio) * z_visual + self.beta(z_audio)


class _Gated(Fusion):
    """Shared gates ``f1 = σ(g_a(z_a)) ⊙ z_v`` and ``f2 = σ(g_v(z_v)) ⊙ z_a``.

    ``g_a``, ``g_v`` are the identity (the slides' formula) unless ``learned_gates``, in which case
    they are linear maps ``D -> D``.
    """

    def __init__(
        self, dim_audio: int, dim_visual: int | None = None, learned_gates: bool = False
    ) -> None:
        super().__init__(dim_audio, dim_visual, same_dims=True)
        check_bool(learned_gates, "learned_gates")
        dim = self.dim_audio
        self.gate_audio: nn.Module = nn.Linear(dim, dim) if learned_gates else nn.Identity()
        self.gate_visual: nn.Module = nn.Linear(dim, dim) if learned_gates else nn.Identity()

    def gated(self, z_audio: Tensor, z_visual: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(f1, f2)``, each ``(..., D)``."""
        self._check(z_audio, z_visual)
        f1 = torch.sigmoid(self.gate_audio(z_audio)) * z_visual
        f2 = torch.sigmoid(self.gate_visual(z_visual)) * z_audio
        return f1, f2


class GatedSumFusion(_Gated):
    """Gated-Sum ``z_av = σ(z_a) ⊙ z_v + σ(z_v) ⊙ z_a`` (needs ``D_a == D_v``; ``out_dim = D``).

    Args:
        dim_audio: feature width ``D``.
        dim_visual: must equal ``dim_audio`` when given.
        learned_gates: put a linear map inside each σ (``σ(W z_a + b)``) instead of the slides'
            ``σ(z_a)``.
    """

    def forward(self, z_audio: Tensor, z_visual: Tensor) -> Tensor:
        """``z_a (..., D), z_v (..., D) -> (..., D)``."""
        f1, f2 = self.gated(z_audio, z_visual)
        return f1 + f2


class GatedConcatFusion(_Gated):
    """Gated-Concat ``z_av = [σ(z_a) ⊙ z_v ; σ(z_v) ⊙ z_a]`` (needs ``D_a == D_v``; ``out_dim = 2D``).

    Args:
        dim_audio: feature width ``D``.
        dim_visual: must equal ``dim_audio`` when given.
        learned_gates: as in :class:`GatedSumFusion`.
    """

    def __init__(
        self, dim_audio: int, dim_visual: int | None = None, learned_gates: bool = False
    ) -> None:
        super().__init__(dim_audio, dim_visual, learned_gates)
        self.out_dim = 2 * self.dim_audio

    def forward(self, z_audio: Tensor, z_visual: Tensor) -> Tensor:
        """``z_a (..., D), z_v (..., D) -> (..., 2D)``."""
        return torch.cat(self.gated(z_audio, z_visual), dim=-1)


FUSIONS: dict[str, type[Fusion]] = {
    "sum": SumFusion,
    "concat": ConcatFusion,
    "film": FiLMFusion,
    "gated_sum": GatedSumFusion,
    "gated_concat": GatedConcatFusion,
}
"""The fusions by name, in the slides' order."""


def make_fusion(name: str, dim_audio: int, dim_visual: int | None = None, **kwargs: bool) -> Fusion:
    """Build a fusion module by name.

    Args:
        name: one of ``"sum"``, ``"concat"``, ``"film"``, ``"gated_sum"``, ``"gated_concat"``
            (case-insensitive; ``-`` is read as ``_``).
        dim_audio: audio feature width ``D_a``.
        dim_visual: visual feature width ``D_v`` (defaults to ``D_a``).
        **kwargs: options of that fusion (``identity_init`` for FiLM, ``learned_gates`` for the
            gated ones).

    Returns:
        The module; its ``out_dim`` is the fused width.

    Raises:
        TypeError: ``name`` is not a string, or an option the fusion does not take.
        ValueError: unknown name (the message lists the names) or incompatible widths.

    Example:
        >>> make_fusion("gated_concat", 8).out_dim
        16
    """
    key = check_choice(name.replace("-", "_") if isinstance(name, str) else name, "fusion", FUSIONS)
    try:
        return FUSIONS[key](dim_audio, dim_visual, **kwargs)
    except TypeError as err:
        if "unexpected keyword" not in str(err):
            raise
        raise TypeError(f"fusion {key!r}: unknown option(s) {sorted(kwargs)}") from None
