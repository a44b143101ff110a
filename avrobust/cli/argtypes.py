"""Argument types of the ``avrobust`` command: a bad value is refused at parsing, before any work.

Each function turns one command-line string into a value or raises
``argparse.ArgumentTypeError``, which argparse reports as ``argument --NAME: <message>`` and exit
status 2. The names an option accepts come from the library's registries (:func:`rule_names`,
:func:`model_names`, :func:`modality_names`, :func:`avil_term_names`).
:func:`out_folder_problem` checks an output folder the same way, for a one-line error.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from ..attacks import push_pull_budgets
from ..demo.checks import MAX_SEED, avil_term_names, rule_names
from .factories import FACTORY_FORM, FactoryError, is_factory, split_factory

__all__ = [
    "MAX_EPS_AV",
    "MAX_SEED",
    "avil_term_names",
    "csv_list",
    "data_source",
    "eps_list",
    "eps_value",
    "modality_names",
    "modality_sets",
    "model_names",
    "model_source",
    "name_list",
    "out_folder_problem",
    "positive_float",
    "positive_int",
    "rule_names",
    "seed",
]

#: the largest ``eps_av`` accepted: at 20000 the Push-Pull budgets (audio ``eps_av·1e-4``, video
#: ``eps_av·0.1`` grey levels) already reach every value of both ranges; larger ones only overflow.
MAX_EPS_AV = 1e5


def csv_list(kind: type) -> Callable[[str], list[Any]]:
    """A comma-separated list of ``kind`` values (at least one)."""

    def parse(text: str) -> list[Any]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        try:
            return [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__} values, got {text!r}"
            ) from None

    return parse


def _number(text: str, cast: Callable[[str], Any], ok: Callable[[Any], bool], what: str) -> Any:
    """``cast(text)`` if it parses and is ``ok``, else an error saying ``expected <what>``."""
    try:
        value = cast(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return int(_number(text, int, lambda v: v >= 1, "a positive integer"))


def seed(text: str) -> int:
    """An integer in ``[0, MAX_SEED]``."""
    return int(_number(text, int, lambda v: 0 <= v <= MAX_SEED, f"an integer in [0, {MAX_SEED}]"))


def positive_float(text: str) -> float:
    """A finite number > 0."""
    ok = lambda v: math.isfinite(v) and v > 0  # noqa: E731
    return float(_number(text, float, ok, "a finite number > 0"))


def _eps(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 < value <= MAX_EPS_AV else None


_EPS_RANGE = (
    f"in (0, {MAX_EPS_AV:g}] (at 20000 the budgets already cover the whole audio and video ranges)"
)


def eps_value(text: str) -> float:
    """One ``eps_av`` budget: a finite number in ``(0, MAX_EPS_AV]``."""
    value = _eps(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected an eps_av value {_EPS_RANGE}, got {text!r}")
    return value


def eps_list(text: str) -> list[float]:
    """A comma-separated list of distinct ``eps_av`` budgets."""
    values = [_eps(t) for t in csv_list(str)(text)]
    if any(v is None for v in values):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of eps_av values {_EPS_RANGE}, got {text!r}"
        )
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct eps_av values, got {text!r}")
    return [v for v in values if v is not None]


def data_source(text: str) -> str:
    """``synthetic``, ``synthetic:N`` (N >= 1 clips), ``MODULE:FACTORY`` (:mod:`.factories`;
    imported later) or a folder path (checked later)."""
    if text.startswith("synthetic:"):
        count = text.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(
                f"expected synthetic:N with N >= 1 a number of clips, got {text!r}"
            )
    elif is_factory(text):
        _factory_syntax(text)
    return text


def model_source(text: str) -> str:
    """A registered model name (:func:`model_names`, case-insensitive) or ``MODULE:FACTORY``
    (:mod:`.factories`; imported later)."""
    if is_factory(text):
        _factory_syntax(text)
        return text
    names = model_names()
    if text.lower() not in names:
        raise argparse.ArgumentTypeError(
            f"expected a model name among {','.join(names)}, or {FACTORY_FORM}, got {text!r}"
        )
    return text.lower()


def _factory_syntax(text: str) -> None:
    try:
        split_factory(text)
    except FactoryError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def out_folder_problem(path: str) -> str | None:
    """Why ``path`` cannot be an output folder (empty, a file, not writable), or ``None`` if it
    can."""
    if not path.strip():  # e.g. --out "$OUT" with OUT unset: not the current folder in silence
        return f"expected a folder path, got an empty string {path!r}"
    if "\0" in path:
        return f"{path!r} contains a NUL character, which no file system allows in a path"
    if os.path.exists(path) and not os.path.isdir(path):
        return f"{path!r} is a file, not a folder"
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{path!r} cannot be created: {existing!r} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = (
            "is"
            if existing == os.path.abspath(path)
            else f"would be made in {existing!r}, which is"
        )
        return f"{path!r} {what} not writable"
    return None


def model_names() -> list[str]:
    """The registered model names (:func:`avrobust.models.list_models`)."""
    from ..models import list_models

    return list_models()


def modality_names() -> list[str]:
    """The modalities the evaluation's budgets cover (the keys of
    :func:`avrobust.attacks.push_pull_budgets`: the model's input names)."""
    return list(push_pull_budgets(1.0))


def name_list(
    choices: Callable[[], Sequence[str]],
    what: str,
    *,
    also: Sequence[str] = (),
    distinct: bool = False,
) -> Callable[[str], list[str]]:
    """A comma-separated list of names among ``choices()`` or ``also`` (lower-cased); the error
    lists ``choices()``, then ``also``. With ``distinct``, a name given twice is refused."""

    def parse(text: str) -> list[str]:
        names = [n.lower() for n in csv_list(str)(text)]
        known = list(choices())
        bad = [n for n in names if n not in known and n not in also]
        if bad:
            others = f"; or {','.join(also)}" if also else ""
            raise argparse.ArgumentTypeError(
                f"expected {what} among {','.join(known)}, got {bad}{others}"
            )
        twice = sorted({n for n in names if names.count(n) > 1})
        if distinct and twice:
            raise argparse.ArgumentTypeError(
                f"expected distinct {what} among {','.join(known)}, got {text!r} ({twice} more "
                "than once)"
            )
        return names

    return parse


def modality_sets(text: str) -> list[str]:
    """A comma-separated list of attacked modality sets, each modalities joined by ``+``."""
    sets = csv_list(str)(text)
    known = modality_names()
    for item in sets:
        if any(part not in known for part in item.split("+")):
            raise argparse.ArgumentTypeError(
                f"expected {', '.join(known)} or {'+'.join(known)}, got {item!r}"
            )
    return sets
