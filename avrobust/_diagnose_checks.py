"""Checks of :func:`avrobust.diagnose` that stand on their own: whether a model mixes the clips of
a batch (:func:`batch_coupling`, also run by :func:`avrobust.evaluate`), and the random-noise and
zero-gradient measures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._checks import (
    check_choice,
    check_finite_tensor,
    check_int,
    check_number,
    check_tensor_dict,
    describe,
)
from .adapters import as_avoutput
from .attacks import preserve_model_state
from .attacks._model_state import call_on_copies
from .attacks.budgets import Budget
from .attacks.objectives import Objective, check_labels
from .attacks.square import untargeted_success

__all__ = ["BatchCoupling", "batch_coupling"]

_FIX = (
    "the model mixes the clips of a batch (one sequence over the B·T frames of all clips, "
    "BatchNorm in training mode, a normalisation over the batch), so every number depends on "
    "batch_size, max_batch and the batched restarts; fix: make the forward run each clip on its "
    "own (keep the clip axis before any layer that runs along time, BatchNorm in eval mode), or "
    "evaluate with batch_size=1 and max_batch=1"
)


@dataclass(frozen=True)
class BatchCoupling:
    """What :func:`batch_coupling` measured.

    Attributes:
        difference: the largest absolute difference of a compared clip's logits, in logit units,
            between the clip in its batch and the clip in a batch of copies of itself (``inf``
            where only one of the two is finite); 0 when nothing was compared.
        tolerance: the difference allowed for rounding, in logit units (see
            :func:`batch_coupling`'s ``atol``).
        clip: the index in the batch of the clip with the largest difference (``None`` when
            nothing was compared).
        compared: the indices of the clips compared (empty for a batch of one clip).
    """

    difference: float
    tolerance: float
    clip: int | None
    compared: tuple[int, ...]

    @property
    def coupled(self) -> bool:
        """``True`` when a clip's logits depend on its batch neighbours beyond the tolerance."""
        return self.difference > self.tolerance

    @property
    def sentence(self) -> str:
        """What was measured and, when coupled, what it means and the fix."""
        if not self.compared:
            return "a batch of one clip: no neighbours, so batch coupling cannot be measured"
        measured = (
            f"clip {self.clip}'s logits change by up to {self.difference:.3g} when the other "
            f"clips of its batch change (tolerance {self.tolerance:.3g}, clips {list(self.compared)} "
            "compared)"
        )
        if self.coupled:
            return f"{measured}: {_FIX}"
        return f"{measured}: each clip's logits are its own"

    def __str__(self) -> str:
        return self.sentence


def batch_coupling(
    model: nn.Module,
    inputs: Mapping[str, Tensor],
    *,
    atol: float | None = None,
    clips: int = 2,
    model_mode: str = "eval",
) -> BatchCoupling:
    r"""Whether a clip's logits depend on the other clips of its batch.

    A model that mixes the clips of a batch (the official TalkNet visual front-end and LoCoNet
    run all ``B·T`` frames as one sequence; BatchNorm in training mode; any normalisation over
    the batch) gives each clip logits that change with its neighbours: its robustness numbers
    then depend on ``batch_size``, ``max_batch`` and batched restarts. Each compared clip ``i``
    is run in a batch of ``B`` copies of itself (so the shapes, and the kernels and their
    rounding, are the batch's own, and no other clip is present), and its logits at position
    ``i`` are compared with those in the batch as given. The clips compared are the last, the
    first, the second last, ... (``clips`` of them): a sequence over the batch reaches the last
    clip from all the others, and the first from the ones after it.

    The model runs under ``torch.no_grad`` in ``model_mode``; every module's flag and every
    buffer is restored afterwards and the inputs are never modified (the model gets copies).
    Costs ``1 + clips`` forwards of the batch.

    Args:
        model: called as ``model(**inputs)``, returning :class:`avrobust.AVOutput` or logits
            ``(B, ...)``.
        inputs: ``{modality: (B, ...)}`` one batch, as for the attacks (a few clips suffice;
            ``B >= 2`` to measure anything).
        atol: the difference of logits allowed, in logit units, ``>= 0``; ``None``: rounding,
            :math:`\sqrt{\varepsilon} \cdot \max(1, \max|z|)` with :math:`\varepsilon` the
            machine epsilon of the coarsest floating dtype among the logits and the inputs
            (3.5e-4 for float32, 1.5e-8 for float64, 0.031 for float16) and :math:`z` the
            logits of the batch. Give it under autocast, where the computation is coarser than
            the dtypes show.
        clips: how many clips to compare (``>= 1``; at most ``B``).
        model_mode: ``"eval"`` (default: as the attacks run the model) or ``"current"`` (as it
            is; then dropout and other randomness show as coupling too).

    Returns:
        :class:`BatchCoupling`; ``.coupled`` says whether it exceeds the tolerance, ``str()`` the
        sentence with the largest difference and the fix.

    Raises:
        TypeError: ``model`` not an ``nn.Module``; ``inputs`` not a dict of tensors.
        ValueError: a negative ``atol``; ``clips < 1``; an unknown ``model_mode``; NaN/Inf in
            a floating input; logits without the batch axis ``B``.

    Example:
        >>> import torch, avrobust
        >>> from avrobust.testing import TinyAV
        >>> inputs = {"audio": torch.rand(3, 640) * 2 - 1, "visual": torch.rand(3, 4, 16, 16) * 255}
        >>> avrobust.batch_coupling(TinyAV(), inputs).coupled
        False
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {describe(model)}")
    inputs = check_tensor_dict(inputs, "inputs")
    for name, x in inputs.items():  # NaN logits would compare as "not coupled"
        if x.is_floating_point():
            check_finite_tensor(x, f"inputs[{name!r}]")
    tolerance = None if atol is None else check_number(atol, "atol", min_value=0.0)
    count = check_int(clips, "clips", min_value=1)
    mode = check_choice(model_mode, "model_mode", ("eval", "current"))
    batch = next(iter(inputs.values())).shape[0]
    order = [i for pair in zip(range(batch - 1, -1, -1), range(batch)) for i in pair]
    compared = tuple(dict.fromkeys(order))[:count] if batch > 1 else ()
    with torch.no_grad(), preserve_model_state(model, mode):
        together = _batch_logits(model, inputs, batch)
        gaps = []
        for i in compared:
            copies = {
                n: x[i : i + 1].repeat((batch,) + (1,) * (x.ndim - 1)) for n, x in inputs.items()
            }
            gaps.append(_gap(together[i], _batch_logits(model, copies, batch)[i]))
    if tolerance is None:
        tolerance = _rounding(together, inputs.values())
    if not gaps:
        return BatchCoupling(0.0, tolerance, None, ())
    worst = max(range(len(gaps)), key=gaps.__getitem__)
    return BatchCoupling(gaps[worst], tolerance, compared[worst], compared)


def _batch_logits(model: nn.Module, inputs: Mapping[str, Tensor], batch: int) -> Tensor:
    logits = as_avoutput(call_on_copies(model, inputs)).logits.detach()
    if logits.ndim == 0 or logits.shape[0] != batch:
        raise ValueError(
            f"model: expected logits with the batch axis first ({batch}, ...), got shape "
            f"{tuple(logits.shape)}"
        )
    return logits


def _gap(a: Tensor, b: Tensor) -> float:
    """The largest ``|a - b|``; equal entries (NaN with NaN too) count 0, a NaN against a
    number counts ``inf``."""
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    gap = torch.where(same, torch.zeros_like(a), (a.double() - b.double()).abs())
    return float(torch.nan_to_num(gap, nan=float("inf")).max()) if gap.numel() else 0.0


def _rounding(logits: Tensor, inputs: Iterable[Tensor]) -> float:
    """The default tolerance: sqrt(machine epsilon) of the coarsest floating dtype, times the
    logits' scale (at least 1)."""
    dtypes = [logits.dtype] + [x.dtype for x in inputs if x.is_floating_point()]
    eps = max(torch.finfo(d).eps for d in dtypes if d.is_floating_point)
    finite = logits[torch.isfinite(logits)]
    scale = max(1.0, float(finite.abs().max())) if finite.numel() else 1.0
    return eps**0.5 * scale


def random_corners(
    model: nn.Module,
    clean: Mapping[str, Tensor],
    labels: Tensor,
    budgets: Mapping[str, Budget],
    attacked: Sequence[str],
    draws: int,
    seed: int,
) -> Tensor:
    """Broken by any of ``draws`` random corners of the budgets (every element at ``±eps``)."""
    gen = torch.Generator().manual_seed(seed)
    broken = torch.zeros(labels.shape[0], dtype=torch.bool, device=labels.device)
    for _ in range(draws):
        noisy = dict(clean)
        for n in attacked:
            x, budget = clean[n], budgets[n]
            eps = budget.radius(x)
            signs = torch.randint(0, 2, x.shape, generator=gen).to(x) * 2 - 1
            noisy[n] = budget.ball(x, eps)(x + signs * eps)
        broken |= broken_by(model, noisy, labels).to(broken.device)
    return broken


def broken_by(model: nn.Module, inputs: Mapping[str, Tensor], labels: Tensor) -> Tensor:
    """``(B,)`` bool: the model misclassifies ``inputs`` (run under ``no_grad``, state kept)."""
    with torch.no_grad(), preserve_model_state(model):
        logits = as_avoutput(call_on_copies(model, inputs)).logits
    return untargeted_success(logits, labels)[0]


def zero_gradient(
    model: nn.Module,
    clean: Mapping[str, Tensor],
    labels: Tensor,
    attacked: Sequence[str],
    objective: Objective,
) -> dict[str, float]:
    """Per attacked modality, the fraction of gradient elements that are 0 or NaN/Inf."""
    with torch.enable_grad(), preserve_model_state(model):
        xs = {n: x.detach().clone().requires_grad_(n in attacked) for n, x in clean.items()}
        out = as_avoutput(model(**xs))
        loss = objective(out, check_labels(labels, out.logits))
        targets = [xs[n] for n in attacked]
        grads = (
            torch.autograd.grad(loss.sum(), targets, allow_unused=True)
            if loss.requires_grad
            else (None,) * len(targets)
        )
    zero = {}
    for n, g in zip(attacked, grads):
        if g is None:
            zero[n] = 1.0
        else:
            dead = (g == 0) | ~torch.isfinite(g)
            zero[n] = float(dead.float().mean())
    return zero
