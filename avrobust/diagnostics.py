"""Gradient-masking diagnostics: the checklist of Carlini et al. (2019), run on one batch.

"On evaluating adversarial robustness" lists what a sound white-box evaluation shows and what a
defense that only hides its gradients (a quantised, detached or randomised front-end) gives away.
:func:`diagnose` runs those checks with the library's attacks and returns one flag per check,
each with a sentence saying what was measured; a flag that fires means the gradient attacks'
numbers cannot be trusted as they are (evaluate with an adaptive attack: BPDA, EOT, Square).
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ._checks import check_fraction, check_int, check_number, describe
from ._diagnose_checks import (
    BatchCoupling,
    batch_coupling,
    broken_by,
    random_corners,
    zero_gradient,
)
from .attacks.attack import MultimodalAttack
from .attacks.budgets import Budget, Linf, as_budgets
from .attacks.objectives import Objective
from .attacks.rules import PGD
from .attacks.square import SquareAttack

__all__ = ["BatchCoupling", "Diagnosis", "Flag", "batch_coupling", "diagnose"]


class Flag(NamedTuple):
    """One check of :func:`diagnose`: its ``name``, whether it ``fired`` (a sign of gradient
    masking or of a weak attack) and a ``sentence`` saying what was measured."""

    name: str
    fired: bool
    sentence: str


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found.

    Attributes:
        flags: one :class:`Flag` per check, in the order of :func:`diagnose`'s list.
        accuracy: robust accuracy (fraction of samples not broken, in [0, 1]) per run:
            ``"clean"``, ``"fgsm"``, ``"pgd"``, ``"pgd-strong"``, ``"pgd x{scale}"`` for each
            budget scale, ``"square"``, ``"noise"`` and ``"transfer"`` (with a surrogate).
        zero_gradient: per attacked modality, the fraction of input-gradient elements that are
            exactly zero or NaN/Inf at the clean inputs, in [0, 1].
        samples: the number of samples diagnosed.
    """

    flags: list[Flag]
    accuracy: dict[str, float] = field(default_factory=dict)
    zero_gradient: dict[str, float] = field(default_factory=dict)
    samples: int = 0

    @property
    def fired(self) -> list[Flag]:
        """The flags that fired."""
        return [f for f in self.flags if f.fired]

    @property
    def masking(self) -> bool:
        """``True`` when any flag fired."""
        return any(f.fired for f in self.flags)

    def flag(self, name: str) -> Flag:
        """The flag called ``name``.

        Raises:
            KeyError: no such flag (the message lists them).
        """
        for f in self.flags:
            if f.name == name:
                return f
        raise KeyError(f"name: no flag {name!r}; flags: {[f.name for f in self.flags]}")

    def __str__(self) -> str:
        lines = [f"{'FIRED' if f.fired else 'ok   '} {f.name}: {f.sentence}" for f in self.flags]
        return "\n".join(lines)


def diagnose(
    model: nn.Module,
    inputs: Mapping[str, Tensor],
    labels: Tensor,
    budgets: Mapping[str, Budget | float],
    *,
    steps: int = 20,
    restarts: int = 2,
    scales: Sequence[float] = (1.0, 4.0, 16.0, 64.0),
    queries: int = 300,
    noise_draws: int = 20,
    surrogate: nn.Module | None = None,
    objective: str | Objective = "margin",
    tolerance: float = 0.1,
    max_zero_gradient: float = 0.5,
    seed: int = 0,
) -> Diagnosis:
    """Run the gradient-masking checklist of Carlini et al. (2019) on one batch.

    Attacks run on the batch (every attack keeps the model and inputs unchanged): FGSM; PGD with
    ``steps`` steps; PGD with 4x the steps and ``restarts`` restarts; PGD at the budgets scaled
    by each of ``scales``; :class:`avrobust.SquareAttack` with ``queries`` queries;
    ``noise_draws`` draws of random noise at the corners of each budget (every element at
    ``±eps``); optionally PGD on ``surrogate`` transferred to ``model``. "White-box" below is the
    union of FGSM, PGD and the stronger PGD: a sample is broken when any of them broke it. The
    flags, in order (each fires on a gap of more than ``tolerance``, as a fraction of samples):

    * ``"gradients"``: in some modality more than ``max_zero_gradient`` of the input-gradient
      elements are zero or NaN/Inf at the clean inputs (a quantised, detached or
      non-differentiable step);
    * ``"eps_growth"``: accuracy under PGD at the largest scale is above ``tolerance``: an
      attack with a budget that large should reach ~0;
    * ``"eps_monotone"``: accuracy rises as the budget grows (a larger ball contains the
      smaller one, so only a failing attack does worse);
    * ``"single_step"``: FGSM breaks samples that PGD does not (iterative attacks should win);
    * ``"convergence"``: the stronger PGD breaks samples PGD does not: more steps and
      restarts should change little, else the numbers are not converged;
    * ``"black_box"``: Square, which uses no gradient, breaks samples white-box does not;
    * ``"noise"``: random noise of the same budget breaks samples white-box does not;
    * ``"transfer"`` (with a ``surrogate``): adversarial inputs crafted on the surrogate break
      samples white-box does not;
    * ``"masking_modules"``: the model holds modules known to mask gradients
      (:class:`avrobust.FeatureMemory` with ``gradient="detached"``);
    * ``"batch_coupling"``: a clip's logits change with the other clips of its batch (see
      :func:`avrobust.batch_coupling`): every number then depends on the batch size, the
      attacks' ``max_batch`` and their batched restarts.

    It gives the same diagnosis inside ``torch.inference_mode()`` (it steps out of it to build
    the gradients, as the attacks do). Budgets may be per-sample ``(B,)`` or per-dimension
    (:func:`avrobust.feature_budgets`), and a modality may hold one value per clip ``(B,)``.

    Args:
        model: called as ``model(**inputs)``, returning :class:`avrobust.AVOutput` or logits.
        inputs: ``{modality: (B, ...)}`` clean inputs, as for :class:`avrobust.MultimodalAttack`;
            a few dozen clips the model gets right are enough.
        labels: ``(B,)`` or ``(B, T)`` true classes.
        budgets: ``{modality: avrobust.Linf(...)}``, the budgets of the evaluation; at least
            one modality of the inputs with ``eps > 0``.
        steps: PGD steps (>= 1).
        restarts: restarts of the stronger PGD (>= 1).
        scales: budget multipliers for the growth check (>= 2 values, increasing, > 0); each
            ``eps`` and ``alpha`` is multiplied, the bounds stay.
        queries: Square's queries per sample.
        noise_draws: random-noise draws per sample.
        surrogate: another model for the transfer check (same inputs), or ``None``.
        objective: the objective of every attack (see :class:`avrobust.MultimodalAttack`).
        tolerance: the gap, as a fraction of samples in [0, 1], above which a flag fires.
        max_zero_gradient: the fraction of zero or NaN/Inf gradient elements above which
            ``"gradients"`` fires, in [0, 1].
        seed: seeds every attack and the noise.

    Returns:
        :class:`Diagnosis`.

    Raises:
        TypeError, ValueError: bad arguments (naming them), and the attacks' errors.
        ValueError: no attacked modality (``budgets`` empty, or every ``eps`` 0).
    """
    steps = check_int(steps, "steps", min_value=1)
    restarts = check_int(restarts, "restarts", min_value=1)
    queries = check_int(queries, "queries", min_value=1)
    noise_draws = check_int(noise_draws, "noise_draws", min_value=1)
    tolerance = check_fraction(tolerance, "tolerance")
    max_zero = check_fraction(max_zero_gradient, "max_zero_gradient")
    scales = _check_scales(scales)
    if surrogate is not None and not isinstance(surrogate, nn.Module):
        raise TypeError(f"surrogate: expected a torch.nn.Module or None, got {describe(surrogate)}")
    seed = check_int(seed, "seed", min_value=0)
    budgets = as_budgets(budgets)
    checker = MultimodalAttack(model, budgets, objective=objective)
    runs = _Runs(steps, restarts, scales, queries, noise_draws, objective, seed)
    # Inside torch.inference_mode() no graph can be built: step out of it (the attacks do the
    # same) and turn inference tensors into normal ones, so the gradient check measures the
    # model, not the mode it was called in. Its own checks warn inside the block too, so each
    # finding is said once (the attacks repeat them).
    with torch.inference_mode(False), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clean, labels, attacked = checker._check_call(inputs, labels)
        if not attacked:
            raise ValueError(
                "budgets: diagnose needs at least one attacked modality (a budget with eps > 0 "
                f"for a modality of the inputs {list(clean)}), got {budgets}; give the budgets "
                "of the evaluation, e.g. {'visual': avrobust.Linf(4.0, bounds=(0, 255))}"
            )
        clean = {n: x.clone() if x.is_inference() else x for n, x in clean.items()}
        labels = labels.clone() if labels.is_inference() else labels
        broken = _run_attacks(model, clean, labels, budgets, attacked, surrogate, runs)
        zero = zero_gradient(model, clean, labels, attacked, checker.objective)
        coupling = batch_coupling(model, clean)
    seen = set()
    for w in caught:  # the attacks warn once per call: say each finding once
        if (w.category, str(w.message)) not in seen:
            seen.add((w.category, str(w.message)))
            warnings.warn(f"diagnose: {w.message}", w.category, stacklevel=2)
    flags = _flags(broken, zero, scales, tolerance, max_zero, model)
    flags.append(Flag("batch_coupling", coupling.coupled, coupling.sentence))
    accuracy = {k: 1.0 - float(v.float().mean()) for k, v in broken.items()}
    return Diagnosis(flags, accuracy, zero, int(labels.shape[0]))


class _Runs(NamedTuple):
    steps: int
    restarts: int
    scales: list[float]
    queries: int
    noise_draws: int
    objective: str | Objective
    seed: int


def _run_attacks(
    model: nn.Module,
    clean: dict[str, Tensor],
    labels: Tensor,
    budgets: dict[str, Budget],
    attacked: list[str],
    surrogate: nn.Module | None,
    runs: _Runs,
) -> dict[str, Tensor]:
    """``{run: (B,) broken}`` for every run of the checklist."""

    def pgd(target: nn.Module, bud: Mapping[str, Budget], steps: int, restarts: int = 1):
        rule = PGD(restarts=restarts)
        attack = MultimodalAttack(
            target, bud, rule=rule, steps=steps, objective=runs.objective, seed=runs.seed
        )
        return attack(clean, labels)

    fgsm = MultimodalAttack(model, budgets, rule="fgsm", objective=runs.objective)
    broken = {
        "clean": broken_by(model, clean, labels),
        "fgsm": fgsm(clean, labels).success,
        "pgd": pgd(model, budgets, runs.steps).success,
        "pgd-strong": pgd(model, budgets, 4 * runs.steps, runs.restarts).success,
    }
    for scale in runs.scales:
        grown = _scaled(budgets, scale)
        broken[f"pgd x{scale:g}"] = (
            broken["pgd"] if scale == 1 else pgd(model, grown, runs.steps).success
        )
    if all(isinstance(b, Linf) for b in budgets.values()):
        square = SquareAttack(
            model, budgets, queries=runs.queries, objective=runs.objective, seed=runs.seed
        )
        broken["square"] = square(clean, labels).success
    broken["noise"] = random_corners(
        model, clean, labels, budgets, attacked, runs.noise_draws, runs.seed
    )
    if surrogate is not None:
        broken["transfer"] = broken_by(model, pgd(surrogate, budgets, runs.steps).inputs, labels)
    return broken


def _check_scales(scales: object) -> list[float]:
    if isinstance(scales, (str, bytes)) or not isinstance(scales, Sequence) or len(scales) < 2:
        raise TypeError(f"scales: expected a list of >= 2 numbers, got {describe(scales)}")
    values = [
        check_number(s, f"scales[{i}]", min_value=0.0, strict=True) for i, s in enumerate(scales)
    ]
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"scales: expected increasing values, got {values}")
    return values


def _scaled(budgets: Mapping[str, Budget], scale: float) -> dict[str, Budget]:
    out = {}
    for name, budget in budgets.items():
        grown = copy.copy(budget)
        grown.eps = budget.eps * scale
        if budget.alpha is not None:
            grown.alpha = budget.alpha * scale
        out[name] = grown
    return out


def _gap(broken: Mapping[str, Tensor], by: str, reference: Tensor) -> float:
    """Fraction of samples ``by`` broke that ``reference`` did not."""
    return float((broken[by] & ~reference).float().mean())


def _flags(
    broken: Mapping[str, Tensor],
    zero: Mapping[str, float],
    scales: Sequence[float],
    tolerance: float,
    max_zero: float,
    model: nn.Module,
) -> list[Flag]:
    acc = {k: 1.0 - float(v.float().mean()) for k, v in broken.items()}
    pct = {k: f"{100 * v:.0f} %" for k, v in acc.items()}
    flags = []
    worst = max(zero.values(), default=0.0)
    shown = ", ".join(f"{n!r} {100 * v:.0f} %" for n, v in zero.items())
    flags.append(Flag("gradients", worst > max_zero, (
        f"zero or NaN/Inf input-gradient elements at the clean inputs: {shown} "
        f"(fires above {100 * max_zero:.0f} %: a quantised, detached or non-differentiable step "
        "gives the attacker nothing to follow)")))  # fmt: skip
    series = [f"pgd x{s:g}" for s in scales]
    trail = ", ".join(f"x{s:g}: {pct[k]}" for s, k in zip(scales, series))
    flags.append(Flag("eps_growth", acc[series[-1]] > tolerance, (
        f"accuracy under PGD as the budget grows: {trail}; with the largest budget it should "
        "reach ~0, else the attack cannot move the model at all")))  # fmt: skip
    rise = max(acc[b] - acc[a] for a, b in itertools.pairwise(series))
    flags.append(Flag("eps_monotone", rise > tolerance, (
        f"largest rise of accuracy from one budget to the next larger: {100 * max(rise, 0):.0f} "
        f"points ({trail}); "
        "a larger ball holds the smaller one, so only a failing attack does worse")))  # fmt: skip
    white = broken["fgsm"] | broken["pgd"] | broken["pgd-strong"]
    checks = [
        ("single_step", "fgsm", broken["pgd"], "FGSM (single step)", "PGD"),
        ("convergence", "pgd-strong", broken["pgd"], "PGD with 4x the steps and restarts", "PGD"),
        ("noise", "noise", white, "random noise of the same budget", "the white-box attacks"),
    ]
    if "square" in broken:
        checks.insert(2, ("black_box", "square", white, "Square (no gradients)", "white-box"))
    else:
        flags.append(Flag("black_box", False, "not run: Square needs L-inf budgets"))
    if "transfer" in broken:
        checks.append(("transfer", "transfer", white, "PGD on the surrogate", "white-box"))
    for name, by, reference, who, than in checks:
        gap = _gap(broken, by, reference)
        flags.append(Flag(name, gap > tolerance, (
            f"{who} broke {100 * gap:.0f} % of the samples that {than} left robust "
            f"(accuracy {pct[by]}, PGD {pct['pgd']}; fires above {100 * tolerance:.0f} %)")))  # fmt: skip
    flags.append(_module_flag(model))
    return flags


def _module_flag(model: nn.Module) -> Flag:
    from .defenses.memory import FeatureMemory

    found = [
        name or type(model).__name__
        for name, m in model.named_modules()
        if isinstance(m, FeatureMemory) and m.gradient == "detached"
    ]
    if found:
        return Flag("masking_modules", True, (
            f"FeatureMemory(gradient='detached') at {found}: its reconstruction passes no "
            "gradient; evaluate with gradient='bpda' or 'unrolled'"))  # fmt: skip
    return Flag("masking_modules", False, "no module known to mask gradients")
