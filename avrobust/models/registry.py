"""A registry of model factories: ``create_model("talknet")``, ``list_models()``.

Model families register their variants when :mod:`avrobust.models` is imported; a user can add
their own with :func:`register_model`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from torch import nn

from .._checks import check_choice, describe

__all__ = ["create_model", "list_models", "register_model"]

ModelFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str, factory: ModelFactory, *, overwrite: bool = False) -> ModelFactory:
    """Register ``factory`` under ``name`` (lower case).

    Args:
        name: the variant name used by :func:`create_model`.
        factory: called as ``factory(**kwargs)``; returns the model.
        overwrite: replace an existing entry instead of raising.

    Returns:
        ``factory`` (so this also works as a plain call in a decorator-like way).

    Raises:
        TypeError: ``name`` not a string or ``factory`` not callable.
        ValueError: ``name`` already registered and not ``overwrite``.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty string, got {describe(name)}")
    if not callable(factory):
        raise TypeError(
            f"factory: expected a callable returning an nn.Module, got {describe(factory)}"
        )
    key = name.lower()
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"name: {key!r} is already registered (pass overwrite=True to replace it)")
    _REGISTRY[key] = factory
    return factory


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names, sorted, optionally filtered by a shell-style ``pattern`` (``"*talknet"``).

    Raises:
        TypeError: ``pattern`` is neither a string nor ``None``.
    """
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(
            f"pattern: expected a shell-style pattern (str) or None, got {describe(pattern)}"
        )
    names = sorted(_REGISTRY)
    return names if pattern is None else fnmatch.filter(names, pattern.lower())


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models` (``"talknet"``, ``"nc_talknet"``,
            ``"spec_talknet"``, ``"tiny"``, ...).
        **kwargs: passed to the factory (for TalkNet variants: configuration fields such as
            ``face_size=32``).

    Returns:
        A new model (randomly initialised; load weights with e.g. ``TalkNet.from_checkpoint``).

    Raises:
        ValueError: unknown name (the message lists the registered ones).

    Example:
        >>> create_model("tiny", face_size=32).config.face_size
        32
    """
    key = check_choice(name, "name", _REGISTRY)
    return _REGISTRY[key](**kwargs)
