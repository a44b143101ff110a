"""Issue 17, point 9: ``avrobust demo --avil-pair l1,l1`` (or ``--avil-single``) is refused at
argument parsing, before any training (today AVILoss refuses the repeated term only when model D
is trained, after models A to C): exit status 2, one error line naming the option."""

from __future__ import annotations

import pytest
from helpers import assert_raises_naming

import avrobust.demo.training
from avrobust.cli import main
from avrobust.demo import PRESETS


@pytest.fixture
def no_training(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("training started although the options should have been refused")

    monkeypatch.setattr(avrobust.demo.training, "train_model", forbidden)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--avil-pair", "l1,l1"), ("--avil-pair", "L2,l2"), ("--avil-single", "l3,l3")],
)
def test_a_repeated_avil_term_exits_2_naming_the_option(
    tmp_path, no_training, capsys, option, value
):
    argv = ["demo", "--preset", "test", "--quiet", "--out", str(tmp_path / "d"), option, value]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if "error" in line]
    assert errors == [err[-1]] and option in err[-1] and "distinct" in err[-1], err
    assert not (tmp_path / "d").exists()


def test_a_demo_config_with_a_repeated_avil_term_is_refused_naming_it():
    """From Python, the DemoConfig refuses it when made, naming the field."""
    assert_raises_naming(ValueError, "avil_pair", PRESETS["test"].replace, avil_pair=("l1", "L1"))
    assert_raises_naming(ValueError, "avil_single", PRESETS["test"].replace, avil_single=["l4"] * 2)


def test_fresh_stops_before_overwriting_an_output_changed_since(tmp_path, no_training, capsys):
    """``--fresh`` in a folder whose table.md (written by the demo) was edited since: exit 2,
    one line naming the file; nothing is deleted."""
    from avrobust.demo.folder import DemoFolder, settings_of

    folder = DemoFolder(str(tmp_path))
    folder.claim(settings_of(PRESETS["test"]), ["table.md", "summary.md"])
    for name in ("table.md", "summary.md"):
        (tmp_path / name).write_text("the demo's\n")
    folder.record({})
    (tmp_path / "table.md").write_text("my edits")
    assert main(["demo", "--preset", "test", "--quiet", "--out", str(tmp_path), "--fresh"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "table.md" in err[0] and "changed" in err[0], err
    assert (tmp_path / "table.md").read_text() == "my edits"
    assert (tmp_path / "summary.md").exists()
