"""The attack loop's guards: what it checks about the model, and what it reports after a call.

Nothing here is public. :class:`avrobust.MultimodalAttack` uses

- :func:`check_logits`, :func:`check_clean_logits` and :func:`check_input_dtypes`: errors for a
  model whose output or dtype the attack cannot work with;
- :func:`warn_below_resolution`: a warning when a budget is finer than the input dtype can hold;
- :class:`Diagnostics`: per-call counters of non-finite gradient elements, modalities that never
  receive a gradient and samples whose logits turn NaN/Inf, kept as tensors on the inputs' device
  (no device sync per step) and read once at the end of the call, which warns once per finding
  (also for a model not made by ``wrap`` whose logits look like probabilities);
- :func:`finite_extremes`: the input checks' one pass for finiteness and bounds.

The candidates (:class:`~avrobust.attacks._candidates.Candidates`) live in ``_candidates.py``,
what a model's forward may change (:func:`preserve_model_state`, the inputs it writes into) in
``_model_state.py``, the checks of a call's inputs in ``_call_checks.py``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_finite_tensor, describe
from ..adapters import WrappedModel
from ..adapters.outputs import looks_like_probabilities, warn_probabilities
from .budgets import _DEFAULT_ALPHA_FACTOR, Budget

__all__ = [
    "Diagnostics",
    "check_clean_logits",
    "check_input_dtypes",
    "check_logits",
    "finite_extremes",
    "finite_rows",
    "gradients",
    "random_starts",
    "restart_generator",
    "warn_batchnorm_in_training",
    "warn_below_resolution",
]


_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: spreads restart indices over the seed space


def restart_generator(seed: int, restart: int) -> torch.Generator:
    """The CPU generator of one restart's random start: seeded from the attack's seed and the
    restart's index alone, so a restart draws the same start however restarts are chunked."""
    return torch.Generator().manual_seed((seed + restart * _GOLDEN) % 2**64)


def random_starts(
    budgets: Mapping[str, Budget],
    x0: Mapping[str, Tensor],
    eps: Mapping[str, Tensor],
    restarts: range,
    seed: int,
) -> dict[str, Tensor]:
    """Each restart's random start from its own generator: the same whatever the chunking.

    ``x0[n]`` holds ``len(restarts)`` copies of the batch, one after the other."""
    batch = next(iter(x0.values())).shape[0] // len(restarts)
    parts: dict[str, list[Tensor]] = {n: [] for n in eps}
    for i, restart in enumerate(restarts):
        gen, rows = restart_generator(seed, restart), slice(i * batch, (i + 1) * batch)
        for n in eps:
            parts[n].append(budgets[n].random_start(x0[n][rows], eps[n][rows], gen))
    return {n: torch.cat(p) if len(p) > 1 else p[0] for n, p in parts.items()}


def finite_extremes(x: Tensor, name: str) -> tuple[float, float]:
    """``(min, max)`` of a floating tensor in one pass, raising as ``check_finite_tensor`` does
    (with the count) when it holds NaN/Inf: the extremes are NaN or infinite exactly then."""
    if x.numel() == 0:
        return 0.0, 0.0
    low, high = (float(v) for v in torch.aminmax(x.detach()))
    if not (math.isfinite(low) and math.isfinite(high)):
        check_finite_tensor(x, name)
    return low, high


def finite_rows(logits: Tensor) -> Tensor:
    """``(N,)`` bool: every logit of the sample (all frames, all classes) is finite."""
    return torch.isfinite(logits).flatten(1).all(dim=1)


def check_logits(logits: object, batch: int) -> Tensor:
    """Check the model's logits: a float tensor ``(B, C)`` or ``(B, T, C)`` with ``C >= 2``.

    Raises:
        TypeError: not a tensor, or not floating point.
        ValueError: another number of dimensions, another batch size, or fewer than 2 classes.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"model output logits: expected a tensor, got {describe(logits)}")
    if not logits.is_floating_point():
        raise TypeError(
            f"model output logits: expected floating-point scores, got dtype {logits.dtype}"
        )
    shape = tuple(logits.shape)
    if logits.ndim not in (2, 3):
        raise ValueError(
            f"model output logits: expected clip logits (B, C) or frame logits (B, T, C), "
            f"got shape {shape}"
        )
    if shape[0] != batch:
        raise ValueError(
            f"model output logits: batch of {shape[0]} (shape {shape}), but the inputs' batch is "
            f"{batch}; a model that folds frames into the batch, (B*T, C), must return frame "
            "logits (B, T, C)"
        )
    if shape[-1] < 2:
        raise ValueError(
            f"model output logits: expected at least 2 classes in the last dimension, got shape "
            f"{shape}; for one binary score s return torch.stack([torch.zeros_like(s), s], -1)"
        )
    return logits


def gradients(loss: Tensor, logits: Tensor, xs: list[Tensor]) -> tuple[Tensor | None, ...]:
    """Gradients of ``loss.sum()`` w.r.t. ``xs`` (``None`` where one has no path to it).

    Raises:
        ValueError: the objective's losses are detached although the logits are not.
    """
    if not loss.requires_grad:
        if logits.requires_grad:
            raise ValueError(
                "objective: the per-sample losses do not require grad (detached, or computed "
                "under no_grad), although the model's logits do; the attack needs losses "
                "differentiable w.r.t. the inputs"
            )
        return (None,) * len(xs)  # nothing depends on the inputs: reported as no gradient
    return torch.autograd.grad(loss.sum(), xs, allow_unused=True)


def check_clean_logits(logits: Tensor, loss: Tensor | None = None) -> None:
    """Refuse NaN/Inf logits at the clean inputs (the model cannot be evaluated there), and
    NaN/Inf objective values ``loss`` (``(B,)``) where the logits are finite.

    Raises:
        ValueError: naming the samples' indices.
    """
    bad = (~finite_rows(logits)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"model output logits: NaN/Inf at the clean inputs of {_samples(bad)}; "
            "the model cannot be evaluated there, so no attack result on them would mean "
            "anything: drop them, or fix the model (e.g. a division by a zero norm)"
        )
    bad = [] if loss is None else (~torch.isfinite(loss)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"objective: NaN/Inf per-sample losses at the clean inputs of {_samples(bad)}, "
            "whose logits are finite; the attack cannot rank candidates by them: fix the "
            "objective (e.g. a log of 0, a division by a zero norm)"
        )


def _samples(indices: list[int]) -> str:
    shown = f"{indices[:10]}{' ...' if len(indices) > 10 else ''}"
    return f"{len(indices)} sample(s) {shown}"


def check_input_dtypes(model: nn.Module, inputs: Mapping[str, Tensor]) -> None:
    """Every floating input must have the model's floating parameter dtype (when it has one).

    Raises:
        TypeError: naming the input, its dtype and the model's.
    """
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) != 1:
        return  # no parameters, or mixed on purpose: nothing to compare with
    (want,) = dtypes
    for name, x in inputs.items():
        if x.is_floating_point() and x.dtype != want:
            raise TypeError(
                f"inputs[{name!r}]: dtype {x.dtype} differs from the model's parameter dtype "
                f"{want}; nothing is cast silently: convert the input (x.to({want})) or the "
                f"model (model.to({x.dtype}))"
            )


def warn_batchnorm_in_training(model: nn.Module) -> None:
    """Warn that BatchNorm layers left in training mode couple the samples of a batch."""
    training_bn = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training
    ]
    if training_bn:
        warnings.warn(
            f"model_mode='current' with BatchNorm layers in training mode ({training_bn[:3]}"
            f"{', ...' if len(training_bn) > 3 else ''}): they normalise with the statistics of "
            "the attacked batch, so each sample's gradient depends on the other samples (and on "
            "the restarts batched with it). Their running statistics are restored afterwards.",
            stacklevel=3,
        )


def warn_below_resolution(
    budgets: Mapping[str, Budget],
    inputs: Mapping[str, Tensor],
    attacked: Sequence[str],
    steps: int,
    single_step: bool,
) -> None:
    """Warn when a budget's ``eps`` or step size is finer than the input dtype's spacing at the
    largest magnitude the input can take (its bounds, or its values when unbounded)."""
    for name in attacked:
        budget, x = budgets[name], inputs[name]
        low_high = budget.bounds
        if low_high is not None and all(abs(v) < float("inf") for v in low_high):
            magnitude = max(abs(low_high[0]), abs(low_high[1]))
        else:
            magnitude = float(x.detach().abs().max())
        spacing = torch.finfo(x.dtype).eps * magnitude
        eps = _smallest(budget.eps)
        if budget.alpha is not None:
            alpha = _smallest(budget.alpha)
        else:
            alpha = eps if single_step else eps * _DEFAULT_ALPHA_FACTOR / steps
        smallest = min(eps, alpha)
        if 0 < smallest < spacing:
            warnings.warn(
                f"budgets[{name!r}]: eps {eps:.3g} (step size {alpha:.3g}) is below the "
                f"resolution of {x.dtype} at magnitude {magnitude:g} (spacing {spacing:.3g}): "
                "values there cannot move by so little, so much of the perturbation rounds to "
                "zero. Use a wider dtype or a larger budget.",
                stacklevel=3,
            )


def _smallest(value: float | Tensor) -> float:
    if isinstance(value, Tensor):
        positive = value[value > 0]
        return float(positive.min()) if positive.numel() else 0.0
    return float(value)


class Diagnostics:
    """What one attack call found about the model, counted without a sync per step.

    Args:
        attacked: the attacked modalities.
        batch: ``B``, the number of samples (restarts are folded onto them).
        device: where the counters live (the inputs' device).
    """

    def __init__(self, attacked: Sequence[str], batch: int, device: torch.device) -> None:
        self.batch = batch
        self.probabilities: Tensor | None = None  # logits that looked like probabilities
        self.output_checked = False
        self.nonfinite = {n: torch.zeros((), dtype=torch.int64, device=device) for n in attacked}
        self.moved = {n: torch.zeros((), dtype=torch.bool, device=device) for n in attacked}
        self.bad_logits = torch.zeros(batch, dtype=torch.bool, device=device)
        self.final_bad = torch.zeros((), dtype=torch.int64, device=device)
        self.random_start = False

    def gradient(self, name: str, grad: Tensor | None, like: Tensor) -> Tensor:
        """The gradient with its NaN/Inf elements set to 0 (and counted); zeros for ``None``."""
        if grad is None:
            return torch.zeros_like(like)
        if grad.device.type == "cpu":  # reading a CPU scalar costs no sync: check, then skip
            # the largest |element| from one read-only pass, without grad.abs()'s temporary
            # copy of the gradient: NaN if any element is NaN, Inf if any is +-Inf
            low, high = torch.aminmax(grad)
            largest = torch.maximum(-low, high)
            if bool(torch.isfinite(largest)):
                self.moved[name] |= largest > 0
                return grad
        # the fastest kernels for this (isfinite is 10x slower): g - g is NaN exactly where
        # g is NaN or +-Inf (not in place: autograd may hand back an expanded tensor)
        self.nonfinite[name] += torch.count_nonzero(grad - grad)
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        self.moved[name] |= grad.abs().amax() > 0
        return grad

    def output(self, model: nn.Module, logits: Tensor) -> None:
        """Once per call: note logits that look like probabilities from a model that
        :func:`avrobust.wrap` did not make (a wrapped model warns about its own)."""
        if self.output_checked:
            return
        self.output_checked = True
        if not isinstance(model, WrappedModel) and looks_like_probabilities(logits):
            self.probabilities = logits.detach()

    def logits(self, logits: Tensor) -> None:
        """Note the samples (any restart) whose logits are NaN/Inf at this iterate."""
        bad = ~finite_rows(logits.detach())
        self.bad_logits |= bad.view(-1, self.batch).any(dim=0)

    def report(self, keep: str, stacklevel: int = 3) -> None:
        """Warn once per finding of the call (one device sync for all the counters)."""
        if self.probabilities is not None:
            warn_probabilities(self.probabilities, stacklevel=stacklevel + 1)
        names = list(self.nonfinite)
        counts = torch.stack([self.nonfinite[n] for n in names] + [self.final_bad]).tolist()
        moved = torch.stack([self.moved[n] for n in names]).tolist() if names else []
        for name, count, ok in zip(names, counts, moved):
            if count:
                warnings.warn(
                    f"MultimodalAttack: the gradient w.r.t. {name!r} held {count} NaN/Inf "
                    "gradient elements (summed over steps and restarts); they were set to 0 for "
                    "their step, so those elements did not move there (the model has no finite "
                    "gradient at those points, e.g. sqrt or a norm of an all-zero frame)",
                    stacklevel=stacklevel,
                )
            if not ok:
                start = " (only its random start moved it)" if self.random_start else ""
                warnings.warn(
                    f"MultimodalAttack: the modality {name!r} received no gradient (None or all "
                    f"zeros) in any step: it was attacked in name only{start}. Does the model "
                    "detach it, or not use it?",
                    stacklevel=stacklevel,
                )
        hit = int(self.bad_logits.sum())
        if hit:
            kept = "never kept as the best candidate and " if keep == "best" else ""
            final = counts[-1]
            tail = f"; {final} returned input(s) have NaN/Inf logits (keep='last')" if final else ""
            warnings.warn(
                f"MultimodalAttack: {hit} of {self.batch} samples reached adversarial inputs "
                f"where the model's logits are NaN/Inf; such inputs are {kept}never counted as "
                f"successful attacks{tail}",
                stacklevel=stacklevel,
            )
