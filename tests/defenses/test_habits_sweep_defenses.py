"""Issue 17 sweep, the defenses: mix-up's ``(B, C)`` labels must be class probabilities (logits,
scores or rows of the wrong width are refused, never mixed into wrong soft targets)."""

from __future__ import annotations

import pytest
import torch
from helpers import make_inputs

from avrobust.defenses import modality_mixup


@pytest.mark.parametrize(
    ("labels", "kwargs", "fragment"),
    [
        (torch.tensor([[0.7, 0.7], [0.5, 0.5], [1.0, 0.0]]), {}, "summing to 1"),
        (torch.tensor([[2.0, -1.0], [0.5, 0.5], [1.0, 0.0]]), {}, "summing to 1"),
        (torch.tensor([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]]), {"num_classes": 3}, "num_classes"),
    ],
    ids=["rows over 1", "logits", "width vs num_classes"],
)
def test_mixup_refuses_soft_labels_that_are_not_probabilities(labels, kwargs, fragment):
    with pytest.raises(ValueError, match=r"labels|num_classes") as info:
        modality_mixup(make_inputs(), labels, **kwargs)
    assert fragment in str(info.value)


def test_mixup_accepts_probabilities_and_keeps_them_summing_to_1():
    labels = torch.tensor([[0.25, 0.75], [1.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    batch = modality_mixup(make_inputs(), labels, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch.targets.sum(1), torch.ones(3, dtype=torch.float64))


def test_feature_memory_refuses_an_all_zero_bank():
    """Every reconstruction over zero atoms is 0: the memory would only scale the features by
    ``1 - blend``, in silence."""
    from avrobust.defenses import FeatureMemory

    with pytest.raises(ValueError, match=r"banks\['audio'\]") as info:
        FeatureMemory({"audio": torch.zeros(4, 8)})
    assert "zero" in str(info.value)
