"""The grid of an evaluation: rules × budgets × attacked modality sets, checked once.

A :class:`Grid` is checked when it is built (each error names the field, e.g. ``Grid.eps``): its
fields are normalised (tuples, lower-case names, floats) and the budgets are asked once per
budget value. Its rules are step rules or recipes (:class:`~avrobust.evaluation.WorstCase`, the
worst case over an ensemble of attacks; :mod:`~avrobust.evaluation.recipes`). :meth:`Grid.cells`
lists its cells in grid order (rule, then eps, then modality set), each with what defines it:
the rule's settings and the budgets of the attacked modalities, as a results file stores them
(its fingerprint: another cell of the same key is another evaluation).
"""

from __future__ import annotations

import hashlib
import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._checks import check_choice, check_int, check_number, describe
from .._types import AVOutput
from ..attacks import Budget, push_pull_budgets
from ..attacks.objectives import OBJECTIVE_NAMES
from ..attacks.rules import StepRule, as_rule, list_rules
from .fingerprints import settings_repr
from .recipes import RECIPES, WorstCase, linf_problem
from .results import cell_key

__all__ = ["BudgetFn", "Grid", "GridCell", "Rule", "parse_modality_set"]

BudgetFn = Callable[[float], Mapping[str, Budget]]
Objective = Callable[[AVOutput, Tensor], Tensor]
Rule = StepRule | WorstCase
"""What a cell runs: a step rule, or a recipe that builds the whole attack."""


@dataclass(frozen=True)
class GridCell:
    """One cell of a :class:`Grid`.

    Attributes:
        key: ``"rule|eps|modality+modality"``.
        rule_name: the rule's name (``"worst-case"`` for :class:`WorstCase`).
        rule: the step rule, or the :class:`WorstCase` recipe.
        eps: the budget value.
        modalities: the attacked modalities.
        defines: ``{"rule": repr of the rule, "budgets": {modality: repr of its budget}}``
            (a budget with tensors, a per-dimension ``eps``, also gives a digest of their
            values: :func:`~avrobust.evaluation.fingerprints.settings_repr`).
    """

    key: str
    rule_name: str
    rule: Rule
    eps: float
    modalities: tuple[str, ...]
    defines: dict[str, Any]

    def seed(self, seed: int) -> int:
        """The cell's own seed from the run's ``seed`` (independent of the order of the run)."""
        return int(hashlib.sha256(f"{seed}|{self.key}".encode()).hexdigest()[:12], 16)


@dataclass(frozen=True)
class Grid:
    """Which attacks an evaluation runs: every rule × budget × attacked modality set.

    Attributes:
        rules: rule names (``"fgsm"``, ``"bim"``, ``"mim"``, ``"pgd"``, ``"apgd"``),
            :class:`~avrobust.StepRule` objects (named by their ``name``), or the worst case
            over :func:`~avrobust.default_ensemble`: ``"worst-case"`` or
            :class:`~avrobust.evaluation.WorstCase` objects (named ``"worst-case"``, with
            their ``queries`` and ``targets``); each name once.
        eps: the budget values (> 0, distinct); each is passed to ``budgets``, whose radii
            (and steps of up to 2.5 times them) must fit float32 (at most about 3.4e38).
        modalities: the attacked-modality sets: ``"audio"``, ``"visual"``, ``"audio+visual"`` (or
            tuples of names); stored as tuples of names.
        budgets: ``eps -> {modality: Budget}``; default :func:`~avrobust.push_pull_budgets`
            (``eps`` is Push-Pull's ``eps_av``: audio ``eps·1e-4`` on [-1, 1], video ``eps·0.1``
            pixel levels). It must give a budget for every attacked modality at every eps;
            with worst-case cells, :class:`~avrobust.Linf` budgets (Square is an L-inf attack).
        steps: attack iterations per cell (>= 1); for worst-case cells, the iterations of each
            APGD run of the ensemble.
        objective: ``"training"`` (the training loss over every head: Push-Pull's
            training-aware attack), ``"inference"`` (the inference head only), or a callable
            ``(AVOutput, labels) -> (B,)``. It applies to the step rules only: worst-case
            cells use the ensemble's own objectives (cross-entropy, then the margin), whatever
            ``objective`` is.
    """

    rules: Sequence[str | StepRule | WorstCase] = ("bim", "mim", "pgd")
    eps: float | Sequence[float] = (1.0, 2.0, 5.0)
    modalities: Sequence[str | Sequence[str]] = ("audio", "visual", "audio+visual")
    budgets: BudgetFn = push_pull_budgets
    steps: int = 10
    objective: str | Objective = "training"
    _table: dict[str, dict[str, str]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", _parse_rules(self.rules))
        object.__setattr__(self, "eps", tuple(_parse_eps(self.eps)))
        object.__setattr__(self, "modalities", tuple(_parse_modality_sets(self.modalities)))
        if not callable(self.budgets):
            raise TypeError(
                f"Grid.budgets: expected a function eps -> {{modality: Budget}}, got "
                f"{describe(self.budgets)}"
            )
        object.__setattr__(self, "steps", check_int(self.steps, "Grid.steps", min_value=1))
        object.__setattr__(self, "objective", _check_objective(self.objective))
        linf = any(isinstance(r, WorstCase) or r in RECIPES for r in self.rules)
        table = _budget_table(self.budgets, self.eps_values, self.modality_sets, linf=linf)
        object.__setattr__(self, "_table", table)

    @property
    def eps_values(self) -> tuple[float, ...]:
        """The budget values as a tuple of floats (``eps`` after checking)."""
        return tuple(self.eps)  # type: ignore[arg-type]

    @property
    def modality_sets(self) -> tuple[tuple[str, ...], ...]:
        """The attacked-modality sets as tuples of names."""
        return tuple(self.modalities)  # type: ignore[arg-type]

    def rule_steps(self) -> list[tuple[str, Rule]]:
        """``[(name, StepRule or WorstCase)]`` in the grid's order."""
        return [_rule(r) for r in self.rules]

    def cells(self) -> list[GridCell]:
        """Every cell, in grid order: rule, then eps, then modality set."""
        return [
            GridCell(
                key=cell_key(name, e, mods),
                rule_name=name,
                rule=rule,
                eps=e,
                modalities=mods,
                defines={"rule": repr(rule), "budgets": {m: self._table[repr(e)][m] for m in mods}},
            )
            for name, rule in self.rule_steps()
            for e in self.eps_values
            for mods in self.modality_sets
        ]

    def budgets_at(self, eps: float, modalities: Sequence[str]) -> dict[str, Budget]:
        """The budgets of ``modalities`` at ``eps`` (the others are left unattacked)."""
        given = self.budgets(eps)
        return {m: given[m] for m in modalities}

    def config(self) -> dict[str, Any]:
        """The grid as a report's ``config`` gives it: ``rules``, ``rule_repr``, ``eps``,
        ``budget_repr`` (``{repr(eps): {modality: repr(budget)}}``), ``modalities``."""
        steps = self.rule_steps()
        return {
            "rules": [n for n, _ in steps],
            "rule_repr": [repr(r) for _, r in steps],
            "eps": list(self.eps_values),
            "budget_repr": self._table,
            "modalities": ["+".join(s) for s in self.modality_sets],
        }


def _rule(rule: str | Rule) -> tuple[str, Rule]:
    if isinstance(rule, (StepRule, WorstCase)):
        return rule.name, rule
    return (rule, RECIPES[rule]()) if rule in RECIPES else (rule, as_rule(rule))


def parse_modality_set(value: Any, name: str) -> tuple[str, ...]:
    """``"audio+visual"``, ``"audio,visual"`` or ``("audio", "visual")`` as a tuple of names.

    Raises:
        TypeError: not a string or a sequence of strings (the message names ``name``).
        ValueError: an empty or repeated name.
    """
    if isinstance(value, str):
        parts = tuple(p.strip() for p in value.replace(",", "+").split("+"))
    elif isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value):
        parts = tuple(value)
    else:
        raise TypeError(
            f"{name}: expected a modality set such as 'audio', 'visual', 'audio+visual' or "
            f"('audio', 'visual'), got {describe(value)}"
        )
    if not parts or any(not p for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"{name}: expected distinct, non-empty modality names, got {value!r}")
    return parts


def _parse_modality_sets(modalities: Any) -> list[tuple[str, ...]]:
    if isinstance(modalities, str) or not isinstance(modalities, Sequence) or not modalities:
        raise TypeError(
            "Grid.modalities: expected a list of modality sets such as ['audio', 'visual', "
            f"'audio+visual'], got {describe(modalities)}"
        )
    sets = [parse_modality_set(m, f"Grid.modalities[{i}]") for i, m in enumerate(modalities)]
    if len(set(sets)) != len(sets):
        raise ValueError(
            f"Grid.modalities: each set may appear once, got {['+'.join(s) for s in sets]}"
        )
    return sets


def _parse_rules(rules: Any) -> tuple[str | Rule, ...]:
    if isinstance(rules, (str, StepRule, WorstCase)):
        rules = [rules]
    if not isinstance(rules, Sequence) or not rules:
        raise TypeError(
            "Grid.rules: expected a non-empty list such as ['bim', 'mim', 'pgd'], got "
            f"{describe(rules)}"
        )
    out: list[str | Rule] = []
    for i, rule in enumerate(rules):
        if isinstance(rule, str) and rule.lower() in RECIPES:
            out.append(rule.lower())
        elif isinstance(rule, str):
            try:
                out.append(check_choice(rule, f"Grid.rules[{i}]", list_rules()))
            except ValueError as error:
                raise ValueError(f"{error}; or {', '.join(map(repr, RECIPES))}") from None
        elif isinstance(rule, (StepRule, WorstCase)):
            out.append(rule)
        else:
            raise TypeError(
                f"Grid.rules[{i}]: expected a rule name, a StepRule or a WorstCase, got "
                f"{describe(rule)}"
            )
    names = [r if isinstance(r, str) else r.name for r in out]
    if len(set(names)) != len(names):
        raise ValueError(f"Grid.rules: each rule may appear once, got {names}")
    return tuple(out)


def _parse_eps(eps: Any) -> list[float]:
    values = [eps] if isinstance(eps, numbers.Real) and not isinstance(eps, bool) else eps
    if isinstance(values, (np.ndarray, Tensor)) and values.ndim <= 1:
        values = values.reshape(-1).tolist()
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise TypeError(
            f"Grid.eps: expected a non-empty list of budgets such as [1, 2, 5], got {describe(eps)}"
        )
    values = [v.item() if isinstance(v, np.generic) else v for v in values]  # NumPy scalars
    out = [
        check_number(v, f"Grid.eps[{i}]", min_value=0.0, strict=True) for i, v in enumerate(values)
    ]
    if len(set(out)) != len(out):
        raise ValueError(f"Grid.eps: expected distinct values, got {out}")
    return out


def _check_objective(objective: Any) -> str | Objective:
    if isinstance(objective, str):
        return check_choice(objective, "Grid.objective", OBJECTIVE_NAMES)
    if not callable(objective):
        raise TypeError(
            f"Grid.objective: expected one of {list(OBJECTIVE_NAMES)} or a callable, got "
            f"{describe(objective)}"
        )
    try:
        inspect.signature(objective).bind(None, None)
    except TypeError:
        raise TypeError(
            "Grid.objective: expected a callable (AVOutput, labels) -> (B,) per-clip losses, "
            f"got {describe(objective)} with signature {inspect.signature(objective)}"
        ) from None
    except ValueError:  # no signature to read (a builtin): the call will tell
        pass
    return objective  # type: ignore[no-any-return]


def _budget_table(
    budgets: BudgetFn, eps: Sequence[float], sets: Sequence[tuple[str, ...]], *, linf: bool
) -> dict[str, dict[str, str]]:
    """``{repr(eps): {modality: repr(budget)}}``: what the budgets are, whatever the function's
    name. Refuses ``budgets(eps)`` that is not a dict of Budgets or lacks an attacked modality,
    and, with ``linf`` (worst-case cells), an attacked modality's budget that is not L-inf."""
    out = {}
    attacked = sorted({m for mods in sets for m in mods}, key=[m for s in sets for m in s].index)
    for e in eps:
        try:
            given = budgets(e)
        except (TypeError, ValueError) as error:
            kind = TypeError if isinstance(error, TypeError) else ValueError
            raise kind(
                f"Grid.budgets: budgets(eps={e:g}) raised {type(error).__name__}: {error}; "
                "expected a function eps -> {modality: Budget}"
            ) from error
        if not isinstance(given, Mapping) or not all(isinstance(b, Budget) for b in given.values()):
            raise TypeError(
                f"Grid.budgets: expected budgets(eps) to return a dict {{modality: Budget}}, got "
                f"{describe(given)} at eps={e:g}"
            )
        missing = [m for m in attacked if m not in given]
        if missing:
            raise ValueError(
                f"Grid.modalities: no budget for {missing} at eps={e:g}; budgets(eps) gives "
                f"{sorted(given)}"
            )
        _check_finite(given, attacked, e)
        problem = linf_problem(given, tuple(attacked)) if linf else None
        if problem is not None:
            raise TypeError(
                f"Grid.budgets: {problem} at eps={e:g}; pass L-inf budgets "
                "or leave worst-case out of Grid.rules"
            )
        out[repr(e)] = {str(m): settings_repr(b) for m, b in given.items()}
    return out


_FLOAT32_MAX = torch.finfo(torch.float32).max
_STEP_FACTOR = 2.5  # the largest multiple of eps a default step reaches (2.5 * eps / steps)


def _largest(value: float | Tensor) -> float:
    return float(value.detach().abs().max()) if isinstance(value, Tensor) else abs(float(value))


def _check_finite(given: Mapping[str, Budget], attacked: Sequence[str], eps: float) -> None:
    """Refuse budgets whose radius, default step (up to 2.5 times the radius) or step size does
    not fit float32, the precision of most inputs: the attack would overflow there."""
    for m in attacked:
        budget = given[m]
        sizes = [("eps", _largest(budget.eps), _STEP_FACTOR * _largest(budget.eps))]
        if budget.alpha is not None:
            sizes.append(("alpha", _largest(budget.alpha), _largest(budget.alpha)))
        for name, size, reach in sizes:
            if not reach <= _FLOAT32_MAX:
                raise ValueError(
                    f"Grid.eps: at eps={eps:g} the {m} budget's {name} is {size:g}, which (with "
                    f"the step sizes of up to {_STEP_FACTOR:g} times eps) does not fit float32 "
                    f"(largest {_FLOAT32_MAX:.3g}), the precision of the inputs, where the "
                    "attack would overflow; use a smaller eps (a radius as wide as the input's "
                    "range already allows every input)"
                )
