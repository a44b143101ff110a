"""``wrap(..., output=...)``: logits, probabilities or log-probabilities, all seen as logits.

The attack objectives take logits (they apply a log-softmax). Probabilities ``p`` become
``log(max(p, guard))``: the log-softmax of those is ``log p`` again for rows that sum to one, so the
objective is the model's true negative log-likelihood. Log-probabilities are logits already.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from .._checks import check_choice, check_number

__all__ = [
    "OUTPUTS",
    "as_logits",
    "check_output",
    "looks_like_probabilities",
    "warn_probabilities",
    "warn_unnormalised",
]

OUTPUTS = ("logits", "probabilities", "log_probabilities")
"""What a wrapped model's logits and heads can be declared as (``wrap(..., output=...)``)."""

_TOLERANCE = 1e-5  # on [0, 1] and on the row sums, per class for the sums


def check_output(output: Any, guard: Any) -> tuple[str, float | None]:
    """Check ``output`` (one of :data:`OUTPUTS`) and ``guard`` (> 0, only with probabilities).

    Raises:
        ValueError: an unknown ``output``; a ``guard`` that is not a finite number > 0, or a
            ``guard`` given with another ``output`` (it would be ignored).
    """
    output = check_choice(output, "output", OUTPUTS)
    if guard is None:
        return output, None
    if output != "probabilities":
        raise ValueError(
            f"guard: the floor of the log of probabilities, used only with "
            f"output='probabilities', got guard={guard!r} with output={output!r}"
        )
    value = check_number(guard, "guard", min_value=0.0)
    if not 0.0 < value < 1.0:
        raise ValueError(f"guard: expected a number in (0, 1), got {guard!r}")
    return output, value


def _finite_range(x: Tensor) -> tuple[float, float] | None:
    finite = x.detach()[torch.isfinite(x.detach())]
    return (float(finite.min()), float(finite.max())) if finite.numel() else None


def as_logits(x: Tensor, output: str, guard: float | None, what: str) -> Tensor:
    """The tensor ``x`` declared as ``output``, as logits for the objective.

    Raises:
        ValueError: probabilities outside [0, 1], or log-probabilities above 0 (NaN/Inf are
            left to the attack, which treats them per sample), naming ``output``.
    """
    if output == "logits":
        return x
    span = _finite_range(x)
    if output == "log_probabilities":
        if span is not None and span[1] > _TOLERANCE:
            raise ValueError(
                f"{what}: declared output='log_probabilities', but values reach {span[1]:g} > 0; "
                "declare output='logits' (or 'probabilities') for what the model returns"
            )
        return x
    if span is not None and (span[0] < -_TOLERANCE or span[1] > 1 + _TOLERANCE):
        raise ValueError(
            f"{what}: declared output='probabilities', but values range over "
            f"[{span[0]:g}, {span[1]:g}], outside [0, 1]; declare output='logits' for scores"
        )
    floor = torch.finfo(x.dtype).tiny if guard is None else guard
    return torch.log(x.clamp_min(floor))


def looks_like_probabilities(x: Tensor) -> bool:
    """Whether every row (last dimension) of ``x`` lies in [0, 1] and sums to 1."""
    x = x.detach()
    if not x.is_floating_point() or x.ndim < 2 or x.shape[-1] < 2 or x.numel() == 0:
        return False
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
        return False
    return _rows_sum_to_one(x)


def _rows_sum_to_one(x: Tensor) -> bool:
    sums = x.double().sum(-1)
    return bool(((sums - 1).abs() <= _TOLERANCE * x.shape[-1]).all())


def warn_unnormalised(x: Tensor, stacklevel: int) -> None:
    """Warn when declared probabilities ``x`` (finite rows) do not sum to 1 per row: the log of
    scores that are not a distribution is not the model's log-likelihood."""
    x = x.detach()
    finite = torch.isfinite(x).all(dim=-1)
    if x.ndim < 2 or not bool(finite.any()) or _rows_sum_to_one(x[finite]):
        return
    sums = x[finite].double().sum(-1)
    warnings.warn(
        f"model output logits: declared output='probabilities', but the rows (shape "
        f"{tuple(x.shape)}) sum to values in [{float(sums.min()):.4g}, {float(sums.max()):.4g}], "
        "not 1: these do not look like the probabilities of a softmax (scores, sigmoids?); "
        "declare output='logits' for scores, or normalise them. Checked on the first call.",
        UserWarning,
        stacklevel=stacklevel,
    )


def warn_probabilities(x: Tensor, stacklevel: int) -> None:
    """Warn that what is called logits looks like probabilities."""
    warnings.warn(
        f"model output logits: every row of the logits (shape {tuple(x.shape)}) lies in [0, 1] "
        "and sums to 1, so they look like probabilities; an attack would treat them as logits "
        "and maximise a weaker objective than the model's loss. If the model returns "
        'probabilities, wrap it with avrobust.wrap(..., output="probabilities"); if these '
        "really are logits, ignore this warning.",
        UserWarning,
        stacklevel=stacklevel,
    )
