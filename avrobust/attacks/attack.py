"""The one attack loop: :class:`MultimodalAttack`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import (
    check_bool,
    check_choice,
    check_int,
    check_labels_batch,
    check_tensor_dict,
    describe,
)
from .._types import AttackResult, AVOutput
from ..adapters import as_avoutput
from ._candidates import Candidates, mean_over_passes, successes
from ._guards import (
    Diagnostics,
    check_clean_logits,
    check_input_dtypes,
    check_logits,
    finite_extremes,
    finite_rows,
    gradients,
    preserve_model_state,
    random_starts,
    warn_batchnorm_in_training,
    warn_below_resolution,
)
from .budgets import Budget, as_budgets
from .objectives import Objective, as_objective, check_labels
from .rules import StepContext, StepRule, as_rule

__all__ = ["MultimodalAttack", "preserve_model_state"]


def _repeat(x: Tensor, times: int) -> Tensor:
    return x if times == 1 else x.repeat((times,) + (1,) * (x.ndim - 1))


class MultimodalAttack:
    r"""A gradient attack on a multi-input model, with one budget per modality.

    One loop for every rule: start (clean input, or a random point of each budget's ball) →
    forward → objective → ``torch.autograd.grad`` w.r.t. the attacked inputs only → the rule's
    update (by default: its direction, then each budget's step, projection onto its ball and
    clamp into its valid range; APGD moves all modalities itself). All attacked modalities move together in each step (the joint attack of Push-Pull
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
            :class:`avrobust.PGD`, :class:`avrobust.APGD`, or their names ``"fgsm"``, ``"bim"``,
            ``"mim"``, ``"pgd"``, ``"apgd"``.
        steps: iterations (>= 1); FGSM always takes one.
        objective: ``"training"`` (weighted cross-entropy over the logits and every extra head;
            head weights from ``model.head_weights`` when present, else 1.0 — TalkNet's are 0.4),
            ``"inference"`` (logits only), ``"margin"`` (:class:`avrobust.MarginObjective`, the
            Carlini–Wagner margin), ``"dlr"`` (:class:`avrobust.DLRObjective`, its targeted form
            when ``targeted``), or a callable ``(AVOutput, labels) -> (B,)`` returning
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
        eot_samples: expectation over transformation (Athalye et al., 2018) for randomised
            models or defenses: every evaluation runs ``eot_samples`` forward (and backward)
            passes one after the other, and the attack uses their mean gradient, mean objective
            and mean logits (also for the clean inputs, the best candidate and the result).
            Works with every rule. ``1`` (default) is one pass, exactly as without it.

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
        eot_samples: int = 1,
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
        check_bool(targeted, "targeted")
        self.targeted = targeted
        self.objective = as_objective(objective, model, targeted=targeted)
        self.seed = None if seed is None else check_int(seed, "seed", min_value=0)
        self.keep = check_choice(keep, "keep", ("best", "last"))
        self.model_mode = check_choice(model_mode, "model_mode", ("eval", "current"))
        self.max_batch = (
            None if max_batch is None else check_int(max_batch, "max_batch", min_value=1)
        )
        self.eot_samples = check_int(eot_samples, "eot_samples", min_value=1)

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
        extremes = {}
        for name, x in inputs.items():
            if x.is_floating_point():
                extremes[name] = finite_extremes(x, f"inputs[{name!r}]")
            elif name in attacked:  # uint8 frames: perturbing needs floats (issue 12)
                raise TypeError(
                    f"inputs[{name!r}]: expected a floating-point tensor (an attacked input is "
                    f"perturbed in floats), got dtype {x.dtype}; pass floats in the same range "
                    f"(uint8 frames as x.float(), values 0-255, bounds (0, 255)); a model that "
                    f"wants another "
                    f"form converts inside: avrobust.wrap(model, transforms={{{name!r}: ...}})"
                )
        for name in attacked:
            bounds, (low, high) = self.budgets[name].bounds, extremes[name]
            if bounds is not None and (low < bounds[0] or high > bounds[1]):
                raise ValueError(
                    f"inputs[{name!r}]: values must lie inside budgets[{name!r}].bounds = "
                    f"({bounds[0]:g}, {bounds[1]:g}), got min {low:g}, max {high:g}"
                )
        check_input_dtypes(self.model, inputs)
        check_labels_batch(labels, next(iter(inputs.values())).shape[0])
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
                labels, clean_loss, logits, _ = self._evaluate(
                    clean, labels, [], diagnostics, first=True
                )
            check_clean_logits(logits)
            if self.keep == "best" or not attacked:
                hit = self._hits(logits, labels)
                best.offer(clean_loss, {n: clean[n] for n in attacked}, logits, hit)
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

    def _hits(self, logits: Tensor, labels: Tensor) -> Tensor | None:
        """Per-sample success, for rules whose best candidate is a successful one first."""
        prefer = getattr(self.rule, "prefer_success", False)
        return successes(logits, labels, self.targeted)[0] if prefer else None

    def _evaluate(
        self,
        x: dict[str, Tensor],
        y: Tensor,
        attacked: list[str],
        diagnostics: Diagnostics,
        *,
        first: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor | None]]:
        """The objective at ``x`` over ``eot_samples`` passes: ``(labels, loss, logits, grads)``,
        each the mean over the passes (detached); ``grads`` w.r.t. ``x[attacked]`` (``None``
        where no pass reached a modality). ``first`` checks the labels against the logits."""
        losses, logits, grads = [], [], []
        for _ in range(self.eot_samples):
            out = self._forward(x, y.shape[0])
            if first:
                y, first = check_labels(y, out.logits), False
            diagnostics.logits(out.logits)
            loss = self._score(out, y)
            if attacked:
                grads.append(gradients(loss, out.logits, [x[n] for n in attacked]))
            losses.append(loss.detach())
            logits.append(out.logits.detach())
        return (y, *mean_over_passes(losses, logits, grads, len(attacked)))

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
        run = StepContext(
            budgets={n: self.budgets[n] for n in attacked},
            eps=eps,
            alpha={n: self.budgets[n].step_size(x0[n], steps, r, single) for n in attacked},
            project={n: self.budgets[n].ball(x0[n], eps[n]) for n in attacked},
            steps=steps,
            states={n: {} for n in attacked},
        )
        x = dict(x0)
        if self.rule.random_start:
            for n, start in random_starts(self.budgets, x0, eps, restarts, seed).items():
                x[n] = run.project[n](start)
        found = Candidates()
        first_loss: Tensor | None = None
        for t in range(steps):
            for n in attacked:
                x[n] = x[n].detach().requires_grad_(True)
            y, loss, logits, grads = self._evaluate(x, y, attacked, diagnostics, first=t == 0)
            if t == 0 and not self.rule.random_start:  # the first iterate is the clean input
                check_clean_logits(logits)
                first_loss = loss[: labels.shape[0]]
            if self.keep == "best":
                found.offer(loss, {n: x[n] for n in attacked}, logits, self._hits(logits, y))
            with torch.no_grad():
                g = {n: diagnostics.gradient(n, gn, x[n]) for n, gn in zip(attacked, grads)}
                run.step = t
                x.update(self.rule.update({n: x[n].detach() for n in attacked}, g, loss, run))
        with torch.no_grad():
            y, loss, logits, _ = self._evaluate(x, y, [], diagnostics)
        found.offer(loss, {n: x[n] for n in attacked}, logits, self._hits(logits, y))
        return found, first_loss

    def _result(
        self,
        clean: dict[str, Tensor],
        labels: Tensor,
        best: Candidates,
        clean_loss: Tensor | None,
        diagnostics: Diagnostics,
    ) -> AttackResult:
        loss, chosen, logits, _ = best.part(slice(None))
        adv = {
            n: chosen[n] if n in chosen and chosen[n].data_ptr() != x.data_ptr() else x.clone()
            for n, x in clean.items()
        }
        labels = check_labels(labels, logits)
        diagnostics.final_bad = (~finite_rows(logits)).sum()
        success, frame_success = successes(logits, labels, self.targeted)
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
