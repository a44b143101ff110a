"""Issue 17, point 6: resume reuses only what is truly the same.

A results file is resumed when the run's fingerprints equal the file's. They must cover what
changes the outputs beyond the weights: a module's plain attributes (a temperature), the
settings of :func:`avrobust.wrap`, per-dimension budget values, and the full values of tensors
a callable objective or ``score_fn`` captures; and nothing that does not change them (the
train/eval flag, a forward pass), so that a rerun still resumes.
"""

from __future__ import annotations

import functools
import hashlib
import warnings

import pytest
import torch
from helpers import BrightLoud, make_inputs, make_model
from torch import nn

import avrobust
from avrobust.evaluation import Grid
from avrobust.evaluation.fingerprints import callable_identity, model_fingerprint
from avrobust.transforms import ASDMFCC


def weights_only(model: nn.Module) -> str:
    """The fingerprint as avrobust computed it before issue 17 (state dict only)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(str(tuple(tensor.shape)).encode() + str(data.dtype).encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()[:16]


class Scaled(nn.Module):
    """A linear layer whose logits are divided by a plain (unregistered) temperature."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) / self.temperature


def scaled_pair(**first: float) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    a = nn.Sequential(Scaled(**first), nn.ReLU())
    b = nn.Sequential(Scaled(), nn.ReLU())
    b.load_state_dict(a.state_dict())
    return a, b


# ----------------------------------------------------------------------------- module attributes


def test_a_plain_attribute_of_a_submodule_changes_the_fingerprint():
    """The same weights with another temperature on a submodule give another fingerprint; the
    same temperature gives the same one."""
    a, b = scaled_pair(temperature=2.0)
    assert model_fingerprint(a) != model_fingerprint(b)
    b[0].temperature = 2.0
    assert model_fingerprint(a) == model_fingerprint(b)


def test_a_temperature_set_on_a_torch_layer_counts_too():
    """A plain attribute a user adds to a torch.nn layer (not one torch itself sets) counts."""
    a, b = scaled_pair()
    a[0].linear.temperature = 3.0
    assert model_fingerprint(a) != model_fingerprint(b)


def test_a_tensor_attribute_counts_by_its_values():
    """An unregistered tensor attribute of more than 1,000 elements that differs in one element
    (which ``repr`` would not show) gives another fingerprint."""
    a, b = scaled_pair()
    a[0].mean = torch.zeros(2000)
    b[0].mean = torch.zeros(2000)
    assert model_fingerprint(a) == model_fingerprint(b)
    b[0].mean[1234] = 1e-6
    assert model_fingerprint(a) != model_fingerprint(b)


def test_an_attribute_free_model_keeps_its_fingerprint_from_before():
    """A model of torch.nn layers only (no plain attribute of its own) keeps the fingerprint of
    earlier avrobust versions, so its results files resume unchanged."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Dropout(0.1))
    assert model_fingerprint(model) == weights_only(model)


def test_train_mode_and_a_forward_pass_leave_the_fingerprint_alone():
    """Nothing a forward pass or ``eval()`` changes outside the weights counts: the toy model,
    a wrapped model with transforms and TinyAV keep their fingerprints."""
    model = make_model(frames=4)
    wrapped = avrobust.wrap(make_model(frames=4), transforms={"audio": nn.Identity()})
    for m in (model, wrapped):
        before = model_fingerprint(m)
        m.eval()
        with torch.no_grad():
            m(**make_inputs(frames=4))
        m.train()
        assert model_fingerprint(m) == before


# ----------------------------------------------------------------------------- wrap settings


def test_wrap_settings_change_the_fingerprint():
    """``output=``, ``logits=`` and a transform's options each give another fingerprint for the
    same weights."""
    torch.manual_seed(0)
    inner = make_model(frames=4)

    def fp(**options: object) -> str | None:
        return model_fingerprint(avrobust.wrap(inner, **options))  # type: ignore[arg-type]

    plain = fp()
    assert plain == fp()
    assert fp(output="log_probabilities") != plain
    assert fp(logits=lambda out: out.logits / 2) != fp(logits=lambda out: out.logits / 3)
    assert fp(transforms={"audio": ASDMFCC(fps=25.0)}) != fp(
        transforms={"audio": ASDMFCC(fps=30.0)}
    )


# ----------------------------------------------------------------------------- budgets


def test_per_dimension_eps_of_another_value_is_another_cell():
    """Budgets whose per-dimension eps tensors differ (in the 6th decimal, or in one element
    of many) define other cells, so a results file of one is not reused for the other."""

    def budgets_of(eps: torch.Tensor):
        return lambda scale: {"audio": avrobust.Linf(eps * scale)}

    base = torch.full((1, 2000), 0.5)
    other = base.clone()
    other[0, 1500] = 0.5000001
    small, small_other = torch.tensor([[0.123451]]), torch.tensor([[0.123452]])

    def defines(eps: torch.Tensor) -> dict:
        grid = Grid(rules=["bim"], eps=[1.0], modalities=["audio"], budgets=budgets_of(eps))
        return grid.cells()[0].defines

    assert defines(base) == defines(base.clone())
    assert defines(base) != defines(other)
    assert defines(small) != defines(small_other)


# ----------------------------------------------------------------------------- callables


def test_a_callable_objective_is_known_by_its_captured_tensors_values():
    """A score_fn or objective capturing a tensor of more than 1,000 elements, or a small one
    that differs below repr's 4 decimals, changes its identity; the same values do not."""
    big = torch.zeros(3000)
    other = big.clone()
    other[2999] = 1.0

    def scorer(weights: torch.Tensor):
        return lambda out: (out.logits * weights[0]).sum(-1)

    assert callable_identity(scorer(big)) == callable_identity(scorer(big.clone()))
    assert callable_identity(scorer(big)) != callable_identity(scorer(other))
    near = torch.tensor([0.12345]), torch.tensor([0.12346])
    assert callable_identity(scorer(near[0])) != callable_identity(scorer(near[1]))
    partial = functools.partial(torch.mul, other=big)
    partial_other = functools.partial(torch.mul, other=other)
    assert callable_identity(partial) != callable_identity(partial_other)


def test_a_callable_without_tensors_keeps_its_identity_from_before():
    """The identity of a callable that captures no tensor is unchanged (no suffix), so the
    results files of earlier versions keep resuming."""
    identity = callable_identity(lambda out, labels: out.logits.sum())
    assert identity is not None and "+" not in identity


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_the_exact_toy_fingerprint_has_the_old_weights_part(scale):
    """A model with plain attributes: its fingerprint starts with the weights-only one of
    earlier versions (which a results file of theirs holds), then the attributes' part."""
    model = BrightLoud(scale, torch.tensor([0.5, 0.75, 1.25, 1.5]), 0.125)
    found = model_fingerprint(model)
    assert found is not None and found.startswith(weights_only(model) + "+")
    model.offset = 0.25
    assert model_fingerprint(model) != found


# ----------------------------------------------------------------------------- files of before


def test_a_file_of_before_resumes_once_with_a_warning_then_checks_everything(tmp_path):
    """A file that recorded a fingerprint's earlier part only (weights; a callable's code) is
    resumed when that part matches, with one warning naming what could not be checked, and the
    full fingerprints are recorded: a later run with other attributes is refused, as is a run
    whose attributes differ from those a new file recorded, or that has none where it had."""
    from avrobust.evaluation.records import FORMAT
    from avrobust.evaluation.store import ResultsFile

    config = {"format": FORMAT, "model": "aaaa", "score_fn_code": "cccc", "seed": 0}
    meta = {"kind": "meta", "config": config, "clean": {}, "selection": [0], "data": "d"}
    path = str(tmp_path / "r.jsonl")
    ResultsFile(path).start(meta)
    run = {**config, "model": "aaaa+1111", "score_fn_code": "cccc+2222"}
    with pytest.warns(UserWarning, match="plain attributes.*tensors") as caught:
        ResultsFile(path).resume(run, lambda ids: "d")
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ResultsFile(path).resume(run, lambda ids: "d")  # recorded now: silent
    for other in ({**run, "model": "aaaa+9999"}, {**run, "model": "aaaa"}):
        with pytest.raises(ValueError, match=r"differs in \['model'\]: the model's weights"):
            ResultsFile(path).resume(other, lambda ids: "d")
