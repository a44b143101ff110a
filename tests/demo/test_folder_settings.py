"""A demo folder written before the surrogate and worst-case settings existed is still accepted
(its run computed nothing that uses them); once recorded, changing one of them is refused."""

from __future__ import annotations

import json

import pytest

from avrobust.demo import PRESETS
from avrobust.demo.folder import MANIFEST, FolderConflict, open_demo_folder, settings_of


def _open(out, config):
    return open_demo_folder(str(out), settings_of(config), [], fresh=False, say=lambda _: None)


def test_a_manifest_from_before_the_new_settings_is_accepted(tmp_path) -> None:
    config = PRESETS["test"]
    folder, before = _open(tmp_path, config)
    folder.record(before)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    for key in ("surrogate", "worst_case_steps", "worst_case_queries"):
        del manifest["settings"][key]  # as the code before these settings wrote it
    assert all("architecture" not in m for m in manifest["settings"]["models"])
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    folder, before = _open(tmp_path, config)  # accepted
    folder.record(before)
    with pytest.raises(FolderConflict, match="worst_case_steps"):
        _open(tmp_path, config.replace(worst_case_steps=3))
    with pytest.raises(FolderConflict, match="surrogate"):
        _open(tmp_path, config.replace(surrogate="spec_talknet"))
