"""Ensembles of attacks: per sample, the worst case over several attacks run in order.

A robustness number is only as good as the strongest attack tried (Croce & Hein, 2020, whose
AutoAttack runs APGD with cross-entropy, a targeted APGD, FAB and Square, each on the samples the
previous ones left robust). :class:`Ensemble` does that for any attacks called as
``attack(inputs, labels) -> AttackResult``; :mod:`.autoattack` holds the named default
(:func:`~avrobust.attacks.autoattack.default_ensemble`) and the targeted attack it runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._checks import check_choice, check_labels_batch, check_tensor_dict, describe
from .._types import AttackResult
from ._guards import finite_rows
from .budgets import Budget
from .objectives import check_labels, margin
from .square import untargeted_success

__all__ = ["UNTIL", "Ensemble", "EnsembleResult"]

Attack = Callable[[Mapping[str, Tensor], Tensor], AttackResult]
"""Anything called as ``attack(inputs, labels)`` that returns :class:`avrobust.AttackResult`."""

UNTIL = ("all-frames", "broken")
"""When a sample leaves an ensemble (see :class:`Ensemble`'s ``until``)."""


@dataclass(frozen=True)
class EnsembleResult(AttackResult):
    """What :class:`Ensemble` returns: an :class:`avrobust.AttackResult` and who broke what.

    ``inputs``, ``logits``, ``success`` and ``frame_success`` are those of the returned
    candidate of each sample (untargeted success, against the true labels, whatever the attacks'
    own objectives or targets). ``loss`` is the margin of the returned logits (best other logit
    minus the true one, averaged over frames for frame logits): the one score comparable across
    attacks with different objectives. ``clean_loss`` is ``None``.

    Attributes:
        broken_by: ``{attack name: samples it broke}`` in the order run; the counts add up to
            the number of successes. The first attack's count includes samples already
            misclassified at the clean input.
        source: per sample, the name of the attack whose candidate is returned.
    """

    broken_by: dict[str, int] = field(default_factory=dict)
    source: tuple[str, ...] = ()


def _default_names(attacks: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for attack in attacks:
        rule = getattr(attack, "rule", None)
        base = getattr(rule, "name", None) or type(attack).__name__.lower()
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


class Ensemble:
    """Per sample, the worst case over a list of attacks run in order.

    The first attack runs on the whole batch; each later one only on the samples the earlier
    ones have not finished (AutoAttack's protocol), so it costs little once most samples are
    done. A sample is broken when the prediction on an attack's candidate differs from its
    label (frame logits: more than half of the frames), whatever that attack's objective or
    targets. Per sample, the candidate returned is the one with the most misclassified frames,
    then the highest margin (best other logit minus the true one): the closest to broken, or
    the most broken. Each attack keeps its own guarantees (the model left as it was, the inputs
    never modified, every perturbation inside its budget).

    **Decided: frame labels run on until every frame is wrong.** With clip labels a broken
    sample is finished, as in AutoAttack. With frame labels ``(B, T)`` the measures that
    matter (frame mAP, frame accuracy) still move after a clip is "broken" (more than half of
    its frames wrong): the default ``until="all-frames"`` keeps a sample in the later attacks
    until all its frames are misclassified, and takes a later candidate when it gets more
    frames wrong. On the demo's model A this is what brings the ensemble down to the strongest
    single attack's frame accuracy (``docs/performance.md``); ``until="broken"`` is AutoAttack's
    rule, cheaper when a clip-level verdict is all you need.

    Args:
        attacks: the attacks in the order to run, each called as ``attack(inputs, labels)`` and
            returning :class:`avrobust.AttackResult` (:class:`avrobust.MultimodalAttack`,
            :class:`avrobust.SquareAttack`, :class:`TopKTargeted`, another ``Ensemble``, ...).
            Per-sample budgets (``eps`` tensors ``(B,)``) are cut to the samples still robust.
        names: one unique name per attack, used in ``broken_by``; default: each attack's rule
            name (``"pgd"``, ...) or class name, numbered when repeated.
        until: when a sample is finished and later attacks skip it: ``"all-frames"`` (every
            frame misclassified; for clip labels the same as ``"broken"``) or ``"broken"``
            (misclassified, frame labels: more than half of the frames).

    Raises:
        TypeError: ``attacks`` not a non-empty list of callables; ``names`` not strings.
        ValueError: ``names`` of another length than ``attacks``, or repeated; an unknown
            ``until``.

    Example:
        >>> import torch, avrobust
        >>> from avrobust.testing import TinyAV
        >>> model, budgets = TinyAV(), avrobust.push_pull_budgets(50)
        >>> ensemble = avrobust.Ensemble([
        ...     avrobust.MultimodalAttack(model, budgets, rule="fgsm"),
        ...     avrobust.MultimodalAttack(model, budgets, rule="pgd", steps=5, seed=0)])
        >>> inputs = {"audio": torch.rand(2, 640) * 2 - 1, "visual": torch.rand(2, 4, 16, 16) * 255}
        >>> result = ensemble(inputs, torch.tensor([0, 1]))
        >>> list(result.broken_by), sum(result.broken_by.values()) == int(result.success.sum())
        (['fgsm', 'pgd'], True)
    """

    def __init__(
        self,
        attacks: Sequence[Attack],
        *,
        names: Sequence[str] | None = None,
        until: str = "all-frames",
    ) -> None:
        if isinstance(attacks, (str, bytes)) or not isinstance(attacks, Sequence) or not attacks:
            raise TypeError(
                f"attacks: expected a non-empty list of attacks, got {describe(attacks)}"
            )
        for i, attack in enumerate(attacks):
            if not callable(attack):
                raise TypeError(
                    f"attacks[{i}]: expected an attack called as attack(inputs, labels), "
                    f"got {describe(attack)}"
                )
        self.attacks = list(attacks)
        if names is None:
            names = _default_names(self.attacks)
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise TypeError(f"names: expected a list of strings, got {describe(names)}")
        if not all(isinstance(n, str) for n in names):
            raise TypeError(f"names: expected a list of strings, got {describe(names)}")
        if len(names) != len(self.attacks):
            raise ValueError(
                f"names: expected one name per attack ({len(self.attacks)}), got {len(names)}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"names: expected unique names, got {list(names)}")
        self.names = list(names)
        self.until = check_choice(until, "until", UNTIL)

    def __repr__(self) -> str:
        return f"Ensemble(names={self.names}, until={self.until!r})"

    def __call__(self, inputs: Mapping[str, Tensor], labels: Tensor) -> EnsembleResult:
        """Attack a batch with every attack in turn.

        Args:
            inputs: ``{modality: (B, ...)}`` clean inputs; never modified.
            labels: ``(B,)`` clip labels or ``(B, T)`` frame labels (the true classes).

        Returns:
            :class:`EnsembleResult`.

        Raises:
            TypeError: an attack that does not return an :class:`avrobust.AttackResult`.
            ValueError: an attack whose result is for another batch size; and the attacks'
                own errors.
        """
        inputs = check_tensor_dict(inputs, "inputs")
        check_labels_batch(labels, next(iter(inputs.values())).shape[0])
        merged: _Merged | None = None
        broken_by: dict[str, int] = {}
        for i, (name, attack) in enumerate(zip(self.names, self.attacks)):
            if merged is None:
                result = _checked(attack(inputs, labels), i, labels.shape[0])
                merged = _Merged(result, labels, name)
                broken_by[name] = int(merged.success.sum())
                continue
            rows = (~merged.finished(self.until)).nonzero().flatten()
            if rows.numel() == 0:
                broken_by[name] = 0
                continue
            part = {n: x[rows.to(x.device)] for n, x in inputs.items()}
            sub = _subset(attack, rows.cpu())
            result = _checked(sub(part, labels[rows.to(labels.device)]), i, rows.numel())
            broken_by[name] = merged.update(rows, result, name)
        if merged is None:  # unreachable: Ensemble refuses an empty list of attacks
            raise RuntimeError("Ensemble: no attack ran")
        return merged.result(inputs, broken_by)


def _checked(result: Any, index: int, batch: int) -> AttackResult:
    """An attack's result for the ``batch`` samples it was given."""
    if not isinstance(result, AttackResult):
        raise TypeError(
            f"attacks[{index}]: expected it to return an avrobust.AttackResult, "
            f"got {describe(result)}"
        )
    got = {"logits": tuple(result.logits.shape)} if isinstance(result.logits, Tensor) else {}
    got.update({n: tuple(x.shape) for n, x in result.inputs.items() if isinstance(x, Tensor)})
    if any(not shape or shape[0] != batch for shape in got.values()):
        raise ValueError(
            f"attacks[{index}]: given a batch of {batch} samples, it returned a result of "
            f"another batch (shapes {got}); an attack returns one candidate per sample it "
            "was given, in their order"
        )
    return result


def _closeness(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """``(fraction of misclassified frames, mean margin)`` per sample; NaN/Inf logits score
    ``(0, -inf)``, so they are never preferred."""
    labels = check_labels(labels, logits)
    finite = finite_rows(logits)
    wrong = (logits.argmax(-1) != labels).float()
    wrong = wrong if wrong.ndim == 1 else wrong.mean(dim=1)
    m = margin(logits, labels)
    m = m if m.ndim == 1 else m.mean(dim=1)
    low = torch.full_like(m, -float("inf"))
    return torch.where(finite, wrong, torch.zeros_like(wrong)), torch.where(finite, m, low)


class _Merged:
    """The ensemble's candidate per sample, updated attack by attack."""

    def __init__(self, result: AttackResult, labels: Tensor, name: str) -> None:
        self.labels = labels.to(result.logits.device)
        self.inputs = {n: x.clone() for n, x in result.inputs.items()}
        self.logits = result.logits.clone()
        self.success = untargeted_success(self.logits, self.labels)[0]
        self.wrong, self.margin = _closeness(self.logits, self.labels)
        self.source = [name] * self.labels.shape[0]
        self.attacked = set(result.perturbations)

    def finished(self, until: str) -> Tensor:
        """``(B,)`` bool: the samples later attacks skip (see :class:`Ensemble`'s ``until``)."""
        return self.success if until == "broken" else self.success & (self.wrong == 1.0)

    def update(self, rows: Tensor, result: AttackResult, name: str) -> int:
        """Take the new candidates of ``rows`` that are closer to broken (or more broken);
        return how many samples they newly broke."""
        rows = rows.to(self.logits.device)
        was_broken = self.success[rows]
        wrong, m = _closeness(result.logits, self.labels[rows])
        better = (wrong > self.wrong[rows]) | (
            (wrong == self.wrong[rows]) & (m > self.margin[rows])
        )
        take = rows[better]
        for n, x in self.inputs.items():
            x[take.to(x.device)] = result.inputs[n][better.to(x.device)]
        self.logits[take] = result.logits[better]
        self.wrong[take], self.margin[take] = wrong[better], m[better]
        broken = untargeted_success(result.logits, self.labels[rows])[0]
        self.success[take] = broken[better]
        for i in take.tolist():
            self.source[i] = name
        self.attacked |= set(result.perturbations)
        return int((broken & better & ~was_broken).sum())

    def result(self, clean: Mapping[str, Tensor], broken_by: dict[str, int]) -> EnsembleResult:
        success, frame_success = untargeted_success(self.logits, self.labels)
        return EnsembleResult(
            inputs=self.inputs,
            success=success,
            logits=self.logits,
            loss=self.margin,
            clean_loss=None,
            frame_success=frame_success,
            perturbations={n: self.inputs[n] - clean[n] for n in clean if n in self.attacked},
            broken_by=broken_by,
            source=tuple(self.source),
        )


def _slice_budget(budget: Budget, rows: Tensor) -> Budget:
    sliced = copy.copy(budget)
    for what in ("eps", "alpha"):
        value = getattr(budget, what)
        if isinstance(value, Tensor) and value.ndim == 1:
            setattr(sliced, what, value[rows.to(value.device)])
    return sliced


def _subset(attack: Any, rows: Tensor) -> Any:
    """``attack`` for the samples ``rows`` of the batch: per-sample budgets cut to them (on a
    shallow copy), through wrappers that hold their attack as ``.attack``."""
    budgets = getattr(attack, "budgets", None)
    inner = getattr(attack, "attack", None)
    per_sample = isinstance(budgets, Mapping) and any(
        isinstance(getattr(b, w, None), Tensor) and getattr(b, w).ndim == 1
        for b in budgets.values()
        for w in ("eps", "alpha")
    )
    if not per_sample and inner is None:
        return attack
    clone = copy.copy(attack)
    if per_sample:
        if not isinstance(budgets, Mapping):  # unreachable: per_sample reads a Mapping
            raise TypeError(f"attack.budgets: expected a dict, got {type(budgets).__name__}")
        clone.budgets = {n: _slice_budget(b, rows) for n, b in budgets.items()}
    if inner is not None:
        clone.attack = _subset(inner, rows)
    return clone
