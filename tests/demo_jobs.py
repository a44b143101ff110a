"""Job bodies for tests/demo/test_seeds.py: a module of tests/ (on the path), so spawned workers
import them."""

from __future__ import annotations

import torch


def square_sum(*, n: int = 3) -> float:
    """A small torch computation whose bits depend on the thread count in general."""
    g = torch.Generator().manual_seed(n)
    x = torch.randn(64, 64, generator=g)
    return float((x @ x).square().sum())


def fail() -> None:
    """A job that fails."""
    raise ZeroDivisionError("the job's own error")
