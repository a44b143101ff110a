"""The one attack loop: :class:`MultimodalAttack`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import (
    check_bool,
    check_choice,
    check_finite_tensor,
    check_int,
    check_tensor,
    check_tensor_dict,
    describe,
)
from .._types import AttackResult, AVOutput
from ..adapters import as_avoutput
from ._guards import (
    Candidates,
    Diagnostics,
    check_clean_logits,
    check_input_dtypes,
    check_logits,
    finite_rows,
    gradients,
    restart_generator,
    warn_batchnorm_in_training,
    warn_below_resolution,
)
from .budgets import Budget, as_budgets
from .objectives import Objective, as_objective, check_labels
from .rules import StepRule, as_rule

__all__ = ["MultimodalAttack", "preserve_model_state"]


@contextmanager
def preserve_model_state(model: nn.Module, mode: str = "eval") -> Iterator[nn.Module]:
    """Run a block with ``model`` in ``mode`` and leave it exactly as it was afterwards.

    Every submodule's ``training`` flag is recorded and restored one by one (so a model whose
    parts are in mixed modes keeps its mix), and every buffer (BatchNorm running statistics,
    ``num_batches_tracked``) is copied back, so even a forward in training mode leaves no trace.
    Parameters, their ``requires_grad`` flags and ``.grad`` are never touched here.

    Args:
        model: the model.
        mode: ``"eval"`` puts the whole model in eval mode for the block; ``"current"`` leaves
            the flags as they are (dropout stays active in a model left in training mode).
    """
    flags = [(module, module.training) for module in model.modules()]
    saved = [(buf, buf.detach().clone()) for buf in model.buffers()]
    try:
        if mode == "eval":
            model.eval()
        yield model
    finally:
        with torch.no_grad():
            for buf, copy in saved:
                buf.copy_(copy)
        for module, flag in flags:
            module.training = flag


def _repeat(x: Tensor, times: int) -> Tensor:
    return x if times == 1 else x.repeat((times,) + (1,) * (x.ndim - 1))


class MultimodalAttack:
    r"""A gradient attack on a multi-input model, with one budget per modality.

    One loop for every rule: start (clean input, or a random point of each budget's ball) →
    forward → objective → ``torch.autograd.grad`` w.r.t. the attacked inputs only → the rule's
    update direction → each budget's step, projection onto its ball and clamp into its valid
    range. All attacked modalities move together in each step (the joint attack of Push-Pull
    eq. 5), each with its own ``eps``, step size and range.

    Whatever the model does, the returned inputs are finite and inside each budget's ball and
    bounds. NaN/Inf gradient elements are set to 0 for their step; NaN/Inf logits at the clean
    inputs are an error (naming the samples); an iterate with NaN/Inf logits is never kept as
    the best candidate nor counted as a success. Each call warns once per finding: NaN/Inf
    gradient elements (per modality, with their count), a modality that never received a
    gradient, samples that met NaN/Inf logits, a budget finer than the input dtype can hold.

    Only ``model`` and ``budgets`` are positional; every option after them is keyword-only, so a
    call reads ``MultimodalAttack(model, budgets, rule="pgd", steps=10, seed=0)``.

    Args:
        model: any ``nn.Module`` called as ``model(**inputs)`` that returns
            :class:`avrobust.AVOutput` or a logits tensor (use :func:`avrobust.wrap` otherwise).
        budgets: ``{modality: Linf(...) | L2(...)}`` (required). A modality of the inputs without
            a budget, or with ``eps`` 0, is not attacked and comes back bit-identical (``{}`` just
            scores the clean inputs). A bare number is read as an unbounded ``Linf``.
        rule: :class:`avrobust.FGSM`, :class:`avrobust.BIM`, :class:`avrobust.MIM`,
            :class:`avrobust.PGD`, or their names ``"fgsm"``, ``"bim"``, ``"mim"``, ``"pgd"``.
        steps: iterations (>= 1); FGSM always takes one.
        objective: ``"training"`` (weighted cross-entropy over the logits and every extra head;
            head weights from ``model.head_weights`` when present, else 1.0 — TalkNet's are 0.4),
            ``"inference"`` (logits only), or a callable ``(AVOutput, labels) -> (B,)`` returning
            per-sample losses. The attack maximises it (gradient of its sum over the batch, so
            each sample's update is independent of the others).
        targeted: ``labels`` are target classes and the attack minimises the objective towards them.
        seed: seeds the random starts, restart ``k`` from its own generator seeded by ``seed``
            and ``k`` (so ``max_batch`` changes nothing); the global RNG is never used or
            reseeded. ``None`` draws a fresh seed each call.
        keep: ``"best"`` (default): per sample, the candidate with the highest objective among
            the clean input, every iterate and every restart, so the result never scores below
            the clean input. ``"last"``: the final iterate (the best restart by final objective),
            as torchattacks, ART and Foolbox return it.
        model_mode: ``"eval"`` (default) runs the model in eval mode; ``"current"`` runs it as it
            is (e.g. dropout active). Either way every module's flag and every buffer (BatchNorm
            statistics) is restored afterwards.
        max_batch: the most samples per forward when restarts are batched: ``R`` restarts of a
            batch of ``B`` run in chunks of ``max(1, max_batch // B)`` restarts. ``None``: all at once.

    Raises:
        ValueError, TypeError: on bad arguments, each naming the argument, what was expected and
            what came.

    Example:
        >>> import torch, avrobust
        >>> from avrobust.testing import TinyAV
        >>> model = TinyAV()
        >>> attack = avrobust.MultimodalAttack(
        ...     model, avrobust.push_pull_budgets(5), rule=avrobust.PGD(), steps=5, seed=0)
        >>> inputs = {"audio": torch.rand(2, 640) * 2 - 1, "visual": torch.rand(2, 4, 16, 16) * 255}
        >>> result = attack(inputs, torch.tensor([0, 1]))
        >>> bool((result.inputs["visual"] - inputs["visual"]).abs().max() <= 0.5 + 1e-4)
        True
    """

    def __init__(
        self,
        model: nn.Module,
        budgets: Mapping[str, Budget | float],
        *,
        rule: StepRule | str = "pgd",
        steps: int = 10,
        objective: str | Objective = "training",
        targeted: bool = False,
        seed: int | None = None,
        keep: str = "best",
        model_mode: str = "eval",
        max_batch: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {describe(model)}")
        if budgets is None:
            raise TypeError(
                "budgets: expected a dict such as {'visual': avrobust.Linf(0.5, bounds=(0, 255))}, "
                "got None"
            )
        self.model = model
        self.rule = as_rule(rule)
        self.budgets = as_budgets(budgets)
        self.steps = check_int(steps, "steps", min_value=1)
        self.objective = as_objective(objective, model)
        check_bool(targeted, "targeted")
        self.targeted = targeted
        self.seed = None if seed is None else check_int(seed, "seed", min_value=0)
        self.keep = check_choice(keep, "keep", ("best", "last"))
        self.model_mode = check_choice(model_mode, "model_mode", ("eval", "current"))
        self.max_batch = (
            None if max_batch is None else check_int(max_batch, "max_batch", min_value=1)
        )

    def __repr__(self) -> str:
        return (
            f"MultimodalAttack(budgets={self.budgets}, rule={self.rule!r}, steps={self.steps}, "
            f"targeted={self.targeted}, keep={self.keep!r})"
        )

    # ------------------------------------------------------------------ checks
    def _check_call(self, inputs: Any, labels: Any) -> tuple[dict[str, Tensor], Tensor, list[str]]:
        inputs = check_tensor_dict(inputs, "inputs")
        if next(iter(inputs.values())).shape[0] == 0:
            shapes = {n: tuple(x.shape) for n, x in inputs.items()}
            raise ValueError(
                f"inputs: expected a batch of at least one sample, got batch size 0 ({shapes})"
            )
        for name in self.budgets:
            if name not in inputs:
                raise ValueError(
                    f"budgets: there is a budget for modality {name!r}, but the inputs have only "
                    f"{sorted(inputs)}"
                )
        attacked = [n for n in inputs if n in self.budgets and not self.budgets[n].is_zero]
        for name, x in inputs.items():
            if x.is_floating_point():
                check_finite_tensor(x, f"inputs[{name!r}]")
            elif name in attacked:
                check_tensor(x, f"inputs[{name!r}]", floating=True)
        for name in attacked:
            bounds = self.budgets[name].bounds
            x = inputs[name]
            if bounds is not None and (float(x.min()) < bounds[0] or float(x.max()) > bounds[1]):
                raise ValueError(
                    f"inputs[{name!r}]: values must lie inside budgets[{name!r}].bounds = "
                    f"({bounds[0]:g}, {bounds[1]:g}), got min {float(x.min()):g}, "
                    f"max {float(x.max()):g}"
                )
        check_input_dtypes(self.model, inputs)
        check_tensor(labels, "labels")
        batch = next(iter(inputs.values())).shape[0]
        if labels.ndim == 0 or labels.shape[0] != batch:
            raise ValueError(
                f"labels: expected a batch dimension of {batch} (as the inputs), "
                f"got shape {tuple(labels.shape)}"
            )
        return inputs, labels, attacked

    # ------------------------------------------------------------------ the loop
    def __call__(self, inputs: Mapping[str, Tensor], labels: Tensor) -> AttackResult:
        """Attack a batch.

        Args:
            inputs: ``{modality: (B, ...)}`` clean inputs (e.g. audio ``(B, S)`` or ``(B, C, S)``,
                video ``(B, T, H, W)`` or ``(B, T, C, H, W)``), float16/32/64, inside each budget's
                bounds. Never modified.
            labels: ``(B,)`` clip labels or ``(B, T)`` frame labels (class indices; targets when
                ``targeted``).

        Returns:
            :class:`avrobust.AttackResult`.

        Raises:
            ValueError: an empty batch; logits not ``(B, C)``/``(B, T, C)`` with ``C >= 2`` for
                the inputs' ``B``, or NaN/Inf at the clean inputs; detached objective losses.
            TypeError: a floating input whose dtype is not the model's parameter dtype (nothing
                is cast silently); non-float logits.
        """
        clean, labels, attacked = self._check_call(inputs, labels)
        if self.model_mode == "current":
            warn_batchnorm_in_training(self.model)
        steps = self.rule.fixed_steps or self.steps
        warn_below_resolution(self.budgets, clean, attacked, steps, self.rule.fixed_steps == 1)
        seed = torch.Generator().seed() if self.seed is None else self.seed
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            preserve_model_state(self.model, self.model_mode),
        ):
            clean = {n: x.clone() if x.is_inference() else x.detach() for n, x in clean.items()}
            result, diagnostics = self._run(clean, labels, attacked, seed)
        diagnostics.report(self.keep, stacklevel=3)
        return result

    def _forward(self, inputs: Mapping[str, Tensor], batch: int) -> AVOutput:
        out = as_avoutput(self.model(**inputs))
        check_logits(out.logits, batch)
        return out

    def _score(self, out: AVOutput, labels: Tensor) -> Tensor:
        loss = self.objective(out, labels)
        if not isinstance(loss, Tensor) or loss.shape != (labels.shape[0],):
            got = tuple(loss.shape) if isinstance(loss, Tensor) else describe(loss)
            raise ValueError(
                f"objective: expected per-sample losses of shape ({labels.shape[0]},), got {got}"
            )
        return -loss if self.targeted else loss

    def _run(
        self, clean: dict[str, Tensor], labels: Tensor, attacked: list[str], seed: int
    ) -> tuple[AttackResult, Diagnostics]:
        batch = labels.shape[0]
        restarts = self.rule.restarts if self.rule.random_start else 1
        chunk = (
            restarts if self.max_batch is None else max(1, min(restarts, self.max_batch // batch))
        )
        device = next(iter(clean.values())).device
        labels = labels.to(device)
        diagnostics = Diagnostics(attacked, batch, device)
        diagnostics.random_start = self.rule.random_start
        best = Candidates()
        clean_loss: Tensor | None = None
        if self.rule.random_start or not attacked:  # else the first step evaluates the clean inputs
            with torch.no_grad():
                out = self._forward(clean, batch)
                check_clean_logits(out.logits)
                labels = check_labels(labels, out.logits)
                clean_loss = self._score(out, labels).detach()
            if self.keep == "best" or not attacked:
                best.offer(clean_loss, {n: clean[n] for n in attacked}, out.logits.detach())
        for start in range(0, restarts if attacked else 0, chunk):
            r = min(chunk, restarts - start)
            found, first_loss = self._run_chunk(
                clean, labels, attacked, range(start, start + r), seed, diagnostics
            )
            if clean_loss is None:
                clean_loss = first_loss
            for i in range(r):
                best.offer(*found.part(slice(i * batch, (i + 1) * batch)))
        return self._result(clean, labels, best, clean_loss, diagnostics), diagnostics

    def _random_starts(
        self, x0: dict[str, Tensor], eps: dict[str, Tensor], restarts: range, seed: int
    ) -> dict[str, Tensor]:
        """Each restart's start from its own generator: the same whatever the chunking."""
        batch = next(iter(x0.values())).shape[0] // len(restarts)
        parts: dict[str, list[Tensor]] = {n: [] for n in eps}
        for i, restart in enumerate(restarts):
            gen, rows = restart_generator(seed, restart), slice(i * batch, (i + 1) * batch)
            for n in eps:
                parts[n].append(self.budgets[n].random_start(x0[n][rows], eps[n][rows], gen))
        return {n: torch.cat(p) if len(p) > 1 else p[0] for n, p in parts.items()}

    def _run_chunk(
        self,
        clean: dict[str, Tensor],
        labels: Tensor,
        attacked: list[str],
        restarts: range,
        seed: int,
        diagnostics: Diagnostics,
    ) -> tuple[Candidates, Tensor | None]:
        r = len(restarts)
        x0 = {n: _repeat(x, r) for n, x in clean.items()}
        y = _repeat(labels, r)
        steps = self.rule.fixed_steps or self.steps
        single = self.rule.fixed_steps == 1
        eps = {n: self.budgets[n].radius(x0[n], r) for n in attacked}
        alpha = {n: self.budgets[n].step_size(x0[n], steps, r, single) for n in attacked}
        project = {n: self.budgets[n].ball(x0[n], eps[n]) for n in attacked}
        x = dict(x0)
        if self.rule.random_start:
            for n, start in self._random_starts(x0, eps, restarts, seed).items():
                x[n] = project[n](start)
        states: dict[str, dict[str, Tensor]] = {n: {} for n in attacked}
        found = Candidates()
        first_loss: Tensor | None = None
        for t in range(steps):
            for n in attacked:
                x[n] = x[n].detach().requires_grad_(True)
            out = self._forward(x, y.shape[0])
            if t == 0:
                y = check_labels(y, out.logits)
                if not self.rule.random_start:  # the first iterate is the clean input
                    check_clean_logits(out.logits)
            diagnostics.logits(out.logits)
            loss = self._score(out, y)
            if t == 0 and not self.rule.random_start:
                first_loss = loss.detach()[: labels.shape[0]]
            if self.keep == "best":
                found.offer(loss.detach(), {n: x[n] for n in attacked}, out.logits.detach())
            grads = gradients(loss, out.logits, [x[n] for n in attacked])
            with torch.no_grad():
                for n, g in zip(attacked, grads):
                    d = self.rule.direction(diagnostics.gradient(n, g, x[n]), states[n])
                    x[n] = project[n](self.budgets[n].step(x[n].detach(), d, alpha[n]))
        with torch.no_grad():
            out = self._forward(x, y.shape[0])
            diagnostics.logits(out.logits)
            found.offer(
                self._score(out, y).detach(), {n: x[n] for n in attacked}, out.logits.detach()
            )
        return found, first_loss

    def _result(
        self,
        clean: dict[str, Tensor],
        labels: Tensor,
        best: Candidates,
        clean_loss: Tensor | None,
        diagnostics: Diagnostics,
    ) -> AttackResult:
        loss, chosen, logits = best.part(slice(None))
        adv = {
            n: chosen[n] if n in chosen and chosen[n].data_ptr() != x.data_ptr() else x.clone()
            for n, x in clean.items()
        }
        labels = check_labels(labels, logits)
        pred = logits.argmax(dim=-1)
        hit = pred == labels if self.targeted else pred != labels
        finite = finite_rows(logits)  # NaN/Inf logits never count as a success
        diagnostics.final_bad = (~finite).sum()
        hit = hit & finite.view((-1,) + (1,) * (hit.ndim - 1))
        frame_success = hit if hit.ndim == 2 else None
        success = hit if hit.ndim == 1 else hit.float().mean(dim=1) > 0.5
        sign = -1.0 if self.targeted else 1.0
        return AttackResult(
            inputs=adv,
            success=success,
            logits=logits,
            loss=loss * sign,
            clean_loss=None if clean_loss is None else clean_loss * sign,
            frame_success=frame_success,
            perturbations={n: adv[n] - clean[n] for n in chosen},
        )
