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
  ``os.replace``: a kill or a full disk leaves the old file or the new one, never a cut one
  (:mod:`~avrobust.evaluation._atomic`; a symbolic link stays a link, its target is written);
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
from ._atomic import alive, atomic_write, remove_stale_temporaries, written_file
from .records import (
    FORMAT,
    NotResultsFile,
    Stored,
    StoredCell,
    cell_record,
    dump_record,
    not_results_file,
    parse_results,
)

__all__ = [
    "ResultsFile",
    "ResultsLock",
    "Store",
    "atomic_write",
    "read_results",
    "remove_stale_temporaries",
    "written_file",
]

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Store:
    """Where an evaluation keeps its results, and whether it resumes them.

    Attributes:
        path: a JSON-lines file (``None``: keep nothing; a symbolic link: its target; a file
            there that evaluate did not write is refused, never replaced). The run's settings,
            selection and a fingerprint of the selected clips' content are written first, then
            one line per finished cell with what defines it (rule, eps, modalities, budgets) and
            a checksum.
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


# ----------------------------------------------------------------------------- lock


class ResultsLock:
    """``with ResultsLock(path):`` holds ``<path>.lock`` for the block; ``path=None`` does nothing.

    A lock left by a process of this host that is no longer running (a killed run) is taken over
    with a warning. A lock of a live process, of another host (a shared folder) or one that
    cannot be read raises ``RuntimeError`` naming the file, the process and the lock.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lock = None if path is None else f"{written_file(path)}.lock"  # a link: its target
        self.token = f"{os.getpid()} {socket.gethostname()}\n"

    def __enter__(self) -> ResultsLock:
        if self.lock is None:
            return self
        parent = os.path.dirname(self.lock)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if not self._create():
            owner = _lock_owner(self.lock)
            if owner is None or owner[1] != socket.gethostname() or alive(owner[0]):
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
        except OSError as error:
            raise OSError(
                error.errno,
                f"Store.path: cannot create the lock file {self.lock} next to the results file "
                f"({error.strerror}); pass a Store.path in a folder this process can write",
            ) from error
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
        NotResultsFile: a file avrobust did not write as a results file (binary data, or a
            first line that is not one of its records); the message names the file.
        ValueError: a line that is not as evaluate wrote it (the message gives ``path:line``).
    """
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        if b"\0" in data:
            raise UnicodeError("a NUL byte")
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as text mode
    except UnicodeError:
        why = "it holds binary data, not the JSON lines evaluate writes"
        raise NotResultsFile(not_results_file(os.fspath(path), why)) from None
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
                other data; a line that is not as evaluate wrote it; a file avrobust did not
                write (:class:`~avrobust.evaluation.records.NotResultsFile`).
        """
        if self.path is None:
            return None, {}
        remove_stale_temporaries(self.path)
        if not os.path.exists(self.path):
            return None, {}
        stored = read_results(self.path)
        if stored.meta is None:
            return None, {}
        meta = stored.meta
        differs, unrecorded = _compare(config, meta["config"], stored.format)
        if differs:
            raise ValueError(
                f"Store.path: {self.path} holds results of a different evaluation (it differs in "
                f"{differs}{_MODEL_HINT if {'model', 'surrogate_model'} & set(differs) else ''}); "
                "pass another Store.path, delete it, or use Store(resume=False) to overwrite"
            )
        digest = digest_of([int(i) for i in meta["selection"]])
        if stored.format == 1:
            meta["data"] = digest
        elif meta["data"] != digest:
            raise ValueError(
                f"data: the selected clips differ from those the results file {self.path} was "
                f"computed on (content fingerprint {digest}, the file's {meta['data']}): other "
                "data of the same size? Pass the data of that run, another Store.path, or "
                "Store(resume=False) to overwrite"
            )
        if unrecorded:
            meta["config"].update({k: config[k] for k in unrecorded})
            warnings.warn(_unrecorded_message(self.path, stored.format, unrecorded), stacklevel=3)
        if stored.format == 1 or not stored.tidy or unrecorded:
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
        """Write ``meta`` as the first line of a new file (replacing an old results file at
        once; a link stays a link, its target is replaced).

        Raises:
            NotResultsFile: a file is there that avrobust did not write as a results file; it is
                left as it was.
        """
        if self.path is None:
            return
        remove_stale_temporaries(self.path)
        if os.path.isfile(self.path):
            try:
                read_results(self.path)
            except NotResultsFile:
                raise
            except ValueError:  # a results file with a damaged line: ours to replace
                pass
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


# ----------------------------------------------------------------------------- resume checks

_FINGERPRINTS = ("model", "surrogate_model", "objective_code", "score_fn_code")
_MODEL_HINT = (
    ": the model's weights, buffers or plain attributes, such as a temperature or "
    "avrobust.wrap's settings; a forward that stores values on the model changes them too"
)


def _compare(
    config: Mapping[str, Any], stored: Mapping[str, Any], version: int
) -> tuple[list[str], list[str]]:
    """The settings in which a file's config differs from the run's, and those it did not
    record: the code of callables in format 1, and, in a file of an earlier avrobust, the part
    of a fingerprint after ``"+"`` (a model's plain attributes, a callable's captured tensors),
    where the part it recorded matches."""
    unrecorded = ["objective_code", "score_fn_code"] if version == 1 else []
    # the budgets' name only labels them: each cell line holds the budgets themselves
    compared = (set(config) | set(stored)) - set(unrecorded) - {"budgets", "eps_name"}
    differs = sorted(k for k in compared if config.get(k) != stored.get(k))
    for key in _FINGERPRINTS:
        mine, theirs = config.get(key), stored.get(key)
        if not (key in differs and isinstance(mine, str) and isinstance(theirs, str)):
            continue
        if "+" not in theirs and mine.startswith(theirs + "+"):  # what the file recorded matches
            differs.remove(key)
            unrecorded.append(key)
    return differs, unrecorded


def _unrecorded_message(path: Any, version: int, unrecorded: list[str]) -> str:
    parts = ["the data or the code of a callable objective or score_fn"] if version == 1 else []
    if {"model", "surrogate_model"} & set(unrecorded):
        parts.append("the plain attributes of the model's modules (a temperature, wrap settings)")
    if {"objective_code", "score_fn_code"} & set(unrecorded) and version > 1:
        parts.append("the values of the tensors a callable objective or score_fn captures")
    which = " (results-file format 1)" if version == 1 else ""
    upgrade = f" (the file is upgraded to format {FORMAT})" if version == 1 else ""
    return (
        f"Store.path: {path} was written by an earlier avrobust{which}, which did not record "
        f"{'; nor '.join(parts)}, so they cannot be checked: they are taken to be this run's, "
        f"and recorded now{upgrade}"
    )
