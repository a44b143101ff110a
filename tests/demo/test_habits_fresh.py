"""Issue 17, point 7: ``avrobust demo --fresh`` (``run_demo(retrain=True)``) deletes only the
outputs the demo wrote *as it wrote them*: one whose content no longer matches the hash in the
manifest (the user edited it) is kept, and the run says so; one that the new run would overwrite
stops it before anything is deleted."""

from __future__ import annotations

import pytest

from avrobust.demo import PRESETS
from avrobust.demo.folder import FolderConflict, open_demo_folder, settings_of

SETTINGS = settings_of(PRESETS["test"])
FILES = ("table.md", "results/A.jsonl", "models/old.model")


def _open(out, planned, *, fresh, said=None):
    say = (lambda _: None) if said is None else said.append
    return open_demo_folder(str(out), SETTINGS, list(planned), fresh=fresh, say=say)


def _run(out, planned=FILES):
    """A finished run that wrote (and recorded) every planned file."""
    folder, before = _open(out, planned, fresh=False)
    for rel in planned:
        (out / rel).parent.mkdir(exist_ok=True)
        (out / rel).write_text(f"written by the demo: {rel}\n")
    folder.record(before)


def test_fresh_keeps_an_output_changed_since_the_demo_wrote_it(tmp_path):
    """An edited output that the new run does not write is kept and named; the unchanged ones
    are deleted; the kept file is the user's from then on (a later fresh start keeps it)."""
    _run(tmp_path)
    (tmp_path / "models/old.model").write_text("my own fine-tuned weights")
    said: list[str] = []
    _open(tmp_path, ["table.md", "results/A.jsonl"], fresh=True, said=said)
    assert (tmp_path / "models/old.model").read_text() == "my own fine-tuned weights"
    assert not (tmp_path / "table.md").exists() and not (tmp_path / "results/A.jsonl").exists()
    assert any("keeping" in line and "models/old.model" in line for line in said)
    assert not any("deleting" in line and "old.model" in line for line in said)
    _open(tmp_path, ["table.md"], fresh=True)
    assert (tmp_path / "models/old.model").exists()


def test_fresh_refuses_to_overwrite_a_changed_output_before_deleting_anything(tmp_path):
    """An edited output that the new run would write again stops the run, naming it; nothing
    is deleted."""
    _run(tmp_path)
    (tmp_path / "table.md").write_text("my edited table")
    with pytest.raises(FolderConflict, match=r"table\.md") as info:
        _open(tmp_path, FILES, fresh=True)
    assert "changed" in str(info.value)
    assert (tmp_path / "table.md").read_text() == "my edited table"
    assert all((tmp_path / rel).exists() for rel in FILES)


def test_fresh_after_an_interrupted_run_deletes_what_that_run_was_writing(tmp_path):
    """A run that was stopped while rewriting its outputs leaves them without a hash in the
    manifest: a fresh start deletes them (they are the demo's), with no conflict."""
    _run(tmp_path)
    _open(tmp_path, FILES, fresh=False)  # a rerun starts ...
    (tmp_path / "results/A.jsonl").write_text("half a rewrite")  # ... and is killed
    _open(tmp_path, FILES, fresh=True)
    assert not any((tmp_path / rel).exists() for rel in FILES)
