"""What the demo writes: ``table.md``, ``table.csv``, ``results.csv``, ``results.json``, the
plots and ``summary.md`` (:func:`write_outputs`)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ..evaluation.reporting import write_csv_rows
from .config import DemoConfig
from .findings import findings
from .intervals import BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES, Intervals, Report, ScoresOfRuns
from .plots import write_plots
from .tables import ensemble_text, table_one, tables_text
from .verdicts import Finding, verdict_rules

__all__ = ["Outputs", "summary_text", "write_outputs"]


class Outputs(NamedTuple):
    """What :func:`write_outputs` wrote.

    Attributes:
        table: the Table-1-like Markdown table.
        summary: the text of ``summary.md``.
        files: the paths written.
        findings: the paper's claims checked on this run.
    """

    table: str
    summary: str
    files: list[str]
    findings: list[Finding]


def write_outputs(
    out: str,
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, Report],
    extras: Mapping[str, Report],
    plots: bool,
    seconds: Mapping[str, float],
    selection_note: str = "",
    *,
    clean_scores: Mapping[str, ScoresOfRuns] | None = None,
    sections: Sequence[str] = (),
    reused: Mapping[str, float] | None = None,
    workers: int = 1,
) -> Outputs:
    """Write the tables, the long-form results, the plots and the summary.

    Every mAP is stated with its 95 % bootstrap interval over the attacked clips
    (:data:`~avrobust.demo.intervals.BOOTSTRAP_RESAMPLES` resamples seeded by ``config.seed``;
    model comparisons paired, on the same resampled clips), and a finding is called held or not
    only when its interval says so (:func:`~avrobust.demo.findings`).

    Args:
        out: the output folder.
        config: the demo settings.
        clean_map: ``{model key: clean mAP in [0, 1]}``.
        reports: ``{model key: white-box grid report}``.
        extras: ``{"inference": ..., "transfer": ...}`` reports.
        plots: write the PNG plots (skipped, with a note, without matplotlib).
        seconds: ``{"train": s, "evaluate": s}`` wall times for the summary (and
            ``results.json``, where a rerun finds them).
        selection_note: how the attacked clips were chosen, for the summary.
        clean_scores: ``{model key: (scores, labels)}`` (or a list of them, one per training
            run), the ``(N, T)`` frame scores and labels
            of every held-out clip behind ``clean_map``, for the clean mAP's intervals (without
            them the clean mAP has none, and the clean-cost finding is inconclusive).
        sections: Markdown sections for the summary, after the tables (e.g. the masking
            checks of :mod:`avrobust.demo.masking`).
        reused: ``{stage: s}``: this run's own time of each stage it read from the caches
            (``seconds`` then holds the first run's time of that stage, and the summary says so).
        workers: the single-threaded workers the run used (for the summary's wall time).

    Returns:
        :class:`Outputs`: the table, the summary, the files written and the findings.
    """
    ci = Intervals(config, clean_scores)
    table, records = table_one(config, clean_map, reports, intervals=ci)
    checks = findings(config, clean_map, reports, extras, intervals=ci)
    files = _write_data(out, config, clean_map, reports, extras, seconds, records, checks)
    plot_note = ""
    if plots:
        try:
            files += write_plots(out, config, reports, extras, intervals=ci)
        except ImportError as exc:
            plot_note = f"\nPlots were not written: {exc}\n"
    tables = tables_text(config, table, reports, extras, ci)
    title = f"# avrobust demo: tables (eps_av = {config.table_eps:g})\n\n"
    files.append(_write_text(os.path.join(out, "table.md"), title + tables))
    summary = summary_text(
        config, tables + "".join(section + "\n" for section in sections), checks, seconds, selection_note, plot_note,
        reused=reused, workers=workers,
    )  # fmt: skip
    files.append(_write_text(os.path.join(out, "summary.md"), summary))
    return Outputs(table, summary, files, checks)


def _write_text(path: str, text: str) -> str:
    with open(path, "w") as handle:
        handle.write(text)
    return path


def summary_text(
    config: DemoConfig,
    tables: str,
    checks: Sequence[Finding],
    seconds: Mapping[str, float],
    selection_note: str = "",
    plot_note: str = "",
    *,
    reused: Mapping[str, float] | None = None,
    workers: int = 1,
) -> str:
    """The Markdown of ``summary.md``: the setting, the tables and the findings with their rule
    (``reused``, ``workers``: as :func:`write_outputs`)."""
    held = sum(f.verdict == "held" for f in checks)
    return (
        "# avrobust demo: the Push-Pull study in miniature\n\n"
        f"Tiny TalkNet ({config.face_size}x{config.face_size} faces, {config.frames}-frame clips) "
        f"on synthetic active-speaker data (difficulty {config.difficulty:g}); "
        f"{config.train_steps} training steps (A, C, D), {config.finetune_steps} adversarial "
        f"fine-tuning steps (B from A, E from D); attacks with {config.attack_steps} iterations "
        f"on held-out clips: {selection_note}. Each model is also attacked by the worst case "
        "over a strong ensemble: the comparisons of models rest on it, since a defence is only "
        f"as robust as the strongest attack tried shows. {ensemble_text(config)} "
        "eps_av: audio eps = eps_av·1e-4 (waveform in [-1, 1]), video eps = eps_av·0.1 pixel "
        "levels (0-255).\n\n"
        + _interval_note(config)
        + tables
        + f"## Which of the paper's findings held here ({held} of {len(checks)})\n\n"
        + "\n".join(f"- **{f.verdict}**: {f.claim} {f.evidence}." for f in checks)
        + "\n\n"
        + verdict_rules(tie_margin=config.tie_margin)
        + " "
        + _runs_note(config)
        + " This is a tiny model on synthetic data: the verdicts describe it, not TalkNet on "
        "AVA-ActiveSpeaker.\n" + plot_note + _wall_time(seconds, reused or {}, workers)
    )


def _runs_note(config: DemoConfig) -> str:
    """What the intervals and verdicts cover: several training runs, or one."""
    if config.seeds == 1:
        return (
            "Each model was trained once (`seeds = 1`): the intervals cover the choice of the "
            "attacked clips only, and a verdict about a training method describes this one "
            "training run, not the method (another seed trains other models; the default "
            "trains 3 runs per model)."
        )
    return (
        f"Each model was trained {config.seeds} times, from {config.seeds} seeds: every number "
        "is the mean over the runs, and every interval covers both another choice of training "
        "seeds and another choice of clips (a two-level bootstrap: runs, then clips), so a "
        "verdict about a training method rests on several runs of it."
    )


def _wall_time(seconds: Mapping[str, float], reused: Mapping[str, float], workers: int) -> str:
    """The summary's last line: the wall times, the first run's where this rerun read the caches."""
    what = {"train": "the trained models", "evaluate": "the attack results"}
    read = [what[k] for k in what if k in reused]
    kept = (
        f" (of the first run; this rerun read {' and '.join(read)} from the caches in "
        f"{sum(reused.values()):.0f} s)"
        if read
        else ""
    )
    noun = "worker" if workers == 1 else "workers"
    return (
        f"\nWall time{kept}: training/loading {seconds.get('train', 0):.0f} s, attacks "
        f"{seconds.get('evaluate', 0):.0f} s, with {workers} single-threaded {noun} (every job "
        "runs on one torch thread, so any `--threads N` gives the same numbers).\n"
    )


def _interval_note(config: DemoConfig) -> str:
    over = (
        "the attacked clips"
        if config.seeds == 1
        else f"the {config.seeds} training runs and the attacked clips (runs, then clips)"
    )
    return (
        f"Numbers are mAP (%), the mean over {_runs(config.seeds)}, with their "
        f"{100 * BOOTSTRAP_LEVEL:g} % bootstrap interval over {over} in brackets "
        f"({BOOTSTRAP_RESAMPLES} resamples, seed {config.seed}; the clean mAP's over every "
        "held-out clip).\n\n"
    )


def _runs(count: int) -> str:
    return "the one training run" if count == 1 else f"the {count} training runs of each model"


def _write_data(
    out: str,
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, Report],
    extras: Mapping[str, Report],
    seconds: Mapping[str, float],
    records: list[dict[str, Any]],
    checks: Sequence[Finding],
) -> list[str]:
    """``table.csv``, ``results.csv`` (one row per cell) and ``results.json`` (everything,
    per-clip scores included, and the findings)."""
    files = [os.path.join(out, name) for name in ("table.csv", "results.csv", "results.json")]
    write_csv_rows(files[0], records)
    rows: list[dict[str, Any]] = []
    for name, rep in [*reports.items(), *((f"A:{k}", r) for k, r in extras.items())]:
        meta = {"model": name, "objective": rep.config["objective"]}
        rows += [{**meta, "transfer": rep.config["surrogate"], **row} for row in rep.rows()]
    write_csv_rows(files[1], rows)
    with open(files[2], "w") as handle:
        json.dump(
            {
                "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "models"},
                "models": [dataclasses.asdict(s) for s in config.models],
                "clean_map": dict(clean_map),
                "reports": {k: r.to_dict() for k, r in reports.items()},
                "extras": {k: r.to_dict() for k, r in extras.items()},
                "bootstrap": {
                    "levels": ["training runs", "clips"] if config.seeds > 1 else ["clips"],
                    "resamples": BOOTSTRAP_RESAMPLES,
                    "level": BOOTSTRAP_LEVEL,
                    "seed": config.seed,
                },
                "findings": [dataclasses.asdict(f) for f in checks],
                "seconds": dict(seconds),
            },
            handle,
            separators=(",", ":"),  # compact: every cell's per-clip scores are in it
        )
    return files
