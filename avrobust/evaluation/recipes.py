"""Grid entries that build a whole attack per cell instead of a step rule: :class:`WorstCase`.

A :class:`~avrobust.evaluation.Grid` lists step rules (``"pgd"``, ...), each run in a cell as
one :class:`~avrobust.MultimodalAttack` with the grid's ``steps`` and ``objective``, and
recipes: an object with a ``name`` and ``build(model, budgets, *, steps, seed) -> attack`` that
the cell calls like any attack, ``attack(inputs, labels) -> AttackResult``, batch by batch.
:class:`WorstCase` is the one recipe: :func:`avrobust.default_ensemble` (APGD-CE, targeted
APGD-margin, Square; per clip the worst case). Its settings are part of what defines its cells
(their ``repr``), so a results file computed with other settings is not reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from .._checks import check_int, check_number
from ..attacks import Budget, Ensemble, Linf, default_ensemble

__all__ = ["RECIPES", "WorstCase", "linf_problem"]


@dataclass(frozen=True, kw_only=True)
class WorstCase:
    """The worst case per clip over :func:`avrobust.default_ensemble`, as one grid entry.

    In a :class:`~avrobust.evaluation.Grid`, ``WorstCase(...)`` or the name ``"worst-case"``
    (``WorstCase()``) gives cells named ``"worst-case"`` (keys ``"worst-case|eps|set"``). Each
    cell attacks its clips batch by batch with APGD with the cross-entropy of the logits, then
    a targeted APGD lowering the margin towards each of the ``targets`` most likely other
    classes, then Square with ``queries`` queries, each on the clips the previous ones have not
    finished (clip labels: broken; frame labels: every frame wrong, see
    :class:`avrobust.Ensemble`), and keeps per clip the candidate with the most frames wrong,
    then the highest margin. The target model is scored on those candidates like any cell's.
    With ``kappa`` set (frame labels), the cell runs :func:`avrobust.default_ensemble`'s
    frame-label order instead: ``restarts`` APGD runs on the per-frame margin clamped at
    ``kappa`` logits, then APGD-CE, then Square.

    Of the grid it uses the budgets of the cell's attacked modalities (all
    :class:`~avrobust.Linf`: Square is an L-inf attack; the grid refuses others when built),
    ``Grid.steps`` (the APGD iterations of each run) and the cell's seed. **``Grid.objective``
    does not apply:** the ensemble picks its own objectives (cross-entropy, then the margin,
    over the model's ``C`` classes with the labels as class indices), whatever the grid says
    for its step rules.

    Attributes:
        queries: Square's queries per clip (>= 1; AutoAttack uses 5000).
        targets: the most target classes of the targeted APGD (>= 1; capped at ``C - 1``, so
            1 for a binary task; unused with ``kappa``).
        restarts: APGD runs on the clamped margin (>= 1; more than 1 needs ``kappa``).
        kappa: the per-frame margin's clamp in logits (>= 0), selecting the frame-label order;
            ``None``: APGD-CE, targeted APGD-margin, Square.
        name: ``"worst-case"``, the cells' rule name.

    Raises:
        TypeError: ``queries``, ``targets`` or ``restarts`` not an int, ``kappa`` not a number
            (the message names the field, e.g. ``WorstCase.queries``), or given by position.
        ValueError: ``queries``, ``targets`` or ``restarts`` below 1, ``kappa`` below 0,
            ``restarts`` above 1 without ``kappa``.

    Example:
        >>> from avrobust.evaluation import Grid, WorstCase
        >>> grid = Grid(rules=["pgd", WorstCase(queries=500)], eps=[20], modalities=["visual"])
        >>> cell = grid.cells()[1]
        >>> cell.key, cell.defines["rule"]
        ('worst-case|20.0|visual', 'WorstCase(queries=500, targets=9)')
        >>> repr(WorstCase(queries=500, restarts=3, kappa=1.0))
        'WorstCase(queries=500, targets=9, restarts=3, kappa=1.0)'
    """

    queries: int = 1000
    targets: int = 9
    restarts: int = 1
    kappa: float | None = None
    name: ClassVar[str] = "worst-case"

    def __post_init__(self) -> None:
        for name in ("queries", "targets", "restarts"):
            value = check_int(getattr(self, name), f"WorstCase.{name}", min_value=1)
            object.__setattr__(self, name, value)
        if self.kappa is not None:
            kappa = check_number(self.kappa, "WorstCase.kappa", min_value=0.0)
            object.__setattr__(self, "kappa", kappa)
        elif self.restarts > 1:
            raise ValueError(
                "WorstCase.restarts: runs of APGD on the clamped margin, which needs "
                f"WorstCase.kappa (e.g. kappa=1.0); got restarts={self.restarts} with kappa=None"
            )

    def __repr__(self) -> str:
        """The cells' ``defines["rule"]``: ``restarts`` and ``kappa`` appear once ``kappa`` is
        set, so the text of the APGD-CE order is the same as before they existed."""
        text = f"WorstCase(queries={self.queries}, targets={self.targets}"
        if self.kappa is not None:
            text += f", restarts={self.restarts}, kappa={self.kappa!r}"
        return text + ")"

    def build(
        self, model: nn.Module, budgets: Mapping[str, Budget], *, steps: int, seed: int
    ) -> Ensemble:
        """The cell's attack: :func:`avrobust.default_ensemble` with these settings.

        Args:
            model: the model the perturbation is crafted on (the target, or a surrogate).
            budgets: ``{attacked modality: avrobust.Linf}`` of the cell.
            steps: APGD iterations per run (``Grid.steps``).
            seed: seeds every attack of the ensemble (the cell's seed).

        Returns:
            :class:`avrobust.Ensemble` named ``["apgd-ce", "apgd-t-margin", "square"]`` (with
            ``kappa``: ``["apgd-margin", ..., "apgd-ce", "square"]``), called as
            ``attack(inputs, labels) -> EnsembleResult``.
        """
        return default_ensemble(
            model,
            budgets,
            steps=steps,
            seed=seed,
            targets=self.targets,
            queries=self.queries,
            restarts=self.restarts,
            kappa=self.kappa,
        )


#: the recipes a grid accepts by name
RECIPES: dict[str, type[WorstCase]] = {WorstCase.name: WorstCase}


def linf_problem(budgets: Mapping[str, Budget], modalities: tuple[str, ...]) -> str | None:
    """Why ``budgets`` of ``modalities`` cannot be a worst-case cell's (Square needs
    :class:`~avrobust.Linf`), or ``None`` when they can."""
    wrong = {m: type(budgets[m]).__name__ for m in modalities if not isinstance(budgets[m], Linf)}
    if not wrong:
        return None
    given = ", ".join(f"{m!r}: {kind}" for m, kind in wrong.items())
    return f"worst-case cells need avrobust.Linf budgets (Square is an L-inf attack), got {given}"
