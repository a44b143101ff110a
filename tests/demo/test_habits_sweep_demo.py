"""Issue 17 sweep, the demo's folder: a plain rerun (no ``--fresh``) never overwrites nor deletes
an output whose content no longer matches the manifest (the user edited it): it stops before any
work naming the file, or keeps it; and such a file stays the user's (a later run does not adopt
it)."""

from __future__ import annotations

import os

import pytest

from avrobust.demo import PRESETS
from avrobust.demo.folder import (
    FolderConflict,
    drop_results,
    drop_stale_worst_case,
    open_demo_folder,
    settings_of,
)

SETTINGS = settings_of(PRESETS["test"])
FILES = ("table.md", "results/A.jsonl", "results/A-worst-case.jsonl", "models/a.model")


def _open(out, planned=FILES, *, fresh=False, settings=SETTINGS, said=None):
    say = (lambda _: None) if said is None else said.append
    return open_demo_folder(str(out), settings, list(planned), fresh=fresh, say=say)


def _run(out, planned=FILES, extra=()):
    """A finished run that wrote (and recorded) every planned file and ``extra`` ones."""
    folder, before = _open(out, planned)
    for rel in (*planned, *extra):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(f"written by the demo: {rel}\n")
    folder.record(before)
    return folder


@pytest.mark.parametrize("edited", FILES)
def test_a_plain_rerun_refuses_to_overwrite_an_edited_output(tmp_path, edited):
    _run(tmp_path)
    (tmp_path / edited).write_text("my own edit")
    with pytest.raises(FolderConflict, match=edited.replace(".", r"\.")) as info:
        _open(tmp_path)
    message = str(info.value)
    assert "changed since" in message and "move it away" in message
    assert (tmp_path / edited).read_text() == "my own edit"
    assert all((tmp_path / rel).exists() for rel in FILES)


def test_a_plain_rerun_refuses_a_listening_test_file_edited(tmp_path):
    """The demo rewrites its whole ``xab_test/`` folder, whose files are not all planned."""
    _run(tmp_path, extra=["xab_test/pair_0/genuine.wav"])
    (tmp_path / "xab_test/pair_0/genuine.wav").write_text("my recording")
    with pytest.raises(FolderConflict, match=r"genuine\.wav"):
        _open(tmp_path)


def test_a_plain_rerun_refuses_an_output_replaced_by_a_link(tmp_path):
    """Writing through a link would overwrite the user's file elsewhere."""
    _run(tmp_path)
    draft = tmp_path / "draft.md"
    draft.write_text("my paper")
    os.remove(tmp_path / "table.md")
    os.symlink(draft, tmp_path / "table.md")
    with pytest.raises(FolderConflict, match=r"table\.md"):
        _open(tmp_path)
    assert draft.read_text() == "my paper"


def test_an_unchanged_rerun_and_an_interrupted_one_go_on(tmp_path):
    _run(tmp_path)
    _open(tmp_path)  # nothing changed: no conflict (the run is now "writing")
    (tmp_path / "table.md").write_text("half written when killed")
    _open(tmp_path)  # hashes of the interrupted run are unknown: the demo's


def test_an_edited_output_the_rerun_does_not_write_stays_the_users(tmp_path):
    """A rerun that does not write the edited file keeps it, and does not record the edit as the
    demo's: a later ``--fresh`` keeps it too."""
    _run(tmp_path)
    (tmp_path / "models/a.model").write_text("my fine-tuned weights")
    planned = [rel for rel in FILES if rel != "models/a.model"]
    _run(tmp_path, planned)
    said: list[str] = []
    _open(tmp_path, planned, fresh=True, said=said)
    assert (tmp_path / "models/a.model").read_text() == "my fine-tuned weights"
    assert any("keeping" in line and "a.model" in line for line in said)


def test_drop_stale_worst_case_keeps_an_edited_cell_file(tmp_path):
    folder = _run(tmp_path)
    (tmp_path / "results/A-worst-case.jsonl").write_text("my cells")
    said: list[str] = []
    drop_stale_worst_case(folder, {**SETTINGS, "worst_case_steps": 3}, said.append)
    assert (tmp_path / "results/A-worst-case.jsonl").read_text() == "my cells"
    assert any("keeping" in line and "A-worst-case" in line for line in said)


def test_drop_results_refuses_to_delete_a_cell_file_edited_during_the_run(tmp_path):
    """The model was trained anew, so its old cells must go; one the user edited meanwhile is
    kept and the run stops, naming it (its cells belong to other weights)."""
    _run(tmp_path)
    folder, _ = _open(tmp_path)
    (tmp_path / "results/A.jsonl").write_text("my cells")
    with pytest.raises(FolderConflict, match=r"results/A\.jsonl"):
        drop_results(folder, "A", lambda _: None)
    assert (tmp_path / "results/A.jsonl").read_text() == "my cells"
    os.remove(tmp_path / "results/A.jsonl")
    (tmp_path / "results/A-worst-case.jsonl").write_text(
        "written by the demo: results/A-worst-case.jsonl\n"
    )
    drop_results(folder, "A", lambda _: None)  # unchanged since the manifest: deleted
    assert not (tmp_path / "results/A-worst-case.jsonl").exists()


def _old_fingerprint(model, batch, labels, eps_av, options):
    """The masking cache's key as the code before ``batch_coupling`` wrote it."""
    import hashlib
    import json

    from avrobust.evaluation.fingerprints import clip_digests, data_digest, model_fingerprint

    parts = {
        "model": model_fingerprint(model),
        "surrogate": model_fingerprint(None),
        "clips": data_digest(clip_digests(batch, labels)),
        "eps_av": float(eps_av),
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def test_a_masking_cache_from_before_batch_coupling_is_recomputed_once(tmp_path, monkeypatch):
    """``results/masking.json`` written before diagnose gained the ``batch_coupling`` flag is
    recomputed (once, no error): the summary never lacks that check."""
    import json

    import torch

    import avrobust.demo.masking as masking
    from avrobust.data.synthetic import SyntheticActiveSpeaker
    from avrobust.diagnostics import Diagnosis, Flag
    from avrobust.models import TalkNet

    config = PRESETS["test"]
    torch.manual_seed(0)
    model = TalkNet("tiny", face_size=config.face_size).eval()
    inputs, labels = SyntheticActiveSpeaker(
        4, frames=config.frames, face_size=config.face_size, seed=3
    ).tensors()
    clips = [0, 1]
    flags = [Flag("gradients", False, "fine")]
    calls = []

    def fake(model, *args, **kwargs):
        calls.append(model)
        return Diagnosis(
            [*flags, Flag("batch_coupling", False, "none")], {"clean": 1.0, "pgd": 1.0}, {}, 2
        )

    monkeypatch.setattr(masking, "diagnose", fake)
    options = masking.masking_settings(config)
    batch = {k: v[torch.tensor(clips)] for k, v in inputs.items()}
    stamp = _old_fingerprint(model, batch, labels[torch.tensor(clips)], config.table_eps, options)
    old = Diagnosis(flags, {"clean": 1.0, "pgd": 1.0}, {}, 2)
    entry = {"fingerprint": stamp, "diagnosis": masking._masking_cache.to_json(old)}
    path = tmp_path / "masking.json"
    path.write_text(json.dumps({"format": 1, "models": {"A": entry}}))
    first = masking.masking_checks(
        config, {"A": model}, (inputs, labels), clips, None, cache=str(path)
    )
    assert len(calls) == 1
    assert "batch_coupling" in [f.name for f in first.diagnoses["A"].flags]
    again = masking.masking_checks(
        config, {"A": model}, (inputs, labels), clips, None, cache=str(path)
    )
    assert len(calls) == 1 and again.diagnoses == first.diagnoses
