"""Adversarial training helper with the real MultimodalAttack: batches, ratios, model modes."""

from __future__ import annotations

import pytest
import torch

import avrobust
from avrobust.defenses import AdversarialTraining, adversarial_batch
from avrobust.testing import TinyAV

EPS_A, EPS_V = 0.02, 4.0


def setup(batch: int = 6, seed: int = 0):
    torch.manual_seed(seed)
    model = TinyAV(frames=4)
    g = torch.Generator().manual_seed(seed)
    inputs = {
        "audio": torch.rand(batch, 256, generator=g) * 2 - 1,
        "visual": torch.rand(batch, 4, 12, 12, generator=g) * 255,
    }
    labels = torch.randint(0, 2, (batch,), generator=g)
    budgets = {
        "audio": avrobust.Linf(EPS_A, bounds=(-1, 1)),
        "visual": avrobust.Linf(EPS_V, bounds=(0, 255)),
    }
    attack = avrobust.MultimodalAttack(model, budgets=budgets, rule=avrobust.BIM(), steps=3, seed=0)
    return model, attack, inputs, labels


def changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a != b).flatten(1).any(dim=1)


def test_full_replacement_is_adversarial_within_budget_and_keeps_train_mode() -> None:
    model, attack, inputs, labels = setup()
    model.train()
    model.dropout.eval()  # a mixed mode must survive too
    modes = [(name, m.training) for name, m in model.named_modules()]
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    batch = adversarial_batch(attack, inputs, labels)
    assert [(name, m.training) for name, m in model.named_modules()] == modes
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, buffers[key], rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())
    assert batch.adversarial.all() and torch.equal(batch.labels, labels)
    assert changed(batch.inputs["visual"], inputs["visual"]).all()
    assert (batch.inputs["audio"] - inputs["audio"]).abs().max() <= EPS_A + 1e-6
    assert (batch.inputs["visual"] - inputs["visual"]).abs().max() <= EPS_V + 1e-4
    assert not any(x.requires_grad for x in batch.inputs.values())
    with torch.no_grad():  # the attack raised the training loss
        model.eval()
        ce = torch.nn.functional.cross_entropy
        clean_loss = ce(model(**inputs).logits, labels)
        adv_loss = ce(model(**batch.inputs).logits, labels)
    assert adv_loss > clean_loss


def test_replace_half() -> None:
    _, attack, inputs, labels = setup(batch=6)
    batch = adversarial_batch(
        attack, inputs, labels, ratio=0.5, generator=torch.Generator().manual_seed(1)
    )
    flags = batch.adversarial
    assert int(flags.sum()) == 3
    moved = changed(batch.inputs["visual"], inputs["visual"])
    assert torch.equal(moved, flags)  # exactly the drawn samples changed
    for key in inputs:
        assert torch.equal(batch.inputs[key][~flags], inputs[key][~flags])
    assert batch.result.inputs["visual"].shape[0] == 3  # only the drawn samples were attacked


def test_append_mode_and_seed_reproducibility() -> None:
    model, attack, inputs, labels = setup(batch=4)
    model.eval()
    helper = AdversarialTraining(attack, ratio=0.5, mode="append", seed=3)
    batch = helper(inputs, labels)
    assert not model.training
    assert batch.inputs["audio"].shape[0] == 6 and batch.labels.shape == (6,)
    assert batch.adversarial.tolist() == [False] * 4 + [True] * 2
    for key in inputs:
        assert torch.equal(batch.inputs[key][:4], inputs[key])
    again = AdversarialTraining(attack, ratio=0.5, mode="append", seed=3)(inputs, labels)
    assert torch.equal(again.labels, batch.labels)
    torch.testing.assert_close(again.inputs["visual"], batch.inputs["visual"])
    # Each appended sample lies within the budget of exactly one clean sample: its label follows.
    for k in range(4, 6):
        gap = (batch.inputs["visual"][k] - inputs["visual"]).abs().flatten(1).amax(dim=1)
        source = int(gap.argmin())
        assert gap[source] <= EPS_V + 1e-4 and batch.labels[k] == labels[source]


class Recorder:
    """A stand-in attack that records its calls and leaves the model in eval mode (a bad citizen)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.calls = 0

    def __call__(self, inputs, labels):
        self.calls += 1
        self.model.eval()
        return avrobust.AttackResult(
            inputs={k: v + 1 for k, v in inputs.items()},
            success=torch.ones(len(labels), dtype=torch.bool),
            logits=torch.zeros(len(labels), 2),
            loss=torch.zeros(len(labels)),
        )


def test_modes_restored_even_if_attack_does_not_and_ratio_zero_skips_attack() -> None:
    model = TinyAV().train()
    attack = Recorder(model)
    inputs = {"audio": torch.zeros(4, 64), "visual": torch.zeros(4, 4, 8, 8)}
    batch = adversarial_batch(attack, inputs, torch.zeros(4, dtype=torch.long))
    assert model.training and all(m.training for m in model.modules())
    assert attack.calls == 1 and torch.equal(batch.inputs["audio"], torch.ones(4, 64))
    none = adversarial_batch(attack, inputs, torch.zeros(4, dtype=torch.long), ratio=0.0)
    assert (
        attack.calls == 1 and not none.adversarial.any() and none.inputs["audio"] is inputs["audio"]
    )


def test_frame_level_labels() -> None:
    _, attack, inputs, _ = setup(batch=4)
    labels = torch.randint(0, 2, (4, 4))
    attack = avrobust.MultimodalAttack(
        TinyAV(frames=4, frame_level=True), budgets=attack.budgets, rule="bim", steps=2
    )
    batch = adversarial_batch(attack, inputs, labels, ratio=0.5, mode="append")
    assert batch.labels.shape == (6, 4)


def test_errors() -> None:
    _, attack, inputs, labels = setup(batch=4)
    with pytest.raises(ValueError, match=r"ratio: must be a number in \[0, 1\], got 1.5"):
        adversarial_batch(attack, inputs, labels, ratio=1.5)
    with pytest.raises(ValueError, match=r"ratio: must be a finite number >= 0, got -0.1"):
        AdversarialTraining(attack, ratio=-0.1)
    with pytest.raises(
        ValueError, match=r"mode: expected one of \['append', 'replace'\], got 'mix'"
    ):
        adversarial_batch(attack, inputs, labels, mode="mix")
    with pytest.raises(TypeError, match=r"attack: expected a callable such as MultimodalAttack"):
        AdversarialTraining("pgd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"labels: expected a batch dimension of 4, got \(3,\)"):
        adversarial_batch(attack, inputs, labels[:3])
    with pytest.raises(TypeError, match=r"attack: expected a result with \.inputs"):
        adversarial_batch(lambda x, y: None, inputs, labels)
