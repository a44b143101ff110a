"""The demo's output folder: the demo deletes or overwrites only the files it wrote there.

``DIR/.avrobust-manifest.json`` records the settings of the run that made the folder and every
file the demo wrote (its path relative to ``DIR``, size in bytes and SHA-256; ``null`` while a run
is writing it). Before any work, :class:`DemoFolder` refuses a rerun with other settings (except
the budget grid, which only adds attack cells) and a file the demo did not write where it would
write one; starting afresh deletes only the recorded files that still hold what the demo wrote
(one changed since is kept, and said; if the run would overwrite it, the run stops first), never
a user's file or sub-folder. A file whose content no longer matches its hash (the user edited it,
or replaced it with a link or a folder) is the user's from then on: no run deletes it or records it
as the demo's, and a run that would write it again (``--fresh`` or not) stops before any work
with a :class:`FolderConflict` naming it (move it away, or choose another folder).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._manifest import (
    GRID_ONLY,
    MANIFEST,
    RECOMPUTED,
    FolderConflict,
    _listed,
    _sha256,
    check_out_dir,
    settings_of,
)
from .runs import run_name

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

_FORMAT = 1
_WORST_CASE = (
    "worst_case_steps",
    "worst_case_queries",
    "worst_case_restarts",
    "worst_case_kappa",
    "worst_curve_steps",
)
_FOLDERS = ("models", "results", "xab_test")


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
        #: the entries as they were before :meth:`claim` (whose hashes it drops)
        self.previous: dict[str, dict[str, Any]] = {}
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
        self._refuse_edited(planned)

    def _refuse_edited(self, planned: Iterable[str]) -> None:
        """Raise a :class:`FolderConflict` naming the recorded files this run would write again
        (``planned``, and everything under ``xab_test/``) that changed since the demo wrote them."""
        written = set(planned)
        edited = [
            rel
            for rel in sorted(self.files)
            if (rel in written or rel.startswith("xab_test/")) and self.changed(rel)
        ]
        if edited:
            raise FolderConflict(
                f"out_dir: {self.out} holds {_listed(edited, 4)}, which avrobust demo wrote but "
                "which changed since (its content no longer matches the manifest, or it is now a "
                "link or a folder) and which this run would overwrite; move it away (it is yours "
                "now, the demo never deletes it) or choose another folder",
                paths=edited,
            )

    def clear(self, say: Callable[[str], None], planned: Iterable[str] = ()) -> list[str]:
        """Delete the recorded files that are still plain files (no folder, no link) and hold
        what the demo wrote; say which. A recorded file whose content no longer matches its
        hash (changed since) is kept, said, and is the user's from then on.

        Raises:
            FolderConflict: such a changed file is one this run would write (``planned``, or
                under ``xab_test/``); nothing is deleted.
        """
        self._refuse_edited(planned)
        present = [
            rel
            for rel in sorted(self.files)
            if os.path.isfile(os.path.join(self.out, rel))
            and not os.path.islink(os.path.join(self.out, rel))
        ]
        changed = [rel for rel in present if self.changed(rel)]
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

    def changed(self, rel: str) -> bool:
        """Whether the recorded file ``rel`` no longer holds what the demo wrote: its content
        differs from the hash, or it is now a link or not a plain file (``False`` for a file
        that is gone, and for one without a hash: a run was writing it)."""
        entry = self.previous.get(rel, self.files.get(rel))
        path = os.path.join(self.out, rel)
        if not os.path.lexists(path):
            return False
        if os.path.islink(path) or not os.path.isfile(path):
            return True
        if not isinstance(entry, dict) or entry.get("sha256") is None:
            return False
        if os.path.getsize(path) != entry.get("size"):
            return True
        return bool(_sha256(path) != entry["sha256"])

    def claim(self, settings: Mapping[str, Any], planned: Iterable[str]) -> None:
        """Record the settings and the paths this run will write (before writing them; their
        hashes, and those of the recorded files under ``xab_test/``, which the run rewrites, are
        dropped until :meth:`record`, as the run may change them; :attr:`previous` keeps them)."""
        self.settings = dict(settings)
        self.previous = {rel: dict(entry) for rel, entry in self.files.items()}
        rewritten = [rel for rel in self.files if rel.startswith("xab_test/")]
        for rel in (*planned, *rewritten):
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
            if self.files.get(rel, {}).get("sha256") is not None:
                continue  # recorded earlier and not written by this run: changed, it is the user's
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
    settings existed had no worst-case cells). One changed since the demo wrote it is kept and
    said."""
    old = folder.settings
    if old is None or all(old.get(k, settings.get(k)) == settings.get(k) for k in _WORST_CASE):
        return
    for rel in sorted(folder.files):
        path = os.path.join(folder.out, rel)
        if (
            rel.startswith("results/")
            and rel.endswith(("-worst-case.jsonl", "-worst-curve.jsonl"))
            and os.path.isfile(path)
        ):
            if folder.changed(rel):
                say(
                    f"the worst-case settings changed: keeping {rel}, changed since the demo wrote it"
                )
                continue
            say(f"the worst-case settings changed: deleting its earlier cells {rel}")
            os.remove(path)


def drop_results(folder: DemoFolder, key: str, say: Callable[[str], None], *, run: int = 0) -> None:
    """Delete the attack cells of training run ``run`` of model ``key`` (and of the extras that
    use it) that the demo wrote: the model was trained anew, so they belong to other weights.

    Raises:
        FolderConflict: such a file changed since the demo wrote it (nothing of it deleted).
    """
    name = run_name(key, run)
    extras = {"A": [f"{name}-inference", f"{run_name('S', run)}-to-A"]}.get(key, [])
    if key == "S":
        extras = [f"{name}-to-A"]
    own = [name, f"{name}-worst-case", f"{name}-worst-curve", f"{name}-modalities"]
    names = ([] if key == "S" else own) + extras
    what = f"model ({key})" + (f" run {run + 1}" if run else "")
    for name in names:
        rel = f"results/{name}.jsonl"
        path = os.path.join(folder.out, rel)
        if rel not in folder.files or not os.path.isfile(path) or os.path.getsize(path) == 0:
            continue
        if folder.changed(rel):
            raise FolderConflict(
                f"out_dir: {folder.out} holds {rel}, the attack cells of {what} that "
                "avrobust demo wrote, which changed since (its content no longer matches the "
                "manifest); the model was trained anew, so they belong to other weights and "
                "this run would replace them: move it away and rerun",
                paths=[rel],
            )
        say(f"{what} was trained anew: deleting its earlier attack cells {rel}")
        os.remove(path)
