"""``wrap(..., transforms={modality: [step, step, ...]})``: input transforms applied in turn."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from .._checks import describe, raised_in

__all__ = ["Pipeline", "check_transform"]


class Pipeline(nn.Module):
    """Input transforms applied in turn, left to right: ``steps[-1](... steps[0](x))``.

    Built by :func:`avrobust.wrap` from a list given in ``transforms=`` (as ``logits=`` takes a
    list of selectors). Unlike :class:`torch.nn.Sequential` a step may be a plain function; the
    ``nn.Module`` steps are registered (``steps.<i>``), so ``eval()`` and ``.to()`` reach them.

    Args:
        steps: ``nn.Module``s or functions of one tensor, at least one.
        name: how errors name the pipeline, e.g. ``"transforms['audio']"``; a step's error
            gets a note naming it (``transforms['audio'][1]``).

    Shape:
        whatever the steps make of it: e.g. ``(B, S)`` waveform -> ``(B, 1, 13, 4 T)`` MFCC.
    """

    def __init__(self, steps: Sequence[Callable[..., Any]], *, name: str = "pipeline") -> None:
        super().__init__()
        self.name = name
        self._steps = tuple(steps)
        self.steps = nn.ModuleDict(
            {str(i): s for i, s in enumerate(self._steps) if isinstance(s, nn.Module)}
        )

    def forward(self, x: Tensor) -> Any:
        """Apply the steps in order to ``x``."""
        value: Any = x
        for i, step in enumerate(self._steps):
            with raised_in(f"{self.name}[{i}], a transform step given to avrobust.wrap"):
                value = step(value)
        return value

    def extra_repr(self) -> str:
        plain = [f"{i}: {describe(s)}" for i, s in enumerate(self._steps)]
        return f"name={self.name!r}, steps=[{', '.join(plain)}]"


def _check_step(step: Any, name: str) -> Any:
    if not callable(step) or isinstance(step, Tensor):
        raise TypeError(
            f"{name}: expected an nn.Module (or a function) of the input, or a list of these "
            f"applied in turn, got {describe(step)}"
        )
    return step


def check_transform(transform: Any, name: str) -> Any:
    """A checked transform: a callable, or a :class:`Pipeline` for a list or tuple of them.

    Raises:
        TypeError: a transform or step that is not callable, naming its position.
        ValueError: an empty list.
    """
    if isinstance(transform, (list, tuple)):
        if not transform:
            raise ValueError(f"{name}: an empty list transforms nothing; give at least one step")
        steps = [_check_step(s, f"{name}[{i}]") for i, s in enumerate(transform)]
        return Pipeline(steps, name=name)
    return _check_step(transform, name)
