"""Batch-coupled models: a clip's logits that depend on its batch neighbours are found and named.

The official TalkNet visual front-end runs all ``B·T`` frames as one sequence, BatchNorm in train
mode normalises over the batch: every number then depends on ``batch_size``, ``max_batch`` and
batched restarts. :func:`avrobust.batch_coupling` measures it, :func:`avrobust.diagnose` flags it.
"""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming, assert_same_model, make_inputs, make_model, snapshot
from torch import nn

import avrobust
from avrobust.diagnostics import BatchCoupling

MIXES = ("per-clip", "sequence", "batch-norm")


class FrameModel(nn.Module):
    """Frame logits ``(B, T, 2)`` from grey frames ``(B, T, 16, 16)`` and audio ``(B, T·S)``.

    ``mix`` says how the frames of a batch meet: ``"per-clip"`` runs a temporal convolution over
    each clip on its own; ``"sequence"`` runs it over all ``B·T`` frames as one sequence (the
    official TalkNet visual front-end); ``"batch-norm"`` normalises the visual features with the
    statistics of the whole batch.
    """

    def __init__(self, mix: str, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mix = mix
        self.proj = nn.Linear(16 * 16, 8)
        self.temporal = nn.Conv1d(8, 8, kernel_size=3, padding=1)
        self.head = nn.Linear(9, 2)
        self.to(dtype)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        b, t = visual.shape[:2]
        f = torch.tanh(self.proj(visual.flatten(2) / 255 - 0.5))  # (B, T, 8)
        if self.mix == "sequence":
            f = self.temporal(f.reshape(1, b * t, 8).transpose(1, 2)).transpose(1, 2)
            f = f.reshape(b, t, 8)
        elif self.mix == "batch-norm":
            f = (f - f.mean(dim=(0, 1))) / (f.std(dim=(0, 1), correction=0) + 1e-3)
        else:
            f = self.temporal(f.transpose(1, 2)).transpose(1, 2)
        loud = audio.reshape(b, t, -1).abs().mean(-1, keepdim=True)
        return self.head(torch.cat([f, loud], dim=-1))


def frame_inputs(batch: int = 4, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    return make_inputs(batch=batch, samples=4 * 160, frames=4, dtype=dtype)


@pytest.mark.parametrize("mix", MIXES)
def test_batch_coupling_finds_models_that_mix_the_clips_of_a_batch(mix):
    """A sequence over B·T frames and a batch-wide normalisation are coupled (a difference far
    above the tolerance, said with the fix); the per-clip model is not (float64: the difference
    is rounding, far below the tolerance)."""
    found = avrobust.batch_coupling(FrameModel(mix), frame_inputs())
    assert isinstance(found, BatchCoupling)
    assert found.tolerance > 0 and found.compared
    if mix == "per-clip":
        assert not found.coupled and found.difference <= found.tolerance, str(found)
    else:
        assert found.coupled and found.difference > 100 * found.tolerance, str(found)
        for word in ("batch_size", "max_batch", f"{found.difference:.3g}"):
            assert word in str(found), str(found)


def test_batch_coupling_tolerance_comes_from_the_dtype():
    """float32 per-clip models are not flagged whatever the batch (rounding of batched kernels
    stays under the float32 tolerance); the tolerance of float32 is wider than float64's; an
    explicit ``atol`` replaces it."""
    model32 = FrameModel("per-clip", dtype=torch.float32)
    wide = avrobust.batch_coupling(model32, frame_inputs(batch=16, dtype=torch.float32))
    assert not wide.coupled, str(wide)
    narrow = avrobust.batch_coupling(FrameModel("per-clip"), frame_inputs())
    assert wide.tolerance > 1000 * narrow.tolerance
    coupled = FrameModel("sequence")
    assert not avrobust.batch_coupling(coupled, frame_inputs(), atol=1e9).coupled
    assert avrobust.batch_coupling(coupled, frame_inputs(), atol=0.0).tolerance == 0.0


def test_batch_coupling_runs_the_model_as_attacks_do_and_leaves_it_unchanged():
    """TinyAV's BatchNorm couples the clips in training mode only: with the attacks' default
    eval mode it is not flagged, with ``model_mode="current"`` it is; the model (its training
    flags, BatchNorm statistics) and the inputs are left as they were."""
    model, inputs = make_model(), make_inputs(batch=4, dtype=torch.float32)
    model.double()
    inputs = {n: x.double() for n, x in inputs.items()}
    before, originals = snapshot(model), {n: x.clone() for n, x in inputs.items()}
    assert not avrobust.batch_coupling(model, inputs).coupled
    assert avrobust.batch_coupling(model, inputs, model_mode="current").coupled
    assert_same_model(before, model)
    assert all(torch.equal(inputs[n], originals[n]) for n in inputs)


def test_batch_coupling_of_one_clip_compares_nothing():
    """A batch of one clip has no neighbours: nothing is compared and nothing is flagged."""
    found = avrobust.batch_coupling(FrameModel("sequence"), frame_inputs(batch=1))
    assert found.compared == () and not found.coupled and found.difference == 0.0
    assert "one clip" in str(found)


def test_batch_coupling_bad_arguments():
    """Bad arguments raise errors naming them."""
    model, inputs = FrameModel("per-clip"), frame_inputs()
    run = avrobust.batch_coupling
    assert_raises_naming(ValueError, "atol", run, model, inputs, atol=-1.0)
    assert_raises_naming(ValueError, "clips", run, model, inputs, clips=0)
    assert_raises_naming(ValueError, "model_mode", run, model, inputs, model_mode="train")
    assert_raises_naming(TypeError, "inputs", run, model, [inputs["audio"]])
    assert_raises_naming(TypeError, "model", run, "model", inputs)


def test_diagnose_flags_a_batch_coupled_model():
    """diagnose gains a "batch_coupling" flag: it fires on the B·T-sequence model, with the
    largest difference and the fix, and stays silent on the per-clip model."""
    budgets = {"visual": avrobust.Linf(8.0, bounds=(0.0, 255.0))}
    quick = {"steps": 2, "queries": 10, "noise_draws": 2, "scales": (1, 4)}
    inputs, labels = frame_inputs(), torch.zeros(4, 4, dtype=torch.long)
    coupled = avrobust.diagnose(FrameModel("sequence"), inputs, labels, budgets, **quick)
    flag = coupled.flag("batch_coupling")
    assert flag.fired, str(coupled)
    assert "batch_size" in flag.sentence and "max_batch" in flag.sentence
    plain = avrobust.diagnose(FrameModel("per-clip"), inputs, labels, budgets, **quick)
    assert not plain.flag("batch_coupling").fired, str(plain)
