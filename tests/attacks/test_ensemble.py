"""Ensembles: per sample the worst case over attacks run in order, later ones on robust samples."""

from __future__ import annotations

import torch
from helpers import assert_raises_naming, assert_same_model, make_inputs, make_model, snapshot
from torch import nn

import avrobust
from avrobust import AttackResult
from avrobust.attacks.autoattack import TopKTargeted
from avrobust.attacks.ensemble import EnsembleResult

BUDGETS = {
    "audio": avrobust.Linf(0.004, bounds=(-1.0, 1.0)),
    "visual": avrobust.Linf(2.0, bounds=(0.0, 255.0)),
}


def setup64(
    batch: int = 8, **kwargs: object
) -> tuple[nn.Module, dict[str, torch.Tensor], torch.Tensor]:
    """A float64 TinyAV (sign-based attacks then agree across batch sizes on any CPU) and labels
    it predicts correctly."""
    model = make_model(**kwargs).double()
    inputs = {n: x.double() for n, x in make_inputs(batch=batch).items()}
    with torch.no_grad(), avrobust.preserve_model_state(model):
        labels = model(**inputs).logits.argmax(-1)
    return model, inputs, labels


def attack(model: nn.Module, rule: str, budgets: dict = BUDGETS, **kwargs: object):
    return avrobust.MultimodalAttack(model, budgets, rule=rule, steps=5, seed=0, **kwargs)


class Recorder:
    """Wraps an attack and records the labels of each call."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []
        self.model, self.targeted = inner.model, inner.targeted

    def __call__(self, inputs, labels):
        self.calls.append(labels.clone())
        return self.inner(inputs, labels)


def test_ensemble_is_the_per_sample_worst_case_and_runs_later_attacks_on_robust_samples():
    """Success is FGSM's (small budget) or BIM's (3x larger), each run alone on the whole batch
    (BIM is deterministic, so its result per sample does not depend on the batch); BIM only saw
    the samples FGSM left robust; broken_by adds up; the model and inputs are untouched; the
    budgets hold."""
    model, inputs, labels = setup64()
    larger = {
        "audio": avrobust.Linf(0.012, bounds=(-1.0, 1.0)),
        "visual": avrobust.Linf(6.0, bounds=(0.0, 255.0)),
    }
    fgsm, bim = attack(model, "fgsm"), Recorder(attack(model, "bim", larger))
    alone_fgsm, alone_bim = fgsm(inputs, labels), bim.inner(inputs, labels)
    before, originals = snapshot(model), {n: x.clone() for n, x in inputs.items()}
    result = avrobust.Ensemble([fgsm, bim], names=["fgsm", "bim"])(inputs, labels)
    assert_same_model(before, model)
    assert all(torch.equal(inputs[n], originals[n]) for n in inputs)
    assert isinstance(result, EnsembleResult) and isinstance(result, AttackResult)
    assert torch.equal(result.success, alone_fgsm.success | alone_bim.success)
    assert 0 < int(alone_fgsm.success.sum()) < 8, "FGSM breaks all or none: the test shows nothing"
    assert (alone_bim.success & ~alone_fgsm.success).any(), "BIM adds nothing: shows nothing"
    assert torch.equal(bim.calls[0], labels[~alone_fgsm.success])
    assert result.broken_by == {
        "fgsm": int(alone_fgsm.success.sum()),
        "bim": int((alone_bim.success & ~alone_fgsm.success).sum()),
    }
    for i, name in enumerate(result.source):
        if alone_fgsm.success[i]:
            assert name == "fgsm"
            assert torch.equal(result.inputs["visual"][i], alone_fgsm.inputs["visual"][i])
        elif alone_bim.success[i]:
            assert name == "bim"
            assert torch.equal(result.inputs["visual"][i], alone_bim.inputs["visual"][i])
    assert (result.perturbations["visual"].abs() <= 6.0).all()
    torch.testing.assert_close(result.logits, model.eval()(**result.inputs).logits)


def test_ensemble_skips_attacks_once_everything_is_broken():
    """An attack after the batch is all broken is never called and breaks 0."""
    model, inputs, labels = setup64(batch=3)
    big = {"visual": avrobust.Linf(255.0, bounds=(0.0, 255.0))}
    later = Recorder(attack(model, "fgsm"))
    result = avrobust.Ensemble([attack(model, "pgd", big), later], names=["a", "b"])(inputs, labels)
    assert result.success.all()
    assert later.calls == [] and result.broken_by == {"a": 3, "b": 0}


def test_ensemble_cuts_per_sample_budgets_to_the_robust_samples():
    """Per-sample eps tensors (B,) reach later attacks cut to the samples still robust, and
    every returned perturbation stays inside its own sample's eps."""
    model, inputs, labels = setup64()
    eps_v = torch.linspace(0.5, 4.0, 8, dtype=torch.float64)
    budgets = {"visual": avrobust.Linf(eps_v, bounds=(0.0, 255.0))}
    square = avrobust.SquareAttack(model, budgets, queries=5, objective="margin", seed=0)
    ensemble = avrobust.Ensemble(
        [attack(model, "fgsm", budgets), attack(model, "pgd", budgets), square]
    )
    result = ensemble(inputs, labels)
    assert not avrobust.MultimodalAttack(model, budgets, rule="fgsm")(inputs, labels).success.all()
    delta = result.perturbations["visual"].abs().flatten(1).amax(dim=1)
    assert (delta <= eps_v).all()
    assert torch.equal(result.inputs["audio"], inputs["audio"])


class Fixed:
    """A fake attack returning given logits and a marker input for the rows it is called on."""

    def __init__(self, logits: torch.Tensor, marker: float) -> None:
        self.logits, self.marker = logits, marker

    def __call__(self, inputs, labels):
        n = labels.shape[0]
        return AttackResult(
            inputs={"x": torch.full((n, 1), self.marker)},
            success=torch.zeros(n, dtype=torch.bool),
            logits=self.logits[:n],
            loss=torch.zeros(n),
            perturbations={"x": torch.zeros(n, 1)},
        )


def test_ensemble_keeps_the_candidate_closest_to_broken_for_robust_samples():
    """No attack breaks the sample: the candidate with the higher margin is kept; one with
    NaN logits never is, even first."""
    x, labels = {"x": torch.zeros(1, 1)}, torch.tensor([0])
    first = Fixed(torch.tensor([[float("nan"), 0.0]]), 1.0)
    second = Fixed(torch.tensor([[2.0, 0.0]]), 2.0)
    third = Fixed(torch.tensor([[1.0, 0.5]]), 3.0)
    fourth = Fixed(torch.tensor([[3.0, 0.5]]), 4.0)
    result = avrobust.Ensemble([first, second, third, fourth], names=list("abcd"))(x, labels)
    assert result.inputs["x"].item() == 3.0 and result.source == ("c",)
    assert not result.success.any() and result.broken_by == dict.fromkeys("abcd", 0)
    assert result.loss.item() == -0.5


def frame_logits(wrong: list[list[bool]]) -> torch.Tensor:
    """``(B, T, 2)`` logits for frame labels all 0: class 1 wins by 1 where ``wrong``."""
    w = torch.tensor(wrong, dtype=torch.float64)
    return torch.stack([1.0 - w, w], dim=-1)


class Called(Fixed):
    """:class:`Fixed` that records how many rows each call attacks."""

    def __init__(self, logits: torch.Tensor, marker: float) -> None:
        super().__init__(logits, marker)
        self.rows: list[int] = []

    def __call__(self, inputs, labels):
        self.rows.append(labels.shape[0])
        return super().__call__(inputs, labels)


def test_frame_labels_run_on_until_every_frame_is_wrong():
    """Frame labels: a clip broken with 3 of 4 frames wrong (more than half) still meets the
    next attack by default, whose candidate with 4 of 4 wrong is taken, without counting the
    clip as broken twice; a clip with every frame wrong is finished. ``until="broken"`` stops
    at the first break (AutoAttack's rule): the next attack is never called."""
    x, labels = {"x": torch.zeros(2, 1)}, torch.zeros(2, 4, dtype=torch.long)
    first_logits = frame_logits([[True, True, True, False], [True, True, True, True]])
    second_logits = frame_logits([[True, True, True, True], [False, False, False, False]])
    first, second = Called(first_logits, 1.0), Called(second_logits, 2.0)
    result = avrobust.Ensemble([first, second], names=["a", "b"])(x, labels)
    assert second.rows == [1], "only the clip with a frame still right goes on"
    assert result.inputs["x"].flatten().tolist() == [2.0, 1.0]
    assert result.source == ("b", "a") and result.success.all()
    assert result.broken_by == {"a": 2, "b": 0}
    assert result.frame_success is not None and result.frame_success.all()
    first, second = Called(first_logits, 1.0), Called(second_logits, 2.0)
    stop = avrobust.Ensemble([first, second], names=["a", "b"], until="broken")(x, labels)
    assert second.rows == [] and stop.inputs["x"].flatten().tolist() == [1.0, 1.0]


def test_frame_labels_keep_the_candidate_with_more_frames_wrong():
    """A later candidate with fewer frames wrong (but a higher margin on the others) does not
    replace an earlier one with more frames wrong."""
    x, labels = {"x": torch.zeros(1, 1)}, torch.zeros(1, 4, dtype=torch.long)
    first = Called(frame_logits([[True, True, True, False]]), 1.0)
    fewer = frame_logits([[True, True, False, False]]) * 5.0
    result = avrobust.Ensemble([first, Called(fewer, 2.0)], names=["a", "b"])(x, labels)
    assert result.inputs["x"].item() == 1.0 and result.source == ("a",)


def test_topk_targeted_aims_at_the_most_likely_other_classes_in_turn():
    """With 4 classes and targets=2, the inner targeted attack gets the best other class of each
    sample, then the second best on the samples still robust (ranked from the clean logits);
    success is untargeted (prediction != true label)."""
    model, inputs, labels = setup64(num_classes=4)
    with torch.no_grad():
        logits = model.eval()(**inputs).logits
    ranked = logits.scatter(1, labels[:, None], -float("inf")).argsort(dim=1, descending=True)
    inner = Recorder(attack(model, "bim", targeted=True, objective="margin"))
    result = TopKTargeted(inner, targets=2)(inputs, labels)
    assert torch.equal(inner.calls[0], ranked[:, 0])
    robust = ~untargeted(result_first := inner.inner(inputs, ranked[:, 0]), labels)
    assert robust.any(), "the first target broke everything: the test shows nothing"
    assert len(inner.calls) == 2 and torch.equal(inner.calls[1], ranked[robust, 1])
    assert torch.equal(result.success, untargeted(result, labels))
    assert list(result.broken_by) == ["target-1", "target-2"]
    assert result.broken_by["target-1"] == int(untargeted(result_first, labels).sum())


def untargeted(result: AttackResult, labels: torch.Tensor) -> torch.Tensor:
    return result.logits.argmax(-1) != labels


def test_topk_targeted_with_two_classes_is_the_untargeted_margin_attack():
    """For 2 classes the targeted margin towards the other class follows the untargeted margin
    attack's iterates: same adversarial inputs."""
    model, inputs, labels = setup64()
    targeted = TopKTargeted(attack(model, "bim", targeted=True, objective="margin"))(inputs, labels)
    plain = attack(model, "bim", objective="margin")(inputs, labels)
    for n in inputs:
        assert torch.equal(targeted.inputs[n], plain.inputs[n])
    assert list(targeted.broken_by) == ["target-1"]


def test_default_ensemble_is_at_least_as_strong_as_its_first_attack():
    """The default ensemble (APGD-CE, targeted APGD-margin, Square) breaks every sample APGD-CE
    breaks alone, and more than a 5-step PGD at a small budget; its names are the documented
    ones."""
    model, inputs, labels = setup64()
    ensemble = avrobust.default_ensemble(model, BUDGETS, steps=10, queries=20)
    assert ensemble.names == ["apgd-ce", "apgd-t-margin", "square"]
    result = ensemble(inputs, labels)
    first = ensemble.attacks[0](inputs, labels)
    pgd5 = avrobust.MultimodalAttack(model, BUDGETS, rule="pgd", steps=5, seed=0)(inputs, labels)
    assert (result.success | ~first.success).all()
    assert int(result.success.sum()) >= int(pgd5.success.sum())
    assert sum(result.broken_by.values()) == int(result.success.sum())


def test_ensemble_bad_arguments():
    """Every bad argument raises the right error naming the argument."""
    model, inputs, labels = setup64(batch=2)
    fgsm = attack(model, "fgsm")
    assert_raises_naming(TypeError, "attacks", avrobust.Ensemble, [])
    assert_raises_naming(TypeError, "attacks", avrobust.Ensemble, fgsm)
    assert_raises_naming(TypeError, "attacks[1]", avrobust.Ensemble, [fgsm, 3])
    assert_raises_naming(ValueError, "names", avrobust.Ensemble, [fgsm], names=["a", "b"])
    assert_raises_naming(ValueError, "names", avrobust.Ensemble, [fgsm, fgsm], names=["a", "a"])
    assert_raises_naming(TypeError, "names", avrobust.Ensemble, [fgsm], names="a")
    assert_raises_naming(TypeError, "names", avrobust.Ensemble, [fgsm], names=[1])
    assert_raises_naming(ValueError, "until", avrobust.Ensemble, [fgsm], until="never")
    targeted = attack(model, "bim", targeted=True, objective="margin")
    assert_raises_naming(ValueError, "until", TopKTargeted, targeted, until="all")
    bad = avrobust.Ensemble([lambda x, y: "nothing"])
    assert_raises_naming(TypeError, "attacks[0]", bad, inputs, labels)
    good = avrobust.Ensemble([fgsm])
    assert_raises_naming(ValueError, "labels", good, inputs, labels[:1])
    assert_raises_naming(TypeError, "inputs", good, [inputs], labels)
    assert_raises_naming(ValueError, "attack", TopKTargeted, fgsm)
    assert_raises_naming(TypeError, "attack", TopKTargeted, lambda x, y: None)
    targeted = attack(model, "fgsm", targeted=True)
    assert_raises_naming(ValueError, "targets", TopKTargeted, targeted, targets=0)
    assert avrobust.Ensemble([fgsm, fgsm]).names == ["fgsm", "fgsm-2"]
