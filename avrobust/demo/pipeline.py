"""The demo end to end (:func:`run_demo`): data, models (trained or from the cache), the clips to
attack, the attack grids, the listening-test material and the outputs."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from .._checks import check_bool, check_choice, check_int, describe
from ..metrics import average_precision
from . import training
from ._rerun import folder_files, kept_seconds, recorded_seconds
from .config import PRESETS, DemoConfig, surrogate_spec
from .folder import DemoFolder, check_out_dir, drop_results, open_demo_folder, settings_of
from .intervals import AV, WORST
from .jobs import Job, one_thread, run_jobs
from .listening import export_examples
from .masking import MaskingChecks, combined
from .outputs import write_outputs
from .runs import SeededReport, run_name
from .selection import clips_from_scores
from .verdicts import Finding
from .work import attack_job, data_of, masking_job, model_of, spec_of, train_job

__all__ = ["DemoResult", "run_demo"]

log = logging.getLogger("avrobust.demo")

Clips = tuple[dict[str, Tensor], Tensor]


@dataclass
class DemoResult:
    """What :func:`run_demo` returns.

    Attributes:
        config: the settings used.
        clean_map: ``{model key: clean frame mAP in [0, 1] over every held-out clip}``, the
            mean over the model's runs (the table's models; the surrogate's is in the log).
        reports: ``{model key: SeededReport}``, the reports of the model's training runs
            (:class:`~avrobust.demo.runs.SeededReport`; a cell is the mean over the runs): the
            white-box grid and the worst case over the strong ensemble (rule ``"worst-case"``,
            audio-visual, at every budget of the grid).
        extras: ``{"inference": reports on A, "transfer": reports S -> A}`` when run (S: the
            transfer surrogate, :func:`~avrobust.demo.config.surrogate_spec`), one per run.
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
    reports: dict[str, SeededReport]
    extras: dict[str, SeededReport]
    table: str
    summary: str
    files: list[str]
    seconds: dict[str, float]
    selection: list[int]
    findings: list[Finding] = field(default_factory=list)
    masking: MaskingChecks | None = None


@dataclass
class _Run:
    """The state of one run of the demo: its settings, folder, how to report, what is done."""

    config: DemoConfig
    out: str
    folder: DemoFolder
    progress: bool
    say: Callable[[str], None]
    workers: int
    test_data: Clips
    clean_map: dict[str, float] = field(default_factory=dict)
    clean_scores: dict[str, list[tuple[Tensor, Tensor]]] = field(default_factory=dict)
    selection: list[int] = field(default_factory=list)
    how: str = ""  # how the attacked clips were chosen
    trained_now: bool = False  # a model was trained (not loaded from the cache)
    computed: int = 0  # attack cells computed (not read from the results files)

    def keys(self) -> list[str]:
        """The models trained: the table's rows, then the surrogate (with the extras)."""
        return [s.key for s in self.config.models] + (["S"] if self.config.extras else [])

    def jobs(
        self, jobs: list[Job], what: str, on_done: Callable[[Job, Any], None]
    ) -> dict[str, Any]:
        """Run ``jobs`` on :attr:`workers` single-threaded workers, with a progress bar."""
        bar = None
        if self.progress and jobs:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(jobs), desc=what, unit="job", leave=False)

        def done(job: Job, result: Any) -> None:
            on_done(job, result)
            if bar is not None:
                bar.update(1)

        try:
            return run_jobs(jobs, workers=self.workers, on_done=done)
        finally:
            if bar is not None:
                bar.close()


def _as_config(config: DemoConfig | str) -> DemoConfig:
    if isinstance(config, str):
        return PRESETS[check_choice(config, "config", PRESETS)]
    if not isinstance(config, DemoConfig):
        raise TypeError(f"config: expected a DemoConfig or a preset name, got {describe(config)}")
    return config


def _train_jobs(run: _Run) -> list[Job]:
    """One job per run of every model; a fine-tuned model after its parent's run."""
    config, cache = run.config, os.path.join(run.out, "models")
    jobs = []
    for r in range(config.seeds):
        for key in run.keys():
            spec = spec_of(config, key)
            if not training.is_cached(spec, config, cache, run=r):
                drop_results(run.folder, key, run.say, run=r)  # cells of other weights
            after = () if spec.init_from is None else (f"train {spec.init_from} run {r + 1}",)
            kwargs = {"config": config, "key": key, "run": r, "cache": cache}
            jobs.append(Job(f"train {key} run {r + 1}", train_job, kwargs, after))
    return jobs


def _models(run: _Run) -> None:
    """Train (or read from the cache) every run of every model; their clean mAP over every
    held-out clip."""
    config, labels = run.config, run.test_data[1]

    def done(job: Job, found: dict[str, Any]) -> None:
        key, r = job.kwargs["key"], job.kwargs["run"]
        run.trained_now |= not found["cached"]
        clean = float(average_precision(found["scores"], labels))
        how = "loaded from cache" if found["cached"] else f"trained in {found['seconds']:.0f} s"
        label = config.model_label(key)
        run.say(
            f"model {label}, run {r + 1} of {config.seeds}: {how}, clean mAP {100 * clean:.2f}%"
        )

    found = run.jobs(_train_jobs(run), "training", done)
    for key in [s.key for s in config.models]:  # the table's order, whichever job finished first
        run.clean_scores[key] = [
            (found[f"train {key} run {r + 1}"]["scores"], labels) for r in range(config.seeds)
        ]
        maps = [float(average_precision(s, y)) for s, y in run.clean_scores[key]]
        run.clean_map[key] = sum(maps) / len(maps)
    scores = {
        f"{key} run {r + 1}": found[f"train {key} run {r + 1}"]["scores"]
        for key in run.clean_scores
        for r in range(config.seeds)
    }
    run.selection, run.how = clips_from_scores(config, scores, labels)


def _attack_jobs(run: _Run) -> list[Job]:
    config, shared = run.config, {"config": run.config, "out": run.out, "selection": run.selection}
    jobs = [
        Job(f"attack {s.key} run {r + 1}", attack_job, {**shared, "key": s.key, "run": r})
        for r in range(config.seeds)
        for s in config.models
    ]
    jobs += [Job(f"masking {s.key}", masking_job, {**shared, "key": s.key}) for s in config.models]
    return jobs


def _attacks(run: _Run) -> tuple[dict[str, SeededReport], dict[str, SeededReport], MaskingChecks]:
    """Every run of every model attacked (the grid, the worst case along the budgets, the
    extras on (A)), and the masking checks of each model's first run."""
    config = run.config

    def done(job: Job, found: Any) -> None:
        if job.name.startswith("masking"):
            key = job.kwargs["key"]
            fired = ", ".join(f.name for f in found.diagnoses[key].fired) or "no flag fired"
            how = f"{found.seconds[key]:.1f} s" if found.seconds[key] else "from the cache"
            run.say(f"masking checks of ({key}): {fired} ({how})")
            return
        run.computed += found["computed"]
        key, r = job.kwargs["key"], job.kwargs["run"]
        cell = found["report"].cell(WORST, config.table_eps, AV)
        broken = ", ".join(f"{n} {c}" for n, c in (cell.broken_by or {}).items())
        run.say(
            f"model ({key}) run {r + 1} attacked: {len(found['report'].cells)} cells, the worst "
            f"case at eps_av = {config.table_eps:g} broken first by {broken} "
            f"({found['seconds']:.0f} s)"
        )

    found = run.jobs(_attack_jobs(run), "attacks", done)
    runs = range(config.seeds)
    reports = {
        s.key: SeededReport(tuple(found[f"attack {s.key} run {r + 1}"]["report"] for r in runs))
        for s in config.models
    }
    extras: dict[str, SeededReport] = {}
    if config.extras and "A" in reports:
        for name in ("inference", "transfer"):
            extras[name] = SeededReport(
                tuple(found[f"attack A run {r + 1}"]["extras"][name] for r in runs)
            )
    parts = [found[f"masking {s.key}"] for s in config.models]
    return reports, extras, combined(config, parts, transfer=config.extras)


def _planned(config: DemoConfig) -> list[str]:
    """The paths (relative to the output folder) a run of ``config`` writes, known up front."""
    names, paths = [], []
    for r in range(config.seeds):
        for spec in config.models:
            name = run_name(spec.key, r)
            names += [name, f"{name}-worst-case", f"{name}-worst-curve"]
            names += [] if spec.key == "A" else [f"{name}-modalities"]
        names += [f"{run_name('A', r)}-inference", f"{run_name('S', r)}-to-A"]
        for spec in (*config.models, surrogate_spec(config)):
            model = os.path.basename(training.cache_path(spec, config, "", run=r))
            paths += [f"models/{model}", f"models/{model[: -len('.model')]}.json"]
    paths += [f"results/{n}.jsonl" for n in names]
    paths += [f"results/masking-{s.key}.json" for s in config.models]
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
    workers: int = 1,
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
        workers: CPU cores to use: the demo's jobs (training one run of a model, attacking
            it, ...) run on one torch thread each, in this process (``1``) or in that many
            worker processes (:mod:`avrobust.demo.jobs`), so that every worker count gives the
            same numbers. A script calling ``run_demo(workers=2)`` needs the
            ``if __name__ == "__main__":`` guard of :mod:`multiprocessing`.

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
    workers = check_int(workers, "workers", min_value=1)

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
        f"{config.face_size} faces, difficulty {config.difficulty:g}; {config.seeds} training "
        f"run(s) per model, {workers} single-threaded worker(s)"
    )
    recorded = recorded_seconds(out)  # the first run's wall times, before they are rewritten
    run = _Run(config, out, folder, progress, say, workers, data_of(config, "test"))
    _models(run)
    train_seconds = time.perf_counter() - start
    say(f"attacking {len(run.selection)} held-out clips: {run.how}")
    eval_start = time.perf_counter()
    reports, extras, masking = _attacks(run)
    eval_seconds = time.perf_counter() - eval_start
    xab = []
    if "A" in reports:
        first_a = {"A": model_of(config, "A", os.path.join(out, "models"), 0)}
        with one_thread():  # the same bits whatever the worker count
            xab = export_examples(out, config, first_a, run.test_data, run.selection)
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
        run.how,
        clean_scores=run.clean_scores,
        sections=[masking.section],
        reused=reused,
        workers=workers,
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
