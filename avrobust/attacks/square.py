"""The Square attack (Andriushchenko et al., 2020): score-based random search, no gradients.

It checks that gradient-based numbers are not an artefact of bad gradients: it only queries the
model's scores, so a defense that masks gradients (a quantised or detached front-end, a
non-differentiable pre-processing) does not slow it down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_int, check_number, describe, known_options
from .._types import AttackResult, AVOutput
from ._guards import check_clean_logits, finite_rows
from ._model_state import InputWrites
from .attack import MultimodalAttack, preserve_model_state
from .budgets import BUDGET_OPTIONS, Budget, Linf
from .objectives import Objective, check_labels

__all__ = ["SquareAttack", "untargeted_success"]

# The schedule of the fraction p of each window, from the authors' code: p_init is halved at
# these iterations of a 10,000-query run (rescaled to the attack's query budget).
_P_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def untargeted_success(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor | None]:
    """``(success (B,), frame_success (B, T) | None)``: the prediction differs from the label.

    As :class:`avrobust.AttackResult` defines it: frame-level logits count a clip as broken when
    more than half of its frames are; a sample with NaN/Inf logits is never broken.
    """
    labels = check_labels(labels, logits)
    hit = (logits.argmax(dim=-1) != labels) & finite_rows(logits).view(
        (-1,) + (1,) * (labels.ndim - 1)
    )
    if hit.ndim == 2:
        return hit.float().mean(dim=1) > 0.5, hit
    return hit, None


def p_schedule(p_init: float, iteration: int, iterations: int) -> float:
    """The fraction of each modality's elements a window covers at ``iteration`` (of
    ``iterations``): ``p_init`` halved at the authors' checkpoints, rescaled to 10,000 queries."""
    it = int(iteration / max(iterations, 1) * 10000)
    halvings = sum(1 for point in _P_SCHEDULE if it > point)
    return p_init / 2**halvings


class SquareAttack:
    r"""The L-inf Square attack over several modalities, each with its own budget.

    Score-based random search (Andriushchenko et al., 2020): it never computes a gradient (the
    whole call runs under ``torch.no_grad``). Starting from the clean input, each iteration
    proposes, for every attacked modality, a new perturbation that differs from the best one so
    far inside one random window, where it is set to :math:`\pm\epsilon_m` (one sign per channel);
    the candidate is queried and **kept only if it increases the objective** (by default the
    margin: best other logit minus the true logit), so the result never scores below the clean
    input. A sample stops being queried once it is broken (its prediction differs from the label).

    Windows per modality, in the modality's own shape (``B`` the batch):

    * 1-d (a waveform ``(B, S)``, ``(B, C, S)``, or features ``(B, D)``): windows along the last
      axis, of length :math:`\mathrm{round}(p \cdot S)`; the first candidate is white noise at
      :math:`\pm\epsilon`. A scalar per clip ``(B,)`` is a window of one element.
    * 2-d (video ``(B, T, H, W)`` or ``(B, T, C, H, W)``): rectangles of
      :math:`\mathrm{round}(\sqrt{p} H) \times \mathrm{round}(\sqrt{p} W)` (squares for square
      frames) at the same place in every frame — spatio-temporal tubes over the whole clip, each
      frame and channel with its own sign, as the paper treats colour channels; the first
      candidate is vertical stripes (one sign per column, frame and channel), as in the paper.

    ``p`` starts at ``p_init`` and is halved on the paper's schedule. Each query moves every
    attacked modality (the joint attack); its budget's projection keeps every candidate inside
    the ball and the bounds. The model runs in eval mode; every module's flag and every buffer
    is restored afterwards, and the inputs are never modified: the model gets copies (a forward
    may write in place into the inputs that are not attacked, not into attacked ones).

    Only ``model`` and ``budgets`` are positional.

    Args:
        model: called as ``model(**inputs)``, returning :class:`avrobust.AVOutput` or logits.
        budgets: ``{modality: avrobust.Linf(eps, bounds=...)}``; a modality without a budget (or
            with ``eps`` 0) is not attacked and comes back bit-identical. Per-sample ``eps``
            tensors ``(B,)`` are allowed, and per-dimension ones ``(1, *dims)`` (from
            :func:`avrobust.feature_budgets`): a window then sets coordinate ``d`` to
            :math:`x_d \pm \epsilon_d`, a corner of the box.
        queries: the most perturbed candidates scored per sample (>= 1); the clean input is
            scored once more, not counted.
        p_init: the initial fraction of each modality's elements a window covers, in (0, 1].
        objective: ``"margin"`` (default), ``"dlr"``, ``"training"``, ``"inference"`` or a
            callable ``(AVOutput, labels) -> (B,)`` to maximise (see
            :class:`avrobust.MultimodalAttack`).
        seed: seeds the windows and signs (a CPU generator of its own; the global RNG is
            never used). ``None`` draws a fresh seed each call.
        progress: show a tqdm progress bar over the iterations (on stderr).

    Attributes:
        queries_used: ``(B,)`` int64, the candidates scored per sample in the latest call.

    Raises:
        TypeError: a budget that is not :class:`avrobust.Linf`; arguments of the wrong type.
        ValueError: ``queries < 1``, ``p_init`` outside (0, 1], a forward that writes in place
            into an attacked input, and the errors of :class:`avrobust.MultimodalAttack` on bad
            inputs, labels or logits.

    Example:
        >>> import torch, avrobust
        >>> from avrobust.testing import TinyAV
        >>> attack = avrobust.SquareAttack(TinyAV(), avrobust.push_pull_budgets(5), queries=20,
        ...                                objective="inference", seed=0)
        >>> inputs = {"audio": torch.rand(2, 640) * 2 - 1, "visual": torch.rand(2, 4, 16, 16) * 255}
        >>> result = attack(inputs, torch.tensor([0, 1]))
        >>> bool((result.inputs["visual"] - inputs["visual"]).abs().max() <= 0.5)
        True
    """

    @known_options(BUDGET_OPTIONS | {"steps": "Square counts queries: queries=1000"})
    def __init__(
        self,
        model: nn.Module,
        budgets: Mapping[str, Budget | float],
        *,
        queries: int = 1000,
        p_init: float = 0.8,
        objective: str | Objective = "margin",
        seed: int | None = None,
        progress: bool = False,
    ) -> None:
        # the loop's checks of the model, budgets, inputs and labels are shared with it
        self._loop = MultimodalAttack(model, budgets, steps=1, objective=objective)
        self.model = model
        self.budgets = self._loop.budgets
        for name, budget in self.budgets.items():
            if not isinstance(budget, Linf):
                raise TypeError(
                    f"budgets[{name!r}]: SquareAttack is an L-inf attack; expected "
                    f"avrobust.Linf, got {describe(budget)}"
                )
        self.objective = self._loop.objective
        self.queries = check_int(queries, "queries", min_value=1)
        self.p_init = check_number(p_init, "p_init", min_value=0.0, strict=True)
        if self.p_init > 1:
            raise ValueError(f"p_init: must be a fraction in (0, 1], got {self.p_init:g}")
        self.seed = None if seed is None else check_int(seed, "seed", min_value=0)
        self.progress = check_bool(progress, "progress")
        self.queries_used: Tensor | None = None

    def __repr__(self) -> str:
        return (
            f"SquareAttack(budgets={self.budgets}, queries={self.queries}, "
            f"p_init={self.p_init:g}, objective={self.objective!r})"
        )

    def __call__(self, inputs: Mapping[str, Tensor], labels: Tensor) -> AttackResult:
        """Attack a batch.

        Args:
            inputs: ``{modality: (B, ...)}`` clean inputs inside each budget's bounds; never
                modified.
            labels: ``(B,)`` clip labels or ``(B, T)`` frame labels (class indices).

        Returns:
            :class:`avrobust.AttackResult`; ``loss`` and ``clean_loss`` are the objective.
        """
        if isinstance(inputs, Mapping):  # no gradient is ever needed: read the values only
            inputs = {n: x.detach() if isinstance(x, Tensor) else x for n, x in inputs.items()}
        clean, labels, attacked = self._loop._check_call(inputs, labels)
        seed = torch.Generator().seed() if self.seed is None else self.seed
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad(), preserve_model_state(self.model, "eval"):
            # the model gets copies only: the clean pass a copy of the call's own copy, each
            # query its rows (copies too); a write into an attacked one is an error (InputWrites)
            writes = InputWrites(self.model, clean, attacked)
            clean = {n: x.clone() for n, x in clean.items()}
            return self._run(clean, labels, attacked, gen, writes)

    def _query(self, query: dict[str, Tensor], batch: int, writes: InputWrites) -> AVOutput:
        """The model's output on ``query``, tensors made for this query alone."""
        before = writes.before(query)
        out = self._loop._forward(query, batch)
        writes.check(query, before, restore=False)
        return out

    def _run(
        self,
        clean: dict[str, Tensor],
        labels: Tensor,
        attacked: list[str],
        gen: torch.Generator,
        writes: InputWrites,
    ) -> AttackResult:
        batch = labels.shape[0]
        device = next(iter(clean.values())).device
        out = self._query({n: x.clone() for n, x in clean.items()}, batch, writes)
        check_clean_logits(out.logits)
        labels = check_labels(labels.to(device), out.logits)
        clean_loss = self._loop._score(out, labels)
        check_clean_logits(out.logits, clean_loss)
        best = _Best(clean_loss, {n: clean[n] for n in attacked}, out.logits)
        broken = untargeted_success(out.logits, labels)[0]
        eps = {n: self.budgets[n].radius(clean[n]) for n in attacked}
        project = {n: self.budgets[n].ball(clean[n], eps[n]) for n in attacked}
        used = torch.zeros(batch, dtype=torch.int64, device=device)
        bar = _progress_bar(self.queries, self.progress)
        for i in range(self.queries if attacked else 0):
            rows = (~broken).nonzero().flatten()
            if rows.numel() == 0:
                break
            candidate = {}
            for n in attacked:
                if i == 0:
                    proposal = clean[n] + _first_candidate(clean[n], eps[n], gen)
                else:
                    p = p_schedule(self.p_init, i - 1, self.queries)
                    proposal = _window_candidate(
                        clean[n], best.inputs[n], eps[n], p, gen, project[n]
                    )
                candidate[n] = project[n](proposal)
            query = {n: (candidate[n] if n in candidate else x)[rows] for n, x in clean.items()}
            out = self._query(query, rows.numel(), writes)
            best.offer(rows, self._loop._score(out, labels[rows]), query, out.logits)
            used[rows] += 1
            broken = untargeted_success(best.logits, labels)[0]
            bar.update(1)
        bar.close()
        self.queries_used = used
        success, frame_success = untargeted_success(best.logits, labels)
        adv = {n: best.inputs[n] if n in best.inputs else x.clone() for n, x in clean.items()}
        return AttackResult(
            inputs=adv,
            success=success,
            logits=best.logits,
            loss=best.loss,
            clean_loss=clean_loss,
            frame_success=frame_success,
            perturbations={n: adv[n] - clean[n] for n in attacked},
        )


class _Best:
    """Per sample, the best candidate so far; a candidate replaces it only when its objective is
    strictly higher (a candidate with NaN objective or NaN/Inf logits never does)."""

    def __init__(self, loss: Tensor, inputs: dict[str, Tensor], logits: Tensor) -> None:
        self.loss = loss.clone()
        self.inputs = {n: x.clone() for n, x in inputs.items()}
        self.logits = logits.clone()

    def offer(
        self, rows: Tensor, loss: Tensor, inputs: Mapping[str, Tensor], logits: Tensor
    ) -> None:
        better = (loss > self.loss[rows]) & finite_rows(logits)
        take = rows[better]
        self.loss[take] = loss[better]
        self.logits[take] = logits[better]
        for n in self.inputs:
            self.inputs[n][take] = inputs[n][better]


def _layout(x: Tensor) -> tuple[int, tuple[int, ...]]:
    """``(channels, window axes' sizes)`` of a modality: the last axis for ``ndim <= 3``, the
    last two (frames' height and width) otherwise; the axes between batch and them are channels.
    A 1-D modality ``(B,)`` (one value per clip) is one channel of one element."""
    if x.ndim == 1:
        return 1, (1,)
    k = 1 if x.ndim <= 3 else 2
    spatial = tuple(x.shape[x.ndim - k :])
    return math.prod(x.shape[1 : x.ndim - k]), spatial


def _signs(shape: tuple[int, ...], gen: torch.Generator, like: Tensor) -> Tensor:
    draw = torch.randint(0, 2, shape, generator=gen).to(device=like.device, dtype=like.dtype)
    return draw * 2 - 1


def _first_candidate(x: Tensor, eps: Tensor, gen: torch.Generator) -> Tensor:
    """The paper's first perturbation: stripes at ``±eps`` (one sign per column, frame and
    channel) for 2-d windows, independent signs for 1-d ones."""
    channels, spatial = _layout(x)
    shape = (x.shape[0], channels) + (1,) * (len(spatial) - 1) + spatial[-1:]
    signs = _signs(shape, gen, x).expand((x.shape[0], channels, *spatial))
    return signs.reshape(x.shape) * eps


def _window_candidate(
    x: Tensor, current: Tensor, eps: Tensor, p: float, gen: torch.Generator, project: Any
) -> Tensor:
    """``current`` (the best input so far) with one random window per sample set to
    ``x ± eps`` (one sign per channel); a sample whose candidate would equal ``current`` (same
    signs there already) gets the opposite signs. Returned before projection."""
    channels, spatial = _layout(x)
    b, k = x.shape[0], len(spatial)
    mask = torch.ones((b,) + (1,) * k, dtype=torch.bool, device=x.device)
    for axis, size in enumerate(spatial):
        side = max(1, min(size, round(p ** (1 / k) * size)))
        start = torch.randint(0, size - side + 1, (b,), generator=gen).to(x.device)
        pos = torch.arange(size, device=x.device)
        inside = (pos >= start[:, None]) & (pos < start[:, None] + side)
        mask = mask & inside.view((b,) + (1,) * axis + (size,) + (1,) * (k - axis - 1))
    mask = mask.unsqueeze(1)  # (B, 1, *spatial)
    signs = _signs((b, channels) + (1,) * k, gen, x)
    view = (b, channels, *spatial)
    eps_view = eps.expand(x.shape).reshape(view)  # per-sample or per-dimension radii
    base, old = x.reshape(view), current.reshape(view)
    new = torch.where(mask, base + signs * eps_view, old)
    same = (project(new.reshape(x.shape)) == current).reshape(b, -1).all(dim=1)
    if bool(same.any()):
        flipped = torch.where(mask, base - signs * eps_view, old)
        new = torch.where(same.view((b,) + (1,) * (k + 1)), flipped, new)
    return new.reshape(x.shape)


def _progress_bar(total: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="square", unit="query", leave=False, disable=not show)
