"""Issue 17 sweep, the command line: bad input (an empty --out, a checkpoint that is no
checkpoint or does not fit --model, a face size the model refuses, a folder that is no AVA tree)
exits 2 before any work with one line naming the option, never a traceback."""

from __future__ import annotations

import pytest
import torch

from avrobust.cli import main
from avrobust.demo.folder import check_out_dir
from avrobust.models import TalkNet


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    TalkNet("tiny").save_checkpoint(folder / "tiny.model")
    (folder / "empty.model").write_bytes(b"")
    (folder / "text.model").write_text("not a checkpoint")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, folder / "wrapped.model")
    (folder / "no_ava").mkdir()
    return folder


def _exit_line(capsys, argv):
    """Run the command; it must exit 2 with one error line and no traceback: return the line."""
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _evaluate(files, *more, checkpoint="tiny.model", data="synthetic:2"):
    return [
        "evaluate", "--checkpoint", str(files / checkpoint), "--data", data, "--model", "tiny",
        "--quiet", "--no-plots", "--out", str(files / "out"), *more,
    ]  # fmt: skip


@pytest.mark.parametrize("command", ["demo", "evaluate"])
def test_an_empty_out_exits_2_naming_it(capsys, no_work, files, command, monkeypatch, tmp_path):
    """``--out "$OUT"`` with the variable unset would write into the current folder."""
    monkeypatch.chdir(tmp_path)
    argv = ["demo", "--preset", "test", "--quiet"] if command == "demo" else _evaluate(files)
    line = _exit_line(capsys, [*argv, "--out", ""])
    assert "--out" in line and "empty" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["", "   "])
def test_run_demo_refuses_an_empty_out_dir(value):
    with pytest.raises(ValueError, match="out_dir") as info:
        check_out_dir(value)
    assert "empty" in str(info.value)


@pytest.mark.parametrize(
    ("checkpoint", "words"),
    [
        ("empty.model", ("--checkpoint", "empty.model", "not a PyTorch checkpoint")),
        ("text.model", ("--checkpoint", "text.model", "not a PyTorch checkpoint")),
        ("wrapped.model", ("--checkpoint", "wrapped.model", "unwrapped")),
    ],
)
def test_a_file_that_is_no_checkpoint_exits_2_naming_the_option(
    capsys, no_work, files, checkpoint, words
):
    line = _exit_line(capsys, _evaluate(files, checkpoint=checkpoint))
    assert all(word in line for word in words), line


def test_a_checkpoint_of_another_architecture_exits_2_naming_model(capsys, no_work, files):
    argv = _evaluate(files)
    argv[argv.index("tiny")] = "talknet"
    line = _exit_line(capsys, argv)
    assert "--checkpoint" in line and "--model" in line and "does not fit" in line, line


def test_a_surrogate_that_is_no_checkpoint_exits_2_naming_it(capsys, no_work, files):
    line = _exit_line(capsys, _evaluate(files, "--surrogate", str(files / "text.model")))
    assert line.split("error: ", 1)[1].startswith("--surrogate"), line


def test_a_face_size_the_model_refuses_exits_2_naming_the_option(capsys, no_work, files):
    line = _exit_line(capsys, _evaluate(files, "--face-size", "7"))
    assert line.split("error: ", 1)[1].startswith("--face-size"), line


def test_a_folder_that_is_no_ava_tree_exits_2_naming_data(capsys, no_work, files):
    line = _exit_line(capsys, _evaluate(files, data=str(files / "no_ava")))
    assert "--data" in line and "val_loader.csv" in line, line
