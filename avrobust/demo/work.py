"""The demo's jobs (:class:`~avrobust.demo.jobs.Job` bodies): training one run of a model, attacking
one run of a model, the masking checks of one model. Each reads its models from the cache folder
and the data from its settings (made once per process), so that a worker process needs nothing
but the job's keyword arguments."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

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
from ..models import TalkNet
from . import training
from .config import DemoConfig, ModelSpec, surrogate_spec
from .intervals import AV
from .masking import MaskingChecks, masking_checks
from .runs import run_name
from .selection import clean_scores

__all__ = [
    "attack_job",
    "data_of",
    "data_sets",
    "masking_job",
    "model_of",
    "spec_of",
    "train_job",
]

Clips = tuple[dict[str, Tensor], Tensor]
_DATA: dict[tuple[Any, ...], Clips] = {}  # this process's data sets, made once


def _data_key(config: DemoConfig, which: str) -> tuple[Any, ...]:
    clips = config.train_clips if which == "train" else config.test_clips
    return (which, clips, config.frames, config.face_size, config.difficulty, config.seed)


def data_sets(config: DemoConfig) -> tuple[SyntheticActiveSpeaker, SyntheticActiveSpeaker]:
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


def data_of(config: DemoConfig, which: str) -> Clips:
    """The demo's ``"train"`` or ``"test"`` clips of :func:`data_sets`, stacked (made once per
    process)."""
    key = _data_key(config, which)
    if key not in _DATA:
        _DATA[key] = data_sets(config)[0 if which == "train" else 1].tensors()
    return _DATA[key]


def spec_of(config: DemoConfig, key: str) -> ModelSpec:
    """The recipe of model ``key``: a row of the table, or ``"S"``, the transfer surrogate."""
    for spec in config.models:
        if spec.key == key:
            return spec
    if key == "S":
        return surrogate_spec(config)
    raise ValueError(
        f"key: expected a model of {[s.key for s in config.models]} or 'S', got {key!r}"
    )


def model_of(config: DemoConfig, key: str, cache: str, run: int) -> TalkNet:
    """Run ``run`` of model ``key``, read from the cache folder (trained by :func:`train_job`)."""
    return training.load_cached(spec_of(config, key), config, cache, run=run)


def train_job(*, config: DemoConfig, key: str, run: int, cache: str) -> dict[str, Any]:
    """Train (or read from ``cache``) run ``run`` of model ``key``, and score every held-out clip.

    Returns:
        ``{"scores": (N, T) clean P(speaking), "cached": bool, "seconds": float}``.
    """
    start = time.perf_counter()
    spec = spec_of(config, key)
    parents = {}
    if spec.init_from is not None:
        parents[spec.init_from] = model_of(config, spec.init_from, cache, run)
    cached = training.is_cached(spec, config, cache, run=run)
    data = ({}, torch.zeros(0)) if cached else data_of(config, "train")
    model, cached = training.load_or_train(spec, config, data, parents, cache, False, run=run)
    scores = clean_scores(model, data_of(config, "test"))
    return {"scores": scores, "cached": cached, "seconds": time.perf_counter() - start}


def _evaluate(
    config: DemoConfig,
    model: TalkNet,
    name: str,
    out: str,
    selection: Sequence[int],
    grid: Grid,
    counter: list[int],
    surrogate: TalkNet | None = None,
) -> EvaluationReport:
    """One grid on the selected clips, its cells kept in ``results/<name>.jsonl``."""
    return evaluate(
        model,
        data_of(config, "test"),
        grid,
        selection=Selection(clips=tuple(selection), balance=False),
        measures=Measures(class_names=SPEAKING_CLASSES),
        store=Store(path=os.path.join(out, "results", f"{name}.jsonl")),
        surrogate=surrogate,
        seed=config.seed,
        progress=False,
        on_cell=lambda cell: counter.append(1),
    )


def _grid(
    config: DemoConfig,
    rules: Sequence[str | StepRule | WorstCase],
    eps: Sequence[float],
    modalities: Sequence[str],
    *,
    objective: str = "training",
    steps: int | None = None,
) -> Grid:
    return Grid(
        rules=tuple(rules),
        eps=tuple(eps),
        modalities=tuple(modalities),
        steps=config.attack_steps if steps is None else steps,
        objective=objective,
    )


def _grids(config: DemoConfig, key: str) -> list[tuple[str, Grid]]:
    """The white-box grids of model ``key`` and the suffixes of their results files: every
    modality set at every budget for (A) (or without an audio-visual set); for the other rows
    the audio-visual set at every budget, then the single modalities at ``table_eps``
    (``DemoConfig.modalities``)."""
    full = _grid(config, config.rules, config.eps_grid, config.modalities)
    if key == "A" or AV not in config.modalities:
        return [("", full)]
    grids = [("", _grid(config, config.rules, config.eps_grid, (AV,)))]
    single = [m for m in config.modalities if m != AV]
    if single:
        grids.append(("-modalities", _grid(config, config.rules, (config.table_eps,), single)))
    return grids


def _worst_grids(config: DemoConfig) -> list[tuple[str, Grid]]:
    """The worst case's grids and their results files: the strong ensemble at ``table_eps``
    (``worst-case``), the lighter one at the grid's other budgets (``worst-curve``; none with
    ``worst_curve_steps = 0`` or a one-budget grid)."""
    strong = WorstCase(
        queries=config.worst_case_queries,
        restarts=config.worst_case_restarts,
        kappa=config.worst_case_kappa,
    )
    table = (config.table_eps,)
    grids = [("worst-case", _grid(config, (strong,), table, (AV,), steps=config.worst_case_steps))]
    others = tuple(e for e in config.eps_grid if e != config.table_eps)
    if config.worst_curve_steps and others:
        light = WorstCase(queries=config.worst_case_queries, kappa=config.worst_case_kappa)
        curve = _grid(config, (light,), others, (AV,), steps=config.worst_curve_steps)
        grids.append(("worst-curve", curve))
    return grids


def attack_job(
    *, config: DemoConfig, key: str, run: int, out: str, selection: Sequence[int]
) -> dict[str, Any]:
    """Attack run ``run`` of model ``key`` on the ``selection`` of the held-out clips: the
    white-box grid, the worst case over the strong ensemble at every budget of the grid
    (audio-visual), and for (A) the extras (inference-aware attack, transfer from the
    surrogate of the same run).

    Returns:
        ``{"report": grid and worst-case cells, "extras": {name: report}, "computed": cells
        computed (not read from the results files), "seconds": float}``.
    """
    start, counter = time.perf_counter(), list[int]()
    cache, name = os.path.join(out, "models"), run_name(key, run)
    model = model_of(config, key, cache, run)
    parts = [
        _evaluate(config, model, name + suffix, out, selection, grid, counter)
        for suffix, grid in _grids(config, key)
    ]
    grid = dataclasses.replace(parts[0], cells=[c for p in parts for c in p.cells])
    worst = [
        _evaluate(config, model, f"{name}-{suffix}", out, selection, grid, counter)
        for suffix, grid in _worst_grids(config)
    ]
    extras: dict[str, EvaluationReport] = {}
    if key == "A" and config.extras:
        table = _grid(config, config.rules, (config.table_eps,), (AV,), objective="inference")
        extras["inference"] = _evaluate(
            config, model, f"{name}-inference", out, selection, table, counter
        )
        surrogate = model_of(config, "S", cache, run)
        transfer = _grid(config, ("pgd",), config.eps_grid, (AV,))
        extras["transfer"] = _evaluate(
            config, model, f"{run_name('S', run)}-to-A", out, selection, transfer, counter,
            surrogate,
        )  # fmt: skip
    return {
        "report": dataclasses.replace(
            grid, cells=[*grid.cells, *(c for w in worst for c in w.cells)]
        ),
        "extras": extras,
        "computed": len(counter),
        "seconds": time.perf_counter() - start,
    }


def masking_job(
    *, config: DemoConfig, key: str, out: str, selection: Sequence[int]
) -> MaskingChecks:
    """The gradient-masking checks of the first run of model ``key``
    (:func:`~avrobust.demo.masking.masking_checks`), cached in ``results/masking-<key>.json``."""
    cache = os.path.join(out, "models")
    surrogate = model_of(config, "S", cache, 0) if config.extras else None
    return masking_checks(
        config,
        {key: model_of(config, key, cache, 0)},
        data_of(config, "test"),
        list(selection),
        surrogate,
        cache=os.path.join(out, "results", f"masking-{key}.json"),
    )
