"""AutoAttack's ensemble for several modalities: :class:`TopKTargeted` (APGD-T: a targeted
attack aimed at the most likely other classes in turn) and :func:`default_ensemble` (APGD-CE,
targeted APGD-margin, Square; Croce & Hein, 2020), both built on :class:`.ensemble.Ensemble`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_int, check_tensor_dict, describe
from .._types import AttackResult
from ..adapters import as_avoutput
from ._model_state import call_on_copies
from .attack import MultimodalAttack, preserve_model_state
from .budgets import Budget
from .ensemble import UNTIL, Attack, Ensemble, EnsembleResult
from .objectives import MarginObjective, check_labels
from .square import SquareAttack

__all__ = ["TopKTargeted", "default_ensemble"]


class _RankTarget:
    """``attack`` aimed, per sample (or frame), at the ``rank``-th most likely class other than
    the label at the clean input."""

    def __init__(self, attack: Any, rank: int) -> None:
        self.attack, self.rank = attack, rank

    def __call__(self, inputs: Mapping[str, Tensor], labels: Tensor) -> AttackResult:
        logits = _clean_logits(self.attack, inputs)
        labels = check_labels(labels.to(logits.device), logits)
        others = logits.scatter(-1, labels.unsqueeze(-1), -float("inf"))
        targets = others.topk(self.rank + 1, dim=-1).indices[..., self.rank]
        return self.attack(inputs, targets)


def _clean_logits(attack: Any, inputs: Mapping[str, Tensor]) -> Tensor:
    model: nn.Module = attack.model
    with torch.no_grad(), preserve_model_state(model, getattr(attack, "model_mode", "eval")):
        return as_avoutput(call_on_copies(model, inputs)).logits


class TopKTargeted:
    """A targeted attack aimed at each of the ``targets`` most likely other classes in turn
    (AutoAttack's APGD-T), as an :class:`Ensemble`: each target only on the samples still robust.

    Targets are ranked per sample (per frame for frame logits) by the clean logits, the label's
    class excluded. Success is untargeted: the prediction differs from the label. With 2 classes
    the one target is the other class, and a targeted margin attack towards it follows the same
    iterates as the untargeted margin attack (:math:`z_t - z_y` is the untargeted margin).

    Args:
        attack: an attack built with ``targeted=True`` and holding its model as ``.model``
            (:class:`avrobust.MultimodalAttack`); it receives the targets as labels.
        targets: how many target classes at most (9 in AutoAttack); capped at ``C - 1``.
        until: when a sample is finished and later targets skip it (see :class:`Ensemble`).

    Raises:
        TypeError: an attack without a ``.model`` module; ``targets`` not an int.
        ValueError: an attack that is not targeted; ``targets < 1``; an unknown ``until``.
    """

    def __init__(self, attack: Attack, *, targets: int = 9, until: str = "all-frames") -> None:
        if not isinstance(getattr(attack, "model", None), nn.Module):
            raise TypeError(
                "attack: expected an attack holding its model as .model, such as "
                f"avrobust.MultimodalAttack(..., targeted=True), got {describe(attack)}"
            )
        if getattr(attack, "targeted", None) is not True:
            raise ValueError(
                "attack: expected a targeted attack (built with targeted=True), "
                f"got {describe(attack)}"
            )
        self.attack = attack
        self.model = attack.model  # type: ignore[attr-defined]
        self.targets = check_int(targets, "targets", min_value=1)
        self.until = check_choice(until, "until", UNTIL)

    def __repr__(self) -> str:
        return f"TopKTargeted({self.attack!r}, targets={self.targets}, until={self.until!r})"

    def __call__(self, inputs: Mapping[str, Tensor], labels: Tensor) -> EnsembleResult:
        """Attack a batch; ``labels`` are the true classes. Returns :class:`EnsembleResult`
        whose ``broken_by`` names the targets ``"target-1"`` (the most likely other class), ..."""
        inputs = check_tensor_dict(inputs, "inputs")
        k = min(self.targets, _clean_logits(self.attack, inputs).shape[-1] - 1)
        ranks = [_RankTarget(self.attack, j) for j in range(k)]
        names = [f"target-{j + 1}" for j in range(k)]
        return Ensemble(ranks, names=names, until=self.until)(inputs, labels)


def default_ensemble(
    model: nn.Module,
    budgets: Mapping[str, Budget | float],
    *,
    steps: int = 100,
    seed: int = 0,
    targets: int = 9,
    queries: int = 1000,
    until: str = "all-frames",
    restarts: int = 1,
    kappa: float | None = None,
) -> Ensemble:
    """The default worst-case ensemble: APGD-CE, then targeted APGD-margin, then Square; with
    ``kappa``, the frame-label order: APGD on the margin clamped at ``kappa`` first.

    As AutoAttack's standard version (Croce & Hein, 2020), with the margin loss instead of DLR
    (DLR needs at least 3 classes, 4 targeted; audio-visual detectors often have 2) and without
    FAB (a minimum-norm attack adds little on top of these at a fixed budget):

    1. ``"apgd-ce"``: :class:`avrobust.MultimodalAttack` with ``rule="apgd"``, cross-entropy of
       the logits (``objective="inference"``), ``steps`` iterations;
    2. ``"apgd-t-margin"``: :class:`TopKTargeted` over the ``targets`` most likely other
       classes, each an APGD run lowering the targeted margin (for 2 classes: the untargeted
       margin attack, see :class:`TopKTargeted`);
    3. ``"square"``: :class:`avrobust.SquareAttack` with ``queries`` queries and the margin
       (AutoAttack uses 5000 queries; raise ``queries`` when the model is cheap to run).

    **Frame labels** ``(B, T)``: set ``kappa`` (e.g. 1.0). The ensemble is then ``restarts``
    untargeted APGD runs on :class:`avrobust.MarginObjective` ``(kappa=kappa)`` (the per-frame
    margin clamped at ``kappa`` logits, so frames already wrong by that much stop pulling and
    the steps go to the frames still right), named ``"apgd-margin"``, ``"apgd-margin-2"``, ...,
    run ``k`` (from 0) seeded with ``seed + k``; then ``"apgd-ce"``; then ``"square"``; with
    ``until="all-frames"`` each later run attacks only the clips with a frame still right, so
    the restarts cost little once most frames are wrong. Per clip the candidate with the most
    frames wrong is returned (see :class:`Ensemble`; each APGD run keeps its iterate with the
    most frames wrong, see :class:`avrobust.APGD`). The targeted runs are left out: for 2
    classes they repeat the untargeted margin attack.

    Every attack uses the same per-modality ``budgets``.

    Args:
        model: called as ``model(**inputs)``.
        budgets: ``{modality: avrobust.Linf(...)}`` (Square needs L-inf budgets).
        steps: APGD iterations per run.
        seed: seeds every attack.
        targets: target classes of the targeted attack at most (unused with ``kappa``).
        queries: Square's queries per sample.
        until: when a sample is finished and later attacks skip it (see :class:`Ensemble`).
        restarts: runs of APGD on the clamped margin (``>= 1``); more than 1 needs ``kappa``.
        kappa: the margin's clamp in logits (``>= 0``), which selects the frame-label order;
            ``None`` (default): the order above.

    Returns:
        :class:`Ensemble` named ``["apgd-ce", "apgd-t-margin", "square"]``, or with ``kappa``
        ``["apgd-margin", ..., "apgd-ce", "square"]``.

    Raises:
        TypeError: ``restarts`` not an int, ``kappa`` not a number.
        ValueError: ``restarts < 1``, ``kappa < 0``, or ``restarts > 1`` without ``kappa``.
    """
    restarts = check_int(restarts, "restarts", min_value=1)
    if kappa is not None:
        return _frame_ensemble(
            model,
            budgets,
            steps=steps,
            seed=seed,
            queries=queries,
            until=until,
            restarts=restarts,
            kappa=kappa,
        )
    if restarts > 1:
        raise ValueError(
            f"restarts: runs of APGD on the clamped margin, which needs kappa (e.g. kappa=1.0); "
            f"got restarts={restarts} with kappa=None"
        )
    ce = MultimodalAttack(
        model, budgets, rule="apgd", steps=steps, objective="inference", seed=seed
    )
    margin_t = MultimodalAttack(
        model, budgets, rule="apgd", steps=steps, objective="margin", targeted=True, seed=seed
    )
    return Ensemble(
        [
            ce,
            TopKTargeted(margin_t, targets=targets, until=until),
            SquareAttack(model, budgets, queries=queries, seed=seed),
        ],
        names=["apgd-ce", "apgd-t-margin", "square"],
        until=until,
    )


def _frame_ensemble(
    model: nn.Module,
    budgets: Mapping[str, Budget | float],
    *,
    steps: int,
    seed: int,
    queries: int,
    until: str,
    restarts: int,
    kappa: float,
) -> Ensemble:
    """``default_ensemble``'s frame-label order (see there)."""
    objective = MarginObjective(kappa=kappa)
    attacks: list[Attack] = [
        MultimodalAttack(
            model, budgets, rule="apgd", steps=steps, objective=objective, seed=seed + k
        )
        for k in range(restarts)
    ]
    names = ["apgd-margin"] + [f"apgd-margin-{k + 1}" for k in range(1, restarts)]
    attacks.append(
        MultimodalAttack(model, budgets, rule="apgd", steps=steps, objective="inference", seed=seed)
    )
    attacks.append(SquareAttack(model, budgets, queries=queries, seed=seed))
    return Ensemble(attacks, names=[*names, "apgd-ce", "square"], until=until)
