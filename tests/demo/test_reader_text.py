"""Issue 19.5, what a reader sees in the text: the mAP floor sentence at exactly 50 %, no
negative zero in intervals, consistent heading levels in summary.md and table.md, the XAB folder
counted and listed by the command, and a cached rerun that keeps the first run's wall times."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from avrobust.demo import PRESETS, DemoResult
from avrobust.demo.intervals import Intervals
from avrobust.demo.outputs import summary_text, write_outputs
from avrobust.demo.tables import table_one, tables_text
from avrobust.evaluation import CellResult, EvaluationReport
from avrobust.evaluation.reporting import format_interval
from avrobust.metrics import average_precision


def _cell(speaking: int, clips: int = 8, frames: int = 4) -> CellResult:
    """A PGD audio-visual cell at eps_av 20 whose clips speak in ``speaking`` of ``frames``."""
    g = np.random.default_rng(0)
    labels = [np.array([1] * speaking + [0] * (frames - speaking)) for _ in range(clips)]
    clean = [y.astype(float) for y in labels]
    adv = [g.standard_normal(frames) for _ in labels]
    flat = np.concatenate(labels)
    return CellResult(
        rule="pgd", eps=20.0, modalities=("audio", "visual"),
        map_clean=float(average_precision(np.concatenate(clean), flat)),
        map_adv=float(average_precision(np.concatenate(adv), flat)),
        success_rate=0.0, frame_error_rate=0.0, ecr={"audio": 0.5, "visual": 0.5},
        samples=clips, frames=int(flat.size),
        per_clip={"labels": [y.tolist() for y in labels], "clean": [c.tolist() for c in clean],
                  "adv": [a.tolist() for a in adv],
                  "ecr": {"audio": [0.5] * clips, "visual": [0.5] * clips}},
    )  # fmt: skip


def _setting(speaking: int = 2):
    config = PRESETS["test"].replace(rules=("pgd",), eps_grid=(20.0,), table_eps=20.0)
    reports = {
        k: EvaluationReport({"objective": "training", "surrogate": None}, {}, list(range(8)),
                            [_cell(speaking)])
        for k in "AD"
    }  # fmt: skip
    return config, {"A": 0.99, "D": 0.98}, reports


def _tables(speaking: int) -> str:
    config, clean, reports = _setting(speaking)
    ci = Intervals(config)
    table, _ = table_one(config, clean, reports, intervals=ci)
    return tables_text(config, table, reports, {}, ci)


def test_the_floor_sentence_reads_right_at_exactly_half() -> None:
    """At 50 % speaking frames the floor is 50 %: the sentence must not say "not ... 50 %"."""
    text = _tables(speaking=2)  # 2 of 4 frames: exactly 50 %
    note = next(p for p in text.split("\n\n") if "of the frames are speaking" in p)
    assert "50.00 %" in note
    assert "not 0 or 50" not in note and "not 50" not in note
    quarter = next(p for p in _tables(speaking=1).split("\n\n") if "frames are speaking" in p)
    assert "25.00 %" in quarter and "not 0 or 50 %" in quarter


@pytest.mark.parametrize(
    ("value", "interval", "sign", "text"),
    [
        (-0.01, (-0.04, 0.0), "+", "0.0 [0.0, 0.0]"),
        (0.0, (-0.0, 1.8), "+", "0.0 [0.0, +1.8]"),
        (-0.02, (-0.03, 1.24), "", "0.0 [0.0, 1.2]"),
        (-0.1, (-0.2, 0.04), "+", "-0.1 [-0.2, 0.0]"),
        (-0.001, None, "", "0.00"),
        (-0.001, None, "+", "0.00"),
        (0.004, None, "+", "0.00"),
        (0.3, (0.1, 0.5), "+", "+0.3 [+0.1, +0.5]"),
    ],
)
def test_zero_prints_without_a_sign(value, interval, sign, text) -> None:
    """Decision: a number that rounds to zero prints as an unsigned 0.0 (no "-0.0", no "+0.0")."""
    assert format_interval(value, interval, sign=sign) == text


def _levels(markdown: str) -> list[int]:
    return [len(m.group(1)) for m in re.finditer(r"^(#+) ", markdown, flags=re.M)]


def _consistent(markdown: str) -> None:
    levels = _levels(markdown)
    assert levels and levels[0] == 1 and levels.count(1) == 1, levels
    assert all(b <= a + 1 for a, b in itertools.pairwise(levels)), levels  # no level skipped


def test_heading_levels_are_consistent(tmp_path) -> None:
    """summary.md and table.md: one title (#), then sections (##), no level skipped; the masking
    section is a section like the others."""
    from avrobust.demo.masking import _TITLE

    config, clean, reports = _setting()
    section = f"{_TITLE}\n\nnothing fired.\n\n"
    written = write_outputs(tmp_path, config, clean, reports, {}, False, {"train": 1.0},
                            "all", sections=[section])  # fmt: skip
    for name in ("summary.md", "table.md"):
        _consistent((tmp_path / name).read_text())
    assert set(_levels(written.summary)) == {1, 2}


def test_a_rerun_from_the_caches_says_it_kept_the_first_runs_times() -> None:
    """The summary states the recorded times and that this run read the caches."""
    config, clean, reports = _setting()
    ci = Intervals(config)
    table, _ = table_one(config, clean, reports, intervals=ci)
    kept = summary_text(config, table, [], {"train": 120.0, "evaluate": 300.0},
                        reused={"train": 0.4, "evaluate": 0.2})  # fmt: skip
    line = next(x for x in kept.splitlines() if x.startswith("Wall time"))
    assert "120 s" in line and "300 s" in line and "first run" in line
    assert "cache" in line
    fresh = summary_text(config, table, [], {"train": 120.0, "evaluate": 300.0})
    assert "first run" not in fresh and "cache" not in fresh.split("Wall time")[1]


def test_the_command_counts_and_groups_the_xab_folder(tmp_path, capsys) -> None:
    """The line "wrote N files" counts every file of xab_test/, listed as one line per folder."""
    from avrobust.cli.demo import print_result

    xab = [tmp_path / "xab_test" / f"pair_00{i}" / "genuine.wav" for i in range(3)]
    files = [str(tmp_path / "summary.md"), *map(str, xab)]
    result = DemoResult(PRESETS["test"], {}, {}, {}, "", "", files, {"total": 1.0}, [])
    print_result(result, str(tmp_path))
    out = capsys.readouterr().out
    assert "wrote 4 files" in out
    assert "xab_test/ (3 files" in out and "pair_000" not in out
