"""FeatureMemory(gradient="detached") warns at attack time, not only in its docstring."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import make_inputs
from test_diagnose import BUDGETS, MemoryAV

import avrobust


def test_detached_memory_warns_once_when_attacked():
    """An attack on a model holding FeatureMemory(gradient="detached") warns, naming the mode,
    the modality and the fix; a second attack on the same instance does not warn again."""
    model = MemoryAV("detached", blend=0.5)
    inputs, labels = make_inputs(batch=2), torch.tensor([0, 1])
    attack = avrobust.MultimodalAttack(model, BUDGETS, rule="pgd", steps=2, seed=0)
    with pytest.warns(UserWarning) as record:
        attack(inputs, labels)
    hits = [
        str(w.message) for w in record if "FeatureMemory(gradient='detached')" in str(w.message)
    ]
    assert len(hits) == 1 and "'audio'" in hits[0] and "bpda" in hits[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attack(inputs, labels)


@pytest.mark.parametrize("gradient", ["bpda", "unrolled"])
def test_other_memory_modes_do_not_warn_when_attacked(gradient):
    """The modes that pass a gradient warn about nothing when attacked."""
    model = MemoryAV(gradient, blend=0.5)
    attack = avrobust.MultimodalAttack(model, BUDGETS, rule="pgd", steps=2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attack(make_inputs(batch=2), torch.tensor([0, 1]))


def test_detached_memory_does_not_warn_in_training_or_without_gradients():
    """Training (train mode, parameters receive gradients) and inference under no_grad are not
    attacks: no warning."""
    model = MemoryAV("detached", blend=0.5)
    inputs = make_inputs(batch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.train()
        model(**inputs).sum().backward()
        model.eval()
        with torch.no_grad():
            model(**inputs)
