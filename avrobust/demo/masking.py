"""Gradient-masking checks of the demo's models: :func:`avrobust.diagnose` (the checklist of
Carlini et al., 2019) on each model, on the attacked clips, at the table's budget; the findings
summary gets its section (:func:`masking_checks`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._checks import check_int, describe
from ..attacks import push_pull_budgets
from ..diagnostics import Diagnosis, diagnose
from . import _masking_cache
from .config import DemoConfig

__all__ = [
    "LARGE_EPS_AV",
    "MAX_QUERIES",
    "MaskingChecks",
    "combined",
    "masking_checks",
    "masking_section",
    "masking_settings",
]

Clips = tuple[dict[str, Tensor], Tensor]  # stacked inputs {modality: (N, ...)} and (N, T) labels

#: the ``eps_av`` the largest budget of the growth check reaches at least: every demo model,
#: the adversarially trained ones included, falls to ~0 % frame accuracy well below it (earlier
#: runs: (B) at 0 % from ``eps_av = 100``)
LARGE_EPS_AV = 200.0
#: Square's queries per clip at most: each is a forward pass of every clip, so 500 would take
#: ~12 s a model on 2 CPU threads; on the demo's models Square breaks no clip at eps_av = 20
#: with 100 or with 500 queries (measured), so more would add time and no finding
MAX_QUERIES = 100
_TITLE = "## Gradient-masking checks (Carlini et al., 2019)"


@dataclass(frozen=True)
class MaskingChecks:
    """What :func:`masking_checks` found.

    Attributes:
        eps_av: the joint budget checked (``config.table_eps``).
        clips: the held-out clips diagnosed (indices into the held-out set).
        settings: the keyword arguments given to :func:`avrobust.diagnose` (but the surrogate).
        diagnoses: ``{model key: Diagnosis}``.
        seconds: ``{model key: wall time of its diagnosis in seconds}`` (0 for a diagnosis
            read from the cache).
        section: the Markdown section for the findings summary.
    """

    eps_av: float
    clips: tuple[int, ...]
    settings: dict[str, Any]
    diagnoses: dict[str, Diagnosis]
    seconds: dict[str, float]
    section: str

    @property
    def flagged(self) -> list[str]:
        """The keys of the models on which some flag fired."""
        return [key for key, d in self.diagnoses.items() if d.masking]


def masking_settings(config: DemoConfig) -> dict[str, Any]:
    """The demo-sized settings of :func:`avrobust.diagnose` for ``config``.

    PGD takes the table's ``attack_steps`` (so ``"convergence"`` asks whether the table's attack
    has converged: 4x the steps with 2 restarts); the budget grows from ``table_eps`` to at
    least :data:`LARGE_EPS_AV` (4 budgets); Square gets ``worst_case_queries`` per clip, at most
    :data:`MAX_QUERIES`; 10 noise draws; the objective is the table's (``"training"``: TalkNet's
    loss over every head). About 9 s a model of the ``default`` preset on 2 CPU threads.
    """
    top = max(10.0, LARGE_EPS_AV / config.table_eps)
    return {
        "steps": config.attack_steps,
        "restarts": 2,
        "scales": (1.0, top / 4, top / 2, top),
        "queries": min(config.worst_case_queries, MAX_QUERIES),
        "noise_draws": 10,
        "objective": "training",
        "seed": config.seed,
    }


def masking_checks(
    config: DemoConfig,
    models: Mapping[str, nn.Module],
    data: Clips,
    clips: Sequence[int],
    surrogate: nn.Module | None,
    *,
    settings: Mapping[str, Any] | None = None,
    report: Callable[[str], None] | None = None,
    cache: str | None = None,
) -> MaskingChecks:
    """Run :func:`avrobust.diagnose` on each model, on the clips ``clips`` of ``data``, at
    ``eps_av = config.table_eps`` on the audio-visual budgets (:func:`avrobust.push_pull_budgets`).

    Every attack of the checklist leaves the models and ``data`` unchanged.

    Args:
        config: the demo settings (budget, steps, queries, seed).
        models: ``{model key: model}``, e.g. the demo's trained TalkNets (A-E).
        data: the held-out clips, ``({modality: (N, ...)}, (N, T) labels)``.
        clips: the indices of the clips to diagnose (the attacked ones), at least one.
        surrogate: the transfer surrogate (``"transfer"`` check), or ``None`` (no such check).
        settings: keyword arguments of :func:`avrobust.diagnose` to use instead of
            :func:`masking_settings`'s (those not given keep theirs).
        report: called with one line per model (e.g. ``print``).
        cache: a JSON file of earlier diagnoses (the demo's ``results/masking-<model>.json``):
            a model whose weights, surrogate, clips, budget and settings are those of a stored
            diagnosis reuses it; the others are diagnosed and the file rewritten (atomically).

    Returns:
        :class:`MaskingChecks`, its ``section`` starting ``"## Gradient-masking checks"``.

    Raises:
        TypeError, ValueError: bad ``clips``, ``settings`` or ``surrogate`` (naming them), and
            :func:`avrobust.diagnose`'s errors.
    """
    inputs, labels = data
    index = _check_clips(clips, int(labels.shape[0]))
    chosen = torch.tensor(index, dtype=torch.long)
    batch = {k: v[chosen] for k, v in inputs.items()}
    options = {**masking_settings(config), **dict(settings or {})}
    if "surrogate" in options:
        raise TypeError("settings: give the surrogate as the argument surrogate, not in settings")
    budgets = push_pull_budgets(config.table_eps)
    diagnoses: dict[str, Diagnosis] = {}
    seconds: dict[str, float] = {}
    stored, changed = _masking_cache.load(cache), False
    for key, model in models.items():
        stamp = _masking_cache.fingerprint(
            model, surrogate, batch, labels[chosen], config.table_eps, options
        )
        entry = stored.get(key)
        if isinstance(entry, dict) and entry.get("fingerprint") == stamp:
            diagnoses[key], seconds[key] = _masking_cache.from_json(entry["diagnosis"]), 0.0
            how = "from the cache"
        else:
            start = time.perf_counter()
            diagnoses[key] = diagnose(
                model, batch, labels[chosen], budgets, surrogate=surrogate, **options
            )
            seconds[key] = time.perf_counter() - start
            how = f"{seconds[key]:.1f} s"
            diagnosis = _masking_cache.to_json(diagnoses[key])
            stored[key] = {"fingerprint": stamp, "diagnosis": diagnosis}
            changed = True
        if report is not None:
            fired = [f.name for f in diagnoses[key].fired]
            found = ", ".join(fired) if fired else "no flag fired"
            report(f"masking checks of ({key}): {found} ({how})")
    if cache is not None and changed:
        _masking_cache.save(cache, stored)
    section = masking_section(config, diagnoses, options, len(index), surrogate is not None)
    return MaskingChecks(
        float(config.table_eps), tuple(index), options, diagnoses, seconds, section
    )


def combined(
    config: DemoConfig, parts: Sequence[MaskingChecks], *, transfer: bool
) -> MaskingChecks:
    """The checks of several :func:`masking_checks` calls (one model each, on the same clips
    with the same settings) as one, with their section (``transfer``: they had a surrogate).

    Raises:
        ValueError: no part, or parts on other clips or with other settings.
    """
    if not parts:
        raise ValueError("parts: expected the checks of at least one model, got none")
    first = parts[0]
    other = [p for p in parts if p.clips != first.clips or p.settings != first.settings]
    if other:
        raise ValueError("parts: expected checks on the same clips with the same settings")
    diagnoses = {k: d for p in parts for k, d in p.diagnoses.items()}
    seconds = {k: s for p in parts for k, s in p.seconds.items()}
    section = masking_section(config, diagnoses, first.settings, len(first.clips), transfer)
    return MaskingChecks(first.eps_av, first.clips, first.settings, diagnoses, seconds, section)


def _check_clips(clips: Any, total: int) -> list[int]:
    if isinstance(clips, (str, bytes)) or not isinstance(clips, Sequence) or not clips:
        raise TypeError(f"clips: expected a non-empty list of clip indices, got {describe(clips)}")
    index = [check_int(c, f"clips[{i}]", min_value=0) for i, c in enumerate(clips)]
    beyond = [c for c in index if c >= total]
    if beyond:
        raise ValueError(f"clips: the held-out set has {total} clips (0-{total - 1}), got {beyond}")
    return index


def masking_section(
    config: DemoConfig,
    diagnoses: Mapping[str, Diagnosis],
    settings: Mapping[str, Any],
    clips: int,
    transfer: bool,
) -> str:
    """The Markdown section of the findings summary: how the checks ran, then per model "no flag
    fired" or each fired flag's sentence."""
    scales = settings["scales"]
    budgets = ", ".join(f"{config.table_eps * s:g}" for s in scales)
    surrogate = f", transfer from {config.model_label('S')}" if transfer else ""
    lines = [
        _TITLE,
        "",
        f"`avrobust.diagnose` on the {clips} attacked clips at eps_av = {config.table_eps:g} "
        f"(PGD {_count(settings['steps'], 'step')}, and {_count(4 * settings['steps'], 'step')} "
        f"with {_count(settings['restarts'], 'restart')}; PGD at eps_av = {budgets}; Square "
        f"{_count(settings['queries'], 'query', 'queries')}; "
        f"{_count(settings['noise_draws'], 'random-noise draw')}"
        f"{surrogate}). A flag that fires means that model's white-box numbers cannot be "
        "trusted as they are: a weak attack or masked gradients.",
        "",
    ]
    for key, diagnosis in diagnoses.items():
        fired = diagnosis.fired
        if not fired:
            acc = diagnosis.accuracy
            lines.append(
                f"- {config.model_label(key)}: no flag fired (robust accuracy over the clips: "
                f"clean {100 * acc['clean']:.0f} %, PGD {100 * acc['pgd']:.0f} %)."
            )
            continue
        lines.append(f"- {config.model_label(key)}: {_count(len(fired), 'flag')} fired:")
        lines += [f"  - **{f.name}**: {f.sentence}." for f in fired]
    return "\n".join(lines) + "\n"


def _count(number: int, word: str, plural: str | None = None) -> str:
    """``"1 step"``, ``"5 steps"``."""
    return f"{number} {word if number == 1 else plural or word + 's'}"
