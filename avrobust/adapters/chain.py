"""``wrap(..., forward=...)``: how the model is called, for models without a usable ``forward``.

A *route* says how the modality inputs reach a callable (positions and keywords, from
``wrap(model, inputs)``); a *chain* is a list of steps, each called with the previous result.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .._checks import describe
from .selectors import available

__all__ = [
    "Routes",
    "call_routed",
    "chain_modules",
    "check_forward",
    "check_names",
    "has_forward",
    "run_chain",
]

Routes = dict[str, int | str] | None
"""Modality name -> position (int) or keyword (str); ``None`` passes the inputs as keywords."""


def has_forward(model: nn.Module) -> bool:
    """Whether the model's class defines a ``forward`` (not PyTorch's placeholder)."""
    return getattr(type(model), "forward", None) is not nn.Module.forward


def _methods(model: nn.Module) -> list[str]:
    names = [n for n in dir(type(model)) if not n.startswith("_")]
    return [n for n in names if callable(getattr(type(model), n, None)) and n not in dir(nn.Module)]


def _check_method(model: nn.Module, name: str, where: str) -> str:
    if not hasattr(model, name):
        methods = _methods(model)
        close = difflib.get_close_matches(name, methods, n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"{where}: the model ({type(model).__name__}) has no method {name!r}.{hint} "
            f"Its methods: {available(methods)}"
        )
    if not callable(getattr(model, name)):
        raise TypeError(
            f"{where}: model.{name} is {describe(getattr(model, name))}, not a method; name a "
            "method of the model, or give a function"
        )
    return name


def _check_step(model: nn.Module, step: Any, where: str, names: Sequence[str] | None) -> Any:
    if isinstance(step, str):
        return _check_method(model, step, where)
    if isinstance(step, Mapping):
        if not step:
            raise ValueError(f"{where}: an empty per-modality step does nothing")
        for key, value in step.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: modality names must be strings, got {describe(key)}")
            if names is not None and key not in names:
                raise ValueError(
                    f"{where}: a step for modality {key!r}, but the inputs are {list(names)}"
                )
            if isinstance(value, Mapping) or not (isinstance(value, str) or callable(value)):
                raise TypeError(
                    f"{where}[{key!r}]: expected a method name (str) or a function, "
                    f"got {describe(value)}"
                )
            if isinstance(value, str):
                _check_method(model, value, f"{where}[{key!r}]")
        return dict(step)
    if callable(step):
        return step
    raise TypeError(
        f"{where}: expected a method name (str), a function or nn.Module, or a dict modality -> "
        f"method name or function (a per-modality step), got {describe(step)}"
    )


def check_forward(model: nn.Module, forward: Any, names: Sequence[str] | None) -> Any:
    """``None``, a callable ``(model, **inputs)``, or a checked chain (a tuple of steps).

    Raises:
        TypeError: no ``forward`` on the model and none given (listing its ``forward*``
            methods); a step of the wrong type or an attribute that is not a method.
        ValueError: an empty chain; a method the model lacks (with close matches); a
            per-modality step for a modality the inputs do not have.
    """
    if forward is None:
        if not has_forward(model):
            chain = [n for n in _methods(model) if n.startswith("forward")]
            raise TypeError(
                f"model: {type(model).__name__} defines no forward, so it cannot be called; pass "
                f"forward= to avrobust.wrap: a function (model, **inputs) -> output, or a chain "
                f"of its methods such as {available(chain) if chain else '[...]'} (each step "
                "gets the previous step's result; see docs/wrapping.md)"
            )
        return None
    if isinstance(forward, str):
        forward = [forward]
    if isinstance(forward, (list, tuple)):
        if not forward:
            raise ValueError("forward: an empty chain; give at least one method name or function")
        return tuple(_check_step(model, s, f"forward[{i}]", names) for i, s in enumerate(forward))
    if isinstance(forward, Mapping) or not callable(forward):
        raise TypeError(
            f"forward: expected a function (model, **inputs) -> output, a method name, or a list "
            f"of steps (method names, functions, nn.Modules, dicts modality -> step), "
            f"got {describe(forward)}"
        )
    return forward


def chain_modules(forward: Any) -> list[nn.Module]:
    """The ``nn.Module`` steps of a checked ``forward`` (to register on the wrapper)."""
    if isinstance(forward, nn.Module):  # a module given as forward(model, **inputs)
        return [forward]
    if not isinstance(forward, tuple):
        return []
    found: list[nn.Module] = []
    for step in forward:
        parts = step.values() if isinstance(step, dict) else [step]
        found += [p for p in parts if isinstance(p, nn.Module)]
    return found


def check_names(routes: Routes, inputs: Mapping[str, Tensor]) -> None:
    """Raise a TypeError when the inputs' names differ from the routed ones (listing both)."""
    if routes is None:
        return
    unknown = sorted(set(inputs) - set(routes))
    missing = sorted(set(routes) - set(inputs))
    if unknown or missing:
        raise TypeError(
            f"inputs: expected modalities {sorted(routes)}, got {sorted(inputs)} "
            f"(unknown: {unknown}, missing: {missing})"
        )


def call_routed(fn: Callable[..., Any], routes: Routes, inputs: Mapping[str, Tensor]) -> Any:
    """Call ``fn`` with the modality inputs placed as ``routes`` says.

    Raises:
        TypeError: the inputs' names differ from the routed ones (listing both).
    """
    if routes is None:
        return fn(**inputs)
    check_names(routes, inputs)
    positional = sorted((r, n) for n, r in routes.items() if isinstance(r, int))
    args = [inputs[n] for _, n in positional]
    kwargs = {r: inputs[n] for n, r in routes.items() if isinstance(r, str)}
    return fn(*args, **kwargs)


def _resolve(model: nn.Module, step: Any) -> Callable[..., Any]:
    return getattr(model, step) if isinstance(step, str) else step  # type: ignore[no-any-return]


def run_chain(
    model: nn.Module, chain: tuple[Any, ...], routes: Routes, inputs: Mapping[str, Tensor]
) -> Any:
    """Run a checked chain: the first step gets the modality inputs; each next step the previous
    result (a dict of modality inputs routed as the model's forward, a tuple or list unpacked
    as positional arguments, anything else as one argument). A dict step applies a step per
    modality and keeps the result a dict of modality inputs."""
    value: Any = dict(inputs)
    for i, step in enumerate(chain):
        if isinstance(step, dict):
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"forward[{i}]: a per-modality step needs the modality inputs (a dict), but "
                    f"the step before returned {describe(value)}"
                )
            missing = sorted(set(step) - set(value))
            if missing:
                raise ValueError(f"forward[{i}]: no input {missing}; the inputs: {sorted(value)}")
            value = {**value, **{k: _resolve(model, s)(value[k]) for k, s in step.items()}}
            continue
        fn = _resolve(model, step)
        if isinstance(value, Mapping):
            value = call_routed(fn, routes, value)
        elif isinstance(value, (tuple, list)):
            value = fn(*value)
        else:
            value = fn(value)
    return value
