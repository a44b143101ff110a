"""The ``avrobust`` command: the demo end to end, evaluate, and error messages.

The demo's outputs are checked on one run of the ``test`` preset (minimal sizes) as a command in
a subprocess, as a user runs it, with every UserWarning an error (``demo_folder``, shared by the
suite through conftest.py; the cache tests rerun it in a copy). The subprocess ran ``--quick``
before: 156 s of a 320 s suite on an idle 2-core machine, over the 300 s test timeout on a busy
one; the presets differ only in sizes.
"""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest

import avrobust.demo
import avrobust.demo.training
import avrobust.demo.work
import avrobust.evaluation
from avrobust.cli import main

RULES = ("bim", "mim", "pgd")
MODELS = ("A", "B", "C", "D", "E")
VERDICTS = ("held", "did not hold", "partly", "inconclusive", "saturated", "not tested")


@pytest.fixture
def demo_output(demo_folder):
    """``(preset name, output folder)`` of the shared demo run (``demo_folder``, conftest.py)."""
    return "test", demo_folder


@pytest.mark.slow  # runs the demo (its fixture)
def test_demo_writes_every_output(demo_output) -> None:
    _, out = demo_output
    for name in (
        "table.md",
        "table.csv",
        "results.csv",
        "results.json",
        "summary.md",
        "fig3_model_A.png",
        "fig3_models.png",
        "ecr.png",
    ):
        assert (out / name).stat().st_size > 0, name
    for png in ("fig3_model_A.png", "fig3_models.png", "ecr.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    # the table's models and the transfer surrogate (S, an ncTalkNet), each trained twice (the
    # test preset's two training runs)
    names = sorted(p.name[0] for p in (out / "models").glob("*.model"))
    assert names == sorted([*MODELS, "S"] * 2)
    xab = out / "xab_test"
    assert (xab / "manifest.csv").exists() and (xab / "xab_key.csv").exists()
    # 2 speaking + 2 not (§4.2), or fewer where fewer clips were attacked: how many depends on the
    # trained models, so on the CPU and the thread count; the summary says how many per class
    per_class = int(
        re.search(r"(\d+) speaking \+ \1 not speaking", (out / "summary.md").read_text())[1]
    )
    trials = 2 * min(2, per_class)
    assert len(list((xab / "xab").glob("trial_*/X.wav"))) == trials
    assert len(list((xab / "xab").glob("trial_*/X.gif"))) == trials  # pillow comes with matplotlib
    # per training run: 5 grids, 4 of single modalities (B-E), 5 worst cases, 2 extras
    assert len(list((out / "results").glob("*.jsonl"))) == 2 * 16
    assert {p.name for p in (out / "results").glob("*worst-case.jsonl")} == {
        f"{m}{run}-worst-case.jsonl" for m in MODELS for run in ("", "-seed2")
    }
    assert (out / "results" / "S-to-A.jsonl").exists()
    assert (out / "results" / "S-seed2-to-A.jsonl").exists()


@pytest.mark.slow  # runs the demo (its fixture)
def test_demo_table_has_every_row_and_column(demo_output) -> None:
    _, out = demo_output
    with open(out / "table.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == list(MODELS)
    columns = {"model", "loss", "adversarial_training", "clean_map", "eps_av"}
    columns |= {"clean_map_low", "clean_map_high"}  # bootstrap intervals over the clips
    columns |= {f"{r}_{k}" for r in RULES for k in ("ecr_audio", "ecr_visual", "map")}
    columns |= {f"{r}_map_{b}" for r in RULES for b in ("low", "high")}
    columns |= {f"worst_case_{m}{b}" for m in ("map", "accuracy") for b in ("", "_low", "_high")}
    assert set(rows[0]) == columns
    for row in rows:
        assert 0 <= float(row["clean_map"]) <= 100
        for rule in RULES:
            assert 0 <= float(row[f"{rule}_map"]) <= 100
            assert float(row[f"{rule}_ecr_audio"]) >= 0 and float(row[f"{rule}_ecr_visual"]) >= 0
        assert 0 <= float(row["worst_case_accuracy"]) <= 100
    assert [r["adversarial_training"] for r in rows] == ["no", "BIM", "no", "no", "BIM"]
    assert rows[3]["loss"] == "CE_all + L1 + L4" and rows[2]["loss"] == "CE_all + L1"
    table = (out / "table.md").read_text()
    for key in MODELS:
        assert f"| ({key})" in table
    for rule in RULES:
        for col in ("A(ECR)", "V(ECR)", "mAP (%)"):
            assert f"{rule.upper()} {col}" in table
    assert "Clean mAP (%)" in table and "Adv. training" in table
    assert "Worst-case mAP (%)" in table and "Worst-case frame acc. (%)" in table
    assert "## Frame accuracy (%) under audio-visual attacks" in table
    assert "clips broken first by each attack" in table


@pytest.mark.slow  # runs the demo (its fixture)
def test_demo_results_and_summary(demo_output) -> None:
    preset, out = demo_output
    n_eps = len(avrobust.demo.PRESETS[preset].eps_grid)
    runs = avrobust.demo.PRESETS[preset].seeds
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    # per training run: (A) rules x modality sets x eps, the other rows rules x (eps + the two
    # single modalities at the table's eps), the worst case at every eps, + the extras:
    # inference-aware (3 rules at the table's eps) and transfer (PGD at every eps)
    grids = 3 * 3 * n_eps + 4 * 3 * (n_eps + 2)
    assert len(rows) == runs * (grids + 5 * n_eps + 3 + n_eps)
    worst = [r for r in rows if r["rule"] == "worst-case"]
    assert sorted((r["model"], r["run"]) for r in worst) == sorted(
        (m, str(run + 1)) for m in MODELS for run in range(runs) for _ in range(n_eps)
    )
    for row in rows:
        assert 0 <= float(row["map_adv"]) <= 100 and 0 <= float(row["success_rate"]) <= 1
    assert {r["attacked"] for r in rows} == {"audio", "visual", "audio+visual"}
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["reports"]) == set(MODELS) and set(saved["extras"]) == {
        "inference",
        "transfer",
    }
    assert all(0 <= v <= 1 for v in saved["clean_map"].values())
    summary = (out / "summary.md").read_text()
    assert "Which of the paper's findings held here" in summary and "Wall time" in summary
    assert "## Gradient-masking checks (Carlini et al., 2019)" in summary
    masking = summary.split("## Gradient-masking checks")[1].split("## Which")[0]
    assert all(f"- ({m})" in masking for m in MODELS)
    assert "crafted on (S) ncTalkNet" in summary  # the paper's surrogate, not another TalkNet
    findings = [line for line in summary.splitlines() if line.startswith("- **")]
    assert len(findings) >= 12
    assert all(line[4:].split("**")[0] in VERDICTS for line in findings)
    # the findings as data (results.json) are what the summary lists
    saved_findings = saved["findings"]
    assert [f"- **{f['verdict']}**: {f['claim']} {f['evidence']}." for f in saved_findings] == (
        findings
    )
    assert all(f["name"] and f["verdict"] in VERDICTS for f in saved_findings)


@pytest.mark.slow  # runs the demo (its fixture)
def test_demo_rerun_only_reads_its_caches(demo_folder, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "demo"
    shutil.copytree(demo_folder, out)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    def no_attack(*args, **kwargs):
        raise AssertionError("a finished cell was computed again")

    evaluate = avrobust.demo.work.evaluate

    def evaluate_without_new_cells(*args, **kwargs):
        return evaluate(*args, **{**kwargs, "on_cell": no_attack})  # called per computed cell

    monkeypatch.setattr(avrobust.demo.training, "train_model", no_training)
    monkeypatch.setattr(avrobust.demo.work, "evaluate", evaluate_without_new_cells)
    argv = ["demo", "--preset", "test", "--out", str(out), "--no-plots", "--threads", "1"]
    assert main(argv) == 0  # one worker: in this process, where the patches apply
    printed = capsys.readouterr().out
    assert printed.count("loaded from cache") == 12  # A-E and the surrogate, 2 runs each
    assert printed.count("(from the cache)") == 5  # every masking check, none run again
    assert "Table 1 (demo)" in printed and "| (E)" in printed and "Push-Pull findings" in printed
    wall = (out / "summary.md").read_text().split("Wall time", 1)[1]
    assert wall.startswith(" (of the first run; this rerun read the trained models and the attack")


def test_demo_config_replace_rebuilds_models_and_names_unknown_settings() -> None:
    config = avrobust.demo.PRESETS["quick"].replace(avil_pair=("l2", "l3"))
    assert config.train_steps == avrobust.demo.PRESETS["quick"].train_steps
    assert config.models[3].avil_terms == ("l2", "l3")  # (D) rebuilt from the new AVIL pair
    with pytest.raises(TypeError, match=r"DemoConfig: unknown field\(s\) \['epochs'\]; known:"):
        config.replace(epochs=3)


@pytest.mark.slow  # runs the demo (its fixture)
def test_evaluate_a_demo_checkpoint(demo_folder, tmp_path, capsys) -> None:
    out = demo_folder
    checkpoint = next((out / "models").glob("A-*.model"))
    args = [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--model",
        "tiny",
        "--face-size",
        "16",
        "--data",
        "synthetic:12",
        "--rules",
        "pgd",
        "--eps",
        "50",
        "--modalities",
        "audio+visual",
        "--steps",
        "1",
        "--select",
        "all",
        "--out",
        str(tmp_path),
        "--quiet",
        "--threads",
        "1",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "audio+visual" in printed and "mAP adv" in printed
    for name in ("results.jsonl", "report.csv", "report.json", "report.txt", "report_map.png"):
        assert (tmp_path / name).exists(), name
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["clean"]["samples_total"] == 12 and len(report["cells"]) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["evaluate", "--checkpoint", "missing.model", "--data", "synthetic"],
            "--checkpoint: file not found: missing.model",
        ),
        (["evaluate", "--data", "synthetic"], "the following arguments are required: --checkpoint"),
        (
            ["evaluate", "--checkpoint", "{ckpt}", "--data", "/no/such/folder"],
            "--data: expected an AVA folder",
        ),
        (
            ["evaluate", "--checkpoint", "{ckpt}", "--data", "synthetic", "--rules", "pgd,cw"],
            "--rules: expected names among fgsm,bim,mim,pgd,apgd, got ['cw']",
        ),
        (
            ["evaluate", "--checkpoint", "{ckpt}", "--data", "synthetic", "--eps", "0,5"],
            "argument --eps: expected a comma-separated list of eps_av values in (0, 100000]",
        ),
        (
            ["evaluate", "--checkpoint", "{ckpt}", "--data", "synthetic", "--eps", "a,b"],
            "argument --eps: expected a comma-separated list of eps_av values in (0, 100000] "
            "(at 20000 the budgets already cover the whole audio and video ranges), got 'a,b'",
        ),
        (
            [
                "evaluate",
                "--checkpoint",
                "{ckpt}",
                "--data",
                "synthetic",
                "--modalities",
                "audio+depth",
            ],
            "--modalities: expected audio, visual or audio+visual, got 'audio+depth'",
        ),
        (
            ["evaluate", "--checkpoint", "{ckpt}", "--data", "synthetic", "--steps", "0"],
            "expected a positive integer, got '0'",
        ),
        (
            ["demo", "--eps", "5,20", "--table-eps", "7"],
            "--table-eps: must be one of the eps grid ['5', '20'], got 7",
        ),
        (
            ["demo", "--avil-pair", "l1,l9"],
            "--avil-pair: expected AVIL terms among l1,l2,l3,l4, got ['l9']",
        ),
        (["demo", "--quick", "--preset", "test"], "--quick contradicts --preset test"),
        (["attack"], "invalid choice: 'attack'"),
    ],
)
def test_bad_options_say_what_is_wrong(argv, message, tmp_path, capsys) -> None:
    ckpt = tmp_path / "w.model"
    ckpt.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        main([a.replace("{ckpt}", str(ckpt)) for a in argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_files_that_do_not_fit_exit_2_and_runtime_errors_exit_1(
    tmp_path, capsys, monkeypatch
) -> None:
    """A file that is no checkpoint, or a folder that is no AVA tree, is bad input: exit 2 with
    one line naming the option, before any work. An error while running exits 1 with its
    reason."""
    not_a_checkpoint = tmp_path / "notes.model"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--checkpoint", str(not_a_checkpoint), "--data", "synthetic", "--quiet"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "error: --checkpoint:" in err and "is not a PyTorch checkpoint" in err
    empty = tmp_path / "ava"
    empty.mkdir()
    checkpoint = tmp_path / "tiny.model"
    from avrobust.models import TalkNet

    TalkNet("tiny", face_size=16).save_checkpoint(checkpoint)
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--model", "tiny", "--quiet"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--data", str(empty)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "error: --data:" in err and "val_loader.csv" in err

    def failing(*args, **kwargs):
        raise RuntimeError("the evaluation failed")

    monkeypatch.setattr(avrobust.evaluation, "evaluate", failing)
    assert main([*argv, "--data", "synthetic:2", "--out", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("avrobust evaluate: error:") and "the evaluation failed" in err


def test_help_and_version(capsys) -> None:
    assert main([]) == 2
    assert "avrobust demo" in capsys.readouterr().out
    for argv in (["--help"], ["demo", "--help"], ["evaluate", "--help"], ["--version"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "--quick" in printed and "--checkpoint FILE" in printed and "avrobust 0.1.0" in printed
    assert "--preset" not in printed  # the test preset stays hidden
