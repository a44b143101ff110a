"""Computes the cells of an evaluation: attack the selected clips batch by batch, then measure
(:class:`~avrobust.evaluation.cell_measures.CellMeasures`).

A cell of a step rule attacks with :class:`~avrobust.MultimodalAttack`; a worst-case cell
(:class:`~avrobust.evaluation.WorstCase`) with the ensemble it builds, called the same way
batch by batch, whose per-attack breakdown (``broken_by``) is summed over the batches. Every
read of the data is checked against the pass that chose the clips (their content digests).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .._diagnose_checks import batch_coupling
from .._types import AttackResult
from ..attacks import Budget, EnsembleResult, MultimodalAttack
from ..attacks.units import MESSAGE_PATTERN, units_disagree, units_message
from .cell_measures import CellMeasures, psnr_peaks
from .data_checks import check_finite_scores
from .fingerprints import clip_digests
from .grid import Grid, GridCell
from .ranks import Ranks, gather_measures
from .recipes import WorstCase
from .results import CellResult
from .scoring import Measures, Scored, device_of, forward, to_device
from .sources import SAME_EVERY_PASS, Batch, Source

__all__ = ["CellMeasures", "CellRunner", "psnr_peaks"]

Attack = Callable[[Mapping[str, Tensor], Tensor], AttackResult]


class CellRunner:
    """Computes cells: attacks the selected clips batch by batch, then measures.

    Args:
        model: the target (scored).
        attacker: the model the perturbation is crafted on (the target, or a surrogate).
        source: the data.
        selection: the attacked clip indices.
        measures: how outputs are scored and which embeddings ECR compares.
        grid: the grid (its budgets, steps and objective; a worst-case cell builds its attack
            from the budgets and steps, :class:`~avrobust.evaluation.WorstCase`).
        measure: the headline measure of a binary task (``"ap"`` or ``"accuracy"``).
        ranks: this process's place among ``torch.distributed`` ranks: it attacks only the
            batches :meth:`Ranks.mine` gives it, and every rank gets the merged measures
            (:mod:`~avrobust.evaluation.ranks`); default one rank, every batch.
    """

    def __init__(
        self,
        model: nn.Module,
        attacker: nn.Module,
        source: Source,
        selection: list[int],
        measures: Measures,
        grid: Grid,
        *,
        measure: str = "ap",
        ranks: Ranks = Ranks(),  # noqa: B008 - frozen
    ) -> None:
        self.model, self.attacker, self.source = model, attacker, source
        self.measure, self.ranks = measure, ranks
        self.selection, self.measures, self.grid = selection, measures, grid
        self.device, self.attack_device = device_of(model), device_of(attacker)
        self._clean: dict[int, tuple[Scored, dict[str, Tensor]]] = {}
        self.digests: dict[int, bytes] | None = None
        self.ranges: Mapping[str, Sequence[float]] | None = None

    def prepare(
        self,
        cells: Sequence[GridCell],
        digests: Mapping[int, bytes],
        clean: Mapping[str, Any],
    ) -> None:
        """Before any attack: keep the selected clips' content digests (from the pass that chose
        them, on rank 0) to check every later read against, and the data's value ranges (the
        clean measures' ``ranges``); with cells to compute, refuse a task the worst case would
        not attack (:meth:`check_task`), warn once per modality whose data is in other units
        than its budgets' bounds, and on every rank but 0 read the selected clips once and
        compare them with rank 0's.

        Raises:
            ValueError: as :meth:`check_task`; a clip with other content than rank 0 read.
        """
        self.digests, self.ranges = dict(digests), clean.get("ranges")
        if not cells:
            return
        self.check_task(cells)
        self._check_surrogate()
        _warn_units(self.grid, cells, self.ranges)
        self._warn_coupling()
        if not self.ranks.main:
            seen: list[int] = []
            for part, (inputs, labels) in self.source.batches(self.selection):
                self._check_clips(part, inputs, labels)
                seen += part
            self._check_seen(seen)

    def _check_surrogate(self) -> None:
        """Refuse a surrogate that cannot be called as the target is, or whose logits have
        another class count ``C`` than the target's (another task: the labels would mean other
        classes to it), on the first batch of the selected clips."""
        if self.attacker is self.model:
            return
        for _, (inputs, _labels) in self.source.batches(self.selection):
            try:
                out = forward(self.attacker, to_device(inputs, self.attack_device))
            except TypeError as error:
                raise TypeError(f"surrogate: {error}") from error
            target = forward(self.model, to_device(inputs, self.device)).logits
            found = int(out.logits.shape[-1]) if out.logits.ndim else 0
            classes = int(target.shape[-1]) if target.ndim else 0
            if found != classes:
                raise ValueError(
                    f"surrogate: returns logits over {found} classes, but the target model's "
                    f"are over {classes}: a surrogate of another task, to which the labels "
                    "mean other classes; pass a surrogate of the target's task"
                )
            return

    def _warn_coupling(self) -> None:
        """Warn once when the first batch's clips change each other's logits
        (:func:`~avrobust.batch_coupling`, on the target and on a surrogate): the results then
        depend on ``batch_size`` and the attacks' batched restarts."""
        for _, (inputs, _labels) in self.source.batches(self.selection):
            models = {"model": self.model, "surrogate": self.attacker}
            for name, model in models.items():
                if name == "surrogate" and model is self.model:
                    continue
                inputs = to_device(inputs, device_of(model))
                found = batch_coupling(model, inputs)
                if found.coupled:
                    warnings.warn(f"evaluate: {name}: {found.sentence}", UserWarning, stacklevel=4)
            return

    def _check_clips(self, part: list[int], inputs: Mapping[str, Tensor], labels: Tensor) -> None:
        """Refuse clips whose content differs from the pass that chose them."""
        if self.digests is None:
            return
        for i, digest in zip(part, clip_digests(inputs, labels)):
            if self.digests.get(i) != digest:
                where = "" if self.ranks.world == 1 else f" (on rank {self.ranks.rank})"
                raise ValueError(
                    f"data: clip {i} has other content on this read{where} than when evaluate "
                    "chose the clips (on rank 0): the data changes between passes (a sampler "
                    "that shuffles or is reseeded, random augmentation) or between ranks. "
                    + SAME_EVERY_PASS
                )

    def _check_seen(self, seen: list[int]) -> None:
        if seen != self.selection:
            raise ValueError(
                f"data: a second pass over it gave {len(seen)} of the {len(self.selection)} "
                "selected clips. " + SAME_EVERY_PASS
            )

    def check_task(self, cells: Sequence[GridCell]) -> None:
        """Refuse, before any attack, worst-case cells of a task the ensemble would not attack:
        it attacks the model's ``C``-class task (cross-entropy and margin, the labels as class
        indices), so a ``C > 2`` model scored as a binary task (one score per label) is refused.

        Raises:
            ValueError: naming ``Grid.rules``.
        """
        worst = [c.key for c in cells if isinstance(c.rule, WorstCase)]
        if not worst:
            return
        for _, (inputs, labels) in self.source.batches(self.selection):
            inputs, labels = to_device(inputs, self.device), labels.to(self.device)
            scored, _ = self._clean_out(0, inputs, labels)
            break
        else:
            return
        if scored.binary and scored.classes > 2:
            raise ValueError(
                f"Grid.rules: the worst-case cells {worst} attack the model's {scored.classes}-"
                "class task (cross-entropy and margin with the labels as class indices), but "
                "Measures.score_fn scores a binary task (one score per label): they would "
                "measure another task than the one attacked. Use step rules with a callable "
                "Grid.objective of that task, or wrap the model to return 2-class logits"
            )

    def _clean_out(
        self, number: int, inputs: dict[str, Tensor], labels: Tensor
    ) -> tuple[Scored, dict[str, Tensor]]:
        """Batch ``number``'s clean scores and embeddings (computed once for every cell)."""
        if number not in self._clean:
            out = forward(self.model, inputs)
            names = self.measures.embedding_names(out, inputs)
            emb = {m: out.embeddings[e].detach() for m, e in names.items()}
            self._clean[number] = (self.measures.score(out, labels.cpu()), emb)
        return self._clean[number]

    def run(self, cell: GridCell, seed: int) -> CellResult:
        """Attack the selected clips as ``cell`` says (random start seeded by ``seed``) and
        measure.

        Raises:
            ValueError: the data lacks an attacked modality, or gives other clips (or other
                content) on this pass. With ranks, a rank's error is raised on every rank.
        """
        start = time.perf_counter()
        budgets = self.grid.budgets_at(cell.eps, cell.modalities)
        attack = self._attack(cell, budgets, seed)
        peaks = psnr_peaks(budgets, self.ranges)
        measures = CellMeasures(budgets, measure=self.measure, peaks=peaks)
        parts: list[tuple[int, CellMeasures]] = []
        failure: Exception | None = None
        try:
            with warnings.catch_warnings():
                # prepare() warned once for the whole data; the attack would repeat it per batch
                warnings.filterwarnings("ignore", MESSAGE_PATTERN, UserWarning)
                for number, part, (inputs, labels) in self._batches(cell):
                    if self.ranks.world > 1:  # one measures per batch, merged in batch order
                        measures = CellMeasures(budgets, measure=self.measure, peaks=peaks)
                        parts.append((number, measures))
                    self._attack_batch(attack, cell, (number, part), inputs, labels, measures)
        except Exception as error:  # with ranks: raised on every rank after the gather
            if self.ranks.world == 1:
                raise
            failure = error
        seconds = time.perf_counter() - start
        if self.ranks.world > 1:
            measures, seconds = gather_measures(self.ranks, parts, seconds, failure=failure)
        return measures.result(cell.rule_name, cell.eps, seconds)

    def _batches(self, cell: GridCell) -> Iterator[tuple[int, list[int], Batch]]:
        """This rank's batches of the selected clips, each checked against the pass that chose
        them before it is attacked; the whole pass is checked to give every selected clip."""
        seen: list[int] = []
        for number, (part, (inputs, labels)) in enumerate(self.source.batches(self.selection)):
            seen += part
            missing = [m for m in cell.modalities if m not in inputs]
            if missing:
                raise ValueError(
                    f"Grid.modalities: the data has no input {missing}; its inputs are "
                    f"{sorted(inputs)}"
                )
            if self.ranks.mine(number):
                self._check_clips(part, inputs, labels)
                yield number, part, (inputs, labels)
        self._check_seen(seen)

    def _attack(self, cell: GridCell, budgets: dict[str, Budget], seed: int) -> Attack:
        """The cell's attack on the attacker: its recipe's, or a step rule's."""
        if isinstance(cell.rule, WorstCase):
            return cell.rule.build(self.attacker, budgets, steps=self.grid.steps, seed=seed)
        return MultimodalAttack(
            self.attacker,
            budgets=budgets,
            rule=cell.rule,
            steps=self.grid.steps,
            objective=self.grid.objective,
            seed=seed,
        )

    def _attack_batch(
        self,
        attack: Attack,
        cell: GridCell,
        batch: tuple[int, list[int]],
        inputs: dict[str, Tensor],
        labels: Tensor,
        measures: CellMeasures,
    ) -> None:
        """Attack batch ``batch = (number, clip ids)`` and add its clean and adversarial
        measures to ``measures``."""
        number, part = batch
        inputs, labels = to_device(inputs, self.device), labels.to(self.device)
        clean_scores, clean_emb = self._clean_out(number, inputs, labels)
        result = attack(to_device(inputs, self.attack_device), labels.to(self.attack_device))
        adv = to_device(result.inputs, self.device)
        out = forward(self.model, adv)
        adv_scores = self.measures.score(out, labels.cpu())
        check_finite_scores(part, adv_scores, f"the adversarial inputs of cell {cell.key}")
        measures.add(clean_scores, adv_scores)
        if isinstance(result, EnsembleResult):
            measures.add_broken_by(result.broken_by)
        names = self.measures.embedding_names(out, inputs)
        adv_emb = {m: out.embeddings[e].detach() for m, e in names.items() if m in clean_emb}
        measures.add_embeddings({m: clean_emb[m] for m in adv_emb}, adv_emb)
        for m in cell.modalities:
            measures.add_change(m, inputs[m].float(), adv[m].float())


def _warn_units(
    grid: Grid, cells: Sequence[GridCell], ranges: Mapping[str, Sequence[float]] | None
) -> None:
    """Warn once per modality whose data (``ranges``, from the clean pass) is in other units
    than the bounds of its budget in ``cells`` (:func:`~avrobust.attacks.units_disagree`)."""
    if not ranges:
        return
    warned: set[str] = set()
    for cell in cells:
        for m, budget in grid.budgets_at(cell.eps, cell.modalities).items():
            seen = ranges.get(m)
            if m in warned or seen is None or budget.bounds is None:
                continue
            if units_disagree(float(seen[0]), float(seen[1]), budget.bounds):
                warned.add(m)
                message = units_message(
                    f"data[{m!r}]", float(seen[0]), float(seen[1]), budget.bounds
                )
                warnings.warn(
                    message + "; the PSNR peak is the data's span", UserWarning, stacklevel=4
                )
