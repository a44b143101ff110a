"""Shared test helpers and parametrisation lists: a new rule or norm is tested everywhere by adding it here.

Import them as ``from helpers import ...`` (``tests/`` is on ``sys.path`` under pytest's default
rootdir-relative import mode); ``conftest.py`` keeps only fixtures and suite-wide settings.
"""

from __future__ import annotations

import torch
from torch import nn

import avrobust
from avrobust.testing import TinyAV

ALL_RULES = {
    "fgsm": lambda: avrobust.FGSM(),
    "bim": lambda: avrobust.BIM(),
    "mim": lambda: avrobust.MIM(decay=1.0),
    "pgd": lambda: avrobust.PGD(restarts=2),
}
DETERMINISTIC_RULES = ("fgsm", "bim", "mim")
ALL_NORMS = {"linf": avrobust.Linf, "l2": avrobust.L2}

AUDIO_BOUNDS = (-1.0, 1.0)
VISUAL_BOUNDS = (0.0, 255.0)


def make_inputs(
    batch: int = 3,
    seed: int = 0,
    samples: int = 640,
    frames: int = 4,
    size: int = 16,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Random audio (B, S) in [-1, 1] and video (B, T, H, W) in [0, 255]."""
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": (torch.rand(batch, samples, generator=g) * 2 - 1).to(dtype),
        "visual": (torch.rand(batch, frames, size, size, generator=g) * 255).to(dtype),
    }


def make_model(seed: int = 0, **kwargs: object) -> TinyAV:
    """A TinyAV with non-trivial BatchNorm statistics, left in training mode on purpose."""
    torch.manual_seed(seed)
    model = TinyAV(**kwargs)  # type: ignore[arg-type]
    with torch.no_grad():
        for _ in range(2):
            model(**make_inputs(batch=4, seed=seed + 100))
    return model


def budgets_for(
    norm: str, eps_audio: float = 0.01, eps_visual: float = 4.0
) -> dict[str, avrobust.Budget]:
    cls = ALL_NORMS[norm]
    if norm == "l2":  # an L2 ball of the same order of size as the L-inf one
        eps_audio, eps_visual = eps_audio * 8, eps_visual * 8
    return {
        "audio": cls(eps_audio, bounds=AUDIO_BOUNDS),
        "visual": cls(eps_visual, bounds=VISUAL_BOUNDS),
    }


def snapshot(model: nn.Module) -> dict[str, object]:
    """Everything about a model an attack must not change."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [(n, m.training) for n, m in model.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grad": [
            (n, None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()
        ],
    }


def assert_same_model(before: dict[str, object], model: nn.Module) -> None:
    after = snapshot(model)
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    for (n1, g1), (n2, g2) in zip(before["grad"], after["grad"]):  # type: ignore[call-overload]
        assert n1 == n2
        assert (g1 is None and g2 is None) or torch.equal(g1, g2), f"grad of {n1} changed"
    for k, v in before["state"].items():  # type: ignore[attr-defined]
        assert torch.equal(v, after["state"][k]), f"state {k} changed"  # type: ignore[index]


def assert_raises_naming(
    exc_type: type[BaseException], argument: str, func: object, *args: object, **kwargs: object
) -> str:
    """Call ``func(*args, **kwargs)``, assert it raises ``exc_type`` whose message names
    ``argument``, and return the message (for further checks)."""
    import pytest

    with pytest.raises(exc_type) as info:
        func(*args, **kwargs)  # type: ignore[operator]
    message = str(info.value)
    assert argument in message, f"the message does not name {argument!r}: {message}"
    return message
