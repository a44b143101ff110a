"""Issue 10, metrics, losses and defenses: no silent wrong results, clear errors for bad input.

Each test states what it checks. Silent-wrong-result cases (NaN scores counted as correct, NaN
embeddings turned into NaN ratios, ``inf``/``-inf`` timestamps sharing one key, ...) are refused
with an error that names the argument (or the file and line); the bad-input table at the end pins
the error type and the argument named for the rest of the public API of these modules.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from helpers import assert_raises_naming

from avrobust import metrics as M
from avrobust.data.ava import read_loader_csv, write_predictions
from avrobust.defenses import AdversarialTraining, adversarial_batch, modality_mixup
from avrobust.defenses.memory import FeatureMemory, sparse_code
from avrobust.losses import AVILoss, MaxSimLoss, MinSimLoss
from avrobust.metrics import AVARows

NAN, INF = float("nan"), float("inf")
NON_FINITE = {"nan": NAN, "inf": INF, "-inf": -INF}
HEADER = (
    "video_id,frame_timestamp,entity_box_x1,entity_box_y1,entity_box_x2,entity_box_y2,"
    "label,entity_id"
)


def _with(value: float, shape: tuple[int, ...] = (2, 3, 4)) -> torch.Tensor:
    """A random tensor of ``shape`` with one entry set to ``value``."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) + 0.5
    x.view(-1)[1] = value
    return x


# --- scores: NaN/Inf and strings ------------------------------------------------------------


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("form", ["thresholded", "logits"])
def test_accuracy_refuses_non_finite_scores(bad: str, form: str) -> None:
    """accuracy with NaN/Inf scores is refused (NaN scores gave 1.0: NaN >= 0.5 and argmax(NaN)
    both look like a prediction), for positive-class scores and for (..., C) logits alike."""
    labels = torch.tensor([0, 0, 1])
    if form == "thresholded":
        scores = torch.tensor([0.1, NON_FINITE[bad], 0.9])
    else:
        scores = torch.tensor([[2.0, 0.0], [NON_FINITE[bad], 0.0], [0.0, 2.0]])
    assert_raises_naming(ValueError, "scores", M.accuracy, scores, labels)
    assert_raises_naming(ValueError, "scores", M.Accuracy().update, scores, labels)


@pytest.mark.parametrize(
    "func",
    [M.average_precision, M.roc_auc, M.accuracy],
    ids=["ap", "roc_auc", "accuracy"],
)
@pytest.mark.parametrize("container", ["list", "numpy"])
def test_string_scores_refused(func: Any, container: str) -> None:
    """Numeric strings are not scores: "0.3" was silently converted to 0.3 (AP, ROC-AUC) or gave
    a torch conversion error that named nothing (accuracy). TypeError naming ``scores``."""
    scores: Any = ["0.3", "0.7", "0.2"]
    if container == "numpy":
        scores = np.array(scores)
    assert_raises_naming(TypeError, "scores", func, scores, [0, 1, 0])


def test_string_scores_refused_by_streaming_metrics_and_writers(tmp_path: Path) -> None:
    """The streaming metrics and both prediction writers refuse string scores too (the writers
    converted "0.3" with ``astype(float)``), naming the argument."""
    strings = ["0.3", "0.7"]
    assert_raises_naming(TypeError, "scores", M.AveragePrecision().update, strings, [0, 1])
    assert_raises_naming(TypeError, "scores", M.ROCAUC().update, strings, [0, 1])
    assert_raises_naming(TypeError, "scores", M.Accuracy().update, strings, [0, 1])
    rows = _rows(2)
    out = tmp_path / "p.csv"
    assert_raises_naming(TypeError, "scores", M.write_ava_predictions, out, rows, strings)
    message = assert_raises_naming(
        TypeError, "scores['e1']", write_predictions, out, rows, {"e1": ["0.3"], "e2": ["0.7"]}
    )
    assert "str" in message
    assert not out.exists()


def test_accuracy_keeps_valid_results() -> None:
    """Valid inputs give what they gave before: the fraction of correct frames (hand count)."""
    scores = torch.tensor([0.1, 0.6, 0.4, 0.9])
    assert float(M.accuracy(scores, torch.tensor([0, 1, 1, 1]))) == 0.75
    logits = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert float(M.accuracy(logits, [0, 1, 1])) == pytest.approx(2 / 3)
    assert float(M.average_precision([True, False, True], [1, 0, 0])) == pytest.approx(0.5)


# --- embedding and perturbation measures -------------------------------------------------------


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("which", ["z_clean", "z_adv"])
def test_ecr_refuses_non_finite(bad: str, which: str) -> None:
    """ECR (function, per-frame and streaming) turned NaN/Inf embeddings into a NaN or inf ratio
    without a word: refused, naming the argument that holds them."""
    good = torch.rand(2, 3, 4) + 0.5
    args = {"z_clean": good, "z_adv": good + 0.1, which: _with(NON_FINITE[bad])}
    for func in (M.ecr, M.ecr_per_frame, M.ECR().update):
        assert_raises_naming(ValueError, which, func, args["z_clean"], args["z_adv"])
    as_dicts = ({"audio": args["z_clean"]}, {"audio": args["z_adv"]})
    assert_raises_naming(ValueError, which, M.ECR().update, *as_dicts)


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("which", ["clean", "adversarial"])
@pytest.mark.parametrize("name", ["snr", "psnr", "max_abs"])
def test_perceptibility_refuses_non_finite(bad: str, which: str, name: str) -> None:
    """SNR, PSNR and max-abs gave NaN or -inf dB for NaN/Inf waveforms or frames: refused,
    naming ``clean`` or ``adversarial``."""
    good = torch.rand(2, 3, 4)
    args = {"clean": good, "adversarial": good + 0.01, which: _with(NON_FINITE[bad])}
    func = getattr(M, name)
    assert_raises_naming(ValueError, which, func, args["clean"], args["adversarial"])


@pytest.mark.parametrize("bad", NON_FINITE)
def test_geometry_refuses_non_finite(bad: str) -> None:
    """knn_density and convexity_ratio gave a density of 0 and a made-up ratio for NaN/Inf
    embeddings; a head returning NaN logits counted every point as leaving its class."""
    e = torch.rand(6, 3) + 0.1
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    e_bad = e.clone()
    e_bad[1, 0] = NON_FINITE[bad]
    assert_raises_naming(ValueError, "embeddings", M.knn_density, e_bad, labels, k=1)
    head = torch.nn.Linear(3, 2)
    assert_raises_naming(
        ValueError, "embeddings", M.convexity_ratio, e_bad, labels, head, num_pairs=4
    )
    assert_raises_naming(
        ValueError,
        "embeddings['audio']",
        M.convexity_ratio,
        {"audio": e_bad, "visual": e},
        labels,
        lambda d: head(d["audio"] + d["visual"]),
        num_pairs=4,
    )
    assert_raises_naming(
        ValueError,
        "head",
        M.convexity_ratio,
        e,
        labels,
        lambda p: torch.full((len(p), 2), NON_FINITE[bad]),
        num_pairs=4,
    )


@pytest.mark.parametrize("value", [NAN, INF, "91.3", None])
def test_robustness_row_refuses_bad_accuracies(value: object) -> None:
    """RobustnessRow (and so RI) refuses NaN, Inf and non-numbers, naming the field."""
    exc = TypeError if isinstance(value, str) or value is None else ValueError
    assert_raises_naming(exc, "RobustnessRow.audio", M.RobustnessRow, 90.0, value, 50.0, 40.0)
    values = {"clean": 90.0, "audio": value, "visual": 50.0, "audiovisual": 40.0}
    assert_raises_naming(exc, "values['audio']", M.RobustnessRow.from_mapping, values)


# --- AVA CSV ------------------------------------------------------------------------------


def _rows(n: int = 2) -> AVARows:
    return AVARows(
        [f"vid{i}" for i in range(n)],
        np.arange(n, dtype=np.float64) + 900.0,
        np.tile([0.1, 0.1, 0.5, 0.5], (n, 1)),
        ["SPEAKING_AUDIBLE"] * n,
        [f"e{i + 1}" for i in range(n)],
    )


def _line(stamp: str, entity: str = "e1", box: str = "0.1", video: str = "vid") -> str:
    return f"{video},{stamp},{box},0.1,0.5,0.5,SPEAKING_AUDIBLE,{entity}"


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("stamp", ["inf", "-inf", "nan", "Infinity"])
def test_ava_csv_refuses_non_finite_timestamps(tmp_path: Path, header: bool, stamp: str) -> None:
    """``inf`` and ``-inf`` timestamps mapped to one join key (rint(±inf·1e6) overflows to the
    same int64): refused at reading, with the file name and the line number."""
    path = tmp_path / "gt.csv"
    lines = ([HEADER] if header else []) + [_line("900.0", "e1"), _line(stamp, "e2")]
    path.write_text("\n".join(lines) + "\n")
    message = assert_raises_naming(ValueError, "frame_timestamp", M.read_ava_ground_truth, path)
    assert f"gt.csv:{3 if header else 2}:" in message


@pytest.mark.parametrize("column", ["box", "score"])
def test_ava_csv_refuses_non_finite_boxes_and_scores(tmp_path: Path, column: str) -> None:
    """A NaN box passed the box comparison silently (NaN > tol is False); a NaN score failed
    later without the file's name. Both are refused at reading with file and line."""
    path = tmp_path / "pred.csv"
    box, score = ("nan", "0.5") if column == "box" else ("0.1", "nan")
    path.write_text(f"{HEADER},score\n{_line('900.0', box=box)},{score}\n")
    name = "entity_box_x1" if column == "box" else "score"
    message = assert_raises_naming(ValueError, name, M.read_ava_predictions, path)
    assert "pred.csv:2:" in message


def test_ava_rows_keys_refuse_non_finite_timestamps() -> None:
    """Rows built by hand reach the join without reading a file: keys() refuses a timestamp
    that cannot be a key (two infinite stamps of one entity would otherwise match)."""
    rows = _rows(3)
    rows.frame_timestamp[1:] = [INF, -INF]
    assert_raises_naming(ValueError, "frame_timestamp", rows.keys)
    predictions = dataclasses.replace(rows, score=np.full(3, 0.5))
    assert_raises_naming(ValueError, "frame_timestamp", M.join_ava, rows, predictions)


def test_ava_writers_refuse_non_finite(tmp_path: Path) -> None:
    """Writers refuse what the readers would refuse: Inf scores (only NaN was caught) and
    non-finite timestamps; nothing is written."""
    out = tmp_path / "p.csv"
    assert_raises_naming(ValueError, "scores", M.write_ava_predictions, out, _rows(2), [0.5, INF])
    rows = _rows(2)
    rows.frame_timestamp[0] = NAN
    assert_raises_naming(ValueError, "frame_timestamp", M.write_ava_ground_truth, out, rows)
    assert not out.exists()
    assert_raises_naming(TypeError, "rows", M.write_ava_ground_truth, out, {"video_id": []})


@pytest.mark.parametrize("header", [True, False])
def test_ava_csv_strips_bom(tmp_path: Path, header: bool) -> None:
    """A UTF-8 BOM (as Excel writes) stayed in the first video_id of a header-less file: it is
    read with encoding utf-8-sig, so the first row equals the others."""
    path = tmp_path / "gt.csv"
    lines = ([HEADER] if header else []) + [_line("900.0", "e1"), _line("900.04", "e2")]
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    rows = M.read_ava_ground_truth(path)
    assert rows.video_id == ["vid", "vid"]


def test_ava_csv_latin1_names_the_file(tmp_path: Path) -> None:
    """A latin-1 file gave a UnicodeDecodeError traceback; now a ValueError naming the file and
    saying it is not UTF-8."""
    path = tmp_path / "latin.csv"
    path.write_bytes(("\n".join([HEADER, _line("900.0", video="vidé")]) + "\n").encode("latin-1"))
    message = assert_raises_naming(ValueError, "latin.csv", M.read_ava_ground_truth, path)
    assert "UTF-8" in message
    loader = tmp_path / "val_loader.csv"
    loader.write_bytes("é_0900_0960:1\t2\t25\t[0,1]\t0\n".encode("latin-1"))
    message = assert_raises_naming(ValueError, "val_loader.csv", read_loader_csv, loader)
    assert "UTF-8" in message


def test_ava_csv_header_is_case_insensitive(tmp_path: Path) -> None:
    """An upper-case header was read as a data row (an unclear 'expected a number' error): header
    names are matched case-insensitively, giving the same rows as the lower-case file."""
    lower, upper = tmp_path / "lower.csv", tmp_path / "upper.csv"
    body = [_line("900.0", "e1"), _line("900.04", "e2")]
    lower.write_text("\n".join([HEADER, *body]) + "\n")
    upper.write_text("\n".join([HEADER.upper(), *body]) + "\n")
    a, b = M.read_ava_ground_truth(lower), M.read_ava_ground_truth(upper)
    assert a.video_id == b.video_id and a.entity_id == b.entity_id and a.label == b.label
    np.testing.assert_array_equal(a.frame_timestamp, b.frame_timestamp)
    np.testing.assert_array_equal(a.boxes, b.boxes)


@pytest.mark.parametrize("fps", ["nan", "inf"])
def test_loader_csv_refuses_non_finite_fps(tmp_path: Path, fps: str) -> None:
    """read_loader_csv accepted fps = nan (``nan <= 0`` is False) and inf: refused with the
    file and line, naming fps."""
    path = tmp_path / "val_loader.csv"
    path.write_text(
        f"vid_aaaaaaa_0900_0960:1\t2\t25\t[0,1]\t0\nvid_aaaaaaa_0900_0960:2\t2\t{fps}\t[0,1]\t0\n"
    )
    message = assert_raises_naming(ValueError, "fps", read_loader_csv, path)
    assert "val_loader.csv:2:" in message


def test_loader_csv_strips_bom(tmp_path: Path) -> None:
    """A BOM at the start of the loader CSV stayed in the first entity_id (and so its video_id)."""
    path = tmp_path / "val_loader.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"vid_aaaaaaa_0900_0960:1\t2\t25\t[0,1]\t0\n")
    (entry,) = read_loader_csv(path)
    assert entry.entity_id == "vid_aaaaaaa_0900_0960:1" and entry.video_id == "vid_aaaaaaa"


# --- FeatureMemory ------------------------------------------------------------------------


def test_feature_memory_refuses_a_bare_tensor() -> None:
    """``FeatureMemory(tensor)`` died with 'Boolean value of Tensor ... is ambiguous': a TypeError
    now names ``banks`` and says a dict {modality: (N, D) tensor} is expected."""
    message = assert_raises_naming(TypeError, "banks", FeatureMemory, torch.rand(8, 4))
    assert "dict" in message and "Tensor(shape=(8, 4)" in message


@pytest.mark.parametrize("bad", NON_FINITE)
def test_feature_memory_refuses_non_finite(bad: str) -> None:
    """A NaN bank gave a linalg error naming nothing; NaN/Inf features gave NaN features out.
    Both refused, naming the bank or the modality's features."""
    bank = _with(NON_FINITE[bad], (6, 4))
    assert_raises_naming(ValueError, "banks['audio']", FeatureMemory, {"audio": bank})
    memory = FeatureMemory({"audio": torch.rand(6, 4)})
    assert_raises_naming(ValueError, "banks['visual']", memory.set_bank, "visual", bank)
    features = {"audio": _with(NON_FINITE[bad], (3, 4)), "visual": torch.rand(3, 4)}
    assert_raises_naming(ValueError, "features['audio']", memory, features)
    assert_raises_naming(ValueError, "features", sparse_code, features["audio"], torch.rand(6, 4))
    assert_raises_naming(ValueError, "bank", sparse_code, torch.rand(3, 4), bank)


def test_feature_memory_passes_unbanked_modalities_unchecked() -> None:
    """A modality without a bank passes through untouched (not checked, not copied)."""
    memory = FeatureMemory({"audio": torch.rand(6, 4)})
    other = torch.full((3, 4), NAN)
    assert memory({"audio": torch.rand(3, 4), "visual": other})["visual"] is other


# --- losses -------------------------------------------------------------------------------


def _avil_inputs(bad: float | None = None, which: str = "z_audio") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = {
        "z_audio": torch.randn(2, 5, 4, generator=g),
        "z_visual": torch.randn(2, 5, 4, generator=g),
        "labels": torch.arange(10).reshape(2, 5) % 2,
    }
    if bad is not None:
        x[which][1, 2, 3] = bad
    return x


@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("which", ["z_audio", "z_visual"])
def test_avil_refuses_non_finite_embeddings(bad: str, which: str) -> None:
    """AVILoss turned NaN/Inf embeddings into a NaN loss silently; with the default
    ``check_finite=True`` it refuses them, naming the argument."""
    x = _avil_inputs(NON_FINITE[bad], which)
    assert_raises_naming(ValueError, which, AVILoss(), **x)
    assert_raises_naming(ValueError, which, AVILoss().compute_terms, **x)


def test_avil_check_finite_off_and_unchanged_results() -> None:
    """``check_finite=False`` skips the check (the loss is then NaN, as documented); on finite
    inputs both settings give the identical loss and terms."""
    loss = AVILoss(check_finite=False)(**_avil_inputs(NAN))
    assert math.isnan(float(loss))
    x = _avil_inputs()
    on, off = AVILoss(), AVILoss(check_finite=False)
    assert torch.equal(on(**x), off(**x))
    assert all(torch.equal(on.last_terms[k], off.last_terms[k]) for k in on.last_terms)
    assert "check_finite=False" in repr(off)
    assert_raises_naming(TypeError, "check_finite", AVILoss, check_finite="yes")


@pytest.mark.parametrize("cls", [MinSimLoss, MaxSimLoss])
@pytest.mark.parametrize("bad", NON_FINITE)
@pytest.mark.parametrize("which", ["z_audio", "z_visual"])
def test_minsim_refuses_non_finite(cls: type[MinSimLoss], bad: str, which: str) -> None:
    """MinSim/MaxSim turned NaN/Inf features into a NaN loss silently: refused by default, naming
    the argument; ``check_finite=False`` skips the check and returns the same value as before."""
    x = {"z_audio": torch.rand(3, 4), "z_visual": torch.rand(3, 4)}
    x[which] = _with(NON_FINITE[bad], (3, 4))
    assert_raises_naming(ValueError, which, cls(), **x)
    assert not math.isfinite(float(cls(check_finite=False)(**x)))
    good = {"z_audio": torch.rand(3, 4), "z_visual": torch.rand(3, 4)}
    assert torch.equal(cls()(**good), cls(check_finite=False)(**good))
    assert_raises_naming(TypeError, "check_finite", cls, check_finite=1)


# --- mixup and adversarial training ---------------------------------------------------------

_X = {"audio": torch.zeros(4, 8), "visual": torch.ones(4, 3, 2, 2)}
_Y = torch.tensor([0, 1, 2, 0])


def _result(inputs: dict[str, torch.Tensor]) -> SimpleNamespace:
    return SimpleNamespace(inputs=inputs)


def test_mixup_refuses_non_finite_soft_labels() -> None:
    """NaN class probabilities gave NaN soft targets silently: refused, naming ``labels``."""
    soft = torch.full((4, 3), 1 / 3)
    soft[2, 1] = NAN
    assert_raises_naming(ValueError, "labels", modality_mixup, _X, soft)


def test_adversarial_batch_refuses_non_finite_attack_output() -> None:
    """An attack that returns NaN inputs gave a NaN training batch silently: refused, naming the
    attack and the modality."""

    def attack(inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> SimpleNamespace:
        return _result({k: v * NAN if k == "visual" else v for k, v in inputs.items()})

    message = assert_raises_naming(ValueError, "attack", adversarial_batch, attack, _X, _Y)
    assert "inputs['visual']" in message


def test_no_warning_on_valid_inputs() -> None:
    """The new checks add no warning on valid inputs."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        M.accuracy(torch.rand(5), torch.tensor([0, 1, 0, 1, 1]))
        M.ecr(torch.rand(2, 3) + 0.1, torch.rand(2, 3))
        AVILoss()(**_avil_inputs())
        FeatureMemory({"audio": torch.rand(6, 4)})({"audio": torch.rand(2, 4)})


# --- bad-input table: error type and the argument named --------------------------------------


def _bad_inputs() -> list[tuple[str, type[BaseException], str, Any]]:
    z = torch.rand(2, 3)
    memory = FeatureMemory({"audio": torch.rand(6, 4)})
    echo = lambda inputs, labels: _result(inputs)  # noqa: E731
    return [
        ("ap-labels-float", TypeError, "labels", lambda: M.average_precision([0.1], [0.5])),
        ("ap-ties", ValueError, "ties", lambda: M.average_precision([0.1], [1], ties="x")),
        ("ap-dict-scores", TypeError, "scores", lambda: M.average_precision({}, [1])),
        ("ap-object-scores", TypeError, "scores", lambda: M.roc_auc(np.array([0.1, None]), [0, 1])),
        ("acc-string-labels", TypeError, "labels", lambda: M.accuracy([0.1, 0.9], ["0", "1"])),
        ("acc-threshold-nan", ValueError, "threshold", lambda: M.Accuracy(threshold=NAN)),
        ("acc-mask", ValueError, "mask", lambda: M.accuracy(z[0], torch.tensor([0, 1, 1]), mask=1)),
        ("ecr-shapes", ValueError, "z_clean", lambda: M.ecr(z, torch.rand(2, 4))),
        ("ecr-mask-list", ValueError, "mask", lambda: M.ECR().update(z, z, mask=[True, False])),
        ("ecr-int", TypeError, "z_adv", lambda: M.ecr(z, torch.ones(2, 3, dtype=torch.long))),
        ("snr-0d", ValueError, "clean", lambda: M.snr(torch.tensor(1.0), torch.tensor(1.0))),
        ("psnr-range", ValueError, "data_range", lambda: M.psnr(z, z, data_range=0)),
        ("knn-k", ValueError, "k", lambda: M.knn_density(z, torch.tensor([0, 0]), k=0)),
        ("table-avg", ValueError, "avg", lambda: M.robustness_table({}, avg="mean")),
        ("table-baseline", KeyError, "baseline", lambda: M.robustness_table({}, "none")),
        ("csv-missing-col", ValueError, "score", lambda: _read_predictions_without_score()),
        ("join-gt-as-pred", ValueError, "predictions", lambda: M.join_ava(_rows(), _rows())),
        ("write-count", ValueError, "scores", lambda: M.write_ava_predictions("x", _rows(), [1.0])),
        ("avil-terms", ValueError, "terms[0]", lambda: AVILoss(terms=("l5",))),
        ("avil-weight", ValueError, "weight['l1']", lambda: AVILoss(weight=-1)),
        ("avil-labels", ValueError, "labels", lambda: AVILoss()(z, z, torch.tensor([0, 2]))),
        ("avil-mask", TypeError, "mask", lambda: AVILoss()(z, z, _Y[:2], torch.ones(2))),
        ("minsim-shape", ValueError, "z_audio", lambda: MinSimLoss()(z, torch.rand(2, 4))),
        ("minsim-guard", ValueError, "guard", lambda: MinSimLoss(guard=0)),
        ("minsim-list", TypeError, "z_audio", lambda: MinSimLoss()([1.0], z)),
        ("memory-lam", ValueError, "lam", lambda: FeatureMemory(lam=-1)),
        ("memory-width", ValueError, "features['audio']", lambda: memory({"audio": z})),
        ("memory-list-banks", TypeError, "banks", lambda: FeatureMemory([torch.rand(3, 2)])),
        ("mixup-generator", TypeError, "generator: expected a torch.Generator", lambda: modality_mixup(_X, _Y, num_classes=3, generator="g")),
        ("mixup-per-sample", TypeError, "per_sample", lambda: modality_mixup(_X, _Y, num_classes=3, per_sample="yes")),
        ("mixup-modalities-str", TypeError, "modalities", lambda: modality_mixup(_X, _Y, num_classes=3, modalities="audio")),
        ("mixup-alpha", ValueError, "alpha", lambda: modality_mixup(_X, _Y, num_classes=3, alpha=0)),
        ("mixup-num-classes", ValueError, "num_classes", lambda: modality_mixup(_X, _Y)),
        ("mixup-labels-range", ValueError, "labels", lambda: modality_mixup(_X, _Y, num_classes=2)),
        ("adv-generator", TypeError, "generator: expected a torch.Generator", lambda: adversarial_batch(echo, _X, _Y, ratio=0.5, generator="g")),
        ("adv-model", TypeError, "model", lambda: adversarial_batch(echo, _X, _Y, model="m")),
        ("adv-ratio", ValueError, "ratio", lambda: adversarial_batch(echo, _X, _Y, ratio=1.5)),
        ("adv-result-shape", ValueError, "attack", lambda: adversarial_batch(lambda i, y: _result({k: v[:1] for k, v in i.items()}), _X, _Y)),
        ("adv-labels", ValueError, "labels", lambda: adversarial_batch(echo, _X, _Y[:3])),
        ("advtrain-seed", TypeError, "seed", lambda: AdversarialTraining(echo, seed=1.5)),
    ]  # fmt: skip


def _read_predictions_without_score() -> AVARows:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pred.csv"
        path.write_text(f"{HEADER}\n{_line('900.0')}\n")
        return M.read_ava_predictions(path)


@pytest.mark.parametrize(
    ("exc", "argument", "call"),
    [case[1:] for case in _bad_inputs()],
    ids=[case[0] for case in _bad_inputs()],
)
def test_bad_input_names_the_argument(exc: type[BaseException], argument: str, call: Any) -> None:
    """Each bad input raises ``exc`` and the message names ``argument``."""
    assert_raises_naming(exc, argument, call)
