"""ExFMem: feature denoising by sparse coding over memory banks of clean features (Tian & Xu, CVPR 2021).

For each modality, a bank ``M`` holds clean training features as atoms. A (possibly adversarial)
feature ``f`` is coded as

    a* = argmin_a ‖f − M a‖₂² + λ ‖a‖₁                                    (the slides' objective)

and replaced by ``f' = blend · M a* + (1 − blend) · f`` (the released code: ``blend = 0.5``).

Conventions. Banks are stored as rows, ``bank (N, D)``: ``N`` atoms of width ``D``, so
``M a = a @ bank`` for a batch of codes ``a (B, N)``. The released code minimises
``½‖f − M a‖² + λ_code ‖a‖₁`` with ``λ_code = 0.1``; that is our objective with
``λ = 2 λ_code = 0.2``, our default. ``λ`` is absolute, so it depends on the features' scale.

Solver: :mod:`avrobust.defenses.sparse_coding` (batched ISTA/FISTA, stopped on the duality gap).

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
  overstates the defense. Offered to show that effect, not to report numbers. The first time an
  instance is differentiated in eval mode (the mode attacks run the model in: gradient recording
  on, the features requiring grad), it warns that it is being attacked with a masked gradient.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from .._checks import (
    check_choice,
    check_finite_tensor,
    check_fraction,
    check_int,
    check_number,
    check_tensor,
    describe,
)
from .sparse_coding import (
    SparseCodingResult,
    check_problem,
    lasso_objective,
    lipschitz_constant,
    sparse_code,
)

__all__ = [
    "FeatureMemory",
    "SparseCodingResult",
    "collect_features",
    "lasso_objective",
    "lipschitz_constant",
    "sparse_code",
]


class FeatureMemory(nn.Module):
    """ExFMem as a module: per-modality banks of clean features and a sparse-coding projection.

    ``memory({"audio": f_a, "visual": f_v})`` returns the features with each one that has a bank
    replaced by ``blend · M a* + (1 − blend) · f`` (see the module docstring for the objective, the
    solver and the ``gradient`` modes); modalities without a bank pass through unchanged. Put it
    between a model's encoders and its fusion (as :class:`avrobust.models.event.AVEventNet`'s
    ``memory``), at training and test time alike. Banks are buffers: they follow ``.to(device)`` and
    are saved in ``state_dict`` (to load one, first create the banks with :meth:`set_bank`). NaN/Inf
    in a bank or in a banked modality's features, and an all-zero bank, are refused
    (``ValueError`` naming it).

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
        self.blend = check_fraction(blend, "blend")
        self.size = None if size is None else check_int(size, "size", min_value=1)
        self.solver = check_choice(solver, "solver", ("fista", "ista"))
        self.max_iter = check_int(max_iter, "max_iter", min_value=1)
        self.tol = check_number(tol, "tol", min_value=0.0)
        self.gradient = check_choice(gradient, "gradient", ("unrolled", "bpda", "detached"))
        self._modalities: list[str] = []
        self.last_iterations: dict[str, int] = {}
        self._warned_detached = False
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
        if not bool(bank.any()):
            raise ValueError(
                f"banks[{modality!r}]: every feature is zero (an encoder that outputs nothing?); "
                "every reconstruction over it would be 0 and the memory would only scale the "
                "features by 1 - blend: collect the bank from a trained encoder"
            )
        self.register_buffer(f"bank_{modality}", bank)
        self.register_buffer(f"lipschitz_{modality}", lipschitz_constant(bank))
        if modality not in self._modalities:
            self._modalities.append(modality)

    def reconstruct(self, f: Tensor, modality: str) -> Tensor:
        """``M a*`` for features ``f (B, D)`` over ``modality``'s bank (differentiable)."""
        bank = self.bank(modality)
        check_problem(f, bank, f"features[{modality!r}]")
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
            self._warn_if_attacked(f, modality)
            return self.blend * recon + (1 - self.blend) * f
        out = self.blend * recon + (1 - self.blend) * f.detach()
        return f + (out - f).detach()

    def _warn_if_attacked(self, f: Tensor, modality: str) -> None:
        """Warn (once per instance) when the detached mode is differentiated in eval mode."""
        if (
            self._warned_detached
            or self.training
            or not (torch.is_grad_enabled() and f.requires_grad)
        ):
            return
        self._warned_detached = True
        warnings.warn(
            f"FeatureMemory(gradient='detached'): the {modality!r} features are differentiated "
            "in eval mode, as an attack does; the reconstruction passes no gradient, so the "
            "attacker sees a masked gradient and the robustness measured overstates the "
            "defense. Set memory.gradient = 'bpda' (or 'unrolled') to evaluate it.",
            stacklevel=3,
        )

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
    modalities: Iterable[str] | None = None,
    limit: int | None = 1024,
) -> dict[str, Tensor]:
    """Clean features for memory banks: ``model(**inputs).embeddings[m]`` over ``batches``.

    The model runs in eval mode (restored afterwards) without gradients. (The released code instead
    collects the training-mode features of the last training epoch, with augmentation.)

    Args:
        model: a model returning :class:`avrobust.AVOutput` with ``(B, D)`` embeddings.
        batches: iterable of input dicts, e.g. ``(x for x, _ in loader)``.
        modalities: which embeddings to collect; ``None`` (default): every embedding the model
            returns on the first batch (e.g. ``"audio"`` and ``"visual"``).
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
    gathered: dict[str, list[Tensor]] | None = (
        None if modalities is None else {m: [] for m in modalities}
    )
    count = 0
    try:
        for inputs in batches:
            embeddings = model(**inputs).embeddings
            if gathered is None:
                gathered = {m: [] for m in embeddings}
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
    return {m: torch.cat(v)[:limit] for m, v in (gathered or {}).items() if v}
