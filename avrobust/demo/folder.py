"""The demo's output folder: the demo deletes or overwrites only the files it wrote there.

``DIR/.avrobust-manifest.json`` records the settings of the run that made the folder and every
file the demo wrote (its path relative to ``DIR``, size in bytes and SHA-256; ``null`` while a run
is writing it). Before any work, :class:`DemoFolder` refuses a rerun with other settings (except
the budget grid, which only adds attack cells) and a file the demo did not write where it would
write one; starting afresh deletes only the recorded files that still hold what the demo wrote
(one changed since is kept, and said; if the run would overwrite it, the run stops first), never
a user's file or sub-folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._checks import describe

__all__ = [
    "GRID_ONLY",
    "MANIFEST",
    "RECOMPUTED",
    "DemoFolder",
    "FolderConflict",
    "check_out_dir",
    "drop_results",
    "drop_stale_worst_case",
    "open_demo_folder",
    "settings_of",
]

MANIFEST = ".avrobust-manifest.json"
_FORMAT = 1
#: ``DemoConfig`` fields that choose only which attack cells are computed, or how they are judged:
#: a rerun with other values reuses the folder's models and the matching cells.
GRID_ONLY = ("eps_grid", "table_eps", "tie_margin", "extras")
#: ``DemoConfig`` fields whose change only makes some results stale: a rerun with other values
#: keeps the folder's models and recomputes what depends on them (another ``surrogate`` is
#: another cached model, and its transfer cells are dropped when it is trained; other worst-case
#: settings drop the worst-case cells, :func:`drop_stale_worst_case`)
RECOMPUTED = ("surrogate", "worst_case_steps", "worst_case_queries")
_WORST_CASE = ("worst_case_steps", "worst_case_queries")
_FOLDERS = ("models", "results", "xab_test")


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


class DemoFolder:
    """What the demo wrote in ``out`` (from its manifest), and the checks made before any work.

    Args:
        out: the demo's output folder (it need not exist yet).

    Raises:
        ValueError: the manifest is unreadable, or names a path outside ``out``.
    """

    def __init__(self, out: str) -> None:
        self.out = out
        self.path = os.path.join(out, MANIFEST)
        self.settings: dict[str, Any] | None = None
        self.files: dict[str, dict[str, Any]] = {}
        if os.path.exists(self.path):
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            files, settings = data["files"], data.get("settings")
            if not isinstance(files, dict) or not (settings is None or isinstance(settings, dict)):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(
                f"out_dir: {self.path} is not a manifest avrobust demo wrote (unreadable or "
                "edited); move it away to use this folder"
            ) from None
        for rel in files:
            norm = os.path.normpath(rel)
            if not isinstance(rel, str) or os.path.isabs(rel) or norm.split(os.sep)[0] == "..":
                raise ValueError(
                    f"out_dir: {self.path} lists {rel!r}, a path outside the folder; the demo "
                    "only ever records files inside it, so the manifest was edited: move it away"
                )
        self.settings, self.files = settings, files

    def check(self, settings: Mapping[str, Any], planned: Iterable[str], *, fresh: bool) -> None:
        """Refuse other settings (unless ``fresh``) and foreign files at ``planned`` paths.

        Raises:
            FolderConflict: naming the differing settings or the foreign files.
        """
        if not fresh and self.settings is not None:
            differs = {
                k: (self.settings.get(k), settings.get(k))
                for k in sorted(set(settings) | set(self.settings))
                if settings.get(k) != self.settings.get(k) and k not in RECOMPUTED
            }
            if differs:
                text = "; ".join(f"{k} is {a!r} there, {b!r} here" for k, (a, b) in differs.items())
                raise FolderConflict(
                    f"out_dir: {self.out} holds a demo run with other settings ({text}); pass "
                    "retrain=True to start afresh there (only the files the demo wrote are "
                    "deleted) or another out_dir",
                    differs,
                )
        foreign = [
            rel
            for rel in planned
            if rel not in self.files and os.path.lexists(os.path.join(self.out, rel))
        ]
        if foreign:
            raise FolderConflict(
                f"out_dir: {self.out} holds {', '.join(foreign[:4])}"
                f"{f' and {len(foreign) - 4} more' if len(foreign) > 4 else ''}, which avrobust "
                f"demo did not write (not in {MANIFEST}) and would overwrite; move them away or "
                "choose another folder",
                paths=foreign,
            )

    def clear(self, say: Callable[[str], None], planned: Iterable[str] = ()) -> list[str]:
        """Delete the recorded files that are still plain files (no folder, no link) and hold
        what the demo wrote; say which. A recorded file whose content no longer matches its
        hash (changed since) is kept, said, and is the user's from then on.

        Raises:
            FolderConflict: such a changed file is at one of the ``planned`` paths (the run
                would overwrite it); nothing is deleted.
        """
        present = [
            rel
            for rel in sorted(self.files)
            if os.path.isfile(os.path.join(self.out, rel))
            and not os.path.islink(os.path.join(self.out, rel))
        ]
        changed = [rel for rel in present if self._changed(rel)]
        written = set(planned)
        overwritten = [rel for rel in changed if rel in written]
        if overwritten:
            raise FolderConflict(
                f"out_dir: {self.out} holds {_listed(overwritten, 4)}, which avrobust demo wrote "
                "but which changed since (its content no longer matches the manifest): starting "
                "afresh keeps it, and this run would overwrite it; move it away or choose "
                "another folder",
                paths=overwritten,
            )
        doomed = [rel for rel in present if rel not in changed]
        if changed:
            say(
                f"starting afresh: keeping {len(changed)} files in {self.out} that changed since "
                f"the demo wrote them: {_listed(changed, 6)}"
            )
        if doomed:
            say(
                f"starting afresh: deleting {len(doomed)} files the demo wrote in {self.out}: "
                f"{_listed(doomed, 6)}"
            )
        for rel in doomed:
            os.remove(os.path.join(self.out, rel))
        self.files = {}
        self.settings = None
        self._save()
        return doomed

    def _changed(self, rel: str) -> bool:
        """Whether the recorded file ``rel`` no longer holds what the demo wrote (``False`` for
        one without a hash: a run was writing it)."""
        entry = self.files.get(rel)
        if not isinstance(entry, dict) or entry.get("sha256") is None:
            return False
        path = os.path.join(self.out, rel)
        if os.path.getsize(path) != entry.get("size"):
            return True
        return bool(_sha256(path) != entry["sha256"])

    def claim(self, settings: Mapping[str, Any], planned: Iterable[str]) -> None:
        """Record the settings and the paths this run will write (before writing them; their
        hashes are dropped until :meth:`record`, as the run may change them)."""
        self.settings = dict(settings)
        for rel in planned:
            self.files[rel] = {"size": None, "sha256": None}
        self._save()

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """``{path: (size, mtime_ns)}`` of the files present that the demo did not write."""
        return {
            rel: (st.st_size, st.st_mtime_ns)
            for rel, st in self._present().items()
            if rel not in self.files
        }

    def record(self, before: Mapping[str, tuple[int, int]]) -> list[str]:
        """After a run: record every file it wrote (new, recorded, or a foreign one replaced);
        warn about the foreign files it replaced, and return them."""
        replaced = []
        for rel, st in self._present().items():
            if rel in before and before[rel] == (st.st_size, st.st_mtime_ns):
                continue  # the user's, untouched
            if rel in before:
                replaced.append(rel)
            self.files[rel] = {"size": st.st_size, "sha256": _sha256(os.path.join(self.out, rel))}
        self.files = {
            k: v for k, v in self.files.items() if os.path.isfile(os.path.join(self.out, k))
        }
        self._save()
        if replaced:
            warnings.warn(
                f"avrobust demo overwrote {', '.join(replaced)} in {self.out}, which it had not "
                "written before",
                stacklevel=3,
            )
        return replaced

    def _present(self) -> dict[str, os.stat_result]:
        found: dict[str, os.stat_result] = {}
        if not os.path.isdir(self.out):
            return found
        with os.scandir(self.out) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.name != MANIFEST:
                    found[entry.name] = entry.stat(follow_symlinks=False)
        for folder in _FOLDERS:
            for root, _, names in os.walk(os.path.join(self.out, folder)):
                for name in names:
                    path = os.path.join(root, name)
                    if os.path.isfile(path) and not os.path.islink(path):
                        rel = os.path.relpath(path, self.out).replace(os.sep, "/")
                        found[rel] = os.stat(path)
        return found

    def _save(self) -> None:
        os.makedirs(self.out, exist_ok=True)
        data = {"format": _FORMAT, "settings": self.settings, "files": self.files}
        temporary = self.path + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(temporary, self.path)


def _listed(paths: list[str], shown: int) -> str:
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def check_out_dir(out_dir: Any) -> str:
    """``out_dir`` as a ``str`` path, checked: a path (``str`` or ``os.PathLike``), not a file.

    Raises:
        TypeError: not a path.
        NotADirectoryError: an existing file.
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir: expected a folder path, got {describe(out_dir)}")
    out = os.fspath(out_dir)
    if not isinstance(out, str):
        raise TypeError(f"out_dir: expected a str path, got {describe(out)}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"out_dir: expected a folder, got {out!r}, which is a file")
    return out


def open_demo_folder(
    out: str,
    settings: Mapping[str, Any],
    planned: list[str],
    *,
    fresh: bool,
    say: Callable[[str], None],
) -> tuple[DemoFolder, dict[str, tuple[int, int]]]:
    """Check the folder against a run's ``settings`` and ``planned`` paths before any work; start
    afresh if asked; claim the paths. Returns the folder and its foreign files (see
    :meth:`DemoFolder.record`).

    Raises:
        FolderConflict: see :meth:`DemoFolder.check`.
    """
    folder = DemoFolder(out)
    folder.check(settings, planned, fresh=fresh)
    if fresh:
        folder.clear(say, planned)
    elif folder.settings is not None:
        drop_stale_worst_case(folder, settings, say)
        outputs = sorted(p for p in folder.files if "/" not in p)
        if outputs:
            shown = ", ".join(outputs[:3]) + (", ..." if len(outputs) > 3 else "")
            say(f"replacing the {len(outputs)} outputs of the previous run in {out}: {shown}")
    before = folder.snapshot()
    folder.claim(settings, planned)
    return folder, before


def drop_stale_worst_case(
    folder: DemoFolder, settings: Mapping[str, Any], say: Callable[[str], None]
) -> None:
    """Delete the worst-case cells the demo wrote (``results/<key>-worst-case.jsonl``) when the
    folder's run had other worst-case settings than ``settings`` (a run from before those
    settings existed had no worst-case cells)."""
    old = folder.settings
    if old is None or all(old.get(k, settings.get(k)) == settings.get(k) for k in _WORST_CASE):
        return
    for rel in sorted(folder.files):
        path = os.path.join(folder.out, rel)
        if (
            rel.startswith("results/")
            and rel.endswith("-worst-case.jsonl")
            and os.path.isfile(path)
        ):
            say(f"the worst-case settings changed: deleting its earlier cells {rel}")
            os.remove(path)


def drop_results(folder: DemoFolder, key: str, say: Callable[[str], None]) -> None:
    """Delete the attack cells of model ``key`` (and of the extras that use it) that the demo
    wrote: the model was trained anew, so they belong to other weights."""
    extras = {"A": ["A-inference", "S-to-A"], "S": ["S-to-A"]}.get(key, [])
    names = ([] if key == "S" else [key, f"{key}-worst-case"]) + extras
    for name in names:
        rel = f"results/{name}.jsonl"
        path = os.path.join(folder.out, rel)
        if rel in folder.files and os.path.isfile(path) and os.path.getsize(path) > 0:
            say(f"model ({key}) was trained anew: deleting its earlier attack cells {rel}")
            os.remove(path)
