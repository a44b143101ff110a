"""AVA-ActiveSpeaker CSV layouts: round trips, key joins (never row order), clear errors."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from test_metrics import ava_ap_reference

from avrobust import metrics as M
from avrobust.metrics import AVARows

HEADER = (
    "video_id,frame_timestamp,entity_box_x1,entity_box_y1,entity_box_x2,entity_box_y2,"
    "label,entity_id"
)


def make_rows(n_tracks: int = 3, frames: int = 8, seed: int = 0) -> AVARows:
    rng = np.random.default_rng(seed)
    video, stamp, boxes, label, entity = [], [], [], [], []
    for track in range(n_tracks):
        vid = f"vid{track % 2:08d}abc"[:11]
        start = 900.0 + 3 * track
        for f in range(frames):
            video.append(vid)
            stamp.append(round(start + f * 0.04, 2))
            x1, y1 = rng.random(2) * 0.5
            boxes.append([x1, y1, x1 + 0.2, y1 + 0.3])
            label.append(
                ["SPEAKING_AUDIBLE", "NOT_SPEAKING", "SPEAKING_NOT_AUDIBLE"][rng.integers(3)]
            )
            entity.append(f"{vid}_{int(start)}_{int(start) + 1}:{track}")
    return AVARows(video, np.array(stamp), np.array(boxes), label, entity)


@pytest.mark.parametrize("header", [True, False])
def test_round_trip(tmp_path: Path, header: bool) -> None:
    rows = make_rows()
    M.write_ava_ground_truth(tmp_path / "gt.csv", rows, header=header)
    back = M.read_ava_ground_truth(tmp_path / "gt.csv")
    assert back.video_id == rows.video_id and back.entity_id == rows.entity_id
    assert back.label == rows.label and back.score is None
    np.testing.assert_array_equal(back.frame_timestamp, rows.frame_timestamp)
    np.testing.assert_array_equal(back.boxes, rows.boxes)  # repr() is exact
    first = (tmp_path / "gt.csv").read_text().splitlines()[0]
    assert first.startswith("video_id") == header


def test_join_uses_keys_not_row_order(tmp_path: Path) -> None:
    gt = make_rows(seed=1)
    scores = np.linspace(0.05, 0.95, len(gt))
    M.write_ava_ground_truth(tmp_path / "gt.csv", gt)
    M.write_ava_predictions(tmp_path / "pred.csv", gt, scores)
    lines = (tmp_path / "pred.csv").read_text().splitlines()
    body = lines[1:]
    random.Random(0).shuffle(body)
    (tmp_path / "pred.csv").write_text("\n".join([lines[0], *body]) + "\n")
    joined, labels = M.join_ava(
        M.read_ava_ground_truth(tmp_path / "gt.csv"), M.read_ava_predictions(tmp_path / "pred.csv")
    )
    np.testing.assert_array_equal(joined, scores)
    np.testing.assert_array_equal(labels, gt.positive)
    expected = ava_ap_reference(scores, gt.positive)
    assert M.evaluate_ava_csv(tmp_path / "gt.csv", tmp_path / "pred.csv") == pytest.approx(expected)


def test_talknet_layout_with_extra_columns_and_reordered_header(tmp_path: Path) -> None:
    text = (
        "entity_id,video_id,frame_timestamp,entity_box_x1,entity_box_y1,entity_box_x2,"
        "entity_box_y2,label,label_id,instance_id\n"
        "v_1_2:0,v,1.0,0.1,0.1,0.5,0.5,SPEAKING_AUDIBLE,1,0\n"
        "v_1_2:0,v,1.04,0.1,0.1,0.5,0.5,NOT_SPEAKING,0,0\n"
    )
    (tmp_path / "val_orig.csv").write_text(text)
    rows = M.read_ava_ground_truth(tmp_path / "val_orig.csv")
    assert rows.entity_id == ["v_1_2:0"] * 2 and rows.positive.tolist() == [True, False]
    # Official AVA predictions have no header; timestamps written differently still match.
    (tmp_path / "pred.csv").write_text(
        "v,1.040,0.1,0.1,0.5,0.5,SPEAKING_AUDIBLE,v_1_2:0,0.2\n"
        "v,1.00,0.1,0.1,0.5,0.5,SPEAKING_AUDIBLE,v_1_2:0,0.7\n"
    )
    scores, labels = M.join_ava(rows, M.read_ava_predictions(tmp_path / "pred.csv"))
    assert scores.tolist() == [0.7, 0.2] and labels.tolist() == [True, False]


# --------------------------------------------------------------------------- errors
def _files(tmp_path: Path, gt: AVARows, pred_rows: AVARows, scores) -> tuple[Path, Path]:
    M.write_ava_ground_truth(tmp_path / "gt.csv", gt)
    M.write_ava_predictions(tmp_path / "pred.csv", pred_rows, scores)
    return tmp_path / "gt.csv", tmp_path / "pred.csv"


def _subset(rows: AVARows, keep) -> AVARows:
    keep = list(keep)
    return AVARows(
        [rows.video_id[i] for i in keep],
        rows.frame_timestamp[keep],
        rows.boxes[keep],
        [rows.label[i] for i in keep],
        [rows.entity_id[i] for i in keep],
    )


def test_missing_and_extra_rows(tmp_path: Path) -> None:
    gt = make_rows()
    n = len(gt)
    paths = _files(tmp_path, gt, _subset(gt, range(n - 2)), np.ones(n - 2))
    with pytest.raises(
        ValueError, match=r"predictions: 2 ground-truth rows have no prediction \(e\.g\. "
    ):
        M.evaluate_ava_csv(*paths)
    paths = _files(tmp_path, _subset(gt, range(n - 1)), gt, np.ones(n))
    with pytest.raises(
        ValueError, match=r"0 ground-truth rows .* and 1 predictions have no ground-truth row"
    ):
        M.evaluate_ava_csv(*paths)


def test_duplicated_rows(tmp_path: Path) -> None:
    gt = make_rows()
    n = len(gt)
    doubled = _subset(gt, [*range(n), 0])
    paths = _files(tmp_path, gt, doubled, np.ones(n + 1))
    with pytest.raises(
        ValueError,
        match=r"predictions: 1 \(entity_id, frame_timestamp\) keys occur more than once, e\.g\. .*×2",
    ):
        M.evaluate_ava_csv(*paths)
    paths = _files(tmp_path, doubled, gt, np.ones(n))
    with pytest.raises(
        ValueError, match=r"ground truth: 1 \(entity_id, frame_timestamp\) keys occur"
    ):
        M.evaluate_ava_csv(*paths)


def test_other_errors(tmp_path: Path) -> None:
    gt = make_rows()
    with pytest.raises(ValueError, match=r"scores: expected one score per row \(24\), got 3"):
        M.write_ava_predictions(tmp_path / "p.csv", gt, [0.1, 0.2, 0.3])
    gt_path, pred_path = _files(tmp_path, gt, gt, np.ones(len(gt)))
    text = pred_path.read_text().replace(",SPEAKING_AUDIBLE,", ",NOT_SPEAKING,", 1)
    pred_path.write_text(text)
    with pytest.raises(ValueError, match=r"predictions: every label must be 'SPEAKING_AUDIBLE'"):
        M.evaluate_ava_csv(gt_path, pred_path)
    shifted = AVARows(gt.video_id, gt.frame_timestamp, gt.boxes + 0.01, gt.label, gt.entity_id)
    gt_path, pred_path = _files(tmp_path, gt, shifted, np.ones(len(gt)))
    with pytest.raises(ValueError, match=r"predictions: 24 boxes differ from the ground truth"):
        M.evaluate_ava_csv(gt_path, pred_path)
    pred_path.write_text(f"{HEADER},score\nv,1.0,0,0,1,1,SPEAKING_AUDIBLE,e,\n")
    with pytest.raises(ValueError, match=r"pred.csv:2: column 'score': expected a number, got ''"):
        M.read_ava_predictions(pred_path)
    gt_path.write_text("v,1.0,0,0,1,1,TALKING,e\n")
    with pytest.raises(ValueError, match=r"column 'label': expected one of .*got \['TALKING'\]"):
        M.read_ava_ground_truth(gt_path)
    gt_path.write_text("video_id,frame_timestamp,label\nv,1.0,NOT_SPEAKING\n")
    with pytest.raises(ValueError, match=r"the header lacks the columns \['entity_box_x1'"):
        M.read_ava_ground_truth(gt_path)
    gt_path.write_text(f"{HEADER}\nv,1.0,0,0,1\n")
    with pytest.raises(ValueError, match=r"gt.csv:2: expected 8 columns, got 5"):
        M.read_ava_ground_truth(gt_path)
