"""Issue 17, points 7 and 9: the results file is never lost, replaced by a file where a link
was, or taken for one the library wrote.

A results path that is a symbolic link keeps its link (the target gets the results); a file the
library did not write (a foreign one-line text, a picture, random bytes) is refused naming it,
never overwritten; an interrupted atomic write leaves no temporary file after the next run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from avrobust.evaluation import CellResult, EvaluationReport
from avrobust.evaluation.records import FORMAT
from avrobust.evaluation.store import ResultsFile, atomic_write, read_results

CONFIG = {"format": FORMAT, "steps": 2, "objective": "training", "model": "abc", "seed": 0}
DEFINES = {"rule": "BIM()", "budgets": {"audio": "Linf(eps=0.01)"}}
META = {
    "kind": "meta",
    "config": CONFIG,
    "clean": {"map_all": 1.0, "samples_total": 4},
    "selection": [0, 1, 2, 3],
    "data": "d1",
}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


def digest_of(indices: list[int]) -> str:
    return "d1"


def cell(eps: float) -> CellResult:
    return CellResult("bim", eps, ("audio",), 1.0, 0.5, 0.25, 0.1, snr_db={"audio": 30.0})


def add_cell(file: ResultsFile, eps: float) -> None:
    c = cell(eps)
    file.append(c.key, DEFINES, c.to_dict())


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ----------------------------------------------------------------------------- links


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_a_results_path_that_is_a_link_keeps_its_link(tmp_path):
    """Starting, appending to and repairing (an atomic rewrite) a results file reached through a
    symbolic link write the link's target; the link stays a link."""
    target = tmp_path / "store" / "results.jsonl"
    target.parent.mkdir()
    link = tmp_path / "results.jsonl"
    link.symlink_to(target)
    file = ResultsFile(str(link))
    file.start(META)
    add_cell(file, 1.0)
    assert link.is_symlink() and len(read_results(target).cells) == 1
    with open(link, "a") as handle:  # a line cut short by a kill: the resume rewrites the file
        handle.write('{"kind": "cell", "key": "bim|2')
    _, done = ResultsFile(str(link)).resume(CONFIG, digest_of)
    assert list(done) == [cell(1.0).key]
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().count("\n") == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.jsonl"]


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")
def test_an_atomic_write_through_a_dangling_link_creates_its_target(tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    link = tmp_path / "r.jsonl"
    link.symlink_to(target)
    atomic_write(str(link), "text\n")
    assert link.is_symlink() and target.read_text() == "text\n"


# ----------------------------------------------------------------------------- foreign files


@pytest.mark.parametrize(
    "text", ["my notes, no newline", '{"kind": "cell", "key": "bim|1', "hello\nworld"]
)
def test_a_foreign_text_file_is_refused_and_left_alone(tmp_path, text):
    """A one-line text without a trailing newline (not a cut last line of a results file: there
    is no meta line before it), even one that looks like a cut cell line, is refused naming the
    file; resuming or starting afresh leaves it byte for byte."""
    path = tmp_path / "r.jsonl"
    path.write_text(text)
    file = ResultsFile(str(path))
    with pytest.raises(ValueError, match="not a results file") as info:
        file.resume(CONFIG, digest_of)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="not a results file"):
        file.start(META)
    assert path.read_text() == text


@pytest.mark.parametrize("content", [PNG, bytes(range(256)) * 4], ids=["png", "random"])
def test_a_binary_file_is_refused_as_not_a_results_file(tmp_path, content):
    """A picture or random bytes at the results path: a ValueError naming the file and saying it
    is not a results file (not a UnicodeDecodeError), from resume, read_results and the report;
    the file is left as it was."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(content)
    for read in (
        lambda: ResultsFile(str(path)).resume(CONFIG, digest_of),
        lambda: read_results(path),
        lambda: EvaluationReport.from_results_file(path),
        lambda: ResultsFile(str(path)).start(META),
    ):
        with pytest.raises(ValueError) as info:
            read()
        assert not isinstance(info.value, UnicodeDecodeError)
        assert str(path) in str(info.value) and "not a results file" in str(info.value)
    assert path.read_bytes() == content


def test_an_empty_file_or_a_results_file_may_be_started_afresh(tmp_path):
    """Starting afresh replaces an empty file and a results file (of any evaluation)."""
    path = tmp_path / "r.jsonl"
    path.write_text("")
    ResultsFile(str(path)).start(META)
    add_cell(ResultsFile(str(path)), 1.0)
    ResultsFile(str(path)).start(META)
    assert read_results(path).cells == {}


# ----------------------------------------------------------------------------- temporaries


@pytest.mark.skipif(os.name == "nt", reason="process ids are checked on POSIX only")
def test_temporaries_of_dead_runs_are_removed_by_the_next_run(tmp_path):
    """A ``<results>.tmp-<pid>`` left by a killed atomic write of a process that has ended is
    removed by the next run (resume or a fresh start); a temporary of a running process and
    files of other names are kept."""
    path = tmp_path / "r.jsonl"
    ResultsFile(str(path)).start(META)
    stale = tmp_path / f"r.jsonl.tmp-{dead_pid()}"
    live = tmp_path / f"r.jsonl.tmp-{os.getppid()}"
    others = [tmp_path / "r.jsonl.tmp-abc", tmp_path / f"other.jsonl.tmp-{dead_pid()}"]
    for p in (stale, live, *others):
        p.write_text('{"kind": "meta"')
    ResultsFile(str(path)).resume(CONFIG, digest_of)
    assert not stale.exists() and live.exists() and all(p.exists() for p in others)
    stale.write_text("x")
    ResultsFile(str(path)).start(META)
    assert not stale.exists() and live.exists()
