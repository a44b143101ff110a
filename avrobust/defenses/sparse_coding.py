"""The sparse-coding solver of ExFMem: ``min_a ‖f − M a‖₂² + λ ‖a‖₁`` for a batch, in torch.

Banks are rows, ``bank (N, D)``: ``N`` atoms of width ``D``, so ``M a = a @ bank`` for codes
``a (B, N)``. :class:`avrobust.defenses.FeatureMemory` uses it; it is usable on its own.

Solver. Batched ISTA or FISTA (default, with O'Donoghue–Candès adaptive restart) in torch, on the
features' device, step ``1 / L`` with ``L = 2 σ_max(M)²`` (the Lipschitz constant of the smooth
part's gradient, from the spectral norm computed once per bank). It stops when every sample's
duality gap is at most ``tol · ‖f‖²`` (checked every ``check_every`` iterations; the gap bounds the
distance to the optimal objective) or after ``max_iter`` iterations. The released code runs plain ISTA with a hand-set tiny step (e.g. 6e-6),
an absolute whole-batch tolerance of 8e-4 and at most 2001 iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import check_choice, check_finite_tensor, check_int, check_number, check_tensor

__all__ = [
    "SparseCodingResult",
    "check_problem",
    "lasso_objective",
    "lipschitz_constant",
    "sparse_code",
]


@dataclass(frozen=True)
class SparseCodingResult:
    """What :func:`sparse_code` returns.

    Attributes:
        codes: ``(B, N)`` sparse codes ``a``.
        iterations: solver iterations run.
        converged: whether every sample met the tolerance before ``max_iter``.
    """

    codes: Tensor
    iterations: int
    converged: bool


def lasso_objective(features: Tensor, bank: Tensor, codes: Tensor, lam: float) -> Tensor:
    """``‖f − M a‖₂² + λ ‖a‖₁`` per sample.

    Args:
        features: ``(B, D)`` features ``f``.
        bank: ``(N, D)`` atoms (rows of ``Mᵀ``).
        codes: ``(B, N)`` codes ``a``.
        lam: ``λ >= 0``.

    Returns:
        ``(B,)`` objective values.
    """
    residual = features - codes @ bank
    return residual.pow(2).sum(-1) + lam * codes.abs().sum(-1)


def lipschitz_constant(bank: Tensor) -> Tensor:
    """``L = 2 σ_max(M)²``, the Lipschitz constant of ``∇_a ‖f − M a‖²`` for ``bank (N, D)`` (0-d)."""
    return 2 * torch.linalg.matrix_norm(bank.detach().double(), ord=2).pow(2).to(bank.dtype)


def _soft_threshold(x: Tensor, threshold: float) -> Tensor:
    return torch.sign(x) * torch.relu(x.abs() - threshold)


def _gradient_fn(features: Tensor, bank: Tensor) -> Callable[[Tensor], Tensor]:
    """``a -> ∇_a ‖f − M a‖² = 2 (M a − f) Mᵀ``, via the Gram matrix when that is cheaper."""
    n, d = bank.shape
    if n < 2 * d:
        gram, cross = bank @ bank.T, features @ bank.T
        return lambda a: 2 * (a @ gram - cross)
    return lambda a: 2 * ((a @ bank - features) @ bank.T)


def check_problem(features: Tensor, bank: Tensor, name: str = "features") -> None:
    """Check ``features (B, D)`` and ``bank (N, D)``: float, equal widths, finite.

    Raises:
        TypeError, ValueError: naming ``name`` or ``bank``.
    """
    check_tensor(features, name, ndims=(2,), floating=True)
    check_tensor(bank, "bank", ndims=(2,), floating=True)
    if features.shape[1] != bank.shape[1]:
        raise ValueError(
            f"{name}: expected width D = {bank.shape[1]} (the bank's), got {tuple(features.shape)}"
        )
    check_finite_tensor(features.detach(), name)  # NaN/Inf would make every code NaN
    check_finite_tensor(bank.detach(), "bank")


def sparse_code(
    features: Tensor,
    bank: Tensor,
    lam: float = 0.2,
    *,
    solver: str = "fista",
    max_iter: int = 500,
    tol: float = 1e-4,
    step: float | None = None,
    lipschitz: Tensor | None = None,
    check_every: int = 10,
) -> SparseCodingResult:
    """Solve ``min_a ‖f − M a‖₂² + λ ‖a‖₁`` for a batch of features at once (ISTA or FISTA).

    Runs on the features' device and dtype; differentiable (autograd records the iterations) when
    ``features`` requires grad.

    Args:
        features: ``(B, D)`` features ``f``.
        bank: ``(N, D)`` atoms.
        lam: ``λ >= 0``.
        solver: ``"fista"`` (accelerated, adaptive restart) or ``"ista"``.
        max_iter: at most this many iterations.
        tol: stop when every sample's duality gap is at most ``tol · ‖f‖₂²`` (which bounds
            ``P(a) − min P``; scikit-learn's Lasso uses the same rule on its scale).
        step: step size; default ``1 / L``. A larger step (``> 1 / L``) may diverge and is refused.
        lipschitz: precomputed ``L`` (see :func:`lipschitz_constant`), to skip the SVD.
        check_every: test convergence every this many iterations (each test syncs the device).

    Returns:
        :class:`SparseCodingResult` with ``codes (B, N)``.

    Raises:
        TypeError, ValueError: bad shapes, widths or settings, NaN/Inf features or atoms (the
            message names the argument).

    Example:
        >>> bank = torch.eye(3)
        >>> sparse_code(torch.tensor([[1.0, 0.05, -2.0]]), bank, lam=0.2).codes.round(decimals=3)
        tensor([[ 0.9000,  0.0000, -1.9000]])
    """
    check_problem(features, bank)
    lam = check_number(lam, "lam", min_value=0.0)
    solver = check_choice(solver, "solver", ("fista", "ista"))
    max_iter = check_int(max_iter, "max_iter", min_value=1)
    check_every = check_int(check_every, "check_every", min_value=1)
    tol = check_number(tol, "tol", min_value=0.0)
    safe = 1.0 / max(float(lipschitz if lipschitz is not None else lipschitz_constant(bank)), 1e-30)
    if step is not None and check_number(step, "step", min_value=0.0, strict=True) > safe * 1.0001:
        raise ValueError(
            f"step: must be <= 1/L = {safe:.4g} for the solver to converge, got {step:g}"
        )
    s = safe if step is None else float(step)
    bank = bank.to(features)
    start = features.new_zeros(features.shape[0], bank.shape[0])
    gap = _GapTest(features, bank, lam, tol)
    return _iterate(_gradient_fn(features, bank), gap, start, lam, s, solver == "fista",
                    max_iter, check_every)  # fmt: skip


def _iterate(
    grad: Callable[[Tensor], Tensor],
    gap: Callable[[Tensor], Tensor],
    a: Tensor,
    lam: float,
    s: float,
    accelerate: bool,
    max_iter: int,
    check_every: int,
) -> SparseCodingResult:
    """The (F)ISTA loop: ``a ← soft(y − s ∇(y), s λ)``, momentum on ``y`` with adaptive restart."""
    y, t = a, torch.ones_like(a[:, :1])
    for k in range(1, max_iter + 1):
        a_new = _soft_threshold(y - s * grad(y), s * lam)
        if accelerate:
            restart = ((y - a_new) * (a_new - a)).sum(-1, keepdim=True).detach() > 0
            t = torch.where(restart, torch.ones_like(t), t)
            t_new = (1 + torch.sqrt(1 + 4 * t * t)) / 2
            y = a_new + ((t - 1) / t_new) * (a_new - a)
            t = t_new
        else:
            y = a_new
        a = a_new
        if (k % check_every == 0 or k == max_iter) and bool(gap(a).all()):
            return SparseCodingResult(a, k, True)
    return SparseCodingResult(a, max_iter, False)


class _GapTest:
    """``a -> (B,) bool``: duality gap of ``‖f − M a‖² + λ‖a‖₁`` at most ``tol · ‖f‖²``.

    Dual point ``θ = r · min(1, λ / (2 ‖Mᵀ r‖∞))`` with ``r = f − M a``; the gap of our objective is
    twice that of ``½‖f − M a‖² + (λ/2)‖a‖₁``: ``P(a) − ‖f‖² + ‖f − θ‖²``. It bounds
    ``P(a) − min P`` from above (the stopping rule of scikit-learn's coordinate descent).
    """

    def __init__(self, features: Tensor, bank: Tensor, lam: float, tol: float) -> None:
        self.features, self.bank, self.lam = features.detach(), bank.detach(), lam
        self.limit = tol * self.features.pow(2).sum(-1)

    def __call__(self, a: Tensor) -> Tensor:
        a = a.detach()
        r = self.features - a @ self.bank
        dual_norm = (r @ self.bank.T).abs().amax(-1, keepdim=True)
        theta = r * torch.clamp(self.lam / (2 * dual_norm.clamp_min(1e-30)), max=1.0)
        primal = r.pow(2).sum(-1) + self.lam * a.abs().sum(-1)
        dual = self.features.pow(2).sum(-1) - (self.features - theta).pow(2).sum(-1)
        return primal - dual <= self.limit
