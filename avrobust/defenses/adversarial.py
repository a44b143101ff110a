"""Adversarial training inside the user's own loop: a clean batch in, an adversarial (or mixed) out.

No trainer: call :func:`adversarial_batch` (or an :class:`AdversarialTraining` object) on each
batch, then compute the loss on what it returns::

    attack = avrobust.MultimodalAttack(model, budgets=budgets, rule="bim", steps=5)
    adv = AdversarialTraining(attack, ratio=0.5)
    for inputs, labels in loader:
        batch = adv(inputs, labels)          # model.train() is left as it was
        out = model(**batch.inputs)
        loss = criterion(out, batch.labels)
        ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import (
    check_choice,
    check_finite_tensor,
    check_fraction,
    check_generator,
    check_int,
    check_tensor,
    check_tensor_dict,
    describe,
)
from ..attacks.attack import preserve_model_state

__all__ = ["AdversarialBatch", "AdversarialTraining", "adversarial_batch"]

Attack = Callable[[dict[str, Tensor], Tensor], Any]
"""Anything called as ``attack(inputs, labels)`` returning an object with ``.inputs`` (a dict),
such as :class:`avrobust.MultimodalAttack`."""


@dataclass(frozen=True)
class AdversarialBatch:
    """A training batch made by :func:`adversarial_batch`.

    Attributes:
        inputs: ``{modality: (B', ...)}``, detached, same dtypes and devices as the clean inputs.
        labels: ``(B',)`` or ``(B', T)`` labels matching ``inputs``.
        adversarial: ``(B',)`` bool, which samples are adversarial.
        result: the attack's result on the attacked samples (``None`` if none was attacked),
            e.g. for logging ``result.success_rate``.
    """

    inputs: dict[str, Tensor]
    labels: Tensor
    adversarial: Tensor
    result: Any = None


def _pick(batch: int, ratio: float, generator: torch.Generator | None) -> Tensor:
    count = int(ratio * batch + 0.5)
    if count == batch:
        return torch.arange(batch)
    if generator is None:  # a fresh source: the global RNG is neither used nor reseeded
        generator = torch.Generator()
        generator.seed()
    return torch.randperm(batch, generator=generator)[:count].sort().values


def adversarial_batch(
    attack: Attack,
    inputs: Mapping[str, Tensor],
    labels: Tensor,
    *,
    ratio: float = 1.0,
    mode: str = "replace",
    generator: torch.Generator | None = None,
    model: nn.Module | None = None,
) -> AdversarialBatch:
    """Turn a clean batch into an adversarial one, or a clean/adversarial mix.

    ``round(ratio · B)`` samples, drawn at random (all of them when ``ratio == 1``), are attacked
    and either replace their clean versions (``mode="replace"``, batch size kept) or are appended
    after the clean batch (``mode="append"``, batch size ``B + round(ratio · B)``). Only the
    drawn samples are sent to the attack. Every submodule's ``training`` flag is restored
    afterwards (the model is ``model``, else ``attack.model`` when the attack has one).

    Args:
        attack: e.g. :class:`avrobust.MultimodalAttack`; called as ``attack(inputs, labels)``.
        inputs: ``{modality: (B, ...)}`` clean inputs (e.g. audio ``(B, S)`` in [-1, 1], video
            ``(B, T, H, W)`` in [0, 255]); never modified.
        labels: ``(B,)`` clip or ``(B, T)`` frame labels.
        ratio: fraction of the batch to attack, in [0, 1].
        mode: ``"replace"`` or ``"append"``.
        generator: random source for drawing the attacked samples (CPU ``torch.Generator``);
            ``None``: a freshly seeded one (the global RNG is never used).
        model: the model whose train/eval flags to restore (default: ``attack.model``).

    Returns:
        :class:`AdversarialBatch`.

    Raises:
        TypeError: ``attack`` not callable or returning no ``.inputs`` dict.
        ValueError: ``ratio`` outside [0, 1], an unknown ``mode``, labels without the batch size,
            an attack result of the wrong shape or with NaN/Inf values.
    """
    if not callable(attack):
        raise TypeError(
            f"attack: expected a callable such as MultimodalAttack, got {describe(attack)}"
        )
    clean = check_tensor_dict(inputs, "inputs")
    y = check_tensor(labels, "labels")
    batch = next(iter(clean.values())).shape[0]
    if y.ndim == 0 or y.shape[0] != batch:
        raise ValueError(f"labels: expected a batch dimension of {batch}, got {tuple(y.shape)}")
    share = check_fraction(ratio, "ratio")
    how = check_choice(mode, "mode", ("replace", "append"))
    check_generator(generator)
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module or None, got {describe(model)}")
    chosen = _pick(batch, share, generator)
    flags = torch.zeros(batch, dtype=torch.bool)
    if chosen.numel() == 0:
        return AdversarialBatch(dict(clean), y, flags.to(y.device))
    owner = model if model is not None else getattr(attack, "model", None)
    keep = preserve_model_state(owner, "current") if isinstance(owner, nn.Module) else nullcontext()
    with keep:
        with torch.enable_grad():
            result = attack(
                {k: x[chosen.to(x.device)] for k, x in clean.items()}, y[chosen.to(y.device)]
            )
    adv = getattr(result, "inputs", None)
    if not isinstance(adv, Mapping) or set(adv) != set(clean):
        raise TypeError(
            f"attack: expected a result with .inputs, a dict with keys {sorted(clean)}, "
            f"got {describe(result)}"
        )
    for key, value in adv.items():
        name = f"attack(...).inputs[{key!r}]"
        expected = (len(chosen), *clean[key].shape[1:])
        if check_tensor(value, name).shape != expected:
            raise ValueError(
                f"{name}: expected shape {expected} (one per attacked sample), got "
                f"{tuple(value.shape)}"
            )
        check_finite_tensor(value.detach(), name)  # a NaN batch would train on garbage silently
    return _assemble(clean, y, chosen, {k: v.detach() for k, v in adv.items()}, how, result)


def _assemble(
    clean: dict[str, Tensor],
    y: Tensor,
    chosen: Tensor,
    adv: dict[str, Tensor],
    how: str,
    result: Any,
) -> AdversarialBatch:
    batch = y.shape[0]
    if how == "append":
        out = {k: torch.cat([x, adv[k].to(x.dtype)]) for k, x in clean.items()}
        labels = torch.cat([y, y[chosen.to(y.device)]])
        flags = torch.cat(
            [torch.zeros(batch, dtype=torch.bool), torch.ones(len(chosen), dtype=torch.bool)]
        )
    else:
        out = {
            k: x.index_copy(0, chosen.to(x.device), adv[k].to(x.dtype)) for k, x in clean.items()
        }
        labels = y
        flags = torch.zeros(batch, dtype=torch.bool).index_fill(0, chosen, True)
    return AdversarialBatch(out, labels, flags.to(y.device), result)


class AdversarialTraining:
    """:func:`adversarial_batch` with its settings and random source kept, for use in a loop.

    Args:
        attack: e.g. :class:`avrobust.MultimodalAttack` (it runs the model in eval mode by default
            and restores every flag and BatchNorm statistic).
        ratio: fraction of each batch to attack, in [0, 1] (1: fully adversarial batches).
        mode: ``"replace"`` (batch size kept) or ``"append"`` (adversarial copies added).
        seed: seed of the generator drawing the attacked samples; ``None`` draws a fresh one.

    Example:
        >>> import torch, avrobust
        >>> from avrobust.testing import TinyAV
        >>> model = TinyAV().train()
        >>> attack = avrobust.MultimodalAttack(
        ...     model, budgets={"visual": avrobust.Linf(2.0, bounds=(0, 255))}, rule="bim", steps=2)
        >>> adv = AdversarialTraining(attack, ratio=0.5, mode="append", seed=0)
        >>> inputs = {"audio": torch.rand(4, 64) * 2 - 1, "visual": torch.rand(4, 4, 8, 8) * 255}
        >>> batch = adv(inputs, torch.tensor([0, 1, 0, 1]))
        >>> batch.inputs["visual"].shape[0], int(batch.adversarial.sum()), model.training
        (6, 2, True)
    """

    def __init__(
        self, attack: Attack, ratio: float = 1.0, mode: str = "replace", seed: int | None = None
    ) -> None:
        if not callable(attack):
            raise TypeError(
                f"attack: expected a callable such as MultimodalAttack, got {describe(attack)}"
            )
        self.attack = attack
        self.ratio = check_fraction(ratio, "ratio")
        self.mode = check_choice(mode, "mode", ("replace", "append"))
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(check_int(seed, "seed", min_value=0))

    def __repr__(self) -> str:
        return (
            f"AdversarialTraining(attack={self.attack!r}, ratio={self.ratio:g}, mode={self.mode!r})"
        )

    def __call__(self, inputs: Mapping[str, Tensor], labels: Tensor) -> AdversarialBatch:
        """Make the training batch; see :func:`adversarial_batch`."""
        return adversarial_batch(
            self.attack, inputs, labels, ratio=self.ratio, mode=self.mode, generator=self.generator
        )
