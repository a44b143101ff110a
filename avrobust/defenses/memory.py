"""ExFMem: feature denoising by sparse coding over memory banks of clean features (Tian & Xu, CVPR 2021).

For each modality, a bank ``M`` holds clean training features as atoms. A (possibly adversarial)
feature ``f`` is coded as

    a* = argmin_a ‖f − M a‖₂² + λ ‖a‖₁                                    (the slides' objective)

and replaced by ``f' = blend · M a* + (1 − blend) · f`` (the released code: ``blend = 0.5``).

Conventions. Banks are stored as rows, ``bank (N, D)``: ``N`` atoms of width ``D``, so
``M a = a @ bank`` for a batch of codes ``a (B, N)``. The released code minimises
``½‖f − M a‖² + λ_code ‖a‖₁`` with ``λ_code = 0.1``; that is our objective with
``λ = 2 λ_code = 0.2``, our default. ``λ`` is absolute, so it depends on the features' scale.

Solver. Batched ISTA or FISTA (default, with O'Donoghue–Candès adaptive restart) in torch, on the
features' device, step ``1 / L`` with ``L = 2 σ_max(M)²`` (the Lipschitz constant of the smooth
part's gradient, from the spectral norm computed once per bank). It stops when every sample's
duality gap is at most ``tol · ‖f‖²`` (checked every ``check_every`` iterations; the gap bounds the
distance to the optimal objective) or after ``max_iter`` iterations. The released code runs plain ISTA with a hand-set tiny step (e.g. 6e-6),
an absolute whole-batch tolerance of 8e-4 and at most 2001 iterations.

Gradients and attackers (``gradient=``):

* ``"unrolled"`` (default, as the released code): autograd records every solver iteration, so a
  white-box attacker (and training) gets the exact gradient of the function the model computes.
  Memory grows with ``iterations × B × N``; the soft-threshold passes gradient only through the
  atoms active at each step, so the gradient can be small or noisy. A weak attack on this mode is not
  proof of robustness.
* ``"bpda"``: the forward is identical, but the backward treats the whole memory step as the
  identity (``∂f'/∂f = I``), the Backward Pass Differentiable Approximation of Athalye et al. (2018)
  for non-differentiable pre-processing. Use it to evaluate the defense against an adaptive attacker
  that does not rely on the solver's gradients.
* ``"detached"``: the reconstruction carries no gradient, only the ``(1 − blend) f`` path does. This
  masks gradients (the attacker sees a scaled-down, wrong gradient); robustness measured with it
  overstates the defense. Offered to show that effect, not to report numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._checks import (
    check_choice,
    check_finite_tensor,
    check_int,
    check_number,
    check_tensor,
    describe,
)

__all__ = [
    "FeatureMemory",
    "SparseCodingResult",
    "collect_features",
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


def _check_problem(features: Tensor, bank: Tensor, name: str = "features") -> None:
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
    _check_problem(features, bank)
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


class FeatureMemory(nn.Module):
    """ExFMem as a module: per-modality banks of clean features and a sparse-coding projection.

    ``memory({"audio": f_a, "visual": f_v})`` returns the features with each one that has a bank
    replaced by ``blend · M a* + (1 − blend) · f`` (see the module docstring for the objective, the
    solver and the ``gradient`` modes); modalities without a bank pass through unchanged. Put it
    between a model's encoders and its fusion (as :class:`avrobust.models.event.AVEventNet`'s
    ``memory``), at training and test time alike. Banks are buffers: they follow ``.to(device)`` and
    are saved in ``state_dict`` (to load one, first create the banks with :meth:`set_bank`). NaN/Inf
    in a bank or in a banked modality's features is refused (``ValueError`` naming it).

    Args:
        banks: ``{modality: (N, D) clean features}``; more can be added with :meth:`set_bank`.
        lam: ``λ`` of ``‖f − M a‖² + λ‖a‖₁`` (0.2 = the released code's 0.1 with its ½).
        blend: weight of the reconstruction, in [0, 1] (released code: 0.5).
        size: keep at most the first ``size`` features of each bank (released code: 1024).
        solver: ``"fista"`` or ``"ista"``.
        max_iter: solver iterations at most.
        tol: duality-gap tolerance per sample, relative to ``‖f‖²`` (see :func:`sparse_code`).
        gradient: ``"unrolled"``, ``"bpda"`` or ``"detached"``.

    Attributes:
        last_iterations: ``{modality: iterations}`` of the latest forward.

    Example:
        >>> memory = FeatureMemory({"audio": torch.rand(32, 8)}, lam=0.01)
        >>> out = memory({"audio": torch.rand(4, 8), "visual": torch.rand(4, 8)})
        >>> tuple(out["audio"].shape), sorted(memory.last_iterations)
        ((4, 8), ['audio'])
    """

    def __init__(
        self,
        banks: Mapping[str, Tensor] | None = None,
        *,
        lam: float = 0.2,
        blend: float = 0.5,
        size: int | None = 1024,
        solver: str = "fista",
        max_iter: int = 500,
        tol: float = 1e-4,
        gradient: str = "unrolled",
    ) -> None:
        super().__init__()
        self.lam = check_number(lam, "lam", min_value=0.0)
        self.blend = check_number(blend, "blend", min_value=0.0)
        if self.blend > 1:
            raise ValueError(f"blend: must be in [0, 1], got {self.blend:g}")
        self.size = None if size is None else check_int(size, "size", min_value=1)
        self.solver = check_choice(solver, "solver", ("fista", "ista"))
        self.max_iter = check_int(max_iter, "max_iter", min_value=1)
        self.tol = check_number(tol, "tol", min_value=0.0)
        self.gradient = check_choice(gradient, "gradient", ("unrolled", "bpda", "detached"))
        self._modalities: list[str] = []
        self.last_iterations: dict[str, int] = {}
        if banks is not None and not isinstance(banks, Mapping):
            raise TypeError(
                "banks: expected a dict {modality: (N, D) tensor}, e.g. {'audio': features}, "
                f"got {describe(banks)}"
            )
        for name, features in (banks or {}).items():
            self.set_bank(name, features)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Names of the modalities that have a bank."""
        return tuple(self._modalities)

    def bank(self, modality: str) -> Tensor:
        """The ``(N, D)`` bank of ``modality``."""
        if modality not in self._modalities:
            raise KeyError(f"modality: no bank for {modality!r}; banks: {self._modalities}")
        return getattr(self, f"bank_{modality}")

    def set_bank(self, modality: str, features: Tensor) -> None:
        """Store ``features (N, D)`` (first ``size`` rows, detached) as ``modality``'s bank."""
        if not isinstance(modality, str) or not modality.isidentifier():
            raise ValueError(
                f"modality: expected an identifier-like name, got {describe(modality)}"
            )
        check_tensor(features, f"banks[{modality!r}]", ndims=(2,), floating=True)
        if features.shape[0] == 0:
            raise ValueError(f"banks[{modality!r}]: expected at least one feature, got none")
        bank = check_finite_tensor(features.detach()[: self.size].clone(), f"banks[{modality!r}]")
        self.register_buffer(f"bank_{modality}", bank)
        self.register_buffer(f"lipschitz_{modality}", lipschitz_constant(bank))
        if modality not in self._modalities:
            self._modalities.append(modality)

    def reconstruct(self, f: Tensor, modality: str) -> Tensor:
        """``M a*`` for features ``f (B, D)`` over ``modality``'s bank (differentiable)."""
        bank = self.bank(modality)
        _check_problem(f, bank, f"features[{modality!r}]")
        lipschitz = getattr(self, f"lipschitz_{modality}")
        result = sparse_code(f, bank.to(f), self.lam, solver=self.solver, max_iter=self.max_iter,
                             tol=self.tol, lipschitz=lipschitz)  # fmt: skip
        self.last_iterations[modality] = result.iterations
        return result.codes @ bank.to(f)

    def project(self, f: Tensor, modality: str) -> Tensor:
        """``blend · M a* + (1 − blend) · f`` for ``f (B, D)``, with the configured gradient mode."""
        if self.gradient == "unrolled":
            return self.blend * self.reconstruct(f, modality) + (1 - self.blend) * f
        with torch.no_grad():
            recon = self.reconstruct(f.detach(), modality)
        if self.gradient == "detached":
            return self.blend * recon + (1 - self.blend) * f
        out = self.blend * recon + (1 - self.blend) * f.detach()
        return f + (out - f).detach()

    def forward(self, features: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``{modality: (B, D)} -> {modality: (B, D)}``, denoising the modalities with a bank."""
        return {m: self.project(f, m) if m in self._modalities else f for m, f in features.items()}

    def extra_repr(self) -> str:
        banks = {m: tuple(self.bank(m).shape) for m in self._modalities}
        return f"banks={banks}, lam={self.lam:g}, blend={self.blend:g}, gradient={self.gradient!r}"


@torch.no_grad()
def collect_features(
    model: nn.Module,
    batches: Iterable[Mapping[str, Tensor]],
    modalities: Iterable[str] = ("audio", "visual"),
    limit: int | None = 1024,
) -> dict[str, Tensor]:
    """Clean features for memory banks: ``model(**inputs).embeddings[m]`` over ``batches``.

    The model runs in eval mode (restored afterwards) without gradients. (The released code instead
    collects the training-mode features of the last training epoch, with augmentation.)

    Args:
        model: a model returning :class:`avrobust.AVOutput` with ``(B, D)`` embeddings.
        batches: iterable of input dicts, e.g. ``(x for x, _ in loader)``.
        modalities: which embeddings to collect.
        limit: stop once this many features per modality are gathered (``None``: all).

    Returns:
        ``{modality: (N, D)}`` on the model's output device.

    Raises:
        KeyError: a modality is missing from the model's embeddings.
    """
    if limit is not None:
        limit = check_int(limit, "limit", min_value=1)
    was_training = model.training
    model.eval()
    gathered: dict[str, list[Tensor]] = {m: [] for m in modalities}
    count = 0
    try:
        for inputs in batches:
            embeddings = model(**inputs).embeddings
            for m, store in gathered.items():
                if m not in embeddings:
                    raise KeyError(
                        f"modalities: {m!r} not in the model's embeddings {sorted(embeddings)}"
                    )
                store.append(embeddings[m].reshape(-1, embeddings[m].shape[-1]))
            count = min((sum(len(x) for x in v) for v in gathered.values()), default=0)
            if limit is not None and count >= limit:
                break
    finally:
        model.train(was_training)
    return {m: torch.cat(v)[:limit] for m, v in gathered.items() if v}
