"""Selectors: where a tensor is in a model's raw output (an index, a key, a function, a module,
or a pipeline of those), and the default rule for finding the logits."""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .._checks import describe, raised_in

__all__ = ["Selector", "available", "check_selector", "default_logits", "pick", "selector_modules"]

Selector = int | str | Callable[..., Any] | Sequence[Any]
"""Where to find a tensor in a model's output: a position (tuple/list), a key or attribute name
(dict/object), a function or ``nn.Module`` of the output (or of the output and the inputs), or a
list of these applied in turn (a pipeline)."""


def available(names: Sequence[str], limit: int = 60) -> str:
    """``names`` as a short printable list (the first ``limit``, then a count)."""
    shown = ", ".join(repr(n) for n in names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"[{shown}{more}]"


def wants_inputs(fn: Callable[..., Any]) -> str | None:
    """How a function also receives the inputs dict: ``"positional"`` when it has two or more
    positional parameters without defaults (``lambda out, inputs: ...``), ``"keyword"`` when it
    has a parameter called ``inputs`` after the first, else ``None`` (the output alone)."""
    target = fn.forward if isinstance(fn, nn.Module) else fn
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is p.empty]
    if len(required) >= 2:
        return "positional"
    if any(p.name == "inputs" for p in params[1:]):
        return "keyword"
    return None


def call_selector(fn: Callable[..., Any], value: Any, inputs: Mapping[str, Tensor]) -> Any:
    """``fn(value)``, ``fn(value, inputs)`` or ``fn(value, inputs=inputs)`` (see wants_inputs)."""
    mode = wants_inputs(fn)
    if mode == "positional":
        return fn(value, inputs)
    if mode == "keyword":
        return fn(value, inputs=inputs)
    return fn(value)


def _check_one(selector: Any, name: str) -> Any:
    if isinstance(selector, str) or (callable(selector) and not isinstance(selector, Tensor)):
        return selector
    if not isinstance(selector, bool):
        try:
            return operator.index(selector)  # NumPy integers and 0-d integer tensors too
        except TypeError:
            pass
    raise TypeError(
        f"{name}: expected an index (int; a bool is not an index), a key or attribute name (str), "
        f"a function or nn.Module of the model's output, or a list of these (a pipeline), "
        f"got {describe(selector)}"
    )


def check_selector(selector: Any, name: str) -> Any:
    """A checked selector: one of the forms of :data:`Selector`; a list becomes a tuple.

    Raises:
        TypeError: anything else (e.g. ``True``, which is not an index), naming ``name``.
        ValueError: an empty pipeline.
    """
    if isinstance(selector, (list, tuple)):
        if not selector:
            raise ValueError(f"{name}: an empty list selects nothing; give at least one selector")
        return tuple(_check_one(s, f"{name}[{i}]") for i, s in enumerate(selector))
    return _check_one(selector, name)


def selector_modules(selector: Any) -> list[nn.Module]:
    """The ``nn.Module`` parts of a checked selector (to register on the wrapper)."""
    parts = selector if isinstance(selector, tuple) else (selector,)
    return [s for s in parts if isinstance(s, nn.Module)]


def _first_step(output: Any, option: str) -> str:
    """How to select a tensor out of a container ``output`` before a function or module."""
    if isinstance(output, (tuple, list)):
        return (
            f"the model returns a {type(output).__name__}: put the index of the tensor first, "
            f"e.g. {option}=[0, ...] for element 0"
        )
    if isinstance(output, Mapping):
        keys = [str(k) for k in output]
        first = repr(keys[0]) if keys else "'<key>'"
        return f"put the key of the tensor first, e.g. {option}=[{first}, ...]"
    return f"select the tensor first, e.g. {option}=['<attribute>', ...]"


def _call(selector: Any, output: Any, what: str, inputs: Mapping[str, Tensor], option: str) -> Any:
    """Call a function or module selector; one that fails on a container (a tuple output given
    to a classifier) raises a TypeError naming the selector's position and what it got."""
    try:
        with raised_in(f"{what}, a selector given to avrobust.wrap"):
            return call_selector(selector, output, inputs)
    except (TypeError, AttributeError) as error:
        if not isinstance(output, (tuple, list, Mapping)):  # a tensor, an AVOutput: its own error
            raise
        raise TypeError(
            f"{what}: the selector {describe(selector)} got {describe(output)}, not a tensor, "
            f"and raised {type(error).__name__}: {error}; {_first_step(output, option)}"
        ) from error


def _apply(output: Any, selector: Any, what: str, inputs: Mapping[str, Tensor], option: str) -> Any:
    if callable(selector) and not isinstance(selector, (int, str)):
        return _call(selector, output, what, inputs, option)
    if isinstance(selector, int) and isinstance(output, (tuple, list)):
        if not -len(output) <= selector < len(output):
            raise ValueError(
                f"{what}: index {selector} is out of range for a model output of "
                f"{len(output)} elements"
            )
        return output[selector]
    if isinstance(selector, str) and isinstance(output, Mapping):
        if selector not in output:
            raise ValueError(
                f"{what}: key {selector!r} not in the model's output; "
                f"available keys: {available([str(k) for k in output])}"
            )
        return output[selector]
    if isinstance(selector, str) and hasattr(output, selector):
        return getattr(output, selector)
    raise ValueError(f"{what}: cannot apply selector {selector!r} to {describe(output)}")


def pick(output: Any, selector: Any, what: str, inputs: Mapping[str, Tensor]) -> Tensor:
    """Take one tensor out of a model's raw output, with an error that says what exists."""
    if isinstance(selector, tuple):
        value = output
        for i, part in enumerate(selector):
            value = _apply(value, part, f"{what}[{i}]", inputs, what)
    else:
        value = _apply(output, selector, what, inputs, what)
    if not isinstance(value, Tensor):
        raise TypeError(f"{what}: expected a tensor, got {describe(value)}")
    return value


def default_logits(output: Any) -> Tensor:
    """The logits of an output without a selector: the tensor itself, element 0 of a tuple, key
    ``"logits"`` of a dict, or attribute ``.logits``."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    if isinstance(output, Mapping):
        if "logits" in output and isinstance(output["logits"], Tensor):
            return output["logits"]
        keys = available([str(k) for k in output])
        raise ValueError(
            f"model output: found no 'logits' key among {keys}; "
            "pass logits='<key>' to avrobust.wrap"
        )
    if isinstance(getattr(output, "logits", None), Tensor):
        return output.logits
    raise TypeError(
        f"model output: cannot find logits in {describe(output)}; wrap the model with "
        "avrobust.wrap(model, logits=<index, key or function>)"
    )
