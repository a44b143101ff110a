"""The demo end to end (:func:`run_demo`): data, models (trained or from the cache), the clips to
attack, the attack grids, the listening-test material and the outputs."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._checks import check_bool, check_choice, describe
from ..data.synthetic import SyntheticActiveSpeaker
from ..evaluation import (
    SPEAKING_CLASSES,
    EvaluationReport,
    Grid,
    Measures,
    Selection,
    Store,
    WorstCase,
    evaluate,
)
from ..evaluation.grid import StepRule
from ..metrics import average_precision
from ..models import TalkNet
from . import training
from ._rerun import folder_files, kept_seconds, recorded_seconds
from .config import PRESETS, DemoConfig, surrogate_spec
from .folder import DemoFolder, check_out_dir, drop_results, open_demo_folder, settings_of
from .intervals import AV, WORST
from .listening import export_examples
from .masking import MaskingChecks, masking_checks
from .outputs import write_outputs
from .selection import attacked_clips, clean_scores
from .verdicts import Finding

__all__ = ["DemoResult", "run_demo"]

log = logging.getLogger("avrobust.demo")

Clips = tuple[dict[str, Tensor], Tensor]


@dataclass
class DemoResult:
    """What :func:`run_demo` returns.

    Attributes:
        config: the settings used.
        clean_map: ``{model key: clean frame mAP in [0, 1] over every held-out clip}`` (the
            table's models; the surrogate's is in the log).
        reports: ``{model key: EvaluationReport}`` of the white-box grid, with the cell of the
            worst case over the strong ensemble (rule ``"worst-case"``, audio-visual,
            ``eps_av = table_eps``) added.
        extras: ``{"inference": report on A, "transfer": report S -> A}`` when run (S: the
            transfer surrogate, :func:`~avrobust.demo.config.surrogate_spec`).
        table: the Table-1-like text table.
        summary: the findings summary (Markdown).
        files: the paths written.
        seconds: ``{"train": ..., "evaluate": ..., "total": ...}`` wall times (``train`` and
            ``evaluate``: the first run's where this one read that stage from the caches).
        selection: the held-out clips attacked (correct for every model, balanced).
        findings: the paper's claims checked on this run, each with its verdict and numbers.
        masking: the gradient-masking checks of every model (:mod:`avrobust.demo.masking`).
    """

    config: DemoConfig
    clean_map: dict[str, float]
    reports: dict[str, EvaluationReport]
    extras: dict[str, EvaluationReport]
    table: str
    summary: str
    files: list[str]
    seconds: dict[str, float]
    selection: list[int]
    findings: list[Finding] = field(default_factory=list)
    masking: MaskingChecks | None = None


@dataclass
class _Run:
    """The state of one run: its settings, folder, data and what is done so far."""

    config: DemoConfig
    out: str
    folder: DemoFolder
    progress: bool
    say: Callable[[str], None]
    test_data: Clips
    trained: dict[str, TalkNet] = field(default_factory=dict)
    surrogate: TalkNet | None = None
    clean_map: dict[str, float] = field(default_factory=dict)
    clean_scores: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)
    selection: list[int] = field(default_factory=list)
    trained_now: bool = False  # a model was trained (not loaded from the cache)
    computed: int = 0  # attack cells computed (not read from the results files)

    def attack(
        self,
        model: TalkNet,
        name: str,
        eps: Sequence[float],
        modalities: Sequence[str],
        rules: Sequence[str | StepRule | WorstCase] | None = None,
        objective: str = "training",
        surrogate: TalkNet | None = None,
        steps: int | None = None,
    ) -> EvaluationReport:
        """One grid on the selected clips, its cells kept in ``results/<name>.jsonl``
        (``steps``: default ``config.attack_steps``)."""
        config = self.config
        grid = Grid(
            rules=tuple(config.rules if rules is None else rules),
            eps=tuple(eps),
            modalities=tuple(modalities),
            steps=config.attack_steps if steps is None else steps,
            objective=objective,
        )
        return evaluate(
            model,
            self.test_data,
            grid,
            selection=Selection(clips=tuple(self.selection), balance=False),
            measures=Measures(class_names=SPEAKING_CLASSES),
            store=Store(path=os.path.join(self.out, "results", f"{name}.jsonl")),
            surrogate=surrogate,
            seed=config.seed,
            progress=self.progress,
            on_cell=self._computed,
        )

    def _computed(self, cell: object) -> None:
        self.computed += 1


def _as_config(config: DemoConfig | str) -> DemoConfig:
    if isinstance(config, str):
        return PRESETS[check_choice(config, "config", PRESETS)]
    if not isinstance(config, DemoConfig):
        raise TypeError(f"config: expected a DemoConfig or a preset name, got {describe(config)}")
    return config


def _data_sets(config: DemoConfig) -> tuple[SyntheticActiveSpeaker, SyntheticActiveSpeaker]:
    """The synthetic training and held-out sets (clips made on access)."""
    train, test = (
        SyntheticActiveSpeaker(
            clips,
            frames=config.frames,
            face_size=config.face_size,
            difficulty=config.difficulty,
            seed=2 * config.seed + offset,
        )
        for clips, offset in ((config.train_clips, 1), (config.test_clips, 2))
    )
    return train, test


def _models(run: _Run, train_set: SyntheticActiveSpeaker) -> None:
    """Load or train every model; its clean mAP over every held-out clip."""
    config, cache = run.config, os.path.join(run.out, "models")
    train_data: Clips | None = None
    for spec in config.models:
        if train_data is None and not training.is_cached(spec, config, cache):
            train_data = train_set.tensors()
        t0 = time.perf_counter()
        model, cached = training.load_or_train(
            spec,
            config,
            train_data if train_data is not None else ({}, torch.zeros(0)),
            run.trained,
            cache,
            run.progress,
        )
        run.trained[spec.key] = model
        if not cached:  # cells of an earlier model of this recipe are stale
            drop_results(run.folder, spec.key, run.say)
            run.trained_now = True
        scores = (clean_scores(model, run.test_data), run.test_data[1])  # for the intervals
        run.clean_scores[spec.key] = scores
        run.clean_map[spec.key] = float(average_precision(*scores))
        how = "loaded from cache" if cached else f"trained in {time.perf_counter() - t0:.0f} s"
        run.say(
            f"model ({spec.key}) {spec.description}: {how}, clean mAP "
            f"{100 * run.clean_map[spec.key]:.2f}%"
        )
    if config.extras:
        _surrogate(run, train_set, train_data)


def _surrogate(run: _Run, train_set: SyntheticActiveSpeaker, train_data: Clips | None) -> None:
    """Load or train the transfer surrogate (ncTalkNet or specTalkNet, Push-Pull §4.2)."""
    config, cache, spec = run.config, os.path.join(run.out, "models"), surrogate_spec(run.config)
    if train_data is None and not training.is_cached(spec, config, cache):
        train_data = train_set.tensors()
    t0 = time.perf_counter()
    model, cached = training.load_or_train(
        spec, config, train_data if train_data is not None else ({}, torch.zeros(0)), {}, cache,
        run.progress,
    )  # fmt: skip
    if not cached:
        drop_results(run.folder, "S", run.say)
        run.trained_now = True
    run.surrogate = model
    clean = float(average_precision(clean_scores(model, run.test_data), run.test_data[1]))
    how = "loaded from cache" if cached else f"trained in {time.perf_counter() - t0:.0f} s"
    run.say(f"model ({spec.key}) {spec.description}: {how}, clean mAP {100 * clean:.2f}%")


def _attacks(run: _Run) -> tuple[dict[str, EvaluationReport], dict[str, EvaluationReport]]:
    """The white-box grid of every model, then the extras on (A)."""
    config, trained = run.config, run.trained
    reports: dict[str, EvaluationReport] = {}
    for key, model in trained.items():
        t0 = time.perf_counter()
        grid = run.attack(model, key, config.eps_grid, config.modalities)
        worst = _worst_case(run, key, model)
        reports[key] = dataclasses.replace(grid, cells=[*grid.cells, *worst.cells])
        seconds = time.perf_counter() - t0
        broken = worst.cell(WORST, config.table_eps, AV).broken_by or {}
        run.say(
            f"model ({key}) attacked: {len(grid.cells)} cells and the worst case "
            f"(broken first by {', '.join(f'{n} {c}' for n, c in broken.items())}) in "
            f"{seconds:.0f} s"
        )
    extras: dict[str, EvaluationReport] = {}
    if config.extras and "A" in trained:
        av = [AV]
        extras["inference"] = run.attack(
            trained["A"], "A-inference", [config.table_eps], av, objective="inference"
        )
        if run.surrogate is not None:
            extras["transfer"] = run.attack(
                trained["A"], "S-to-A", config.eps_grid, av, ("pgd",), surrogate=run.surrogate
            )
        run.say("extras: inference-aware attack on (A), transfer attack (S) -> (A)")
    return reports, extras


def _worst_case(run: _Run, key: str, model: TalkNet) -> EvaluationReport:
    """The worst case over the strong ensemble on ``model``, audio-visual at ``table_eps``."""
    config = run.config
    return run.attack(
        model,
        f"{key}-worst-case",
        [config.table_eps],
        [AV],
        (WorstCase(queries=config.worst_case_queries),),
        steps=config.worst_case_steps,
    )


def _planned(config: DemoConfig) -> list[str]:
    """The paths (relative to the output folder) a run of ``config`` writes, known up front."""
    keys = [spec.key for spec in config.models]
    names = [*keys, *(f"{k}-worst-case" for k in keys), "A-inference", "S-to-A"]
    paths = [f"results/{n}.jsonl" for n in names] + ["results/masking.json"]
    for spec in (*config.models, surrogate_spec(config)):
        model = os.path.basename(training.cache_path(spec, config, ""))
        paths += [f"models/{model}", f"models/{model[: -len('.model')]}.json"]
    paths += ["table.md", "table.csv", "results.csv", "results.json", "summary.md"]
    return [*paths, "fig3_model_A.png", "fig3_models.png", "ecr.png", "xab_test/manifest.csv"]


def run_demo(
    out_dir: str | os.PathLike[str] = "avrobust-demo",
    config: DemoConfig | str = "default",
    *,
    progress: bool = True,
    plots: bool = True,
    retrain: bool = False,
    report: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo end to end and write its outputs into ``out_dir``.

    Args:
        out_dir: output folder (created): ``table.md``, ``table.csv``, ``results.csv``,
            ``results.json``, ``summary.md``, ``fig3_*.png``, ``ecr.png``, ``xab_test/`` (see
            :func:`avrobust.export.export_pairs`), and the caches ``models/`` (official
            checkpoint layout) and ``results/`` (one results file per evaluation).
        config: a :class:`DemoConfig` or a preset name (``"default"``, ``"quick"``, ``"test"``).
        progress: tqdm progress bars (stderr).
        plots: write PNG plots (needs matplotlib; skipped with a note in the summary if missing).
        retrain: start afresh: delete the files an earlier run of the demo wrote in ``out_dir``
            (listed in its manifest ``.avrobust-manifest.json`` with their SHA-256; never another
            file or folder, nor one changed since the demo wrote it, which is kept and said),
            then train and attack everything, whatever settings that run had.
        report: called with each progress message (e.g. ``print``); messages also go to the
            ``avrobust.demo`` logger.

    Returns:
        :class:`DemoResult`.

    Raises:
        ValueError: an unknown preset; ``out_dir`` holds a run of the demo with other settings
            (other than the grid: ``eps_grid``, ``table_eps``, ``tie_margin``, ``extras``; and
            than ``surrogate``, ``worst_case_steps``, ``worst_case_queries``, whose change
            recomputes what depends on them) and
            ``retrain`` is not set, files the demo did not write where it would write, or files
            it wrote that changed since (edited: they are the user's) where it would write again
            (a :class:`~avrobust.demo.folder.FolderConflict` naming them, raised before any
            work; a rerun never overwrites nor deletes an edited output).
        NotADirectoryError: ``out_dir`` is a file.
    """
    config = _as_config(config)
    check_bool(retrain, "retrain")

    def say(message: str) -> None:
        log.info(message)
        if report is not None:
            report(message)

    start = time.perf_counter()
    out = check_out_dir(out_dir)
    folder, before = open_demo_folder(
        out, settings_of(config), _planned(config), fresh=retrain, say=say
    )
    say(
        f"synthetic data: {config.train_clips} training and {config.test_clips} held-out clips of "
        f"{config.frames} frames ({config.frames / 25:.2f} s), {config.face_size}x"
        f"{config.face_size} faces, difficulty {config.difficulty:g}"
    )
    recorded = recorded_seconds(out)  # the first run's wall times, before they are rewritten
    train_set, test_set = _data_sets(config)
    run = _Run(config, out, folder, progress, say, test_set.tensors())
    _models(run, train_set)
    train_seconds = time.perf_counter() - start
    run.selection, how = attacked_clips(config, run.trained, run.test_data)
    say(f"attacking {len(run.selection)} held-out clips: {how}")
    eval_start = time.perf_counter()
    reports, extras = _attacks(run)
    masking = masking_checks(
        config,
        run.trained,
        run.test_data,
        run.selection,
        run.surrogate,
        report=say,
        cache=os.path.join(out, "results", "masking.json"),
    )
    eval_seconds = time.perf_counter() - eval_start
    xab = []
    if "A" in run.trained:
        xab = export_examples(out, config, run.trained, run.test_data, run.selection)
    if xab:
        say(f"XAB listening/viewing test: {len(xab)} genuine/adversarial pairs in {out}/xab_test")
    fresh = {
        "train": run.trained_now,
        "evaluate": run.computed > 0 or any(masking.seconds.values()),
    }
    times, reused = kept_seconds(
        {"train": train_seconds, "evaluate": eval_seconds}, recorded, fresh=fresh
    )
    written = write_outputs(
        out,
        config,
        run.clean_map,
        reports,
        extras,
        plots,
        times,
        how,
        clean_scores=run.clean_scores,
        sections=[masking.section],
        reused=reused,
    )
    files = written.files + (folder_files(os.path.join(out, "xab_test")) if xab else [])
    folder.record(before)
    times["total"] = time.perf_counter() - start
    say(
        f"done in {times['total']:.0f} s (training/loading {train_seconds:.0f} s, attacks "
        f"{eval_seconds:.0f} s)"
    )
    return DemoResult(
        config, run.clean_map, reports, extras, written.table, written.summary, files, times,
        run.selection, written.findings, masking,
    )  # fmt: skip
