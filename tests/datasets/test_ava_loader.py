"""The AVA-ActiveSpeaker loader on a small fake tree in TalkNet's preprocessed layout."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avrobust.data.ava import (
    AVAActiveSpeaker,
    collate_clips,
    length_batches,
    predict_entities,
    read_loader_csv,
    read_wav,
    write_predictions,
)
from avrobust.metrics import evaluate_ava_csv, read_ava_predictions

Image = pytest.importorskip("PIL.Image")

# entity id -> (frames, fps, labels, first timestamp)
TRACKS = {
    "vid_aaaaaaa_0900_0960:1": (6, 25.0, [0, 0, 1, 1, 1, 0], 900.0),
    "vid_aaaaaaa_0900_0960:2": (6, 25.0, [1, 1, 1, 0, 0, 0], 901.0),
    "vid_bbbbbbb_1000_1060:1": (4, 25.0, [1, 0, 1, 0], 1000.0),
    "vid_ccccccc_1100_1160:1": (5, 30.0, [0, 1, 1, 1, 1], 1100.0),
}


def brightness(entity: str, t: int) -> int:
    return 40 + 10 * t + 50 * sorted(TRACKS).index(entity)


def make_tree(root, split: str = "val") -> None:
    (root / "csv").mkdir(parents=True)
    lines, gt = (
        [],
        [
            "video_id,frame_timestamp,entity_box_x1,entity_box_y1,entity_box_x2,entity_box_y2,label,entity_id,label_id,instance_id"
        ],
    )
    for n, (entity, (frames, fps, labels, start)) in enumerate(TRACKS.items()):
        video = entity[:11]
        lines.append(f"{entity}\t{frames}\t{fps}\t{labels}\t{n}")
        faces = root / "clips_videos" / split / video / entity
        faces.mkdir(parents=True)
        for t in range(frames):
            stamp = start + t / fps
            pixel = brightness(entity, t)
            rgb = np.full((24, 20, 3), pixel, dtype=np.uint8)
            Image.fromarray(rgb).save(faces / f"{stamp:.2f}.jpg", quality=95)
            name = "SPEAKING_AUDIBLE" if labels[t] else "NOT_SPEAKING"
            gt.append(f"{video},{stamp:.2f},0.1,0.1,0.5,0.5,{name},{entity},{labels[t]},0")
        audio = root / "clips_audios" / split / video
        audio.mkdir(parents=True, exist_ok=True)
        samples = int((frames - 1) / fps * 16000)  # TalkNet cuts [first_ts, last_ts): a frame short
        pcm = (np.arange(samples) % 200 - 100).astype("<i2") * (n + 1)
        with wave.open(str(audio / f"{entity}.wav"), "wb") as handle:
            handle.setnchannels(1)
            handle.setsampwidth(2)
            handle.setframerate(16000)
            handle.writeframes(pcm.tobytes())
    (root / "csv" / f"{split}_loader.csv").write_text("\n".join(lines) + "\n")
    (root / "csv" / f"{split}_orig.csv").write_text("\n".join(gt) + "\n")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ava")
    make_tree(root)
    return root


def test_reads_tracks_as_talknet_does(tree) -> None:
    data = AVAActiveSpeaker(tree, "val", face_size=16)
    assert len(data) == 4 and data.lengths == [6, 6, 4, 5]
    entry = data.entries[0]
    assert entry.video_id == "vid_aaaaaaa" and entry.labels == (0, 0, 1, 1, 1, 0)
    inputs, labels = data[0]
    assert inputs["visual"].shape == (6, 16, 16) and inputs["visual"].dtype == torch.float32
    assert labels.tolist() == [0, 0, 1, 1, 1, 0]
    for t in range(6):  # grayscale of the crop, resized; JPEG may move a level or two
        assert abs(float(inputs["visual"][t].mean()) - brightness(entry.entity_id, t)) <= 2
    assert inputs["audio"].shape == (6 * 640,)  # wrap-padded to T / fps seconds
    raw = read_wav(data.audio_file(0))
    assert raw.shape == (5 * 640,) and float(raw[1]) == pytest.approx(-99 / 32768)
    assert torch.equal(inputs["audio"][: raw.numel()], raw)
    assert torch.equal(inputs["audio"][raw.numel() :], raw[:640])  # wrapped from the start
    thirty = data[3][0]["audio"]
    assert thirty.shape == (round(5 * 16000 / 30),)  # 30 fps: T / fps seconds
    assert data.timestamps(2) == pytest.approx([1000.0, 1000.04, 1000.08, 1000.12])


def test_options(tree) -> None:
    ordered = AVAActiveSpeaker(tree, face_size=16, sort_by_length=True)
    assert ordered.lengths == [6, 6, 5, 4]
    only25 = AVAActiveSpeaker(tree, face_size=16, fps=25)
    assert len(only25) == 3 and all(e.fps == 25 for e in only25.entries)
    short = AVAActiveSpeaker(tree, face_size=16, max_frames=3)
    assert short[0][0]["visual"].shape[0] == 3 and short[0][1].tolist() == [0, 0, 1]
    assert short[0][0]["audio"].shape == (3 * 640,)
    picked = AVAActiveSpeaker(tree, face_size=16, entities=["vid_bbbbbbb_1000_1060:1"])
    assert len(picked) == 1 and picked[0][1].tolist() == [1, 0, 1, 0]


def test_length_batches_and_collate(tree) -> None:
    data = AVAActiveSpeaker(tree, face_size=16)
    assert length_batches(data.lengths, max_frames=12) == [[0, 1], [3], [2]]
    assert length_batches(data.lengths, max_frames=12, equal_lengths=False) == [[0, 1], [3, 2]]
    assert length_batches(data.lengths, max_frames=100, max_clips=1) == [[0], [1], [3], [2]]
    inputs, labels = collate_clips([data[0], data[2]])  # cut to the shorter track (4 frames)
    assert inputs["visual"].shape == (2, 4, 16, 16) and labels.shape == (2, 4)
    assert inputs["audio"].shape == (2, 4 * 640)  # 25 fps: the samples of those 4 frames
    assert torch.equal(inputs["audio"][0], data[0][0]["audio"][: 4 * 640])
    loader = DataLoader(
        data, batch_sampler=length_batches(data.lengths, 12), collate_fn=collate_clips
    )
    shapes = [tuple(b[0]["visual"].shape) for b in loader]
    assert shapes == [(2, 6, 16, 16), (1, 5, 16, 16), (1, 4, 16, 16)]


def test_predictions_in_the_ava_format(tree, tmp_path) -> None:
    data = AVAActiveSpeaker(tree, face_size=16)
    truth = {e.entity_id: torch.tensor(e.labels, dtype=torch.float32) for e in data.entries}
    path = tmp_path / "pred.csv"
    rows = write_predictions(path, data.ground_truth_csv, truth)
    assert rows == 21
    assert evaluate_ava_csv(data.ground_truth_csv, path) == pytest.approx(1.0)
    read = read_ava_predictions(path)
    assert set(read.label) == {"SPEAKING_AUDIBLE"} and read.score is not None
    flipped = {k: 1 - v for k, v in truth.items()}
    write_predictions(path, data.ground_truth_csv, flipped, header=False)
    assert evaluate_ava_csv(data.ground_truth_csv, path) < 0.6
    assert not path.read_text().startswith("video_id")
    with pytest.raises(ValueError, match=r"scores: 1 entities of the ground truth have no scores"):
        write_predictions(
            path, data.ground_truth_csv, {k: v for k, v in truth.items() if "bbb" not in k}
        )
    short = {**truth, "vid_bbbbbbb_1000_1060:1": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"scores\['vid_bbbbbbb_1000_1060:1'\]: expected 4 scores"):
        write_predictions(path, data.ground_truth_csv, short)


def test_collate_refuses_clips_at_different_frame_rates(tree) -> None:
    data = AVAActiveSpeaker(tree, face_size=16)
    # 30 fps (533.3 samples per frame) with 25 fps (640): no common cut keeps both aligned
    with pytest.raises(ValueError, match=r"items: .*same audio samples per video frame"):
        collate_clips([data[3], data[2]])


def test_length_batches_refuses_empty_tracks_anywhere() -> None:
    with pytest.raises(ValueError, match=r"lengths\[1\]: expected >= 1 frame, got 0"):
        length_batches([5, 0], 10, equal_lengths=False)


def test_predict_entities_does_not_mix_frame_rates(tree) -> None:
    from avrobust.models import TalkNet

    torch.manual_seed(0)
    model = TalkNet("tiny", face_size=16).eval()
    data = AVAActiveSpeaker(tree, face_size=16, max_frames=4)  # 25 and 30 fps, all 4 frames
    assert data.lengths == [4, 4, 4, 4] and {e.fps for e in data.entries} == {25.0, 30.0}
    scores = predict_entities(model, data)
    single = predict_entities(model, data, max_frames=1)  # one track per forward
    assert all(torch.allclose(scores[k], single[k], atol=1e-5) for k in scores)


def test_predict_and_evaluate_with_a_model(tree, tmp_path) -> None:
    from avrobust.evaluation import Grid, Selection, evaluate
    from avrobust.models import TalkNet

    torch.manual_seed(0)
    model = TalkNet("tiny", face_size=16).eval()
    data = AVAActiveSpeaker(tree, face_size=16, fps=25, sort_by_length=True)
    scores = predict_entities(model, data)
    frames = {e.entity_id: e.num_frames for e in data.entries}
    assert {k: v.shape[0] for k, v in scores.items()} == frames
    single = predict_entities(model, data, max_frames=1)  # one track per forward
    assert all(torch.allclose(scores[k], single[k], atol=1e-5) for k in scores)
    batches = length_batches(data.lengths, 12)
    loader = DataLoader(data, batch_sampler=batches, collate_fn=collate_clips)
    report = evaluate(
        model,
        loader,
        Grid(rules=["fgsm"], eps=[5.0], modalities=["audio+visual"]),
        selection=Selection(clips="all", balance=False),
        progress=False,
    )
    assert report.clean["samples_total"] == 3 and report.cells[0].frames == 16


def test_errors(tree, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"root: AVA folder not found"):
        AVAActiveSpeaker(tmp_path / "nowhere")
    with pytest.raises(
        FileNotFoundError, match=r"train_loader.csv is missing; the tree should hold"
    ):
        AVAActiveSpeaker(tree, "train")
    with pytest.raises(
        ValueError, match=r"split: expected one of \['test', 'train', 'val'\], got 'dev'"
    ):
        AVAActiveSpeaker(tree, "dev")
    with pytest.raises(ValueError, match=r"entities: 1 ids are not in"):
        AVAActiveSpeaker(tree, entities=["nobody"])
    with pytest.raises(  # in the CSV, but not at the frame rate asked for
        ValueError, match=r"entities: 1 ids are not among the tracks at fps=25 in .*val_loader"
    ):
        AVAActiveSpeaker(tree, fps=25, entities=["vid_ccccccc_1100_1160:1"])
    bad = tmp_path / "bad.csv"
    bad.write_text("entity\t3\t25\t[0,1,1]\t0\nentity2\tthree\t25\t[0]\t1\n")
    with pytest.raises(ValueError, match=r"bad.csv:2: expected numFrames \(int\)"):
        read_loader_csv(bad)
    bad.write_text("entity\t3\t25\t[0,1]\t0\n")
    with pytest.raises(
        ValueError, match=r"bad.csv:1: expected numFrames >= 1, finite fps > 0, at least"
    ):
        read_loader_csv(bad)
    bad.write_text("entity 3 25\n")
    with pytest.raises(ValueError, match=r"bad.csv:1: expected tab-separated"):
        read_loader_csv(bad)
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as handle:
        handle.setnchannels(2)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(b"\x00\x00" * 20)
    with pytest.raises(ValueError, match=r"expected mono 16-bit PCM at 16000 Hz, got 2 channel"):
        read_wav(stereo)
    with pytest.raises(FileNotFoundError, match=r"audio file not found"):
        read_wav(tmp_path / "none.wav")


def test_missing_files_name_the_path(tmp_path) -> None:
    root = tmp_path / "ava"
    make_tree(root)
    entity = "vid_bbbbbbb_1000_1060:1"
    (root / "clips_audios" / "val" / "vid_bbbbbbb" / f"{entity}.wav").unlink()
    data = AVAActiveSpeaker(root, face_size=16)
    with pytest.raises(FileNotFoundError, match=r"not found: .*vid_bbbbbbb_1000_1060:1.wav"):
        data[2]
    faces = root / "clips_videos" / "val" / "vid_aaaaaaa" / "vid_aaaaaaa_0900_0960:1"
    sorted(faces.iterdir())[-1].unlink()
    with pytest.raises(ValueError, match=r"expected at least 6 face crops .*found 5"):
        data[0]


def test_evaluate_command_on_ava(tree, tmp_path, capsys) -> None:
    from avrobust.cli import main
    from avrobust.models import TalkNet

    checkpoint = tmp_path / "tiny.model"
    TalkNet("tiny", face_size=16).save_checkpoint(checkpoint)
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        "--checkpoint",
        str(checkpoint),
        "--model",
        "tiny",
        "--face-size",
        "16",
        "--data",
        str(tree),
        "--rules",
        "fgsm",
        "--eps",
        "5",
        "--modalities",
        "audio+visual",
        "--select",
        "all",
        "--no-balance",
        "--predictions",
        "--out",
        str(out),
        "--no-plots",
        "--threads",
        "1",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 AVA val tracks at 25 fps (1 tracks at other frame rates skipped" in printed
    assert "clean AVA mAP of the predictions" in printed
    predictions = read_ava_predictions(out / "predictions.csv")
    assert len(predictions) == 16  # the frames of the three 25-fps tracks
    assert evaluate_ava_csv(out / "ground_truth_subset.csv", out / "predictions.csv") > 0
    assert (out / "report.json").exists() and (out / "results.jsonl").exists()


def test_ava_package_keeps_the_old_import_paths() -> None:
    """``avrobust.data.ava`` became a package (tracks, media, dataset, batching, predictions):
    every name of the old module's ``__all__`` still imports from it (and from ``avrobust.data``)
    and is the object its submodule defines."""
    import avrobust.data as data
    import avrobust.data.ava as ava
    from avrobust.data.ava import batching, dataset, media, predictions, tracks

    old_all = ["AVAActiveSpeaker", "AVAEntry", "collate_clips", "length_batches",
               "predict_entities", "read_loader_csv", "read_wav", "write_predictions"]  # fmt: skip
    homes = (tracks, media, dataset, batching, predictions)
    for name in old_all:
        home = [m for m in homes if name in m.__all__]
        assert len(home) == 1 and getattr(ava, name) is getattr(home[0], name), name
        assert getattr(data, name) is getattr(ava, name)
