"""Auto-PGD (Croce & Hein, 2020, "Reliable evaluation of adversarial robustness with an ensemble
of diverse parameter-free attacks", Algorithm 1) as a step rule of the one attack loop.

The rule owns its update (:meth:`APGD.update`): it needs the objective's value at every iterate
and moves every attacked modality back to the best point when it halves the step sizes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import check_int, check_number
from .rules import _RULES, StepContext, StepRule

__all__ = ["APGD", "apgd_checkpoints"]


def apgd_checkpoints(steps: int) -> list[int]:
    r"""The iterations at which APGD checks its progress, for ``steps`` iterations.

    :math:`w_j = \lceil p_j N \rceil` with :math:`p_0 = 0`, :math:`p_1 = 0.22` and
    :math:`p_{j+1} = p_j + \max(p_j - p_{j-1} - 0.03, 0.06)` (the paper's schedule, computed in
    hundredths so that no rounding moves a checkpoint), keeping those in ``[1, steps)``.

    Example:
        >>> apgd_checkpoints(100)
        [22, 41, 57, 70, 80, 87, 93, 99]
    """
    steps = check_int(steps, "steps", min_value=1)
    hundredths, previous, current = [], 0, 22
    while current < 100:
        hundredths.append(current)
        previous, current = current, current + max(current - previous - 3, 6)
    points = sorted({-(-p * steps // 100) for p in hundredths})
    return [w for w in points if 1 <= w < steps]


class APGD(StepRule):
    r"""Auto-PGD: step sizes that adapt to the objective's progress, with momentum.

    Per sample, each attacked modality :math:`m` starts at a random point of its ball with step
    size :math:`\eta_m = 2\,\epsilon_m` (or the budget's ``alpha`` when it sets one); each step is

    .. math::

        z = P(x_k + \eta_m\, s(\nabla_m f)), \qquad
        x_{k+1} = P\big(x_k + \alpha (z - x_k) + (1 - \alpha)(x_k - x_{k-1})\big)

    per modality, with :math:`s` the budget's step direction (sign for L∞, unit L2 vector for L2),
    :math:`P` its projection, :math:`\alpha` = ``momentum`` (1 at the first step). At the
    checkpoints of :func:`apgd_checkpoints`, a sample whose objective rose in at most
    ``rho`` of the steps since the last checkpoint (Condition 1), or whose step was not halved at
    the last checkpoint and whose best objective has not risen since (Condition 2), halves
    **every** modality's step size and continues from its best point so far (with that point's
    gradient).

    **Shared conditions.** The conditions are checked per sample on the one objective and act on
    all modalities together: they measure the objective's progress, which no single modality
    owns, and the best point they restart from is a joint point (restarting one modality from
    its part of it would pair it with another modality's different current point, a point never
    evaluated). Each modality keeps its own step size in its own units (``2·eps_m``), so audio in
    [-1, 1] and video in 0–255 move at their scale.

    **Where it follows the authors' code.** Condition 1 uses ``<=`` (the paper writes ``<``;
    the reference code of AutoAttack, and torchattacks, use ``<=``); the checkpoints are the
    paper's :math:`\lceil p_j N\rceil`. An iterate with a NaN objective never becomes the best
    point.

    ``steps`` counts the gradient evaluations: iterates :math:`x_0 \dots x_{N-1}` are evaluated
    with a gradient and the last, :math:`x_N`, without (torchattacks' ``steps=N`` evaluates the
    same :math:`N + 1` iterates). Use the attack's default ``keep="best"``: per sample, it returns
    a successful iterate (misclassified, or hitting the target) when any restart found one (the
    one with the highest objective among them), else the iterate with the highest objective, as
    the authors' code does (its ``x_best_adv``; the paper's :math:`x_{max}` is the second part).
    With a cross-entropy objective and more than two classes the two can differ: the highest
    loss need not be misclassified. ``result.loss`` may then lie below ``result.clean_loss``.
    **Frame labels** ``(B, T)``: the iterate with the most frames misclassified (or hitting
    their target), then the highest objective, so the frame accuracy returned is the lowest
    seen; clip labels keep the rule above (a rank of 0 or 1 per iterate).

    Args:
        restarts: random starts per sample, run batched (as :class:`avrobust.PGD`'s).
        momentum: :math:`\alpha` of the paper, the weight of the new step against the previous
            move, in (0, 1]; 0.75 in the paper (1 removes the momentum).
        rho: :math:`\rho`, the fraction of improving steps below which a checkpoint halves the
            step size, in [0, 1]; 0.75 in the paper.

    Example:
        >>> import torch, avrobust
        >>> from avrobust.testing import TinyAV
        >>> attack = avrobust.MultimodalAttack(
        ...     TinyAV(), avrobust.push_pull_budgets(5), rule=avrobust.APGD(), steps=10,
        ...     objective="margin", seed=0)
        >>> inputs = {"audio": torch.rand(2, 640) * 2 - 1, "visual": torch.rand(2, 4, 16, 16) * 255}
        >>> result = attack(inputs, torch.tensor([0, 1]))
        >>> bool((result.inputs["visual"] - inputs["visual"]).abs().max() <= 0.5 + 1e-4)
        True
    """

    name = "apgd"
    random_start = True
    prefer_success = True

    def __init__(self, *, restarts: int = 1, momentum: float = 0.75, rho: float = 0.75) -> None:
        self.restarts = check_int(restarts, "APGD.restarts", min_value=1)
        self.momentum = check_number(momentum, "APGD.momentum", min_value=0.0, strict=True)
        if self.momentum > 1:
            raise ValueError(f"APGD.momentum: must be a number in (0, 1], got {self.momentum:g}")
        self.rho = check_number(rho, "APGD.rho", min_value=0.0)
        if self.rho > 1:
            raise ValueError(f"APGD.rho: must be a number in [0, 1], got {self.rho:g}")

    def __repr__(self) -> str:
        return f"APGD(restarts={self.restarts}, momentum={self.momentum:g}, rho={self.rho:g})"

    def update(
        self, x: dict[str, Tensor], grads: dict[str, Tensor], loss: Tensor, run: StepContext
    ) -> dict[str, Tensor]:
        """One APGD step of every attacked modality (see the class); state in ``run.memory``."""
        mem = run.memory
        score = torch.nan_to_num(loss, nan=-math.inf)
        if run.step == 0:
            self._start(x, grads, score, run)
        else:
            self._track(x, grads, score, mem)
            if run.step in mem["checkpoints"]:
                x, grads = self._checkpoint(x, grads, run.step, mem)
        alpha = 1.0 if run.step == 0 else self.momentum
        new = {}
        for n, xn in x.items():
            budget, project = run.budgets[n], run.project[n]
            z = project(budget.step(xn, grads[n], mem["eta"][n]))
            if run.step > 0:
                z = project(xn + alpha * (z - xn) + (1 - alpha) * (xn - mem["previous"][n]))
            new[n] = z
        mem["previous"] = x
        return new

    @staticmethod
    def _start(
        x: dict[str, Tensor], grads: dict[str, Tensor], score: Tensor, run: StepContext
    ) -> None:
        mem = run.memory
        mem["eta"] = {
            n: run.alpha[n] if run.budgets[n].alpha is not None else 2 * run.eps[n] for n in x
        }
        mem["checkpoints"] = set(apgd_checkpoints(run.steps))
        mem["best"], mem["best_x"], mem["best_grad"] = score, dict(x), dict(grads)
        mem["last_score"] = score
        mem["rises"] = torch.zeros_like(score, dtype=torch.int64)
        mem["best_at_check"] = score
        mem["halved"] = torch.zeros_like(score, dtype=torch.bool)
        mem["last_check"] = 0

    @staticmethod
    def _track(x: dict[str, Tensor], grads: dict[str, Tensor], score: Tensor, mem: dict) -> None:
        """Count the rises of the objective and keep each sample's best point and gradient."""
        mem["rises"] = mem["rises"] + (score > mem["last_score"])
        mem["last_score"] = score
        better = score > mem["best"]
        mem["best"] = torch.where(better, score, mem["best"])
        for n, xn in x.items():
            mask = better.view((-1,) + (1,) * (xn.ndim - 1))
            mem["best_x"][n] = torch.where(mask, xn, mem["best_x"][n])
            mem["best_grad"][n] = torch.where(mask, grads[n], mem["best_grad"][n])

    def _checkpoint(
        self, x: dict[str, Tensor], grads: dict[str, Tensor], step: int, mem: dict
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Conditions 1 and 2 per sample; where either holds, halve every step size and go back
        to the best point with its gradient."""
        window = step - mem["last_check"]
        stalled = mem["rises"] <= self.rho * window
        flat = ~mem["halved"] & (mem["best"] <= mem["best_at_check"])
        halve = stalled | flat
        mem["halved"], mem["best_at_check"] = halve, mem["best"]
        mem["rises"] = torch.zeros_like(mem["rises"])
        mem["last_check"] = step
        x, grads = dict(x), dict(grads)
        for n, xn in x.items():
            mask = halve.view((-1,) + (1,) * (xn.ndim - 1))
            eta = mem["eta"][n]
            mem["eta"][n] = torch.where(halve.view((-1,) + (1,) * (eta.ndim - 1)), eta / 2, eta)
            x[n] = torch.where(mask, mem["best_x"][n], xn)
            grads[n] = torch.where(mask, mem["best_grad"][n], grads[n])
        return x, grads


_RULES[APGD.name] = APGD
