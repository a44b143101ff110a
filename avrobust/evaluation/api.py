"""``evaluate``: run a :class:`~avrobust.evaluation.Grid` against a model over a data source.

The settings come in four small groups: the :class:`~avrobust.evaluation.Grid` (rules × budgets ×
attacked modality sets, steps, objective), the :class:`~avrobust.evaluation.Selection` (which
clips are attacked), the :class:`~avrobust.evaluation.Measures` (how outputs are scored, which
embeddings ECR compares) and the :class:`~avrobust.evaluation.Store` (the resumable results file).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any

import torch
from torch import nn

from .._checks import check_bool, check_int, describe
from ..adapters import WrappedModel
from ..attacks import push_pull_budgets
from .fingerprints import callable_identity, clip_digests, data_digest, model_fingerprint
from .grid import Grid, GridCell
from .ranks import current_ranks, from_main, on_every_rank
from .records import FORMAT, StoredCell
from .report import EvaluationReport
from .results import CellResult
from .runner import CellRunner
from .scoring import Measures
from .selection import Selection, select
from .sources import MAX_CLIPS, Source
from .store import ResultsFile, ResultsLock, Store

__all__ = ["evaluate"]


def evaluate(
    model: nn.Module,
    data: Any,
    grid: Grid = Grid(),  # noqa: B008 - frozen, checked once
    *,
    selection: Selection = Selection(),  # noqa: B008
    measures: Measures = Measures(),  # noqa: B008
    store: Store = Store(),  # noqa: B008
    surrogate: nn.Module | None = None,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    on_cell: Callable[[CellResult], None] | None = None,
    max_clips: int = MAX_CLIPS,
    name: str | None = None,
) -> EvaluationReport:
    r"""Attack a model over a grid of rules × budgets × attacked modalities and measure the harm.

    For each cell ``(rule, eps, modality set)`` of ``grid`` the selected clips are attacked batch
    by batch with :class:`~avrobust.MultimodalAttack` (only the modalities of the set get a
    budget; the others stay bit-identical), or, for a worst-case cell, with the ensemble of
    :class:`~avrobust.evaluation.WorstCase` (:func:`~avrobust.default_ensemble`), then the
    target model scores the adversarial clips.
    Cells are computed in grid order (rule, then eps, then modality set); each is appended to
    the store's file as soon as it is finished, and ``on_cell`` is called after that.

    Across ranks: with an initialised ``torch.distributed`` process group of ``W > 1`` ranks
    (``torchrun``), every rank calls ``evaluate`` alike (before any attack the ranks compare
    their model fingerprints, settings and clips, and every rank raises, naming the rank and
    what differs, when they disagree; an error on one rank is raised on every rank); batch ``k`` is attacked by rank
    ``k mod W`` only, rank 0 alone reads and writes the store's file (its decisions are
    broadcast), and every rank returns the same report, equal to a 1-process run's but for
    ``seconds`` (:mod:`avrobust.evaluation.ranks`, docs/evaluate.md, "Across ranks").

    Args:
        model: the target, called as ``model(**inputs)``; returns :class:`~avrobust.AVOutput` (or
            logits) with frame logits ``(B, T, C)`` or clip logits ``(B, C)``. ``C = 2``: a
            binary task, measured by AP (the AVA evaluation); ``C > 2``: a multi-class task,
            measured by top-1 accuracy (see :class:`~avrobust.evaluation.Measures` and
            :mod:`~avrobust.evaluation.tasks`). Its train/eval flags and buffers are left as
            they were.
        data: a map-style ``Dataset`` whose items are ``(inputs, labels)`` (clips of equal shape
            are batched together, in index order), an ``IterableDataset`` of such items (batched
            the same way, in the order it gives them), an iterable of ``(inputs, labels)``
            batches that gives the same batches each time it is iterated (a ``DataLoader``
            without shuffling), or one pair ``(inputs, labels)`` of stacked tensors. It is read
            once for the clean pass and once per computed cell, and every clip must be the
            same each time: a ``DataLoader`` with ``shuffle=True`` or a
            ``DistributedSampler``, and a one-shot iterator (a generator, ``iter(loader)``), are
            refused at once; other content that changes between passes (random augmentation,
            a sampler reseeded per pass) is refused when a clip is read again, before it is
            attacked (each clip's content digest is compared with the clean pass's). Under
            ``torch.distributed`` every rank passes the whole data. ``inputs`` maps
            modality names to tensors (TalkNet: ``audio`` ``(B, S)`` in [-1, 1] and ``visual``
            ``(B, T, H, W)`` in 0–255); labels are frame labels ``(B, T)`` or clip labels ``(B,)``:
            1 = speaking for a binary task, class indices in ``[0, C)`` for a multi-class one.
        grid: the rules, budget values, attacked modality sets, budgets, steps and objective
            (:class:`~avrobust.evaluation.Grid`; default: BIM, MIM, PGD × eps_av 1, 2, 5 ×
            audio, visual, audio+visual, 10 steps, the training loss; the objective does not
            apply to worst-case cells).
        selection: which clips are attacked (:class:`~avrobust.evaluation.Selection`; default:
            the correctly predicted ones, balanced between speaking and not, or between the
            classes of a multi-class task).
        measures: how outputs are scored, the headline measure and which embeddings ECR
            compares (:class:`~avrobust.evaluation.Measures`; default: P(speaking) and AP for a
            binary task, top-1 and accuracy for a multi-class one, TalkNet-style names).
        store: the resumable results file (:class:`~avrobust.evaluation.Store`; default: none).
            With ``resume``, an existing file of the same evaluation is read and its cells are
            not recomputed: a cell of this grid found there is reused, the others are computed
            and appended; cells of another grid stay in the file, unreported.
        surrogate: craft the perturbation on this model instead (black-box transfer, Fig. 3a);
            the target ``model`` is only scored.
        batch_size: clips per attack batch (datasets and stacked tensors).
        seed: seed of the balanced draw and of every cell's random start (each cell's seed comes
            from ``seed`` and the cell, so a resumed run gives the same numbers).
        progress: show a tqdm progress bar over the cells (on stderr).
        on_cell: called with each newly computed :class:`CellResult`, after it is saved (on
            every rank; if it raises on one, every rank raises its error).
        max_clips: data of unknown length (an iterable of batches or an ``IterableDataset``
            without ``len``) that gives more clips than this in one pass is refused as endless
            (``itertools.cycle``, a stream that repeats), before it fills the memory.
        name: the model's name in the report's titles and plots (default: the model's class
            name; a wrapped model's own class).

    Returns:
        :class:`EvaluationReport` with every cell of the grid.

    Raises:
        TypeError, ValueError: bad arguments (the message names the argument, e.g.
            ``Grid.eps``); a results file of a different evaluation (other model weights, data,
            settings, objective or score_fn code, or a cell of this grid computed with other
            budgets or rule settings), or one whose lines are not as evaluate wrote them (the
            message gives the line); no clip to attack; labels outside the model's classes
            (naming the data); a task the attack and the measure disagree on (naming the
            model: AP of a multi-class model with a named objective, or labels all 0/1 for
            ``C > 2`` classes with ``Measures.measure="auto"``); a worst-case cell of a
            ``C > 2`` model scored as a binary task (naming ``Grid.rules``); a surrogate
            whose logits have another class count than the model's (naming ``surrogate``);
            a model or surrogate on the meta device; one logit per label (naming the model and
            the 2-class logits to return); integer data of an attacked modality, or a model
            whose forward does not take the data's modality names (TypeError).
        RuntimeError: the store's file is in use by another run (its lock file exists);
            called under ``torch.inference_mode()``.

    Example:
        >>> import torch
        >>> from avrobust.evaluation import Grid, Selection, evaluate
        >>> from avrobust.testing import TinyAV
        >>> _ = torch.manual_seed(0)
        >>> model = TinyAV(frames=4, frame_level=True)
        >>> inputs = {"audio": torch.rand(8, 640) * 2 - 1, "visual": torch.rand(8, 4, 16, 16) * 255}
        >>> labels = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 1]]).repeat(4, 1)
        >>> grid = Grid(rules=["bim"], eps=[50.0], modalities=["audio+visual"], steps=2)
        >>> report = evaluate(model, (inputs, labels), grid, selection=Selection(clips="all"),
        ...     progress=False)
        >>> cell = report.cell("bim", 50.0, "audio+visual")
        >>> 0.0 <= cell.map_adv <= 1.0, sorted(cell.ecr)
        (True, ['audio', 'visual'])
    """
    _refuse_inference_mode()
    title = _model_name(model, name)
    ranks = current_ranks()

    def setup() -> tuple[Source, dict[str, Any]]:
        _check_arguments(model, grid, selection, measures, store, surrogate, on_cell)
        if check_int(seed, "seed", min_value=0) >= 2**63:
            raise ValueError(f"seed: must be < 2**63 (a torch generator's seed), got {seed}")
        check_bool(progress, "progress")
        size = check_int(batch_size, "batch_size", min_value=1)
        source = Source(data, size, max_clips=max_clips)
        return source, _file_config(model, source, grid, selection, measures, surrogate, seed)

    def settings(found: tuple[Source, dict[str, Any]]) -> dict[str, Any]:
        return {**found[1], **grid.config(), "store": repr(store), "batch_size": batch_size}

    source, config = on_every_rank(ranks, setup, shared=settings)
    cells = grid.cells()
    file = ResultsFile(store.file if ranks.main else None)
    with ExitStack() as held:

        def prepare() -> tuple[dict[str, Any], Mapping[str, StoredCell], dict[int, bytes]]:
            held.enter_context(ResultsLock(store.file))  # rank 0 only, for the whole run
            digests: dict[int, bytes] = {}
            meta, done = (
                file.resume(config, _digest_of(source, digests)) if store.resume else (None, {})
            )
            if meta is None:
                attacked = sorted({m for mods in grid.modality_sets for m in mods})
                clean, chosen, clips = select(
                    model,
                    source,
                    measures,
                    selection,
                    seed,
                    objective=grid.objective,
                    attacked=attacked,
                )
                digests = dict(zip(chosen, clips))
                meta = {"kind": "meta", "config": config, "clean": clean, "selection": chosen}
                meta["data"] = data_digest(clips)
                file.start(meta)
            file.check_reuse(done, {c.key: c.defines for c in cells})
            return meta, done, digests

        meta, done, digests = from_main(ranks, prepare)
        chosen = [int(i) for i in meta["selection"]]
        measure = meta["clean"].get("measure", "ap")
        runner = CellRunner(
            model, surrogate or model, source, chosen, measures, grid, measure=measure, ranks=ranks
        )
        todo = [c for c in cells if c.key not in done]
        on_every_rank(ranks, lambda: runner.prepare(todo, digests, meta["clean"]))
        results = _run_cells(cells, done, runner, file, seed, progress, on_cell)
    ranks.wait()  # the file is complete and unlocked when any rank returns
    report_config = {"format": FORMAT, **grid.config(), **config}
    names = measures.class_names
    return EvaluationReport(
        report_config, meta["clean"], chosen, results, name=title, class_names=names
    )


def _model_name(model: Any, name: Any) -> str:
    """The report's name of the model: ``name``, else the model's class name (a wrapped model's
    own)."""
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"name: expected a non-empty string or None, got {describe(name)}")
        return name
    inner = model.model if isinstance(model, WrappedModel) else model
    return type(inner).__name__


def _refuse_inference_mode() -> None:
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "evaluate: called under torch.inference_mode(), where no gradient can be taken, so "
            "no attack can run: call evaluate outside the inference_mode block (it runs its own "
            "forwards without gradient where it can)"
        )


def _check_arguments(
    model: Any,
    grid: Any,
    selection: Any,
    measures: Any,
    store: Any,
    surrogate: Any,
    on_cell: Any,
) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {describe(model)}")
    if surrogate is not None and not isinstance(surrogate, nn.Module):
        raise TypeError(f"surrogate: expected a torch.nn.Module or None, got {describe(surrogate)}")
    for name, module in (("model", model), ("surrogate", surrogate)):
        if module is not None and any(t.is_meta for t in module.state_dict().values()):
            raise ValueError(
                f"{name}: its parameters or buffers are on the meta device (no values); load "
                "its weights first (model.to_empty(device='cpu') and load_state_dict)"
            )
    for name, value, kind in (
        ("grid", grid, Grid),
        ("selection", selection, Selection),
        ("measures", measures, Measures),
        ("store", store, Store),
    ):
        if not isinstance(value, kind):
            raise TypeError(
                f"{name}: expected an avrobust.evaluation.{kind.__name__}(...), got "
                f"{describe(value)}"
            )
    if on_cell is not None and not callable(on_cell):
        raise TypeError(f"on_cell: expected a function or None, got {describe(on_cell)}")


def _name_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    return getattr(value, "__qualname__", None) or type(value).__name__


def _file_config(
    model: nn.Module,
    source: Source,
    grid: Grid,
    selection: Selection,
    measures: Measures,
    surrogate: nn.Module | None,
    seed: int,
) -> dict[str, Any]:
    """What a results file must share with a run to resume it: everything but the grid's
    cells (rules, eps, modalities and their budgets, which each cell line carries). The keys
    are those of results-file format 2 (``select`` is :attr:`Selection.clips`); ``measure`` is
    ``None`` for ``Measures.measure="auto"``, which a file of an older avrobust (without the
    key) also reads as."""
    clips, score_fn = selection.clips, measures.score_fn
    return {
        "format": FORMAT,
        "eps_name": "eps_av" if grid.budgets is push_pull_budgets else "eps",
        "budgets": _name_of(grid.budgets),
        "steps": grid.steps,
        "objective": _name_of(grid.objective),
        "objective_code": callable_identity(grid.objective),
        "surrogate": surrogate is not None,
        "select": clips if isinstance(clips, str) else "indices",
        "select_indices": None if isinstance(clips, str) else sorted(clips),
        "balance": selection.balance,
        "per_class": selection.per_class,
        "min_accuracy": selection.min_accuracy,
        "seed": seed,
        "score_fn": None if score_fn is None else _name_of(score_fn),
        "score_fn_code": callable_identity(score_fn),
        "measure": None if measures.measure == "auto" else measures.measure,
        "ecr_embeddings": None
        if measures.ecr_embeddings is None
        else dict(measures.ecr_embeddings),
        "samples": source.size(),
        "model": model_fingerprint(model),
        "surrogate_model": model_fingerprint(surrogate),
    }


def _digest_of(source: Source, found: dict[int, bytes]) -> Callable[[list[int]], str]:
    """The content fingerprint of the clips of ``source`` at given indices (no model call); the
    clips' own digests are kept in ``found``."""

    def digest(selection: list[int]) -> str:
        for part, (inputs, labels) in source.batches(selection):
            found.update(zip(part, clip_digests(inputs, labels)))
        if set(found) != set(selection):
            raise ValueError(
                f"data: gave {len(found)} of the {len(selection)} clips the results file "
                "selected; pass data that gives the same clips every time it is iterated (a "
                "Dataset, a list of batches, a DataLoader without shuffling)"
            )
        return data_digest([found[i] for i in selection])

    return digest


def _run_cells(
    cells: list[GridCell],
    done: Mapping[str, StoredCell],
    runner: CellRunner,
    file: ResultsFile,
    seed: int,
    progress: bool,
    on_cell: Callable[[CellResult], None] | None,
) -> list[CellResult]:
    """Every cell in order: read from ``done`` or computed and appended to ``file`` (rank 0);
    a failure of the append or of ``on_cell`` on any rank reaches every rank."""
    ranks = runner.ranks
    shown = progress and ranks.main
    bar = _progress_bar(len(cells), sum(c.key in done for c in cells), shown)
    results: list[CellResult] = []
    try:
        for cell in cells:
            if cell.key in done:
                results.append(done[cell.key].cell)
                continue
            if bar is not None:
                bar.set_postfix_str(cell.key)
            result = runner.run(cell, cell.seed(seed))
            results.append(result)

            def finish(cell: GridCell = cell, result: CellResult = result) -> None:
                file.append(cell.key, cell.defines, result.to_dict())
                if on_cell is not None:
                    on_cell(result)

            on_every_rank(ranks, finish)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return results


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="attack cells", unit="cell", leave=False)
