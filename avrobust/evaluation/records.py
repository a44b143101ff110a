"""The results file's records: one JSON object per line, each with a checksum; format 1 and 2.

The file (written by :mod:`~avrobust.evaluation.store`, the only code that opens it) holds one
``meta`` line (the run's settings, clean measures, selection and data fingerprint) and one
``cell`` line per finished cell (its key, what defines it, its result); every line carries a
``check`` (a checksum of its content). Format 1 (before the checks) had the grid in the meta
line; it is read as format 2. This module turns text into checked records and records into
lines; it does not touch files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .results import CellResult, json_ready

__all__ = [
    "FORMAT",
    "NotResultsFile",
    "Stored",
    "StoredCell",
    "cell_record",
    "checksum",
    "dump_record",
    "not_results_file",
    "parse_results",
    "record_fields",
    "split_records",
    "verify_check",
]

# version of the results-file layout: 1 had the grid in the meta line and no checks; 2 gives
# each cell line what defines the cell, the meta line the selected data's fingerprint, and
# every line a checksum
FORMAT = 2
_GRID_KEYS = ("rules", "rule_repr", "eps", "budget_repr", "modalities")


def dump_record(record: Mapping[str, Any]) -> str:
    """One results-file line (with its newline): ``record`` plus its ``check``."""
    body = {k: v for k, v in record.items() if k != "check"}
    return json.dumps({**json_ready(body), "check": checksum(json_ready(body))}) + "\n"


def checksum(body: Mapping[str, Any]) -> str:
    """The first 16 hex digits of a SHA-256 of ``body`` as sorted-key JSON."""
    text = json.dumps(body, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_records(text: str, path: str) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """The records of a results file's ``text`` with their line numbers, and whether the text is
    exactly those lines, each ending with a newline (else the store rewrites it). A last line
    cut short (no newline, not JSON: a killed run) is skipped when it follows a record and
    begins as the library's cell lines do.

    Raises:
        NotResultsFile: a first line that is not a JSON record the library writes (the message
            names the file, saying it is not a results file).
        ValueError: a later line that is not a JSON
            object of kind ``meta`` or ``cell`` (the message gives ``path:line``).
    """
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
            if records and number == len(lines) and _cut_record(line):
                tidy = False  # the last line, cut short by an interruption: skip it
                continue
            if not records:
                raise NotResultsFile(not_results_file(path, f"line {number} is not JSON")) from None
            raise ValueError(f"{path}:{number}: not a JSON line: {line[:80]!r}") from None
        if not isinstance(record, dict) or record.get("kind") not in ("meta", "cell"):
            what = f"expected a JSON object of kind 'meta' or 'cell', got {line[:80]!r}"
            if not records:
                raise NotResultsFile(not_results_file(path, f"line {number}: {what}"))
            raise ValueError(f"{path}:{number}: {what}")
        tidy = tidy and number < len(lines)  # the last line lacks its newline
        records.append((number, record))
    return records, tidy


_CELL_START = '{"kind": "cell"'  # how every cell line the library writes begins (format 1 and 2)


def _cut_record(line: str) -> bool:
    """Whether ``line`` can be a cell line the library began and a kill cut short."""
    return line.startswith(_CELL_START) or _CELL_START.startswith(line)


class NotResultsFile(ValueError):
    """A file at a results path that avrobust did not write as a results file (its first line
    is not one of its records, or it is not text): never read as one, never replaced."""


def not_results_file(path: str, why: str) -> str:
    """The message for a file that avrobust did not write as a results file."""
    return (
        f"Store.path: {path} is not a results file ({why}); evaluate neither reads nor replaces "
        "a file it did not write: pass another Store.path, or move that file away"
    )


def verify_check(record: Mapping[str, Any], where: str) -> None:
    """Refuse a record whose ``check`` is missing or does not match its content."""
    body = {k: v for k, v in record.items() if k != "check"}
    if record.get("check") != checksum(body):
        state = "has no check field" if "check" not in record else "does not match its check"
        raise ValueError(
            f"{where}: the line {state}: it was changed after evaluate wrote it; restore it, "
            "delete the line to recompute that cell, or pass Store(resume=False) to start afresh"
        )


def record_fields(values: Any, cls: type, where: str) -> dict[str, Any]:
    """``values`` checked against the dataclass ``cls``: every field without a default present,
    no unknown field, and the types JSON gives for ``str``, ``int``, ``float`` (``null`` for a
    non-finite number, read back as NaN), ``tuple[str, ...]``, ``dict[str, float]`` and
    ``dict[str, int] | None``."""
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
    if kind == "dict[str, int] | None":
        return value is None or (
            isinstance(value, dict)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())
        )
    return True  # a type this reader does not know: left to the class


@dataclass
class StoredCell:
    """A finished cell read from a results file: the cell, what defines it, its line."""

    cell: CellResult
    defines: dict[str, Any]
    line: int
    record: dict[str, Any]


@dataclass
class Stored:
    """What a results file holds: its meta record (``None`` if none yet) and cells by key."""

    meta: dict[str, Any] | None
    cells: dict[str, StoredCell]
    format: int = FORMAT
    tidy: bool = True  # the text is exactly its records, one line each


def parse_results(text: str, path: str) -> Stored:
    """Check every line of a results file's ``text`` (format 1 or 2); format 1 is converted to
    format 2 in memory.

    Raises:
        ValueError: a line that is not as evaluate wrote it: not JSON (but a last line cut short
            by a kill, which is skipped), edited (its check does not match), a missing or
            unknown field, a wrong type, a second meta line, a cell written twice; the message
            gives ``path:line``.
    """
    records, tidy = split_records(text, path)
    metas = [(n, r) for n, r in records if r["kind"] == "meta"]
    if len(metas) > 1:
        raise ValueError(
            f"{path}:{metas[1][0]}: a second meta line (the first is line {metas[0][0]}); "
            "a results file holds one evaluation"
        )
    if not metas:
        cells = [n for n, r in records if r["kind"] == "cell"]
        if cells:
            raise ValueError(f"Store.path: {path} has cells but no 'meta' line; delete it")
        return Stored(None, {}, tidy=tidy)
    line, meta = metas[0]
    version = _meta_format(meta, f"{path}:{line}")
    if version == 1:
        meta = _meta_from_v1(meta)
    stored = Stored(meta, {}, version, tidy)
    for number, record in records:
        where = f"{path}:{number}"
        if record["kind"] == "cell":
            _add_cell(stored, number, record, where, metas[0][1])
        if version > 1:
            verify_check(record, where)
    return stored


def _meta_format(meta: Mapping[str, Any], where: str) -> int:
    config = meta.get("config")
    version = config.get("format") if isinstance(config, dict) else None
    if type(version) is not int or version not in (1, FORMAT):
        raise ValueError(
            f"{where}: expected a meta line of results-file format 1 or {FORMAT}, got format "
            f"{version!r} (written by another avrobust version?)"
        )
    wanted = {"config": dict, "clean": dict, "selection": list}
    if version > 1:
        wanted["data"] = str
    wrong = [k for k, kind in wanted.items() if not isinstance(meta.get(k), kind)]
    if wrong or not all(isinstance(i, int) for i in meta["selection"]):
        raise ValueError(f"{where}: the meta line lacks or garbles {wrong or ['selection']}")
    return int(version)


def _meta_from_v1(meta: Mapping[str, Any]) -> dict[str, Any]:
    """A format-1 meta record as format 2: the grid leaves the config (each cell line gets what
    defines it); the data and the callables' code were not recorded (``None``)."""
    config = {k: v for k, v in meta["config"].items() if k not in _GRID_KEYS}
    config.update(format=FORMAT, objective_code=None, score_fn_code=None)
    kept = {k: meta[k] for k in ("clean", "selection")}
    return {"kind": "meta", "config": config, **kept, "data": None}


def _v1_defines(meta: Mapping[str, Any], cell: CellResult, where: str) -> dict[str, Any]:
    """What defines a format-1 cell, from the grid of its meta line."""
    config = meta["config"]
    try:
        rule = config["rule_repr"][config["rules"].index(cell.rule)]
        budgets = {m: config["budget_repr"][repr(cell.eps)][m] for m in cell.modalities}
    except (KeyError, ValueError, IndexError, TypeError):
        raise ValueError(
            f"{where}: cell {cell.key} is not in the grid of the meta line of this format-1 file"
        ) from None
    return {"rule": rule, "budgets": budgets}


def _add_cell(
    stored: Stored, number: int, record: dict[str, Any], where: str, raw_meta: Mapping[str, Any]
) -> None:
    result = record_fields(record.get("result"), CellResult, where)
    try:
        cell = CellResult.from_dict(result)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where}: the cell's result is not valid: {exc}") from None
    if record.get("key") != cell.key:
        raise ValueError(
            f"{where}: the line's key {record.get('key')!r} is not its cell's {cell.key!r}"
        )
    if cell.key in stored.cells:
        first = stored.cells[cell.key].line
        raise ValueError(f"{where}: cell {cell.key} again (it is on line {first} already)")
    defines: Any = (
        _v1_defines(raw_meta, cell, where) if stored.format == 1 else record.get("defines")
    )
    if not (
        isinstance(defines, dict)
        and isinstance(defines.get("rule"), str)
        and isinstance(defines.get("budgets"), dict)
    ):
        raise ValueError(f"{where}: the cell line lacks what defines it ('defines')")
    stored.cells[cell.key] = StoredCell(cell, defines, number, record)


def cell_record(
    key: str, defines: Mapping[str, Any], cell_dict: Mapping[str, Any]
) -> dict[str, Any]:
    """A cell line's record: its key, what defines it, its result."""
    return {"kind": "cell", "key": key, "defines": defines, "result": cell_dict}
