"""``avrobust demo`` and ``avrobust evaluate``: nothing lost, bad input refused before any work.

The demo's folder may hold the user's own files: the demo deletes or overwrites only what it wrote
(its manifest ``.avrobust-manifest.json``), refuses a rerun with other settings before any work
(naming the option), and reuses its models when only the budget grid changes. Bad options are
refused at parsing (exit 2, the option named); bad ``DemoConfig``/``run_demo`` arguments raise an
error naming the argument.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil

import pytest
from helpers import assert_raises_naming

import avrobust.cli.argtypes
import avrobust.demo.training
import avrobust.demo.work
import avrobust.evaluation
from avrobust.cli import main
from avrobust.demo import PRESETS, DemoConfig, run_demo
from avrobust.demo.folder import DemoFolder, settings_of

TEST = ["demo", "--preset", "test", "--quiet", "--no-plots", "--threads", "1"]
USER_FILES = {  # the user's own files in the demo's folders; none may be touched
    "notes.md": b"my notes",
    "models/mine.pt": b"my weights",
    "models/sub/readme.txt": b"a sub-folder of mine",
    "results/mine.jsonl": b'{"mine": 1}\n',
    "results/sub/old.csv": b"a,b\n1,2\n",
}


def tree(folder) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder``."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            out[os.path.relpath(path, folder).replace(os.sep, "/")] = digest
    return out


def add_user_files(folder) -> None:
    for rel, content in USER_FILES.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def assert_user_files_intact(folder) -> None:
    for rel, content in USER_FILES.items():
        assert (folder / rel).read_bytes() == content, rel


@pytest.fixture
def made(demo_folder):
    """A folder made by one ``avrobust demo --preset test`` run (``demo_folder``, conftest.py;
    tests copy it before changing it)."""
    return demo_folder


@pytest.fixture
def claimed(tmp_path):
    """A folder whose manifest says a ``test`` preset run made it (no run: instant)."""
    DemoFolder(str(tmp_path)).claim(settings_of(PRESETS["test"]), [])
    return tmp_path


# ----------------------------------------------------------------------------- nothing lost


@pytest.mark.slow
def test_retrain_deletes_only_what_the_demo_wrote(made, tmp_path, capsys) -> None:
    """``--retrain`` (here with another seed) keeps the user's files and sub-folders in
    ``models/``, ``results/`` and the folder itself, deletes the previous run's models, and says
    what it deletes."""
    out = tmp_path / "demo"
    shutil.copytree(made, out)
    old_models = sorted(p.name for p in (out / "models").glob("*.model"))
    add_user_files(out)
    argv = ["demo", "--preset", "test", "--no-plots", "--out", str(out), "--retrain", "--seed", "1"]
    assert main(argv) == 0
    assert_user_files_intact(out)
    new_models = sorted(p.name for p in (out / "models").glob("*.model"))
    # seed 1: other models (A-E and the transfer surrogate S)
    assert len(new_models) == 6 * 2 and not set(old_models) & set(new_models)  # 2 runs each
    printed = capsys.readouterr().out
    assert "deleting" in printed and old_models[0] in printed


@pytest.mark.slow
def test_a_plain_rerun_keeps_user_files(made, tmp_path) -> None:
    """A rerun without ``--fresh`` into a folder with user files leaves them alone too."""
    out = tmp_path / "demo"
    shutil.copytree(made, out)
    add_user_files(out)
    assert main([*TEST, "--out", str(out)]) == 0
    assert_user_files_intact(out)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--seed", "1"], "--seed"),
        (["--train-steps", "9"], "--train-steps"),
        (["--avil-pair", "l2,l3"], "--avil-pair"),
        (["--avil-single", "l3"], "--avil-single"),
    ],
)
def test_other_settings_refused_before_any_work(claimed, no_work, options, named, capsys) -> None:
    """A rerun with another training setting stops at once (exit 2, one line naming the option
    and the way out), and the folder is left exactly as it was."""
    before = tree(claimed)
    assert main([*TEST, "--out", str(claimed), *options]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert named in err and "--fresh" in err
    assert tree(claimed) == before


def test_another_preset_is_refused_naming_the_preset(claimed, no_work, capsys) -> None:
    assert main(["demo", "--quick", "--quiet", "--out", str(claimed)]) == 2
    err = capsys.readouterr().err
    assert "--preset" in err and "--fresh" in err


def test_changing_only_the_grid_keeps_every_model_key() -> None:
    """The models do not depend on the eps grid nor on the table's budget: their cache files
    (keyed by what they depend on) are the same after changing only those."""
    base = PRESETS["quick"]
    other = base.replace(eps_grid=(5.0, 7.0), table_eps=7.0, tie_margin=5.0)
    for spec, spec2 in zip(base.models, other.models):
        assert avrobust.demo.training.cache_path(
            spec, base, "m"
        ) == avrobust.demo.training.cache_path(spec2, other, "m")


@pytest.mark.slow
def test_changing_only_the_grid_trains_nothing(made, tmp_path, monkeypatch) -> None:
    """``--eps``/``--table-eps`` alone in an existing folder reuse every model."""
    out = tmp_path / "demo"
    shutil.copytree(made, out)

    def no_training(*args, **kwargs):
        raise AssertionError("a model was trained although only the grid changed")

    monkeypatch.setattr(avrobust.demo.training, "train_model", no_training)
    assert main([*TEST, "--out", str(out), "--eps", "50,60", "--table-eps", "60"]) == 0


@pytest.mark.slow
def test_other_worst_case_settings_recompute_only_the_worst_case(made, tmp_path, monkeypatch):
    """``--worst-case-steps`` in an existing folder trains nothing, recomputes the five
    worst-case cells (their files are deleted and written again) and no other cell; the
    summary says the new setting."""
    out = tmp_path / "demo"
    shutil.copytree(made, out)

    def no_training(*args, **kwargs):
        raise AssertionError("a model was trained although only the worst case changed")

    monkeypatch.setattr(avrobust.demo.training, "train_model", no_training)
    evaluate, computed = avrobust.demo.work.evaluate, []

    def counting(*args, on_cell=None, **kwargs):
        def count(cell):  # and the demo's own on_cell (it counts computed cells too)
            computed.append(cell.rule)
            if on_cell is not None:
                on_cell(cell)

        return evaluate(*args, on_cell=count, **kwargs)

    monkeypatch.setattr(avrobust.demo.work, "evaluate", counting)
    assert main([*TEST, "--out", str(out), "--worst-case-steps", "3"]) == 0
    assert computed == ["worst-case"] * (5 * 2 * 1)  # 5 models, 2 runs, 1 budget (50)
    assert "then APGD with cross-entropy, 3 steps each" in (out / "summary.md").read_text()


def test_a_bad_surrogate_exits_2_naming_the_option(tmp_path, no_work, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*TEST, "--out", str(tmp_path / "d"), "--surrogate", "talknet"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--surrogate" in err and "nc_talknet" in err


def test_foreign_file_at_an_output_name_is_refused(tmp_path, no_work, capsys) -> None:
    """A file the demo did not write, where it would write, stops the run before any work."""
    (tmp_path / "table.md").write_text("mine")
    assert main([*TEST, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "table.md" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "table.md").read_text() == "mine"


def test_a_manifest_pointing_outside_is_refused(tmp_path, no_work) -> None:
    (tmp_path / ".avrobust-manifest.json").write_text(
        '{"format": 1, "settings": null, "files": {"../victim.txt": {"size": 1, "sha256": null}}}'
    )
    (tmp_path.parent / "victim.txt").write_text("x")
    assert_raises_naming(
        ValueError, ".avrobust-manifest.json", run_demo, tmp_path, "test", retrain=True
    )
    assert (tmp_path.parent / "victim.txt").exists()


@pytest.mark.parametrize("command", ["demo", "evaluate"])
def test_out_that_is_a_file_exits_2_with_one_line(command, tmp_path, no_work, capsys) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    argv = [command, "--out", str(target)]
    if command == "evaluate":
        ckpt = tmp_path / "w.model"
        ckpt.write_bytes(b"")
        argv += ["--checkpoint", str(ckpt), "--data", "synthetic:4"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "Traceback" not in err


def test_out_with_a_nul_exits_2(no_work, capsys) -> None:
    assert main([*TEST, "--out", "demo\0out"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "NUL" in err


def test_out_not_writable_exits_2(tmp_path, no_work, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user (root) who may write anywhere")
        assert main([*TEST, "--out", str(locked / "sub")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--out" in err and "writable" in err
    finally:
        locked.chmod(0o700)


# ----------------------------------------------------------------------------- bad options

CKPT = ["--checkpoint", "{ckpt}", "--data", "synthetic:4"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["demo", "--eps", "1e308"], "--eps"),
        (["demo", "--eps", "nan"], "--eps"),
        (["demo", "--eps", "5,inf"], "--eps"),
        (["demo", "--eps", "-5"], "--eps"),
        (["demo", "--eps", "5,5"], "--eps"),
        (["demo", "--eps", "20", "--table-eps", "nan"], "--table-eps"),
        (["demo", "--seed", "-1"], "--seed"),
        (["demo", "--seed", str(2**40)], "--seed"),
        (["demo", "--train-steps", "0"], "--train-steps"),
        (["demo", "--threads", "0"], "--threads"),
        (["demo", "--seeds", "0"], "--seeds"),
        (["demo", "--seeds", "10"], "--seeds"),  # the library's limit, named as the option
        (["evaluate", *CKPT, "--eps", "nan"], "--eps"),
        (["evaluate", *CKPT, "--eps", "1e308"], "--eps"),
        (["evaluate", *CKPT, "--fps", "nan"], "--fps"),
        (["evaluate", *CKPT, "--fps", "0"], "--fps"),
        (["evaluate", *CKPT, "--seed", "-3"], "--seed"),
        (["evaluate", "--checkpoint", "{ckpt}", "--data", "synthetic:0"], "--data"),
        (["evaluate", "--checkpoint", "{ckpt}", "--data", "synthetic:many"], "--data"),
        (["evaluate", *CKPT, "--max-clips", "-1"], "--max-clips"),
    ],
)
def test_bad_options_refused_at_parsing(argv, named, tmp_path, no_work, capsys) -> None:
    """Exit 2 before any work, the option named in the message, no traceback."""
    ckpt = tmp_path / "w.model"
    ckpt.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("{ckpt}", str(ckpt)) for a in argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


# ----------------------------------------------------------------------------- Python API


@pytest.mark.parametrize(
    ("changes", "exc", "named"),
    [
        ({"eps_grid": ()}, ValueError, "eps_grid"),
        ({"eps_grid": (5.0, math.nan), "table_eps": 5.0}, ValueError, "eps_grid"),
        ({"eps_grid": (5.0, 5.0), "table_eps": 5.0}, ValueError, "eps_grid"),
        ({"eps_grid": (5.0, -1.0), "table_eps": 5.0}, ValueError, "eps_grid"),
        ({"table_eps": math.nan}, ValueError, "table_eps"),
        ({"difficulty": 2.0}, ValueError, "difficulty"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"lr": math.inf}, ValueError, "lr"),
        ({"avil_weight": -0.1}, ValueError, "avil_weight"),
        ({"adv_ratio": 1.5}, ValueError, "adv_ratio"),
        ({"adv_eps": -1.0}, ValueError, "adv_eps"),
        ({"avil_single": ("l9",)}, ValueError, "avil_single"),
        ({"avil_pair": "l1"}, TypeError, "avil_pair"),
        ({"rules": ("cw",)}, ValueError, "rules"),
        ({"modalities": ("audio+depth",)}, ValueError, "modalities"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 2**40}, ValueError, "seed"),
        ({"face_size": 8}, ValueError, "face_size"),
        ({"extras": "yes"}, TypeError, "extras"),
    ],
)
def test_bad_demo_config_names_the_setting(changes, exc, named) -> None:
    assert_raises_naming(exc, named, PRESETS["test"].replace, **changes)


def test_run_demo_bad_arguments_name_the_argument(tmp_path, no_work) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert_raises_naming(NotADirectoryError, "out_dir", run_demo, a_file, "test")
    assert_raises_naming(TypeError, "out_dir", run_demo, 3, "test")
    assert_raises_naming(ValueError, "config", run_demo, tmp_path, "tiny")
    assert_raises_naming(TypeError, "config", run_demo, tmp_path, {"seed": 1})
    assert_raises_naming(TypeError, "retrain", run_demo, tmp_path, "test", retrain="yes")


def test_run_demo_names_the_differing_setting(claimed, no_work) -> None:
    """From Python the refusal names the DemoConfig field and ``retrain=True``."""
    message = assert_raises_naming(
        ValueError, "seed", run_demo, claimed, PRESETS["test"].replace(seed=4), progress=False
    )
    assert "retrain=True" in message


def test_default_adv_eps_does_not_follow_the_table() -> None:
    """Adversarial training uses ``adv_eps`` (default 20), whatever the table's budget."""
    assert DemoConfig().adv_eps == DemoConfig(eps_grid=(5.0,), table_eps=5.0).adv_eps == 20.0


def test_out_not_writable_exits_2_whoever_runs_it(tmp_path, monkeypatch, no_work, capsys) -> None:
    """The same refusal where the permission check says no (root may write anywhere, so the
    test above skips under root; here ``os.access`` answers as for a read-only folder)."""
    monkeypatch.setattr(avrobust.cli.argtypes.os, "access", lambda path, mode: False)
    assert main([*TEST, "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "not writable" in err
