"""Step rules: each turns a gradient (and its own per-modality state) into an update direction.

A rule holds no loop. :class:`avrobust.MultimodalAttack` owns the iteration and calls
``rule.update(x, grads, loss, run)`` once per step. The default update calls
``rule.direction(grad, state)`` once per attacked modality; the modality's budget then turns the
direction into a step (sign for L-inf, normalised for L2) and projects. A rule that needs the
objective's values or moves all modalities at once (:class:`avrobust.APGD`) overrides ``update``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from .._checks import check_bool, check_choice, check_int, check_number, describe

if TYPE_CHECKING:
    from .budgets import Budget

__all__ = ["BIM", "FGSM", "MIM", "PGD", "StepContext", "StepRule", "as_rule", "list_rules"]


@dataclass
class StepContext:
    """What a rule's :meth:`StepRule.update` may use during one run of the attack loop.

    One context lives for one run of the loop (one chunk of batched restarts); ``N`` below is
    the number of rows of that run (restarts × batch).

    Attributes:
        budgets: ``{modality: Budget}`` of the attacked modalities.
        eps: ``{modality: (N, 1, ..., 1)}`` radii in the input's units.
        alpha: ``{modality: (N, 1, ..., 1)}`` step sizes: the budget's ``alpha``, else its default.
        project: ``{modality: function}`` projecting an iterate onto the ball and the bounds.
        steps: the number of steps of the run.
        step: the index of the current step, ``0 .. steps - 1``.
        states: ``{modality: dict}`` per-modality state, empty at step 0 (MIM's momentum).
        memory: the rule's own state for the run, shared by all modalities (APGD's step sizes).
    """

    budgets: Mapping[str, Budget]
    eps: dict[str, Tensor]
    alpha: dict[str, Tensor]
    project: dict[str, Callable[[Tensor], Tensor]]
    steps: int
    step: int = 0
    states: dict[str, dict[str, Tensor]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)


class StepRule:
    """Base class of the step rules.

    Attributes:
        name: the rule's string name (``"bim"``, ...), accepted by :func:`as_rule`.
        random_start: start from a random point of each budget's ball instead of the clean input.
        restarts: number of random starts run (batched) per sample.
        fixed_steps: the number of steps the rule always takes (``1`` for FGSM), or ``None`` to
            use the attack's ``steps``.
        prefer_success: with ``keep="best"``, a successful candidate (misclassified, or hitting
            the target) beats an unsuccessful one whatever their objectives (APGD); for frame
            labels one with more successful frames beats one with fewer; ``False``: the
            objective alone decides.
    """

    name: ClassVar[str] = "rule"
    random_start: bool = False
    restarts: int = 1
    fixed_steps: int | None = None
    prefer_success: bool = False

    def direction(self, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        """Map the gradient of the objective w.r.t. one modality to an update direction.

        Args:
            grad: ``(N, ...)`` gradient for one modality (ascent direction).
            state: this modality's state for this attack run, empty at the first step; a
                rule may read and write it (e.g. MIM's momentum).

        Returns:
            ``(N, ...)`` the direction, same shape as ``grad``.
        """
        return grad

    def update(
        self, x: dict[str, Tensor], grads: dict[str, Tensor], loss: Tensor, run: StepContext
    ) -> dict[str, Tensor]:
        """One step of every attacked modality: the next iterate.

        The default moves each modality on its own: the budget steps along
        :meth:`direction` by its ``alpha``, then projects. Called under ``torch.no_grad()``.

        Args:
            x: ``{modality: (N, ...)}`` the current iterate (detached), attacked modalities only.
            grads: ``{modality: (N, ...)}`` the objective's gradient there (NaN/Inf set to 0).
            loss: ``(N,)`` the objective there (detached; the attack maximises it).
            run: the run's :class:`StepContext`.

        Returns:
            ``{modality: (N, ...)}`` the next iterate, inside each budget's ball and bounds.
        """
        return {
            n: run.project[n](
                run.budgets[n].step(x[n], self.direction(g, run.states[n]), run.alpha[n])
            )
            for n, g in grads.items()
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FGSM(StepRule):
    """Fast gradient (sign) method: one step of size ``eps`` (Goodfellow et al., 2015).

    The attack's ``steps`` is ignored and each budget's ``alpha`` defaults to its ``eps``.
    """

    name = "fgsm"
    fixed_steps = 1


class BIM(StepRule):
    """Basic iterative method (Kurakin et al., 2016; Push-Pull eq. 2): repeated gradient steps
    from the clean input, projected onto the budget after each step."""

    name = "bim"


class MIM(StepRule):
    r"""Momentum iterative method (Dong et al., 2018).

    Per modality and per sample, :math:`g \leftarrow g / \mathrm{mean}|g|` over all non-batch
    dimensions (the L1 normalisation of the paper up to a constant factor, which changes no sign),
    then :math:`m \leftarrow \mu\, m + g` and the direction is :math:`m`. A sample whose gradient is
    all zeros gets a zero normalised gradient instead of NaN, so its momentum carries it on.

    Args:
        decay: the momentum factor :math:`\mu` >= 0 (1.0 in the paper and in torchattacks).
    """

    name = "mim"

    def __init__(self, decay: float = 1.0) -> None:
        self.decay = check_number(decay, "MIM.decay", min_value=0.0)

    def direction(self, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        dims = tuple(range(1, grad.ndim))
        scale = grad.abs().mean(dim=dims, keepdim=True)
        g = grad / scale.clamp_min(torch.finfo(scale.dtype).tiny)
        if "momentum" in state:
            g = g + state["momentum"] * self.decay
        state["momentum"] = g
        return g

    def __repr__(self) -> str:
        return f"MIM(decay={self.decay:g})"


class PGD(StepRule):
    """Projected gradient descent (Madry et al., 2018): BIM from a random start, with restarts.

    The ``restarts`` random starts run batched (the batch repeated ``restarts`` times, in chunks
    of whole restarts set by the attack's ``max_batch``), and per sample the restart with the
    highest objective is kept.

    Args:
        restarts: number of random starts per sample, >= 1.
        random_start: draw the start uniformly in each budget's ball (``False`` gives BIM, for
            comparing with libraries' "PGD without random start").
    """

    name = "pgd"

    def __init__(self, restarts: int = 1, random_start: bool = True) -> None:
        self.restarts = check_int(restarts, "PGD.restarts", min_value=1)
        check_bool(random_start, "PGD.random_start")
        self.random_start = random_start

    def __repr__(self) -> str:
        return f"PGD(restarts={self.restarts}, random_start={self.random_start})"


#: name -> rule class; :mod:`avrobust.attacks.apgd` adds ``"apgd"`` when it is imported (the
#: package ``avrobust.attacks`` imports it, so the entry is there whenever this module is).
_RULES: dict[str, type[StepRule]] = {r.name: r for r in (FGSM, BIM, MIM, PGD)}


def list_rules() -> tuple[str, ...]:
    """The names :func:`as_rule` accepts (``("fgsm", "bim", "mim", "pgd", "apgd")``), for menus
    and checks."""
    return tuple(_RULES)


def as_rule(rule: Any) -> StepRule:
    """Accept a :class:`StepRule` instance or its name (``"fgsm"``, ``"bim"``, ``"mim"``,
    ``"pgd"``, ``"apgd"``).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TypeError: neither a rule nor a string.
    """
    if isinstance(rule, StepRule):
        return rule
    if isinstance(rule, type) and issubclass(rule, StepRule):
        return rule()
    if isinstance(rule, str):
        return _RULES[check_choice(rule, "rule", _RULES)]()
    raise TypeError(
        f"rule: expected a StepRule such as avrobust.PGD() or one of {sorted(_RULES)}, "
        f"got {describe(rule)}"
    )
