"""``max_batch`` chunks whole restarts, never the batch, and the docs say so."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import avrobust


class Counting(nn.Module):
    """A per-clip linear model that records the batch size of every forward."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(6, 2).double()
        self.sizes: list[int] = []

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.sizes.append(features.shape[0])
        return self.linear(features)


@pytest.mark.parametrize(
    "max_batch, chunks",
    [(None, [12]), (12, [12]), (8, [8, 4]), (4, [4, 4, 4]), (2, [4, 4, 4]), (1, [4, 4, 4])],
)
def test_max_batch_chunks_whole_restarts(max_batch, chunks):
    """PGD with 3 restarts on a batch of 4: each forward holds ``k`` whole copies of the batch,
    ``k = max(1, min(3, max_batch // 4))``; below the batch size it still holds the batch once.
    The clean pass runs the batch as it is; the result does not depend on ``max_batch``."""
    model = Counting()
    inputs = {"features": torch.randn(4, 6, generator=torch.Generator().manual_seed(1)).double()}
    budgets = {"features": avrobust.Linf(0.1)}
    attack = avrobust.MultimodalAttack(
        model, budgets, rule=avrobust.PGD(restarts=3), steps=2, seed=0, max_batch=max_batch
    )
    result = attack(inputs, torch.tensor([0, 1, 0, 1]))
    assert model.sizes[0] == 4  # the clean pass
    per_chunk = len(model.sizes[1:]) // len(chunks)  # a chunk runs all its steps, then the next
    assert model.sizes[1:] == [size for size in chunks for _ in range(per_chunk)]
    reference = avrobust.MultimodalAttack(
        Counting(), budgets, rule=avrobust.PGD(restarts=3), steps=2, seed=0
    )(inputs, torch.tensor([0, 1, 0, 1]))
    assert torch.equal(result.inputs["features"], reference.inputs["features"])


def test_max_batch_docstring_says_what_it_chunks():
    """The docstring of ``max_batch`` says it chunks whole restarts and never splits the batch,
    and points at batch coupling, the case where the chunking changes the results."""
    doc = " ".join((avrobust.MultimodalAttack.__doc__ or "").split())
    for words in ("whole restarts", "never splits the batch", "batch_coupling"):
        assert words in doc, words
