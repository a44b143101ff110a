"""The results store of an evaluation: the only code that reads or writes the results file.

A JSON-lines file (see :mod:`~avrobust.evaluation.records` for its lines) that a run opens,
resumes, appends to and repairs:

* :class:`Store` says where the file is and whether to resume it;
* :class:`ResultsFile` opens it for one run: :meth:`~ResultsFile.resume` reads it and refuses a
  file of another evaluation (other settings, model, data, or a cell of the same key defined
  otherwise) and repairs a last line cut short by a kill (or upgrades format 1) by rewriting
  it at once; :meth:`~ResultsFile.start` writes a new file's first line;
  :meth:`~ResultsFile.append` adds a finished cell's line, flushed to disk;
* :func:`atomic_write` replaces a file through a temporary file in the same folder and
  ``os.replace``: a kill or a full disk leaves the old file or the new one, never a cut one;
* :class:`ResultsLock` holds ``<results>.lock`` (created with ``O_CREAT | O_EXCL``, holding the
  process id and host) for the whole run, so a second run on the same file stops at once.
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .._checks import check_bool, describe
from .records import (
    FORMAT,
    Stored,
    StoredCell,
    cell_record,
    dump_record,
    parse_results,
)

__all__ = ["ResultsFile", "ResultsLock", "Store", "atomic_write", "read_results"]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Store:
    """Where an evaluation keeps its results, and whether it resumes them.

    Attributes:
        path: a JSON-lines file (``None``: keep nothing). The run's settings, selection and a
            fingerprint of the selected clips' content are written first, then one line per
            finished cell with what defines it (rule, eps, modalities, budgets) and a checksum.
            ``<path>.lock`` marks a run in progress: a second run on the same file stops at once.
        resume: read ``path`` if it exists, reuse its cells of this grid and keep its other cells
            (``False``: start it afresh; the old file is replaced, at once, when the new one's
            first line is ready).
    """

    path: PathLike | None = None
    resume: bool = True

    def __post_init__(self) -> None:
        path = self.path
        if path is not None:
            text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
            if not isinstance(text, str) or not text:
                raise TypeError(f"Store.path: expected a file path or None, got {describe(path)}")
            if os.path.isdir(text):
                raise ValueError(f"Store.path: expected a file path, got the folder {text}")
        check_bool(self.resume, "Store.resume")

    @property
    def file(self) -> str | None:
        """``path`` as a string (``None`` stays ``None``)."""
        return None if self.path is None else os.fspath(self.path)


# ----------------------------------------------------------------------------- writing


def atomic_write(path: str, text: str) -> None:
    """Replace ``path`` by a file holding ``text``, all at once: ``text`` goes to a temporary
    file in the same folder, is flushed to disk, then renamed over ``path``. If anything fails
    before the rename, ``path`` is as it was and the temporary file is removed."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


# ----------------------------------------------------------------------------- lock


class ResultsLock:
    """``with ResultsLock(path):`` holds ``<path>.lock`` for the block; ``path=None`` does nothing.

    A lock left by a process of this host that is no longer running (a killed run) is taken over
    with a warning. A lock of a live process, of another host (a shared folder) or one that
    cannot be read raises ``RuntimeError`` naming the file, the process and the lock.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lock = None if path is None else f"{path}.lock"
        self.token = f"{os.getpid()} {socket.gethostname()}\n"

    def __enter__(self) -> ResultsLock:
        if self.lock is None:
            return self
        parent = os.path.dirname(self.lock)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if not self._create():
            owner = _lock_owner(self.lock)
            if owner is None or owner[1] != socket.gethostname() or _alive(owner[0]):
                raise RuntimeError(_busy_message(self.path, self.lock, owner))
            warnings.warn(
                f"Store.path: took over the lock {self.lock} left by process {owner[0]}, which "
                "is no longer running (an interrupted run)",
                stacklevel=3,
            )
            os.remove(self.lock)
            if not self._create():
                raise RuntimeError(_busy_message(self.path, self.lock, _lock_owner(self.lock)))
        return self

    def _create(self) -> bool:
        if self.lock is None:  # unreachable: a lock is made only for a results file
            raise RuntimeError("ResultsLock: no lock path (no results file)")
        try:
            handle = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(handle, "w") as file:
            file.write(self.token)
        return True

    def __exit__(self, *exc: object) -> None:
        if self.lock is None:
            return
        try:
            with open(self.lock) as handle:
                mine = handle.read() == self.token
        except OSError:
            return
        if mine:
            os.remove(self.lock)


def _lock_owner(lock: str) -> tuple[int, str] | None:
    try:
        with open(lock) as handle:
            pid, host = handle.read().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process there: assume it runs
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs under another user
        return True
    return True


def _busy_message(path: Any, lock: str, owner: tuple[int, str] | None) -> str:
    who = "another run" if owner is None else f"process {owner[0]} on {owner[1]}"
    return (
        f"Store.path: {path} is in use by {who} (lock file {lock}); wait for that run to "
        f"finish, or pass another Store.path. If no run is using it, delete {lock}"
    )


# ----------------------------------------------------------------------------- the file


def read_results(path: PathLike) -> Stored:
    """Read and check a results file (format 1 or 2).

    Raises:
        FileNotFoundError: no file.
        ValueError: a line that is not as evaluate wrote it (the message gives ``path:line``).
    """
    with open(path) as handle:
        text = handle.read()
    return parse_results(text, os.fspath(path))


class ResultsFile:
    """The results file of one run (``path=None``: nothing is kept, every method does nothing).

    Args:
        path: the file.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path

    def resume(
        self, config: Mapping[str, Any], digest_of: Callable[[list[int]], str]
    ) -> tuple[dict[str, Any] | None, dict[str, StoredCell]]:
        """The meta record and finished cells of the file when it resumes this run (``None, {}``
        when there is nothing to resume).

        Args:
            config: what the file must share with this run (everything but the grid).
            digest_of: the content fingerprint of the data's clips at given indices.

        Raises:
            ValueError: a file of another evaluation (the message names what differs) or of
                other data; a line that is not as evaluate wrote it.
        """
        if self.path is None or not os.path.exists(self.path):
            return None, {}
        stored = read_results(self.path)
        if stored.meta is None:
            return None, {}
        meta = stored.meta
        unchecked = {"objective_code", "score_fn_code"} if stored.format == 1 else set()
        # the budgets' name only labels them: each cell line holds the budgets themselves
        compared = (set(config) | set(meta["config"])) - unchecked - {"budgets", "eps_name"}
        differs = sorted(k for k in compared if config.get(k) != meta["config"].get(k))
        if differs:
            raise ValueError(
                f"Store.path: {self.path} holds results of a different evaluation (it differs in "
                f"{differs}); pass another Store.path, delete it, or use Store(resume=False) to "
                "overwrite"
            )
        digest = digest_of([int(i) for i in meta["selection"]])
        if stored.format == 1:
            meta["config"].update({k: config[k] for k in unchecked})
            meta["data"] = digest
            warnings.warn(
                f"Store.path: {self.path} was written by an earlier avrobust (results-file "
                "format 1), which did not record the data or the code of a callable objective or "
                "score_fn, so they cannot be checked: they are taken to be this run's, and "
                f"recorded now (the file is upgraded to format {FORMAT})",
                stacklevel=3,
            )
        elif meta["data"] != digest:
            raise ValueError(
                f"data: the selected clips differ from those the results file {self.path} was "
                f"computed on (content fingerprint {digest}, the file's {meta['data']}): other "
                "data of the same size? Pass the data of that run, another Store.path, or "
                "Store(resume=False) to overwrite"
            )
        if stored.format == 1 or not stored.tidy:
            self.rewrite(stored)
        return meta, stored.cells

    def check_reuse(
        self, done: Mapping[str, StoredCell], defines: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Refuse a finished cell of this grid that was computed with other budgets or rule
        settings than this run's (the same key, another cell).

        Raises:
            ValueError: naming the cell, its line and what differs (``Grid.rules`` or
                ``Grid.budgets``).
        """
        for key, wanted in defines.items():
            stored = done.get(key)
            if stored is None or stored.defines == wanted:
                continue
            if stored.defines["rule"] != wanted["rule"]:
                field_name = "rule_repr"
                what = f"the rule {stored.defines['rule']}, where Grid.rules gives {wanted['rule']}"
            else:
                field_name = "budget_repr"
                what = (
                    f"the budgets {stored.defines['budgets']}, where Grid.budgets gives "
                    f"{wanted['budgets']}"
                )
            raise ValueError(
                f"Store.path: {self.path} holds results of a different evaluation (it differs in "
                f"['{field_name}']): line {stored.line} holds cell {key} computed with {what}; "
                "delete that line to compute the cell anew, pass another Store.path, or use "
                "Store(resume=False) to overwrite the file"
            )

    def start(self, meta: Mapping[str, Any]) -> None:
        """Write ``meta`` as the first line of a new file (replacing any old file at once)."""
        if self.path is not None:
            atomic_write(self.path, dump_record(meta))

    def append(self, key: str, defines: Mapping[str, Any], cell: Mapping[str, Any]) -> None:
        """Append a finished cell's line (flushed to disk before returning)."""
        if self.path is None:
            return
        with open(self.path, "a") as handle:
            handle.write(dump_record(cell_record(key, defines, cell)))
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, stored: Stored) -> None:
        """Write the file anew, at once (temporary file and rename), as format 2: drops a line
        cut short by an interruption and upgrades a format-1 file."""
        if self.path is None or stored.meta is None:  # unreachable: callers pass a read file
            raise RuntimeError("rewrite: needs a results file and its settings line")
        lines = [dump_record(stored.meta)]
        for key, s in stored.cells.items():
            lines.append(dump_record(cell_record(key, s.defines, s.record["result"])))
        atomic_write(self.path, "".join(lines))
