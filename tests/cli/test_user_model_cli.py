"""Issue 18: ``avrobust evaluate`` on a researcher's own model and data, named on the command line
as ``--model FILE.py:FACTORY`` / ``--model package.module:FACTORY`` and ``--data ...:FACTORY``.

The example of docs/evaluate.md ("Your own model and data") is ``tests/cli/user_model.py``; it
runs here as the page shows it: trained by ``python my_av_model.py``, then evaluated by the
page's ``avrobust evaluate`` command, then resumed."""

from __future__ import annotations

import json
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
import torch

import avrobust.evaluation
from avrobust.cli import main

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE / "user_model.py"
DOCS = HERE.parents[1] / "docs" / "evaluate.md"


def _section() -> str:
    text = DOCS.read_text()
    return text.split("### Your own model and data", 1)[1].split("\n## ", 1)[0]


def _exit_line(capsys, argv) -> str:
    """Run the command; it must exit 2 with one error line and no traceback: return the line."""
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0].split("error: ", 1)[1].removeprefix("argument ")


@pytest.fixture
def no_work(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("the evaluation started although the run should have been refused")

    monkeypatch.setattr(avrobust.evaluation, "evaluate", forbidden)


@pytest.fixture
def example(tmp_path, monkeypatch):
    """``my_av_model.py`` (the example) in an empty working folder, not importable otherwise."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_av_model.py").write_text(EXAMPLE.read_text())
    return tmp_path


def test_the_docs_show_the_example_file_as_it_is() -> None:
    blocks = re.findall(r"^```python\n(.*?)^```", _section(), re.S | re.M)
    assert blocks and blocks[0] == EXAMPLE.read_text()


@pytest.mark.slow  # trains the example (~1 s), runs 18 cells twice and draws the plots
def test_the_docs_example_runs_end_to_end_and_resumes(example, capsys) -> None:
    commands = re.findall(r"^```bash\n(.*?)^```", _section(), re.S | re.M)[0]
    lines = [c.split("#")[0].strip() for c in commands.replace("\\\n", " ").splitlines()]
    assert lines[0] == "python my_av_model.py"
    runpy.run_path("my_av_model.py", run_name="__main__")
    assert (example / "my_av_model.pt").is_file()
    argv = shlex.split(lines[1])
    assert argv[:2] == ["avrobust", "evaluate"]
    argv = [*argv[1:], "--quiet", "--threads", "1"]  # the suite's one thread, no progress bars
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "mAP adv" in printed and "audio+visual" in printed
    out = example / argv[argv.index("--out") + 1]
    for name in ("results.jsonl", "report.csv", "report.json", "report.txt", "report_map.png"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert len(report["cells"]) == 18 and report["clean"]["samples_total"] == 48
    assert report["clean"]["map_all"] > 0.9  # the trained model, not a fresh one
    adv = {(c["eps"], "+".join(c["modalities"])): c["map_adv"] for c in report["cells"]}
    assert adv[(20.0, "audio+visual")] > 0.99 and adv[(100.0, "audio")] > 0.99  # as the docs say
    assert adv[(100.0, "audio+visual")] < 0.8
    assert "mAP adv" in (out / "report.txt").read_text() and (out / "report_ecr.png").is_file()
    lines_before = (out / "results.jsonl").read_text()
    assert main(argv) == 0  # the same command again: every cell is read back, none recomputed
    assert (out / "results.jsonl").read_text() == lines_before
    assert capsys.readouterr().out.count("mAP adv") == 1


def test_a_dotted_module_in_the_working_folder_and_no_checkpoint(example, monkeypatch) -> None:
    """``package.module:factory`` imports from the working folder (as ``python -m`` would);
    without ``--checkpoint`` the factory's weights are used, seeded by ``--seed``; ``sys.path``
    is left as it was."""
    (example / "mine").mkdir()
    (example / "mine" / "__init__.py").write_text("")
    (example / "mine" / "models.py").write_text((example / "my_av_model.py").read_text())
    seen = []

    def fake_evaluate(model, data, grid, **kwargs):
        seen.append((model, data))
        raise RuntimeError("stop here")

    monkeypatch.setattr(avrobust.evaluation, "evaluate", fake_evaluate)
    path = list(sys.path)
    try:
        for _ in range(2):
            argv = ["evaluate", "--model", "mine.models:build", "--data", "mine.models:held_out"]
            assert main([*argv, "--quiet", "--threads", "1", "--out", "e"]) == 1
    finally:
        for name in ("mine", "mine.models"):
            sys.modules.pop(name, None)  # this test's package only
    assert sys.path == path
    (first, data), (second, _) = seen
    assert type(first).__name__ == "TinyAV" and len(data) == 48
    assert torch.equal(first.head.weight, second.head.weight)  # seeded: the same model each run


def test_synthetic_data_with_a_user_model_takes_the_face_size(example, monkeypatch, capsys):
    seen = []

    def record(model, data, grid, **kwargs):
        seen.append(data)
        raise RuntimeError("recorded")

    monkeypatch.setattr(avrobust.evaluation, "evaluate", record)
    argv = ["evaluate", "--model", "my_av_model.py:build", "--data", "synthetic:3", "--quiet"]
    assert _exit_line(capsys, argv).startswith("--face-size")
    assert main([*argv, "--face-size", "24", "--threads", "1", "--out", "e"]) == 1
    inputs, _ = seen[0][0]
    assert tuple(inputs["visual"].shape[1:]) == (24, 24) and len(seen[0]) == 3


@pytest.mark.parametrize(
    ("model", "data", "starts", "words"),
    [
        ("nosuchmodule:build", "my_av_model.py:held_out", "--model", ["nosuchmodule"]),
        ("missing.py:build", "my_av_model.py:held_out", "--model", ["missing.py", "no such file"]),
        ("my_av_model.py:nothing", "my_av_model.py:held_out", "--model", ["nothing", "build"]),
        ("my_av_model.py:FACE", "my_av_model.py:held_out", "--model", ["not callable"]),
        ("my_av_model.py:held_out", "my_av_model.py:held_out", "--model", ["nn.Module"]),
        ("my_av_model.py:build", "my_av_model.py:build", "--data", ["TinyAV"]),
        ("my_av_model.py:build", "my_av_model.py:nothing", "--data", ["nothing"]),
        ("my_av_model.py:build", "my_av_model.py:", "--data", ["MODULE:FACTORY"]),
        ("resnet", "synthetic", "--model", ["tiny", "MODULE:FACTORY"]),
        ("my_av_model.py:SpeakingClips.count", "synthetic", "--model", ["SpeakingClips.count"]),
    ],
)
def test_a_factory_that_does_not_fit_exits_2_naming_the_option(
    example, no_work, capsys, model, data, starts, words
) -> None:
    line = _exit_line(capsys, ["evaluate", "--model", model, "--data", data, "--quiet"])
    assert line.startswith(starts) and all(word in line for word in words), line


def test_a_factory_that_raises_exits_2_naming_it(example, no_work, capsys) -> None:
    (example / "broken.py").write_text("def build():\n    raise RuntimeError('no GPU here')\n")
    argv = ["evaluate", "--model", "broken.py:build", "--data", "synthetic", "--face-size", "24"]
    line = _exit_line(capsys, argv)
    assert line.startswith("--model") and "broken.py:build" in line and "no GPU here" in line


def test_a_file_that_does_not_import_exits_2_naming_it(example, no_work, capsys) -> None:
    (example / "typo.py").write_text("def build(:\n")
    argv = ["evaluate", "--model", "typo.py:build", "--data", "synthetic", "--face-size", "24"]
    line = _exit_line(capsys, argv)
    assert line.startswith("--model") and "SyntaxError" in line and "typo.py" in line


def test_a_checkpoint_that_does_not_fit_the_user_model_lists_keys(example, no_work, capsys):
    torch.save({"audio.0.weight": torch.zeros(16, 640), "extra": torch.zeros(1)}, "w.pt")
    argv = ["evaluate", "--model", "my_av_model.py:build", "--checkpoint", "w.pt"]
    line = _exit_line(capsys, [*argv, "--data", "my_av_model.py:held_out", "--quiet"])
    assert line.startswith("--checkpoint") and "w.pt" in line and "my_av_model.py:build" in line
    assert (
        "missing keys (5)" in line
        and "head.weight" in line
        and "unexpected keys (1): extra" in line
    )
    torch.save({"head.weight": torch.zeros(3)}, "w.pt")
    line = _exit_line(capsys, [*argv, "--data", "my_av_model.py:held_out", "--quiet"])
    assert "shape mismatches (1): head.weight (checkpoint [3], model [2, 32])" in line


def test_a_talknet_model_still_needs_a_checkpoint(no_work, capsys) -> None:
    line = _exit_line(capsys, ["evaluate", "--data", "synthetic", "--quiet"])
    assert line.startswith("--checkpoint") or "required: --checkpoint" in line


def test_face_size_has_nothing_to_set_with_a_user_model_and_user_data(example, no_work, capsys):
    argv = ["evaluate", "--model", "my_av_model.py:build", "--data", "my_av_model.py:held_out"]
    assert _exit_line(capsys, [*argv, "--face-size", "24", "--quiet"]).startswith("--face-size")


def test_a_wrapped_model_takes_its_inner_model_weights(example, monkeypatch) -> None:
    """A factory may return ``avrobust.wrap(model, ...)``; the state dict saved from the model
    itself loads into the model inside the wrapper, and the model is put in eval mode."""
    (example / "wrapped.py").write_text(
        "import avrobust\n"
        "from my_av_model import TinyAV\n\n"  # a neighbour of the file: importable
        "class Logits(TinyAV):\n"
        "    def forward(self, audio, visual):\n"
        "        return super().forward(audio, visual).logits\n\n"
        "def build():\n"
        "    return avrobust.wrap(Logits(), ['audio', 'visual'])\n"
    )
    torch.manual_seed(3)
    weights = torch.nn.Linear(32, 2).state_dict()
    torch.save({**_example_state(), "head.weight": weights["weight"]}, "w.pt")
    seen = []

    def record(model, data, grid, **kwargs):
        seen.append(model)
        raise RuntimeError("recorded")

    monkeypatch.setattr(avrobust.evaluation, "evaluate", record)
    argv = ["evaluate", "--model", "wrapped.py:build", "--checkpoint", "w.pt"]
    assert main([*argv, "--data", "my_av_model.py:held_out", "--quiet", "--threads", "1"]) == 1
    (model,) = seen
    assert torch.equal(model.model.head.weight, weights["weight"]) and not model.training


def _example_state() -> dict[str, torch.Tensor]:
    namespace = runpy.run_path("my_av_model.py")
    return namespace["build"]().state_dict()
