"""The results file of :func:`avrobust.evaluate`: safe writes, one run at a time, checked lines,
and the fingerprints (data, callables) that tell whether a file belongs to a run.

* :func:`atomic_write` replaces a file through a temporary file in the same folder and
  ``os.replace``: a kill or a full disk leaves the old file or the new one, never a cut one.
* :class:`ResultsLock` holds ``<results>.lock`` (created with ``O_CREAT | O_EXCL``, holding the
  process id and host) for the whole run, so a second run on the same file stops at once.
* :func:`read_records` reads the JSON lines, each with its line number; every line must be a
  JSON object and carry a valid ``check`` (a checksum of its content), except the last line when
  it has no newline (a line cut short by a killed run: skipped).
* :func:`clip_digests` and :func:`data_digest` fingerprint clips by content;
  :func:`callable_identity` fingerprints a function by its code and captured values.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import socket
import types
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ._checks import describe

__all__ = [
    "ResultsLock",
    "atomic_write",
    "callable_identity",
    "check_results_path",
    "clip_digests",
    "data_digest",
    "dump_record",
    "read_records",
    "record_fields",
]

PathLike = str | os.PathLike[str]


# ----------------------------------------------------------------------------- writing


def check_results_path(path: Any) -> str | None:
    """``results_file`` as a string path (``None`` stays ``None``); a folder is refused."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"results_file: expected a file path or None, got {describe(path)}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise TypeError(f"results_file: expected a file path or None, got {describe(path)}")
    if os.path.isdir(text):
        raise ValueError(f"results_file: expected a file path, got the folder {text}")
    return text


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


def dump_record(record: Mapping[str, Any]) -> str:
    """One results-file line (with its newline): ``record`` plus its ``check``."""
    body = {k: v for k, v in record.items() if k != "check"}
    return json.dumps({**body, "check": _checksum(body)}) + "\n"


def _checksum(body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
                f"results_file: took over the lock {self.lock} left by process {owner[0]}, which "
                "is no longer running (an interrupted run)",
                stacklevel=3,
            )
            os.remove(self.lock)
            if not self._create():
                raise RuntimeError(_busy_message(self.path, self.lock, _lock_owner(self.lock)))
        return self

    def _create(self) -> bool:
        assert self.lock is not None
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
        f"results_file: {path} is in use by {who} (lock file {lock}); wait for that run to "
        f"finish, or pass another results_file. If no run is using it, delete {lock}"
    )


# ----------------------------------------------------------------------------- reading


def read_records(path: str) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """The records of a results file with their line numbers, and whether the text is exactly
    those lines, each ending with a newline (else the caller rewrites it).

    Raises:
        ValueError: a line that is not a JSON object, or whose ``check`` is missing or does not
            match its content (edited after it was written); the message gives ``path:line``.
    """
    with open(path) as handle:
        text = handle.read()
    lines = text.split("\n")
    records: list[tuple[int, dict[str, Any]]] = []
    tidy = True
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            tidy = tidy and number == len(lines)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # the last line, cut short by an interruption: skip it
                tidy = False
                continue
            raise ValueError(f"{path}:{number}: not a JSON line: {line[:80]!r}") from None
        if not isinstance(record, dict) or record.get("kind") not in ("meta", "cell"):
            raise ValueError(
                f"{path}:{number}: expected a JSON object of kind 'meta' or 'cell', got "
                f"{line[:80]!r}"
            )
        tidy = tidy and number < len(lines)  # the last line lacks its newline
        records.append((number, record))
    return records, tidy


def verify_check(record: Mapping[str, Any], where: str) -> None:
    """Refuse a record whose ``check`` is missing or does not match its content."""
    body = {k: v for k, v in record.items() if k != "check"}
    if record.get("check") != _checksum(body):
        state = "has no check field" if "check" not in record else "does not match its check"
        raise ValueError(
            f"{where}: the line {state}: it was changed after evaluate wrote it; restore it, "
            "delete the line to recompute that cell, or pass resume=False to start afresh"
        )


def record_fields(values: Any, cls: type, where: str) -> dict[str, Any]:
    """``values`` checked against the dataclass ``cls``: every field without a default present,
    no unknown field, and the types JSON gives for ``str``, ``int``, ``float`` (``null`` for a
    non-finite number, read back as NaN), ``tuple[str, ...]`` and ``dict[str, float]``."""
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected the cell's result as a JSON object, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if unknown or missing:
        raise ValueError(
            f"{where}: the cell's result lacks fields {missing}, has unknown {unknown}"
        )
    out = dict(values)
    for name, value in values.items():
        kind = str(fields[name].type)
        if not _has_type(value, kind):
            raise ValueError(f"{where}: field {name!r} should be {kind}, got {value!r}")
        if kind == "float" and value is None:
            out[name] = math.nan
    return out


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _has_type(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return _number(value)
    if kind == "tuple[str, ...]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "dict[str, float]":
        return isinstance(value, dict) and all(_number(v) for v in value.values())
    return True  # a type this reader does not know: left to the class


# ----------------------------------------------------------------------------- fingerprints


def clip_digests(inputs: Mapping[str, Tensor], labels: Tensor) -> list[bytes]:
    """One digest per clip of a batch: its tensors' names, dtypes, shapes and bytes, labels too
    (the same clip gives the same digest however it is batched or loaded)."""
    parts = [(k, inputs[k]) for k in sorted(inputs)] + [("labels", labels)]
    parts = [(k, v.detach().cpu()) for k, v in parts]
    out = []
    for row in range(int(labels.shape[0])):
        digest = hashlib.sha256()
        for name, tensor in parts:
            x = tensor[row].contiguous().reshape(-1)
            digest.update(f"{name}|{x.dtype}|{tuple(tensor.shape[1:])}|".encode())
            digest.update(x.view(torch.uint8).numpy().tobytes() if x.numel() else b"")
        out.append(digest.digest()[:16])
    return out


def data_digest(digests: Sequence[bytes]) -> str:
    """The fingerprint of a sequence of clips (from :func:`clip_digests`, in order)."""
    return hashlib.sha256(b"".join(digests)).hexdigest()[:16]


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def callable_identity(fn: Any) -> str | None:
    """A fingerprint of what a callable computes: its code (bytecode, constants and the names
    it uses, nested functions included), default arguments and captured (closure) values; for a
    bound method or a callable object, also its object's type and attributes; for a
    ``functools.partial``, its arguments. Two lambdas of different bodies differ, the same code
    with the same captured values (another object) does not. Not covered: the values of global
    variables it reads. The bytecode differs between Python versions, so a function fingerprinted
    under one counts as changed under another. ``None`` and strings give ``None``."""
    if fn is None or isinstance(fn, str):
        return None
    digest = hashlib.sha256()
    _feed(digest, fn, depth=0)
    return digest.hexdigest()[:16]


def _feed(digest: Any, fn: Any, depth: int) -> None:
    if depth > 8:  # a deep or cyclic chain of captured functions: stop at its name
        digest.update(repr(type(fn)).encode())
        return
    if isinstance(fn, functools.partial):
        _feed(digest, fn.func, depth + 1)
        _feed_value(digest, (fn.args, sorted(fn.keywords.items())), depth)
        return
    if isinstance(fn, types.MethodType):
        digest.update(type(fn.__self__).__qualname__.encode())
        _feed_value(digest, getattr(fn.__self__, "__dict__", None), depth)
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):  # a callable object: its class's __call__, its state
        digest.update(type(fn).__qualname__.encode())
        digest.update(_ADDRESS.sub("", repr(fn)).encode())  # built-ins: their name
        call = getattr(type(fn).__call__, "__code__", None)
        if isinstance(call, types.CodeType):
            _feed_code(digest, call)
        _feed_value(digest, getattr(fn, "__dict__", None), depth)
        return
    _feed_code(digest, code)
    _feed_value(digest, (fn.__defaults__, fn.__kwdefaults__), depth)
    for cell in fn.__closure__ or ():
        try:
            _feed_value(digest, cell.cell_contents, depth)
        except ValueError:  # an empty cell
            digest.update(b"<empty>")


def _feed_code(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(digest, const)
        else:
            digest.update(_ADDRESS.sub("", repr(const)).encode())


def _feed_value(digest: Any, value: Any, depth: int) -> None:
    if callable(value) and not isinstance(value, (type, torch.nn.Module)):
        _feed(digest, value, depth + 1)
        return
    digest.update(_ADDRESS.sub("", repr(value)).encode())
