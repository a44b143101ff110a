"""Perturbation budgets: one per attacked modality, each projecting and clamping itself.

A budget is data (``eps``, step size ``alpha``, valid range ``bounds``) plus the three operations
that depend on the norm: take a step along an update direction, project back onto the ball
around the clean input (and into the valid range), and draw a random start inside the ball.
The attack loop in :mod:`avrobust.attacks.attack` never looks at the norm itself.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._checks import (
    check_bounds,
    check_choice,
    check_finite_tensor,
    check_number,
    check_tensor,
    describe,
)
from ._radii import batch_view, check_radius, shape_radius

__all__ = ["L2", "Budget", "Linf", "push_pull_budgets", "snr_eps"]

BUDGET_OPTIONS = {
    name: f"{name} {verb} the budget's: budgets={{'visual': avrobust.Linf({example}, "
    "bounds=(0, 255))}"
    for name, verb, example in (
        ("eps", "is", "4.0"),
        ("alpha", "is", "4.0, alpha=1.0"),
        ("bounds", "are", "4.0"),
    )
}
"""Where an attack's ``eps``, ``alpha`` and ``bounds`` go (hints of :func:`known_options`)."""

_DEFAULT_ALPHA_FACTOR = 2.5  # alpha = 2.5 * eps / steps (Madry et al. 2018), see Budget.step_size


def _flat_norm(x: Tensor, p: float) -> Tensor:
    """Per-sample ``p``-norm over all non-batch dims, shaped ``(N, 1, ..., 1)``."""
    dims = tuple(range(1, x.ndim))
    return torch.linalg.vector_norm(x, ord=p, dim=dims, keepdim=True)


class Budget(ABC):
    """Base class of a per-modality perturbation budget.

    Args:
        eps: the radius of the ball around the clean input, in the input's own units
            (e.g. waveform amplitude in [-1, 1], or pixel levels in 0–255). A float, a
            tensor ``(B,)`` of per-sample radii (see :func:`snr_eps`), or, for :class:`Linf`
            only, a tensor ``(1, *dims)`` of per-dimension radii shared by every sample and
            broadcast against each one (``(1, D)`` for features ``(B, D)`` or ``(B, T, D)``; see
            :func:`~avrobust.attacks.feature_budgets`). ``0`` means "not attacked".
        alpha: the step size per iteration, same units and forms as ``eps``. ``None`` picks
            ``2.5 * eps / steps`` for iterative rules (Madry et al., 2018) and ``eps`` for FGSM.
        bounds: the valid input range ``(low, high)``, e.g. ``(-1, 1)`` or ``(0, 255)``; every
            iterate is clamped into it. ``None`` leaves the range open.

    ``eps``, ``alpha`` and ``bounds`` are checked again whenever they are set
    (``budget.eps = 8`` in a sweep), with the same errors.

    Raises:
        ValueError: ``eps`` negative or not finite; ``alpha <= 0``; ``low >= high``; an empty
            tensor of per-sample values.
        TypeError: ``eps``/``alpha`` not numbers (or ``eps`` not a 0-d/1-d tensor). NumPy
            scalars are numbers; bools are not.
    """

    norm: ClassVar[str]
    per_dimension: ClassVar[bool] = False  # whether (1, *dims) per-dimension radii are accepted

    def __init__(
        self,
        eps: float | Tensor,
        alpha: float | Tensor | None = None,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        self.eps = eps  # each checked by __setattr__
        self.alpha = alpha
        self.bounds = bounds

    def __setattr__(self, name: str, value: Any) -> None:
        """Check ``eps``, ``alpha`` and ``bounds`` as the constructor does, whenever set."""
        where = f"{type(self).__name__}.{name}"
        if name == "eps":
            value = self._check_radius(value, where, strict=False)
        elif name == "alpha":
            value = None if value is None else self._check_radius(value, where, strict=True)
        elif name == "bounds":
            value = check_bounds(value, where)
        super().__setattr__(name, value)

    def _check_radius(self, value: Any, name: str, *, strict: bool) -> float | Tensor:
        return check_radius(value, name, strict=strict, per_dimension=self.per_dimension)

    def __repr__(self) -> str:
        eps = describe(self.eps) if isinstance(self.eps, Tensor) else f"{self.eps:g}"
        alpha = self.alpha if not isinstance(self.alpha, float) else f"{self.alpha:g}"
        return f"{type(self).__name__}(eps={eps}, alpha={alpha}, bounds={self.bounds})"

    @property
    def is_zero(self) -> bool:
        """``True`` when every radius is 0: the modality is not attacked."""
        if isinstance(self.eps, Tensor):
            return bool((self.eps == 0).all())
        return self.eps == 0

    def radius(self, x: Tensor, repeats: int = 1) -> Tensor:
        """``eps`` for a batch ``x`` of ``N = repeats * B`` samples: ``(N, 1, ..., 1)``, or
        ``x.shape`` for per-dimension radii."""
        return self._per_sample(self.eps, x, repeats, "eps")

    def step_size(
        self, x: Tensor, steps: int, repeats: int = 1, single_step: bool = False
    ) -> Tensor:
        """``alpha`` shaped as :meth:`radius`; the default is documented on the class."""
        if self.alpha is not None:
            return self._per_sample(self.alpha, x, repeats, "alpha")
        eps = self.radius(x, repeats)
        return eps if single_step else eps * (_DEFAULT_ALPHA_FACTOR / steps)

    def _per_sample(self, value: float | Tensor, x: Tensor, repeats: int, what: str) -> Tensor:
        return shape_radius(value, x, repeats, f"{type(self).__name__}.{what}")

    def clamp(self, x: Tensor) -> Tensor:
        """Clamp ``x`` into ``bounds`` (unchanged when ``bounds`` is ``None``)."""
        if self.bounds is None:
            return x
        return torch.clamp(x, min=self.bounds[0], max=self.bounds[1])

    def ball(self, x: Tensor, eps: Tensor) -> Callable[[Tensor], Tensor]:
        """The projection onto the ``eps``-ball around ``x`` (and into ``bounds``) as a function.

        The attack loop asks once per run, then projects every iterate with the returned
        function, so a budget can precompute what depends only on the clean input (the L-inf
        box). The default calls :meth:`project`.
        """
        return lambda x_adv: self.project(x_adv, x, eps)

    @abstractmethod
    def step(self, x_adv: Tensor, direction: Tensor, alpha: Tensor) -> Tensor:
        """Move ``x_adv`` by ``alpha`` along ``direction`` (the rule's update), in this norm."""

    @abstractmethod
    def project(self, x_adv: Tensor, x: Tensor, eps: Tensor) -> Tensor:
        """Project ``x_adv`` onto the ``eps``-ball around ``x``, then clamp into ``bounds``."""

    @abstractmethod
    def random_start(self, x: Tensor, eps: Tensor, generator: torch.Generator) -> Tensor:
        """A random point of the ``eps``-ball around ``x`` (clamped into ``bounds``)."""


class Linf(Budget):
    r"""An :math:`L_\infty` budget: :math:`\|\delta\|_\infty \le \epsilon`, sign-gradient steps.

    ``eps`` (and ``alpha``) may also be per-dimension, a tensor ``(1, *dims)``: the ball is then
    the box :math:`|\delta_d| \le \epsilon_d`, the sign step moves coordinate ``d`` by
    :math:`\alpha_d` and the random start is uniform over the box.

    Args: see :class:`Budget`.

    Example:
        >>> import avrobust, torch
        >>> avrobust.Linf(0.5, bounds=(0, 255))
        Linf(eps=0.5, alpha=None, bounds=(0.0, 255.0))
        >>> avrobust.Linf(torch.tensor([[0.1, 0.2, 0.4]])).radius(torch.zeros(2, 3))
        tensor([[0.1000, 0.2000, 0.4000],
                [0.1000, 0.2000, 0.4000]])
    """

    norm = "linf"
    per_dimension = True

    def step(self, x_adv: Tensor, direction: Tensor, alpha: Tensor) -> Tensor:
        return x_adv + alpha * direction.sign()

    def project(self, x_adv: Tensor, x: Tensor, eps: Tensor) -> Tensor:
        return self.ball(x, eps)(x_adv)

    def ball(self, x: Tensor, eps: Tensor) -> Callable[[Tensor], Tensor]:
        # The box [x - eps, x + eps] ∩ bounds, computed once. Its ends are rounded to the
        # precision of x (1.5e-5 at pixel value 255 in float32), which can put them an ulp more
        # than eps away from x: those ends move one ulp back towards x, so the budget holds
        # exactly as measured in the input's dtype. Each projection is then one clamp.
        low, high = x - eps, x + eps
        low = torch.where(x - low > eps, torch.nextafter(low, x), low)
        high = torch.where(high - x > eps, torch.nextafter(high, x), high)
        if self.bounds is not None:
            low = torch.clamp(low, min=self.bounds[0])
            high = torch.clamp(high, max=self.bounds[1])
        return lambda x_adv: torch.clamp(x_adv, min=low, max=high)

    def random_start(self, x: Tensor, eps: Tensor, generator: torch.Generator) -> Tensor:
        u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        return self.clamp(x + (2 * u - 1) * eps)


class L2(Budget):
    r"""An :math:`L_2` budget over all non-batch dims of each sample: :math:`\|\delta\|_2 \le \epsilon`.

    Steps move ``alpha`` along the per-sample L2-normalised direction (a zero direction gives a
    zero step); projection rescales ``delta`` onto the ball; the random start is uniform in the ball.

    Args: see :class:`Budget`.
    """

    norm = "l2"

    def step(self, x_adv: Tensor, direction: Tensor, alpha: Tensor) -> Tensor:
        norm = _flat_norm(direction, 2.0)
        unit = direction / norm.clamp_min(torch.finfo(norm.dtype).tiny)
        return x_adv + alpha * unit

    def project(self, x_adv: Tensor, x: Tensor, eps: Tensor) -> Tensor:
        # Aim at a radius slightly inside eps: rounding x + delta to the precision of x moves each
        # element by at most half an ulp of max|x|, i.e. the norm by at most sqrt(D) * ulp / 2.
        tiny = torch.finfo(x.dtype).tiny
        slack = x[0].numel() ** 0.5 * _flat_norm(x, float("inf")) * torch.finfo(x.dtype).eps
        radius = torch.clamp(eps - slack, min=0.0)
        delta = x_adv - x
        norm = _flat_norm(delta, 2.0)
        factor = torch.where(norm > radius, radius / norm.clamp_min(tiny), torch.ones_like(norm))
        return self.clamp(x + delta * factor)

    def random_start(self, x: Tensor, eps: Tensor, generator: torch.Generator) -> Tensor:
        g = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        unit = g / _flat_norm(g, 2.0).clamp_min(torch.finfo(g.dtype).tiny)
        d = x[0].numel()
        r = torch.rand((x.shape[0],), generator=generator, dtype=x.dtype).to(x.device)
        radius = batch_view(r ** (1.0 / d), x) * eps
        return self.clamp(x + unit * radius)


def snr_eps(signal: Tensor, snr_db: float, norm: str = "linf") -> Tensor:
    r"""Per-sample radii that keep the perturbation at least ``snr_db`` dB below the signal.

    For an :math:`L_\infty` budget every sample of :math:`\delta` is at most :math:`\epsilon`, so
    the perturbation's power is at most :math:`\epsilon^2` and
    :math:`\epsilon = \mathrm{rms}(x)\cdot 10^{-\mathrm{SNR}/20}` guarantees the SNR. For
    :math:`L_2`, :math:`\epsilon = \|x\|_2 \cdot 10^{-\mathrm{SNR}/20}`.

    Args:
        signal: clean audio ``(B, S)`` or ``(B, C, S)``, any amplitude unit.
        snr_db: the minimum signal-to-perturbation ratio in dB (e.g. 40).
        norm: ``"linf"`` or ``"l2"``.

    Returns:
        ``(B,)`` radii in the signal's units; pass them as ``Linf(eps=...)`` or ``L2(eps=...)``.

    Raises:
        ValueError: ``signal`` 0-d, 1-d or empty, or holding NaN/Inf; ``snr_db`` not finite;
            an unknown ``norm``.
        TypeError: ``signal`` not a floating-point tensor.

    Example:
        >>> import torch
        >>> x = torch.full((2, 100), 0.5)
        >>> snr_eps(x, 20.0)
        tensor([0.0500, 0.0500])
    """
    check_tensor(signal, "signal", floating=True)
    if signal.ndim < 2 or signal.numel() == 0:
        raise ValueError(
            f"signal: expected a batch of audio (B, S) or (B, C, S) with B, S >= 1, "
            f"got shape {tuple(signal.shape)}"
        )
    check_finite_tensor(signal.detach(), "signal")
    snr = check_number(snr_db, "snr_db")
    norm = check_choice(norm, "norm", ("l2", "linf"))
    flat = signal.detach().reshape(signal.shape[0], -1)
    if norm == "linf":
        level = flat.pow(2).mean(dim=1).sqrt()
    else:
        level = torch.linalg.vector_norm(flat, dim=1)
    return level * math.pow(10.0, -snr / 20.0)


def push_pull_budgets(
    eps_av: float,
    *,
    alpha: tuple[float, float] | None = None,
    audio: str = "audio",
    visual: str = "visual",
    audio_bounds: tuple[float, float] = (-1.0, 1.0),
    visual_bounds: tuple[float, float] = (0.0, 255.0),
) -> dict[str, Budget]:
    r"""The coupled budgets of Push-Pull §4.1: :math:`\epsilon_a = \epsilon_{av}\cdot 10^{-4}`,
    :math:`\epsilon_v = \epsilon_{av}\cdot 10^{-1}`.

    The units are a float waveform in [-1, 1] for audio and 0–255 pixels for video (the paper's
    public demo pairs differ by at most 5e-4 at ``eps_av = 5``). With ``eps_av = 0`` both radii
    are 0 and the attack returns both inputs bit-identical.

    Args:
        eps_av: the joint budget (the x-axis of Push-Pull Fig. 3), >= 0.
        alpha: optional ``(alpha_audio, alpha_visual)`` step sizes; default as in :class:`Budget`.
        audio: the audio modality's input name.
        visual: the visual modality's input name.
        audio_bounds: valid waveform range.
        visual_bounds: valid pixel range.

    Returns:
        ``{audio: Linf(eps_av * 1e-4), visual: Linf(eps_av * 1e-1)}``.

    Raises:
        ValueError: ``eps_av`` negative or not finite; ``alpha`` not of two entries; ``audio``
            and ``visual`` the same name (one budget would silently replace the other).
        TypeError: an argument of the wrong type.

    Example:
        >>> b = push_pull_budgets(5)
        >>> round(b["audio"].eps, 8), round(b["visual"].eps, 8)
        (0.0005, 0.5)
    """
    eps = check_number(eps_av, "eps_av", min_value=0.0)
    a_alpha, v_alpha = _check_alpha_pair(alpha)
    for value, name in ((audio, "audio"), (visual, "visual")):
        if not isinstance(value, str):
            raise TypeError(f"{name}: expected the modality's input name, got {describe(value)}")
    if audio == visual:
        raise ValueError(
            f"audio, visual: expected two different modality names, got {audio!r} for both "
            "(one budget would replace the other)"
        )
    return {
        audio: Linf(eps * 1e-4, alpha=a_alpha, bounds=check_bounds(audio_bounds, "audio_bounds")),
        visual: Linf(
            eps * 1e-1, alpha=v_alpha, bounds=check_bounds(visual_bounds, "visual_bounds")
        ),
    }


def _check_alpha_pair(alpha: Any) -> tuple[float | None, float | None]:
    if alpha is None:
        return None, None
    if not isinstance(alpha, (tuple, list)):
        raise TypeError(
            f"alpha: expected a pair (alpha_audio, alpha_visual) or None, got {describe(alpha)}"
        )
    if len(alpha) != 2:
        raise ValueError(
            f"alpha: expected a pair (alpha_audio, alpha_visual), got {len(alpha)} value(s): "
            f"{describe(alpha)}"
        )
    a, v = (
        None if x is None else check_number(x, f"alpha[{i}]", min_value=0.0, strict=True)
        for i, x in enumerate(alpha)
    )
    return a, v


def as_budget(value: Any, name: str) -> Budget:
    """Accept a :class:`Budget` or a bare number (read as an unbounded :class:`Linf`)."""
    if isinstance(value, Budget):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return Linf(float(value))
    raise TypeError(f"{name}: expected a Budget such as avrobust.Linf(eps), got {describe(value)}")


def as_budgets(budgets: Any) -> dict[str, Budget]:
    """Validate the ``budgets`` argument of an attack: a mapping of modality name to budget."""
    if not isinstance(budgets, Mapping):
        raise TypeError(
            f"budgets: expected a dict mapping modality names to budgets, got {describe(budgets)}"
        )
    return {str(k): as_budget(v, f"budgets[{k!r}]") for k, v in budgets.items()}
