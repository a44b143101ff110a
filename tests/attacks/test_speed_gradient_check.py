"""The per-step gradient check on CPU reads the gradient once, without a temporary copy of it
(``torch.aminmax`` instead of ``grad.abs().amax()``); it must still find every NaN/Inf element
and every all-zero gradient. The reference is computed here with ``torch.isfinite``."""

from __future__ import annotations

import pytest
import torch

from avrobust.attacks._guards import Diagnostics

INF, NAN = float("inf"), float("nan")


def gradient_with(value: float | None, *, sign: float = 1.0) -> torch.Tensor:
    """A (2, 3, 4) gradient of one sign (the largest magnitude at its minimum when negative),
    with ``value`` at one element."""
    grad = sign * torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(0)).add(0.1)
    if value is not None:
        grad[1, 2, 3] = value
    return grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize(
    "grad",
    [
        gradient_with(None),
        gradient_with(None, sign=-1.0),
        gradient_with(NAN),
        gradient_with(INF),
        gradient_with(-INF, sign=-1.0),
        gradient_with(-INF),
        gradient_with(NAN, sign=-1.0),
        torch.zeros(2, 3, 4),
        -torch.zeros(2, 3, 4),
        torch.zeros(2, 3, 4).index_fill_(2, torch.tensor([1]), -INF),
    ],
    ids=["pos", "neg", "nan", "inf", "neg-inf", "ninf", "neg-nan", "zeros", "neg-zeros", "ninfs"],
)
def test_the_gradient_check_counts_non_finite_elements_and_notices_movement(grad, dtype):
    grad = grad.to(dtype)
    finite = torch.isfinite(grad)
    diagnostics = Diagnostics(["x"], batch=2, device=torch.device("cpu"))
    out = diagnostics.gradient("x", grad.clone(), grad)
    assert int(diagnostics.nonfinite["x"]) == int((~finite).sum())
    expected = torch.where(finite, grad, torch.zeros_like(grad))
    assert torch.equal(out, expected)
    assert bool(diagnostics.moved["x"]) == bool((expected != 0).any())


def test_an_expanded_gradient_is_checked_without_being_written():
    """autograd may hand back an expanded tensor: the check reads it and returns it as is."""
    grad = torch.tensor([[-3.0, 0.5, 2.0]]).expand(4, 3)
    diagnostics = Diagnostics(["x"], batch=4, device=torch.device("cpu"))
    out = diagnostics.gradient("x", grad, grad)
    assert out is grad
    assert int(diagnostics.nonfinite["x"]) == 0
    assert bool(diagnostics.moved["x"])
