"""The demo folder's manifest: its name, what it records of a run's settings, the hash of a file,
and the conflict raised before any work (re-exported by :mod:`avrobust.demo.folder`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .._checks import describe

__all__ = [
    "GRID_ONLY",
    "MANIFEST",
    "RECOMPUTED",
    "FolderConflict",
    "check_out_dir",
    "settings_of",
]

MANIFEST = ".avrobust-manifest.json"
#: ``DemoConfig`` fields that choose only which attack cells or training runs are computed, or how
#: they are judged: a rerun with other values reuses the folder's models and the matching cells
#: (``seeds``: the runs it shares with the earlier run, the first ones).
GRID_ONLY = ("eps_grid", "table_eps", "tie_margin", "extras", "seeds")
#: ``DemoConfig`` fields whose change only makes some results stale: a rerun with other values
#: keeps the folder's models and recomputes what depends on them (another ``surrogate`` is
#: another cached model, and its transfer cells are dropped when it is trained; other worst-case
#: settings drop the worst-case cells, :func:`drop_stale_worst_case`)
RECOMPUTED = (
    "surrogate",
    "worst_case_steps",
    "worst_case_queries",
    "worst_case_restarts",
    "worst_case_kappa",
    "worst_curve_steps",
)


class FolderConflict(ValueError):
    """The demo folder cannot be used as asked, found before any work.

    Attributes:
        differences: ``{DemoConfig field: (value in the folder, value asked)}``; empty when the
            conflict is about files.
        paths: the files (relative to the folder) the demo did not write, where it would write.
    """

    def __init__(
        self,
        message: str,
        differences: Mapping[str, tuple[Any, Any]] | None = None,
        paths: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.differences = dict(differences or {})
        self.paths = list(paths)


def settings_of(config: Any) -> dict[str, Any]:
    """The settings a demo folder's models and cells depend on, JSON-ready (tuples as lists)."""
    data = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in GRID_ONLY and f.name != "models"
    }
    data["models"] = [_recipe(s) for s in config.models]
    return json.loads(json.dumps(data))


def _recipe(spec: Any) -> dict[str, Any]:
    """A model recipe as the manifest records it: a TalkNet's without its ``architecture``, as
    manifests written before that field (and its cache key) have it."""
    recipe = dataclasses.asdict(spec)
    if recipe.get("architecture") == "talknet":
        del recipe["architecture"]
    return recipe


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed(paths: list[str], shown: int) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def check_out_dir(out_dir: Any) -> str:
    """``out_dir`` as a ``str`` path, checked: a path (``str`` or ``os.PathLike``), not empty,
    not a file.

    Raises:
        TypeError: not a path.
        ValueError: an empty (or blank) string.
        NotADirectoryError: an existing file.
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a folder path, got {describe(out_dir)}")
    out = os.fspath(out_dir)
    if not isinstance(out, str):
        raise TypeError(f"out_dir: expected a str path, got {describe(out)}")
    if not out.strip():  # not the current folder in silence
        raise ValueError(
            f"out_dir: expected a folder path, got an empty string {out!r}; give a folder, "
            "e.g. 'avrobust-demo' ('.' for the current one)"
        )
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"out_dir: expected a folder, got {out!r}, which is a file")
    return out
