"""Tables and plots shared by the report and the demo (avrobust.evaluation.reporting), and the
report's name-free choices (table columns, robustness_row's modalities), on hand-made cells."""

from __future__ import annotations

import pytest
from helpers import assert_raises_naming

from avrobust.evaluation import CellResult, EvaluationReport
from avrobust.evaluation.reporting import (
    Curve,
    format_interval,
    markdown_table,
    plot_ecr_bars,
    plot_map_curves,
    save_figure,
    text_table,
)


def test_text_tables():
    """markdown_table pads every column to its widest cell; text_table right-aligns."""
    md = markdown_table(["a", "long head"], [["xyz", 1]]).splitlines()
    assert md == ["| a   | long head |", "|-----|-----------|", "| xyz | 1         |"]
    assert text_table(["a", "bb"], [["123", "4"]]).splitlines() == ["  a  bb", "123   4"]


def test_format_interval():
    """A value with a finite interval: one decimal each; without one: two decimals; none: '-'."""
    assert format_interval(70.61, (62.14, 78.33)) == "70.6 [62.1, 78.3]"
    assert format_interval(-3.0, (-5.0, 1.0), sign="+") == "-3.0 [-5.0, +1.0]"
    assert format_interval(70.612, (float("nan"), 1.0)) == "70.61"
    assert format_interval(None) == "-" and format_interval(float("inf")) == "-"


def test_plots_write_png_files(tmp_path):
    """plot_map_curves (with a band) and plot_ecr_bars give figures save_figure writes as PNG."""
    pytest.importorskip("matplotlib")
    curve = Curve("PGD", [0, 1, 2], [100, 80, 50], band=([95, 70, 40], [100, 90, 60]))
    paths = [tmp_path / "map.png", tmp_path / "ecr.png"]
    save_figure(plot_map_curves({"attacked: audio": [curve]}, title="t"), paths[0])
    bars = plot_ecr_bars(["A", "B"], {"audio ECR": [0.1, 0.2]}, headroom=1.35)
    save_figure(bars, paths[1])
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def _cell(modalities, map_adv, psnr=True):
    return CellResult(
        "pgd",
        1.0,
        tuple(modalities),
        1.0,
        map_adv,
        0.5,
        0.2,
        ecr={"mic": 0.1, "cam": 0.2},
        snr_db={m: 20.0 + i for i, m in enumerate(modalities)},
        psnr_db={m: 40.0 for m in modalities if psnr and m == "cam"},
    )


REPORT = EvaluationReport(
    {"objective": "training"},
    {"map_all": 1.0},
    [0, 1],
    [_cell(["mic"], 0.9), _cell(["cam"], 0.8), _cell(["cam", "mic"], 0.5)],
)


def test_table_columns_follow_the_modalities_not_their_names():
    """Modalities named neither audio nor visual get an SNR column each, and a PSNR column where
    PSNR was measured (a bounded budget); a modality's values stay in its own column."""
    head, *rows = REPORT.table().splitlines()[1:]
    columns = head.split()
    assert "mic" in columns and "cam" in columns
    assert head.index("SNR mic") < head.index("SNR cam") < head.index("PSNR cam")
    assert "PSNR mic" not in head
    assert rows[0].split()[-3:] == ["20.0", "-", "-"]  # mic only: its SNR, no cam values
    assert rows[2].split()[-3:] == ["21.0", "20.0", "40.0"]  # cam+mic: cam first in the set


def test_robustness_row_takes_the_modalities_from_the_joint_set():
    """Without names, the row's audio and visual columns are the two modalities of the only
    two-modality set, in its order (cam, mic here); named, they are as named."""
    row = REPORT.robustness_row("pgd", 1.0)
    assert (row.audio, row.visual, row.audiovisual) == (80.0, 90.0, 50.0)
    named = REPORT.robustness_row("pgd", 1.0, "mic", "cam")
    assert (named.audio, named.visual) == (90.0, 80.0)
    assert_raises_naming(ValueError, "audio, visual", REPORT.robustness_row, "pgd", 1.0, "mic")
    singles = EvaluationReport({}, {}, [], REPORT.cells[:2])
    assert_raises_naming(ValueError, "audio, visual", singles.robustness_row, "pgd", 1.0)
