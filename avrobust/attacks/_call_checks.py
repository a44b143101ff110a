"""The checks of one attack call, before the model runs: :func:`check_call`.

Nothing here is public. :class:`avrobust.MultimodalAttack` (and :class:`avrobust.SquareAttack`
through it) checks the inputs (a non-empty batch; no ``meta`` tensors; attacked modalities
floating point, with elements, inside their budget's bounds and in the bounds' units), the dtype
of the inputs against the model's, that a model not made by :func:`avrobust.wrap` takes the
modality names as keywords, and the labels' batch size.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .._checks import check_labels_batch, check_tensor_dict
from ..adapters import WrappedModel
from ._guards import check_input_dtypes, finite_extremes
from .budgets import Budget
from .units import units_disagree, units_message

__all__ = ["check_call", "check_forward_keywords", "check_no_inference_tensors"]


def check_call(
    model: nn.Module, budgets: Mapping[str, Budget], inputs: Any, labels: Any, *, stacklevel: int
) -> tuple[dict[str, Tensor], Tensor, list[str]]:
    """Check one call's ``inputs`` and ``labels``; returns ``(inputs, labels, attacked)``.

    Warns (``stacklevel`` frames above this function) once per attacked modality whose data
    and budget bounds look like different units (:func:`~avrobust.attacks.units_disagree`).

    Raises:
        ValueError: an empty batch; a tensor on the ``meta`` device; a budget for a modality the
            inputs lack; an attacked modality without elements, or outside its bounds.
        TypeError: an attacked modality that is not floating point; a floating input whose
            dtype differs from the model's; a raw model whose forward does not take the
            modality names as keywords.
    """
    inputs = check_tensor_dict(inputs, "inputs")
    batch = next(iter(inputs.values())).shape[0]
    if batch == 0:
        shapes = {n: tuple(x.shape) for n, x in inputs.items()}
        raise ValueError(
            f"inputs: expected a batch of at least one sample, got batch size 0 ({shapes})"
        )
    for name in budgets:
        if name not in inputs:
            raise ValueError(
                f"budgets: there is a budget for modality {name!r}, but the inputs have only "
                f"{sorted(inputs)}"
            )
    attacked = [n for n in inputs if n in budgets and not budgets[n].is_zero]
    for name in attacked:
        _check_attacked(name, inputs[name], budgets[name], stacklevel + 1)
    for name, x in inputs.items():
        if x.is_floating_point() and name not in attacked:
            finite_extremes(x, f"inputs[{name!r}]")
    check_input_dtypes(model, inputs)
    check_forward_keywords(model, list(inputs))
    check_labels_batch(labels, batch)
    return inputs, labels, attacked


def _check_attacked(name: str, x: Tensor, budget: Budget, stacklevel: int) -> None:
    """An attacked input: floating point, with elements, inside the bounds, in their units."""
    if not x.is_floating_point():  # uint8 frames: perturbing needs floats (issue 12)
        raise TypeError(
            f"inputs[{name!r}]: expected a floating-point tensor (an attacked input is "
            f"perturbed in floats), got dtype {x.dtype}; pass floats in the same range "
            f"(uint8 frames as x.float(), values 0-255, bounds (0, 255)); a model that wants "
            f"another form converts inside: avrobust.wrap(model, transforms={{{name!r}: ...}})"
        )
    if x.numel() == 0:
        raise ValueError(
            f"inputs[{name!r}]: an attacked modality with no elements (shape "
            f"{tuple(x.shape)}): there is nothing to perturb; give it no budget (or eps 0) to "
            "pass it to the model unattacked, or pass its data"
        )
    low, high = finite_extremes(x, f"inputs[{name!r}]")
    bounds = budget.bounds
    if bounds is None:
        return
    other_units = units_disagree(low, high, bounds)
    if low < bounds[0] or high > bounds[1]:
        hint = f". {units_message(f'inputs[{name!r}]', low, high, bounds)}" if other_units else ""
        raise ValueError(
            f"inputs[{name!r}]: values must lie inside budgets[{name!r}].bounds = "
            f"({bounds[0]:g}, {bounds[1]:g}), got min {low:g}, max {high:g}{hint}"
        )
    if other_units:
        warnings.warn(
            units_message(f"inputs[{name!r}]", low, high, bounds), UserWarning, stacklevel + 1
        )


def check_forward_keywords(model: nn.Module, names: Sequence[str]) -> None:
    """A model not made by :func:`avrobust.wrap` is called as ``model(**inputs)``: its forward
    must take every modality name as a keyword and need no other argument.

    Raises:
        TypeError: naming the forward's signature, the modalities, and the ``wrap`` call.
    """
    if isinstance(model, WrappedModel):
        return
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # no signature to read: let the call say what it says
        return
    params = list(signature.parameters.values())
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    keywords = {p.name for p in params if p.kind in kinds}
    unknown = [] if takes_any else [n for n in names if n not in keywords]
    needed = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and p.name not in names
    ]
    if not unknown and not needed:
        return
    plain = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in params],
        return_annotation=inspect.Signature.empty,
    )
    why = [f"it has no keyword {unknown}"] if unknown else []
    why += [f"its parameter(s) {needed} would get nothing"] if needed else []
    raise TypeError(
        f"model: the attack calls model(**inputs), with the modalities {list(names)} as "
        f"keywords, but {type(model).__name__}.forward{plain} does not take them "
        f"({'; '.join(why)}). Wrap the model so it can be called that way: "
        f"avrobust.wrap(model, {list(names)}) passes them by position in that order, "
        f"avrobust.wrap(model, {{'{names[0]}': 'its_parameter', ...}}) by keyword, and "
        "avrobust.wrap(model, forward=lambda m, **inputs: m(inputs)) as one dict "
        "(see docs/wrapping.md)"
    )


def check_no_inference_tensors(model: nn.Module) -> None:
    """A gradient attack differentiates through the model: none of its parameters or buffers
    may be an inference tensor (made under ``torch.inference_mode()``).

    Raises:
        ValueError: naming the first such tensor and what to do.
    """
    for kind, named in (("parameter", model.named_parameters), ("buffer", model.named_buffers)):
        for name, tensor in named():
            if tensor.is_inference():
                raise ValueError(
                    f"model: its {kind} {name!r} is an inference tensor (the model was built or "
                    "loaded inside torch.inference_mode()), which autograd cannot differentiate "
                    "through; build or load the model outside torch.inference_mode() "
                    "(torch.no_grad() is fine), or attack it with avrobust.SquareAttack, which "
                    "needs no gradient"
                )
