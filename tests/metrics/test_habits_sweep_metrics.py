"""Issue 17 sweep, the metrics: class indices a logit can never predict (an ignore index such as
-100, a class beyond the logits), a single logit per frame, complex scores, frames in other
units than PSNR's peak, and a folder given as a CSV are refused or warned about, never counted in
silence."""

from __future__ import annotations

import pytest
import torch

from avrobust.metrics import PSNR, average_precision, evaluate_ava_csv, psnr, read_ava_predictions
from avrobust.metrics import accuracy as frame_accuracy


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ([0, 1, 5, 1], "[0, 2)"),
        ([0, 1, -100, 1], "mask"),
        ([0, -1, 1, 1], "[0, 2)"),
    ],
)
def test_accuracy_refuses_class_indices_outside_the_logits(labels, fragment):
    with pytest.raises(ValueError, match="labels") as info:
        frame_accuracy(torch.randn(4, 2), torch.tensor(labels))
    assert fragment in str(info.value)


def test_accuracy_refuses_a_single_logit_per_frame():
    """``(B, 1)`` scores with ``(B,)`` labels: the argmax of one class is always 0."""
    with pytest.raises(ValueError, match="scores") as info:
        frame_accuracy(torch.randn(4, 1), torch.tensor([0, 1, 1, 0]))
    assert "squeeze" in str(info.value) and "threshold" in str(info.value)


def test_accuracy_with_masked_ignore_index_is_accepted():
    labels = torch.tensor([0, 1, -100, 1])
    scores = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]])
    assert float(frame_accuracy(scores, labels, mask=labels >= 0)) == 1.0


def test_average_precision_refuses_complex_scores():
    with pytest.raises(TypeError, match="scores"):
        average_precision(torch.tensor([1 + 1j, 0j]), torch.tensor([1, 0]))


@pytest.mark.parametrize(
    ("scale", "data_range"),
    [(1.0, 255.0), (255.0, 1.0)],
    ids=["frames in [0, 1], peak 255", "frames in 0-255, peak 1"],
)
def test_psnr_warns_when_the_frames_are_in_other_units_than_its_peak(scale, data_range):
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 8, 8, generator=g) * scale
    adversarial = (clean + 0.05 * scale).clamp(0, scale)
    with pytest.warns(UserWarning, match="data_range"):
        psnr(clean, adversarial, data_range=data_range)
    metric = PSNR(data_range=data_range)
    with pytest.warns(UserWarning, match="data_range"):
        metric.update(clean, adversarial)


def test_psnr_in_matching_units_does_not_warn(recwarn):
    clean = torch.rand(2, 3, 8, 8) * 255
    psnr(clean, (clean + 2).clamp(0, 255))
    psnr(clean / 255, (clean / 255 + 0.01).clamp(0, 1), data_range=1.0)
    psnr(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))  # black frames say nothing
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_a_folder_given_as_a_csv_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match="predictions") as info:
        read_ava_predictions(tmp_path)
    assert "folder" in str(info.value)
    (tmp_path / "gt.csv").write_text("")
    with pytest.raises(IsADirectoryError, match="folder"):
        evaluate_ava_csv(tmp_path / "gt.csv", tmp_path)


def test_a_missing_csv_is_named_as_such(tmp_path):
    from avrobust.metrics import read_ava_ground_truth

    with pytest.raises(FileNotFoundError, match="no such AVA CSV file"):
        read_ava_ground_truth(tmp_path / "val_orig.csv")
