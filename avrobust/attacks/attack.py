"""The one attack loop: :class:`MultimodalAttack`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_bool, check_choice, check_int, describe, known_options, raised_in
from .._types import AttackResult, AVOutput
from ..adapters import as_avoutput
from ._call_checks import check_call, check_no_inference_tensors
from ._candidates import Candidates, mean_over_passes, successes
from ._guards import (
    Diagnostics,
    check_clean_logits,
    check_logits,
    finite_rows,
    gradients,
    random_starts,
    warn_batchnorm_in_training,
    warn_below_resolution,
)
from ._model_state import InputWrites, preserve_model_state
from .budgets import BUDGET_OPTIONS, Budget, as_budgets
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
        model: any ``nn.Module`` called as ``model(**inputs)`` (its forward takes the modality
            names as keywords) that returns :class:`avrobust.AVOutput` or a logits tensor (use
            :func:`avrobust.wrap` otherwise; logits that look like probabilities warn).
            Whatever its forward writes into itself is undone after the call (see
            :func:`avrobust.preserve_model_state`); it may write in place into the inputs that
            are not attacked (each pass gets the clean values again), not into attacked ones.
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
            per-sample losses; names are case-insensitive. The attack maximises it (gradient of
            its sum over the batch, so each sample's update is independent of the others).
        targeted: ``labels`` are target classes and the attack minimises the objective towards them.
        seed: seeds the random starts, restart ``k`` from its own generator seeded by ``seed``
            and ``k`` (so ``max_batch`` changes nothing); the global RNG is never used or
            reseeded. ``None`` draws a fresh seed each call.
        keep: ``"best"`` (default): per sample, the candidate with the highest objective among
            the clean input, every iterate and every restart, so the result never scores below
            the clean input. ``"last"``: the final iterate (the best restart by final objective),
            as torchattacks, ART and Foolbox return it.
        model_mode: ``"eval"`` (default) runs the model in eval mode; ``"current"`` runs it as it
            is (e.g. dropout active). Either way every module's flag, parameter and buffer
            (BatchNorm statistics) is restored afterwards.
        max_batch: how many samples a forward of batched restarts may hold; it chunks whole
            restarts and never splits the batch: the ``R`` restarts of a batch of ``B`` run in
            chunks of ``k = max(1, min(R, max_batch // B))`` restarts, each forward holding
            ``k·B`` samples (``B``, more than ``max_batch``, when ``max_batch < B``). The clean
            pass and rules without restarts always run the ``B`` samples together. ``None``: all
            ``R`` at once. The results do not depend on it unless the model mixes the clips of a
            batch (see :func:`avrobust.batch_coupling`).
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

    @known_options(
        BUDGET_OPTIONS | {"restarts": "restarts are the rule's: rule=avrobust.PGD(restarts=2)"}
    )
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
        """The call's checks (``_call_checks.check_call``), warning at the caller's caller."""
        return check_call(self.model, self.budgets, inputs, labels, stacklevel=3)

    # ------------------------------------------------------------------ the loop
    def __call__(self, inputs: Mapping[str, Tensor], labels: Tensor) -> AttackResult:
        """Attack a batch.

        Args:
            inputs: ``{modality: (B, ...)}`` clean inputs (e.g. audio ``(B, S)`` or ``(B, C, S)``,
                video ``(B, T, H, W)`` or ``(B, T, C, H, W)``), float16/32/64, inside each budget's
                bounds, in its units (else a warning). Never modified: the model gets one copy
                per call.
            labels: ``(B,)`` clip labels or ``(B, T)`` frame labels (class indices; targets when
                ``targeted``).

        Returns:
            :class:`avrobust.AttackResult`.

        Raises:
            ValueError: an empty batch; a ``meta`` input; an attacked modality without elements;
                a model whose parameters or buffers are inference tensors;
                logits not ``(B, C)``/``(B, T, C)`` with ``C >= 2`` for the inputs' ``B``, or
                NaN/Inf at the clean inputs; labels of another shape (one-hot ones say to use
                ``labels.argmax(-1)``); a head that does not fit the labels; detached
                objective losses; a forward that writes in place into an attacked input.
            TypeError: a floating input whose dtype is not the model's parameter dtype (nothing
                is cast silently); non-float logits; float labels (the message says how to
                convert them); a model not made by ``wrap`` whose forward does not take the
                modality names as keywords.
        """
        clean, labels, attacked = self._check_call(inputs, labels)
        if attacked:
            check_no_inference_tensors(self.model)
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
            # one copy per call: the model never reaches the caller's tensors (InputWrites)
            writes = InputWrites(self.model, clean, attacked)
            clean = {n: x.detach().clone() for n, x in clean.items()}
            labels = labels.clone() if labels.is_inference() else labels  # saved for backward
            result, diagnostics = self._run(clean, labels, attacked, seed, writes)
        diagnostics.report(self.keep, stacklevel=3)
        return result

    def _forward(self, inputs: Mapping[str, Tensor], batch: int) -> AVOutput:
        shapes = ", ".join(f"{n} {tuple(x.shape)} {x.dtype}" for n, x in inputs.items())
        with raised_in(f"the model ({type(self.model).__name__}), called with {shapes}"):
            raw = self.model(**inputs)
        out = as_avoutput(raw)
        check_logits(out.logits, batch)
        return out

    def _score(self, out: AVOutput, labels: Tensor) -> Tensor:
        loss = self.objective(out, labels)
        if not isinstance(loss, Tensor) or loss.shape != (labels.shape[0],):
            got = tuple(loss.shape) if isinstance(loss, Tensor) else describe(loss)
            raise ValueError(
                f"objective: expected per-sample losses of shape ({labels.shape[0]},), got {got}"
            )
        if not loss.is_floating_point():
            raise TypeError(
                f"objective: expected floating-point per-sample losses, got dtype {loss.dtype} "
                "(an argmax or a count has no gradient to follow); return a differentiable "
                "score such as the logits' margin"
            )
        return -loss if self.targeted else loss

    def _run(
        self,
        clean: dict[str, Tensor],
        labels: Tensor,
        attacked: list[str],
        seed: int,
        writes: InputWrites,
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
                    clean, labels, [], diagnostics, writes, first=True
                )
            check_clean_logits(logits, clean_loss)
            if self.keep == "best" or not attacked:
                hit = self._hits(logits, labels)
                best.offer(clean_loss, {n: clean[n] for n in attacked}, logits, hit)
        for start in range(0, restarts if attacked else 0, chunk):
            r = min(chunk, restarts - start)
            found, first_loss = self._run_chunk(
                clean, labels, attacked, range(start, start + r), seed, (diagnostics, writes)
            )
            if clean_loss is None:
                clean_loss = first_loss
            for i in range(r):
                best.offer(*found.part(slice(i * batch, (i + 1) * batch)))
        return self._result(clean, labels, best, clean_loss, diagnostics), diagnostics

    def _hits(self, logits: Tensor, labels: Tensor) -> Tensor | None:
        """Per-sample rank of a candidate, for rules whose best candidate is a successful one
        first: success (0 or 1) for clip labels, the number of successful frames for frame
        labels (more frames wrong, or hitting their target, ranks higher)."""
        if not getattr(self.rule, "prefer_success", False):
            return None
        success, frames = successes(logits, labels, self.targeted)
        return (success if frames is None else frames.sum(dim=1)).long()

    def _evaluate(
        self,
        x: dict[str, Tensor],
        y: Tensor,
        attacked: list[str],
        diagnostics: Diagnostics,
        writes: InputWrites,
        *,
        first: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor | None]]:
        """The objective at ``x`` over ``eot_samples`` passes: ``(labels, loss, logits, grads)``,
        each the mean over the passes (detached); ``grads`` w.r.t. ``x[attacked]`` (``None``
        where no pass reached a modality). ``first`` checks the labels against the logits (and
        whether they look like probabilities). ``writes`` catches a forward writing into ``x``."""
        losses, logits, grads = [], [], []
        for _ in range(self.eot_samples):
            before = writes.before(x)
            try:
                out = self._forward(x, y.shape[0])
            except RuntimeError as error:
                clear = writes.translate(error)
                if clear is error:
                    raise
                raise clear from error
            if first:
                y, first = check_labels(y, out.logits), False
                diagnostics.output(self.model, out.logits)
            diagnostics.logits(out.logits)
            loss = self._score(out, y)
            if attacked:
                grads.append(gradients(loss, out.logits, [x[n] for n in attacked]))
            writes.check(x, before)  # after the backward pass, which may need the values
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
        watch: tuple[Diagnostics, InputWrites],
    ) -> tuple[Candidates, Tensor | None]:
        diagnostics, writes = watch
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
            y, loss, logits, grads = self._evaluate(
                x, y, attacked, diagnostics, writes, first=t == 0
            )
            if t == 0 and not self.rule.random_start:  # the first iterate is the clean input
                check_clean_logits(logits, loss)
                first_loss = loss[: labels.shape[0]]
            if self.keep == "best":
                found.offer(loss, {n: x[n] for n in attacked}, logits, self._hits(logits, y))
            with torch.no_grad():
                g = {n: diagnostics.gradient(n, gn, x[n]) for n, gn in zip(attacked, grads)}
                run.step = t
                x.update(self.rule.update({n: x[n].detach() for n in attacked}, g, loss, run))
        with torch.no_grad():
            y, loss, logits, _ = self._evaluate(x, y, [], diagnostics, writes)
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
        adv = {n: chosen.get(n, x) for n, x in clean.items()}  # clean: the call's own copy
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
