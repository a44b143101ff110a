"""The results store (avrobust.evaluation.store), tested on hand-made records, no attack run.

Each test writes the file through ResultsFile (or by hand, to simulate a kill or an edit) and
checks what resume reads back, what it refuses (naming the file and line, or the field) and
what is left on disk.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
from helpers import assert_raises_naming, fail_writes_under

from avrobust.evaluation import CellResult, Store
from avrobust.evaluation.records import FORMAT, checksum, dump_record
from avrobust.evaluation.store import ResultsFile, ResultsLock, atomic_write, read_results

CONFIG = {"format": FORMAT, "steps": 2, "objective": "training", "model": "abc", "seed": 0}
DEFINES = {"rule": "BIM()", "budgets": {"audio": "Linf(eps=0.01)"}}


def meta(config: dict | None = None) -> dict:
    """A meta record as evaluate writes it, for clips 0-3 of data fingerprinted ``"d1"``."""
    clean = {"map_all": 1.0, "samples_total": 4}
    return {"kind": "meta", "config": config or CONFIG, "clean": clean, "selection": [0, 1, 2, 3]}


def cell(eps: float, map_adv: float = 0.5) -> CellResult:
    """A hand-made audio cell of BIM at ``eps``."""
    return CellResult("bim", eps, ("audio",), 1.0, map_adv, 0.25, 0.1, snr_db={"audio": 30.0})


def digest_of(indices: list[int]) -> str:
    """The data's content fingerprint: ``"d1"`` for the clips 0-3 the meta line selected."""
    assert indices == [0, 1, 2, 3]
    return "d1"


def written(path, cells=(1.0, 2.0)) -> ResultsFile:
    """A file started with the meta line and one line per cell at each eps of ``cells``."""
    file = ResultsFile(str(path))
    file.start({**meta(), "data": "d1"})
    for eps in cells:
        c = cell(eps)
        file.append(c.key, DEFINES, c.to_dict())
    return file


def test_open_a_missing_file_and_a_none_path_resume_nothing(tmp_path):
    """A path that does not exist yet, and no path at all, resume nothing; a None store writes
    nothing either."""
    assert ResultsFile(str(tmp_path / "new.jsonl")).resume(CONFIG, digest_of) == (None, {})
    nothing = ResultsFile(None)
    assert nothing.resume(CONFIG, digest_of) == (None, {})
    nothing.start(meta())
    nothing.append("k", DEFINES, cell(1.0).to_dict())
    assert list(tmp_path.iterdir()) == []


def test_append_then_resume_gives_back_every_cell(tmp_path):
    """Cells appended after the meta line come back, in order, equal to those written, with
    the line they are on and what defines them; every line carries a valid check."""
    path = tmp_path / "r.jsonl"
    written(path)
    found_meta, done = ResultsFile(str(path)).resume(CONFIG, digest_of)
    assert found_meta is not None and found_meta["selection"] == [0, 1, 2, 3]
    assert list(done) == [cell(1.0).key, cell(2.0).key]
    assert [s.cell for s in done.values()] == [cell(1.0), cell(2.0)]
    assert [s.line for s in done.values()] == [2, 3]
    assert all(s.defines == DEFINES for s in done.values())
    for line in path.read_text().splitlines():
        record = json.loads(line)
        assert record["check"] == checksum({k: v for k, v in record.items() if k != "check"})


def test_a_cut_last_line_is_dropped_and_the_file_repaired(tmp_path):
    """A last line cut short by a kill is skipped on resume and the file is rewritten without
    it (the finished lines byte for byte as before), so the next append starts a fresh line."""
    path = tmp_path / "r.jsonl"
    written(path)
    whole = path.read_text()
    path.write_text(whole + '{"kind": "cell", "key": "bim|3')
    file = ResultsFile(str(path))
    _, done = file.resume(CONFIG, digest_of)
    assert len(done) == 2 and path.read_text() == whole
    c = cell(3.0)
    file.append(c.key, DEFINES, c.to_dict())
    assert len(read_results(path).cells) == 3


def test_a_missing_newline_after_a_finished_line_is_repaired(tmp_path):
    """A finished last line without its newline is kept (it is valid JSON with a valid check)
    and the newline is written back."""
    path = tmp_path / "r.jsonl"
    written(path)
    whole = path.read_text()
    path.write_text(whole.rstrip("\n"))
    _, done = ResultsFile(str(path)).resume(CONFIG, digest_of)
    assert len(done) == 2 and path.read_text() == whole


@pytest.mark.parametrize("field", ["map_adv", "key"])
def test_an_edited_line_is_refused_naming_file_and_line(tmp_path, field):
    """A cell line whose content was changed (its check no longer matches) is refused naming
    ``path:line``; the file is left as it was."""
    path = tmp_path / "r.jsonl"
    written(path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    if field == "key":
        record["key"] = "bim|9.0|audio"
    else:
        record["result"]["map_adv"] = 0.99
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    assert_raises_naming(ValueError, f"{path}:3", ResultsFile(str(path)).resume, CONFIG, digest_of)
    assert path.read_bytes() == before


def test_a_duplicated_line_is_refused(tmp_path):
    """A cell written twice (a copied line, check and all) is refused naming the second line
    and the first."""
    path = tmp_path / "r.jsonl"
    written(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1]]) + "\n")
    message = assert_raises_naming(
        ValueError, f"{path}:4", ResultsFile(str(path)).resume, CONFIG, digest_of
    )
    assert "line 2" in message


def test_a_file_of_another_evaluation_or_other_data_is_refused(tmp_path):
    """Other settings are refused naming what differs; other data (another fingerprint of the
    selected clips) is refused naming the data."""
    path = tmp_path / "r.jsonl"
    written(path)
    file = ResultsFile(str(path))
    message = assert_raises_naming(
        ValueError, "Store.path", file.resume, {**CONFIG, "steps": 3}, digest_of
    )
    assert "'steps'" in message
    assert_raises_naming(ValueError, "data", file.resume, CONFIG, lambda ids: "d2")


def test_a_cell_of_the_same_key_defined_otherwise_is_refused(tmp_path):
    """check_reuse accepts a stored cell defined as this grid defines it, and refuses one with
    other budgets or another rule, naming the Grid field, the cell and its line."""
    path = tmp_path / "r.jsonl"
    file = written(path)
    _, done = file.resume(CONFIG, digest_of)
    key = cell(1.0).key
    file.check_reuse(done, {key: DEFINES})
    louder = {**DEFINES, "budgets": {"audio": "Linf(eps=0.1)"}}
    message = assert_raises_naming(
        ValueError, "Grid.budgets", file.check_reuse, done, {key: louder}
    )
    assert key in message and "line 2" in message
    other_rule = {**DEFINES, "rule": "MIM(decay=0.5)"}
    assert_raises_naming(ValueError, "Grid.rules", file.check_reuse, done, {key: other_rule})


def test_the_lock_refuses_a_live_owner_and_takes_over_a_dead_one(tmp_path):
    """ResultsLock creates ``<path>.lock`` for the block and removes it after; a lock of a
    live process refuses the run naming the lock; a lock of a process that no longer runs is
    taken over with a warning."""
    path = str(tmp_path / "r.jsonl")
    with ResultsLock(path):
        assert os.path.exists(path + ".lock")
        with pytest.raises(RuntimeError, match=r"r\.jsonl\.lock"):
            ResultsLock(path).__enter__()
    assert not os.path.exists(path + ".lock")
    dead = 2**22 + 12345  # above the usual pid_max: not a running process
    with open(path + ".lock", "w") as handle:
        handle.write(f"{dead} {socket.gethostname()}\n")
    with pytest.warns(UserWarning, match=rf"process {dead}.*no longer running"):
        with ResultsLock(path):
            pass
    assert not os.path.exists(path + ".lock")


def test_an_atomic_rewrite_that_fails_leaves_the_old_file(tmp_path, monkeypatch):
    """A write that fails half way (a full disk) leaves the old file byte for byte and no
    temporary file; a write that succeeds replaces the file whole."""
    path = tmp_path / "r.jsonl"
    path.write_text("old\n")
    fail_writes_under(tmp_path, monkeypatch)
    with pytest.raises(OSError, match="simulated"):
        atomic_write(str(path), "new content\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["r.jsonl"]
    atomic_write(str(path), "new content\n")
    assert path.read_text() == "new content\n"


def test_lines_hold_no_infinite_number_and_read_back_as_inf(tmp_path):
    """An untouched modality's SNR (+inf) is written as JSON null (JSON has no inf) and read
    back as inf; the line's check is over what is written."""
    c = CellResult("bim", 1.0, ("audio",), 1.0, 1.0, 0.0, 0.0, snr_db={"audio": float("inf")})
    line = dump_record({"kind": "cell", "key": c.key, "defines": DEFINES, "result": c.to_dict()})
    assert json.loads(line)["result"]["snr_db"] == {"audio": None}
    path = tmp_path / "r.jsonl"
    path.write_text(dump_record({**meta(), "data": "d1"}) + line)
    assert read_results(path).cells[c.key].cell.snr_db == {"audio": float("inf")}


def test_store_checks_its_fields(tmp_path):
    """Store refuses a path of the wrong type or a folder, and a resume that is not a bool,
    naming the field."""
    assert_raises_naming(TypeError, "Store.path", Store, 3)
    assert_raises_naming(TypeError, "Store.path", Store, "")
    assert_raises_naming(ValueError, "Store.path", Store, tmp_path)
    assert_raises_naming(TypeError, "Store.resume", Store, tmp_path / "r.jsonl", 1)
    assert Store(tmp_path / "r.jsonl").file == str(tmp_path / "r.jsonl")
