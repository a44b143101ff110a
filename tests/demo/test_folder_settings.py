"""Settings whose change only makes some results stale (the surrogate, the worst-case attack's
steps and queries) keep the folder's models: another worst-case setting deletes the worst-case
cells the demo wrote, and nothing else; a folder written before these settings existed is
accepted as it is; a training setting still needs ``--fresh``."""

from __future__ import annotations

import json

import pytest

from avrobust.demo import PRESETS
from avrobust.demo.folder import MANIFEST, FolderConflict, open_demo_folder, settings_of

WORST = ("results/A-worst-case.jsonl", "results/B-worst-case.jsonl")
KEPT = ("results/A.jsonl", "results/S-to-A.jsonl")


def _open(out, config, said=None):
    planned = [*WORST, *KEPT]
    say = (lambda _: None) if said is None else said.append
    return open_demo_folder(str(out), settings_of(config), planned, fresh=False, say=say)


def _run(out, config, said=None) -> None:
    """Open the folder for ``config`` and write (and record) every planned file."""
    folder, before = _open(out, config, said)
    for rel in (*WORST, *KEPT):
        (out / rel).parent.mkdir(exist_ok=True)
        (out / rel).write_text("cell\n")
    folder.record(before)


def test_other_worst_case_settings_drop_only_the_worst_case_cells(tmp_path) -> None:
    config = PRESETS["test"]
    _run(tmp_path, config)
    said: list[str] = []
    _open(tmp_path, config.replace(worst_case_steps=3), said)
    assert not any((tmp_path / rel).exists() for rel in WORST)
    assert all((tmp_path / rel).exists() for rel in KEPT)
    assert len(said) >= 2 and all("worst-case" in line for line in said[:2])


def test_the_same_settings_or_another_surrogate_keep_every_cell(tmp_path) -> None:
    config = PRESETS["test"]
    _run(tmp_path, config)
    _open(tmp_path, config)
    _run(tmp_path, config.replace(surrogate="spec_talknet"))  # S is another cached model
    assert all((tmp_path / rel).exists() for rel in (*WORST, *KEPT))


def test_a_manifest_from_before_the_new_settings_is_accepted_and_keeps_its_cells(tmp_path):
    config = PRESETS["test"]
    _run(tmp_path, config)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    for key in ("surrogate", "worst_case_steps", "worst_case_queries"):
        del manifest["settings"][key]  # as the code before these settings wrote it
    assert all("architecture" not in m for m in manifest["settings"]["models"])
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    _open(tmp_path, config)
    assert all((tmp_path / rel).exists() for rel in (*WORST, *KEPT))


def test_a_training_setting_still_needs_fresh(tmp_path) -> None:
    config = PRESETS["test"]
    _run(tmp_path, config)
    with pytest.raises(FolderConflict, match="train_steps"):
        _open(tmp_path, config.replace(train_steps=5))
