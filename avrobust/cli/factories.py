"""A researcher's own code on the command line: ``--model`` / ``--data`` as ``MODULE:FACTORY``.

``MODULE`` is either a path to a ``.py`` file (``my_model.py``, ``models/av.py``), imported from
that file without installing it (its folder is importable while it loads and while the factory
runs, so it may import its neighbours), or a dotted module path (``mypkg.models``), imported from
the working folder or the installed packages, as ``python -m`` would. ``FACTORY`` names a
callable in it (``build``, or a dotted path such as ``Models.small``), called with no arguments.
The colon tells this form apart from a model name (``tiny``) or data source (``synthetic:N``, an
AVA folder).

Any failure (no such module or file, the import fails, no such callable, not callable, the
factory raises) is a :class:`FactoryError` whose message is one line; the command reports it
naming the option, with exit status 2.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

__all__ = ["FACTORY_FORM", "FactoryError", "call_factory", "is_factory", "split_factory"]

#: how the factory form is written, for error and help messages.
FACTORY_FORM = (
    "MODULE:FACTORY (a .py file or a dotted module path, and a callable in it: "
    "my_model.py:build or mypkg.models:build)"
)


class FactoryError(ValueError):
    """A ``MODULE:FACTORY`` that cannot be imported or called; the message is one line."""


def is_factory(text: str) -> bool:
    """Whether ``text`` is written as ``MODULE:FACTORY`` (it has a colon and is not
    ``synthetic:N`` nor an existing folder)."""
    return ":" in text and not text.startswith("synthetic:") and not os.path.isdir(text)


def split_factory(text: str) -> tuple[str, str]:
    """``(module, factory)`` of ``"MODULE:FACTORY"`` (split at the last colon).

    Raises:
        FactoryError: an empty module, or a factory that is not a dotted Python name.
    """
    module, _, name = text.rpartition(":")
    if not module or not name or not all(part.isidentifier() for part in name.split(".")):
        raise FactoryError(f"expected {FACTORY_FORM}, got {text!r}")
    return module, name


def call_factory(text: str, *, seed: int) -> Any:
    """Import ``MODULE`` and call its ``FACTORY()`` under ``torch.manual_seed(seed)`` (the global
    random state is restored after), so a factory that initialises weights gives the same ones on
    every run.

    Args:
        text: ``"MODULE:FACTORY"`` (:func:`split_factory`).
        seed: the seed set while the factory runs.

    Returns:
        What the factory returned (checked by the caller).

    Raises:
        FactoryError: the module or the factory cannot be found, imported or called, or the
            factory raised (the message says which, in one line).
    """
    import torch

    module_text, name = split_factory(text)
    folder = _folder_of(module_text)
    with _importable(folder):
        module = _import(module_text)
        factory = _attribute(module, module_text, name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                return factory()
            except Exception as exc:
                raise FactoryError(f"{text}() raised {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _is_file(module_text: str) -> bool:
    return module_text.endswith(".py") or os.sep in module_text or "/" in module_text


def _folder_of(module_text: str) -> str:
    """The folder importable while the module loads: the file's own, or the working folder."""
    if _is_file(module_text):
        return os.path.dirname(os.path.abspath(module_text))
    return os.getcwd()


@contextmanager
def _importable(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` inside the block; ``sys.path`` as it was after."""
    saved = list(sys.path)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path[:] = saved


def _import(module_text: str) -> ModuleType:
    if _is_file(module_text):
        return _import_file(module_text)
    try:
        return importlib.import_module(module_text)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_text + ".").startswith(exc.name + "."):
            raise FactoryError(
                f"no module named {exc.name!r} in the working folder {os.getcwd()!r} or the "
                f"installed packages; for a file, give its path: {module_text}.py:..."
            ) from exc
        raise FactoryError(f"importing {module_text} failed: {_one_line(exc)}") from exc
    except Exception as exc:
        raise FactoryError(f"importing {module_text} failed: {_one_line(exc)}") from exc


def _import_file(path: str) -> ModuleType:
    """The module of the file ``path``, imported once per file under a private name."""
    if not os.path.isfile(path):
        raise FactoryError(f"{path}: no such file (working folder {os.getcwd()!r})")
    full = os.path.abspath(path)
    stem = os.path.splitext(os.path.basename(full))[0]
    digest = hashlib.sha256(full.encode()).hexdigest()[:12]
    name = f"_avrobust_user_{''.join(c if c.isalnum() else '_' for c in stem)}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise FactoryError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise FactoryError(f"importing {path} failed: {_one_line(exc)}") from exc
    return module


def _attribute(module: ModuleType, module_text: str, name: str) -> Callable[[], Any]:
    value: Any = module
    for part in name.split("."):
        if not hasattr(value, part):
            known = sorted(
                n
                for n in dir(module)
                if not n.startswith("_")
                and callable(getattr(module, n))
                and getattr(getattr(module, n), "__module__", None) == module.__name__
            )
            listed = f"; its callables: {', '.join(known)}" if known else ""
            raise FactoryError(f"{module_text} has no {name!r}{listed}")
        value = getattr(value, part)
    if not callable(value):
        raise FactoryError(
            f"{module_text}:{name} is not callable but {type(value).__name__} {value!r}; expected "
            "a function or class that takes no arguments"
        )
    return value  # type: ignore[no-any-return]
