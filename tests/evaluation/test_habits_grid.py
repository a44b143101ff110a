"""Issue 17, point 9: a grid or selection that cannot work is refused with a message that names
the setting and says what to do, at construction where it can be."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_raises_naming

import avrobust
from avrobust.evaluation import Grid, Selection
from avrobust.evaluation.selection import CleanPass, balanced_subset, choose


@pytest.mark.parametrize("eps", [1e308, 1e40])
def test_an_eps_whose_budgets_overflow_float32_is_refused_when_built(eps):
    """Push-Pull budgets at eps_av = 1e308 (video radius 1e307) or 1e40 are finite as Python
    floats but not in float32, the inputs' precision, where the attack would fail with an
    overflow: Grid refuses them, naming Grid.eps, the value, and why."""
    message = assert_raises_naming(ValueError, "Grid.eps", Grid, eps=[1.0, eps])
    assert f"{eps:g}" in message and "float32" in message
    assert ("visual budget" if eps < 1e300 else "audio budget") in message


def test_an_own_budget_function_with_an_overflowing_step_is_refused():
    """A budget whose explicit step size overflows float32 is refused naming Grid.eps too."""

    def huge_step(eps):
        return {"audio": avrobust.Linf(eps, alpha=1e39), "visual": avrobust.Linf(eps)}

    message = assert_raises_naming(ValueError, "Grid.eps", Grid, eps=[1.0], budgets=huge_step)
    assert "alpha" in message


def test_a_large_but_finite_eps_is_kept():
    """The CLI's largest eps_av (1e5) and larger radii that fit float32 are accepted."""
    assert Grid(eps=[1e5, 1e30]).eps == (1e5, 1e30)


def test_cannot_balance_says_how_to_turn_balancing_off():
    """No not-speaking candidate: the message suggests Selection(balance=False) and the
    command's --no-balance."""
    with pytest.raises(ValueError, match="cannot balance") as info:
        balanced_subset([1, 2], [True, True])
    assert "Selection(balance=False)" in str(info.value) and "--no-balance" in str(info.value)
    ones = [torch.ones(1)] * 2
    found = CleanPass([0, 1], [True, True], [True, True], ones, ones, [b""] * 2)
    with pytest.raises(ValueError, match="--no-balance"):
        choose(found, Selection(), seed=0)
