"""The Push-Pull study in miniature: train, attack and defend a tiny TalkNet on synthetic data.

:func:`run_demo` reproduces the shape of Push-Pull (Chen et al., ICASSP 2023) on a laptop CPU,
with no download:

1. Synthetic active-speaker clips (:class:`~avrobust.data.synthetic.SyntheticActiveSpeaker`, the
   four situations of §2.1): a training set and a held-out set.
2. Five tiny TalkNets (Table 1's rows): **(A)** TalkNet's loss ``CE_all`` (eq. 4); **(B)** (A)
   fine-tuned with adversarial training (half of each batch replaced by BIM examples);
   **(C)** ``CE_all`` + one AVIL term (default ``L1``); **(D)** ``CE_all`` + the paper's best pair
   (default ``L1 + L4``); **(E)** (D) fine-tuned with adversarial training and the same AVIL.
3. Each model is attacked by BIM, MIM and PGD on the audio, the video, and both (the joint attack
   of eq. 5) over an ``eps_av`` grid (audio ``eps_av·1e-4``, video ``eps_av·0.1`` pixel levels), on
   held-out clips every model predicts correctly, balanced speaking / not speaking (§4.1).
   Extras: the inference-aware attack on (A) (Fig. 4), and perturbations crafted on (C) and
   transferred to (A) (black box, Fig. 3a).
4. Outputs: a Table-1-like table, Fig.-3-like plots, ECR bars, every cell as CSV/JSON, a short
   summary of which of the paper's findings held on this data, and the material of an XAB
   listening/viewing test (four genuine/adversarial pairs of (A), as in §4.2).

Trained models are cached under ``<out>/models`` (keyed by their training settings) and every
attack cell under ``<out>/results``, so a rerun only evaluates what is missing, and an interrupted
run resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._checks import check_bool, check_choice, describe, replace_fields
from ._demo_checks import check_demo_config
from ._demo_folder import check_out_dir, drop_results, open_demo_folder, settings_of
from .attacks import MultimodalAttack, push_pull_budgets
from .bootstrap import CellBootstrap, bootstrap_map
from .data.synthetic import SyntheticActiveSpeaker
from .defenses import AdversarialTraining
from .evaluation import (
    EvaluationReport,
    balanced_subset,
    correct_samples,
    evaluate,
    write_csv_rows,
)
from .export import ExportedPair, export_pairs
from .losses import AVILoss
from .metrics import ava_average_precision
from .models import TalkNet, speaking_probability, talknet_loss

__all__ = ["PRESETS", "DemoConfig", "DemoResult", "ModelSpec", "run_demo"]

log = logging.getLogger("avrobust.demo")


@dataclass(frozen=True)
class ModelSpec:
    """How one demo model is trained.

    Attributes:
        key: the row label, e.g. ``"A"``.
        description: a short description for the table.
        avil_terms: AVIL terms added to TalkNet's loss (empty: none).
        adversarial: fine-tune with adversarial training.
        init_from: start from this model's weights (fine-tuning) instead of from scratch.
    """

    key: str
    description: str
    avil_terms: tuple[str, ...] = ()
    adversarial: bool = False
    init_from: str | None = None


@dataclass(frozen=True)
class DemoConfig:
    """Every setting of the demo. The presets are in :data:`PRESETS`.

    Attributes:
        train_clips: synthetic training clips.
        test_clips: held-out clips (clean mAP over all of them; attacks on a balanced subset).
        frames: frames per clip (25 fps).
        face_size: face crop side in pixels (TalkNet ``tiny`` with ``face_size=``).
        difficulty: synthetic data difficulty in [0, 1].
        train_steps: Adam steps of the models trained from scratch (A, C, D).
        finetune_steps: adversarial fine-tuning steps of B (from A) and E (from D).
        batch_size: clips per training step.
        lr: Adam learning rate (cosine decay to a tenth; half of it when fine-tuning).
        avil_single: the single AVIL term of model C.
        avil_pair: the AVIL terms of models D and E.
        avil_weight: ``λ`` of every AVIL term (the paper: 0.1).
        adv_rule: the rule that makes the adversarial training examples (B1 of the paper: BIM).
        adv_steps: its iterations.
        adv_eps: its ``eps_av`` (> 0; fixed, not the table's budget, so that changing the
            grid or ``table_eps`` reuses every trained model).
        adv_ratio: share of each batch replaced by adversarial examples.
        rules: attack rules evaluated.
        modalities: attacked-modality sets evaluated.
        eps_grid: the ``eps_av`` values (Fig. 3's x-axis).
        table_eps: the ``eps_av`` of the table (the paper: 5); must be in ``eps_grid``.
        attack_steps: iterations of every evaluation attack.
        per_class: attacked clips per class (speaking / not speaking).
        tie_margin: mAP points (>= 0) by which two mAPs must differ to count as different when
            the findings compare them: a claim "X > Y" holds when the 95 % bootstrap interval
            of X - Y over the attacked clips lies above ``tie_margin`` and fails when it lies
            below (see :func:`findings`).
        extras: also run the inference-aware attack on (A) and the transfer attack (C) -> (A).
        seed: seed of the data, the initialisations, the batches and the attacks.
    """

    train_clips: int = 512
    test_clips: int = 192
    frames: int = 16
    face_size: int = 32
    difficulty: float = 0.5
    train_steps: int = 200
    finetune_steps: int = 50
    batch_size: int = 16
    lr: float = 2e-3
    avil_single: tuple[str, ...] = ("l1",)
    avil_pair: tuple[str, ...] = ("l1", "l4")
    avil_weight: float = 0.1
    adv_rule: str = "bim"
    adv_steps: int = 2
    adv_eps: float = 20.0
    adv_ratio: float = 0.5
    rules: tuple[str, ...] = ("bim", "mim", "pgd")
    modalities: tuple[str, ...] = ("audio", "visual", "audio+visual")
    eps_grid: tuple[float, ...] = (5.0, 10.0, 20.0, 50.0)
    table_eps: float = 20.0
    attack_steps: int = 5
    per_class: int = 12
    tie_margin: float = 2.0
    extras: bool = True
    seed: int = 0
    models: tuple[ModelSpec, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name, value in check_demo_config(self).items():  # every setting, named if wrong
            object.__setattr__(self, name, value)
        if not self.models:
            object.__setattr__(self, "models", default_models(self))

    def replace(self, **changes: Any) -> DemoConfig:
        """A copy with some settings changed (the model list is rebuilt from the AVIL terms).

        Raises:
            TypeError: an unknown setting; the message lists the known ones.
        """
        return replace_fields(self, {"models": (), **changes})

    def training_dict(self) -> dict[str, Any]:
        """The training settings (a model's cache key holds those of them its recipe uses)."""
        names = (
            "train_clips",
            "frames",
            "face_size",
            "difficulty",
            "train_steps",
            "finetune_steps",
            "batch_size",
            "lr",
            "avil_weight",
            "adv_rule",
            "adv_steps",
            "adv_ratio",
            "seed",
        )
        return {n: getattr(self, n) for n in (*names, "adv_eps")}


def default_models(config: DemoConfig) -> tuple[ModelSpec, ...]:
    """Rows A–E of the demo's table for ``config``'s AVIL terms."""
    single = " + ".join(t.upper() for t in config.avil_single)
    pair = " + ".join(t.upper() for t in config.avil_pair)
    rule = config.adv_rule.upper()
    return (
        ModelSpec("A", "CE_all (TalkNet)"),
        ModelSpec("B", f"CE_all, {rule} adversarial training", adversarial=True, init_from="A"),
        ModelSpec("C", f"CE_all + {single}", avil_terms=config.avil_single),
        ModelSpec("D", f"CE_all + {pair}", avil_terms=config.avil_pair),
        ModelSpec(
            "E",
            f"CE_all + {pair}, {rule} adversarial training",
            avil_terms=config.avil_pair,
            adversarial=True,
            init_from="D",
        ),
    )


PRESETS: dict[str, DemoConfig] = {
    # the main job: clean mAP >= 90 %, about 3 minutes on 2 CPU cores (179 s measured)
    "default": DemoConfig(),
    # a smoke run: every step, smaller everything (under 2 minutes)
    "quick": DemoConfig(
        train_clips=128,
        test_clips=64,
        train_steps=50,
        finetune_steps=10,
        eps_grid=(20.0, 50.0),
        table_eps=20.0,
        attack_steps=2,
        per_class=4,
    ),
    # for the test suite: the same pipeline, minimal sizes (seconds)
    "test": DemoConfig(
        train_clips=16,
        test_clips=16,
        frames=8,
        face_size=16,
        train_steps=4,
        finetune_steps=2,
        batch_size=4,
        adv_steps=1,
        eps_grid=(50.0,),
        table_eps=50.0,
        attack_steps=1,
        per_class=2,
    ),
}


@dataclass
class DemoResult:
    """What :func:`run_demo` returns.

    Attributes:
        config: the settings used.
        clean_map: ``{model key: clean frame mAP in [0, 1] over every held-out clip}``.
        reports: ``{model key: EvaluationReport}`` of the white-box grid.
        extras: ``{"inference": report on A, "transfer": report C -> A}`` when run.
        table: the Table-1-like text table.
        summary: the findings summary (Markdown).
        files: the paths written.
        seconds: ``{"train": ..., "evaluate": ..., "total": ...}`` wall times.
        selection: the held-out clips attacked (correct for every model, balanced).
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


# ----------------------------------------------------------------------------- training


def _hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


_ADVERSARIAL_SETTINGS = ("adv_rule", "adv_steps", "adv_ratio", "adv_eps")


def _model_payload(spec: ModelSpec, config: DemoConfig) -> dict[str, Any]:
    """What a model depends on (its cache key): only the settings its recipe uses, so that
    changing the grid, the table's budget or another model's recipe retrains nothing."""
    unused = {"finetune_steps" if spec.init_from is None else "train_steps"}
    if not spec.adversarial:
        unused |= set(_ADVERSARIAL_SETTINGS)
    if not spec.avil_terms:
        unused.add("avil_weight")
    training = {k: v for k, v in config.training_dict().items() if k not in unused}
    payload: dict[str, Any] = {
        "spec": dataclasses.asdict(spec),
        "training": training,
        "model": {"variant": "tiny", "face_size": config.face_size},
    }
    if spec.init_from is not None:
        parent = next(s for s in config.models if s.key == spec.init_from)
        payload["parent"] = _model_payload(parent, config)
    return payload


def _new_model(config: DemoConfig, seed: int) -> TalkNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TalkNet("tiny", face_size=config.face_size)


def train_model(
    spec: ModelSpec,
    config: DemoConfig,
    data: tuple[dict[str, Tensor], Tensor],
    init: TalkNet | None = None,
    *,
    progress: bool = False,
) -> TalkNet:
    """Train one demo model with TalkNet's loss, its AVIL terms and (optionally) adversarial batches.

    Args:
        spec: the model's recipe.
        config: the demo settings (steps, batch size, learning rate, attack for adversarial
            training).
        data: ``(inputs, labels)`` training clips, stacked.
        init: weights to start from (copied; the argument is not changed).
        progress: show a tqdm bar.

    Returns:
        The trained model, in eval mode.
    """
    index = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".find(spec.key[:1])
    seed = config.seed * 1000 + max(index, 0) + 1
    model = _new_model(config, seed)
    if init is not None:
        model.load_state_dict(init.state_dict())
    fine_tune = init is not None
    steps = config.finetune_steps if fine_tune else config.train_steps
    lr = config.lr / 2 if fine_tune else config.lr
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    avil = AVILoss(spec.avil_terms, weight=config.avil_weight) if spec.avil_terms else None
    adversarial = None
    if spec.adversarial:
        attack = MultimodalAttack(
            model,
            config.adv_rule,
            push_pull_budgets(config.adv_eps),
            steps=max(1, config.adv_steps),
            seed=seed,
        )
        adversarial = AdversarialTraining(attack, ratio=config.adv_ratio, seed=seed)
    inputs, labels = data
    gen = torch.Generator().manual_seed(seed)
    bar = _bar(steps, f"train {spec.key}", progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dropout, inside this block only
        for step in range(steps):
            model.train()
            idx = torch.randint(0, labels.shape[0], (config.batch_size,), generator=gen)
            batch_inputs, batch_labels = {k: v[idx] for k, v in inputs.items()}, labels[idx]
            if adversarial is not None:
                made = adversarial(batch_inputs, batch_labels)
                batch_inputs, batch_labels = made.inputs, made.labels
            out = model(**batch_inputs)
            loss = talknet_loss(out, batch_labels)
            if avil is not None:
                loss = loss + avil(out.embeddings["audio"], out.embeddings["visual"], batch_labels)
            for group in optimiser.param_groups:  # cosine decay to a tenth
                group["lr"] = lr * (
                    0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
                )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    if bar is not None:
        bar.close()
    return model.eval()


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def _load_or_train(
    spec: ModelSpec,
    config: DemoConfig,
    data: tuple[dict[str, Tensor], Tensor],
    trained: Mapping[str, TalkNet],
    cache: str,
    progress: bool,
) -> tuple[TalkNet, bool]:
    payload = _model_payload(spec, config)
    path = _cache_path(spec, config, cache)
    if os.path.exists(path):
        model = TalkNet.from_checkpoint(path, "tiny", face_size=config.face_size)
        return model, True
    init = trained[spec.init_from] if spec.init_from is not None else None
    model = train_model(spec, config, data, init, progress=progress)
    os.makedirs(cache, exist_ok=True)
    model.save_checkpoint(path + ".tmp")  # the official layout: avrobust evaluate reads it
    os.replace(path + ".tmp", path)
    with open(path[: -len(".model")] + ".json", "w") as handle:
        json.dump(payload, handle, indent=2)
    return model, False


def _cache_path(spec: ModelSpec, config: DemoConfig, cache: str) -> str:
    return os.path.join(cache, f"{spec.key}-{_hash(_model_payload(spec, config))}.model")


# ----------------------------------------------------------------------------- running


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
            (listed in its manifest ``.avrobust-manifest.json``; never another file or folder),
            then train and attack everything, whatever settings that run had.
        report: called with each progress message (e.g. ``print``); messages also go to the
            ``avrobust.demo`` logger.

    Returns:
        :class:`DemoResult`.

    Raises:
        ValueError: an unknown preset; ``out_dir`` holds a run of the demo with other settings
            (other than the grid: ``eps_grid``, ``table_eps``, ``tie_margin``, ``extras``) and
            ``retrain`` is not set, or files the demo did not write where it would write (a
            :class:`~avrobust._demo_folder.FolderConflict` naming them, raised before any work).
        NotADirectoryError: ``out_dir`` is a file.
    """
    if isinstance(config, str):
        config = PRESETS[check_choice(config, "config", PRESETS)]
    elif not isinstance(config, DemoConfig):
        raise TypeError(f"config: expected a DemoConfig or a preset name, got {describe(config)}")
    check_bool(retrain, "retrain")

    def say(message: str) -> None:
        log.info(message)
        if report is not None:
            report(message)

    start = time.perf_counter()
    out = check_out_dir(out_dir)
    cache, results = os.path.join(out, "models"), os.path.join(out, "results")
    folder, before = open_demo_folder(
        out, settings_of(config), _planned(config), fresh=retrain, say=say
    )

    say(
        f"synthetic data: {config.train_clips} training and {config.test_clips} held-out clips of "
        f"{config.frames} frames ({config.frames / 25:.2f} s), {config.face_size}x"
        f"{config.face_size} faces, difficulty {config.difficulty:g}"
    )
    train_set, test_set = (
        SyntheticActiveSpeaker(
            clips,
            frames=config.frames,
            face_size=config.face_size,
            difficulty=config.difficulty,
            seed=2 * config.seed + offset,
        )
        for clips, offset in ((config.train_clips, 1), (config.test_clips, 2))
    )
    test_data = test_set.tensors()
    train_data: tuple[dict[str, Tensor], Tensor] | None = None

    trained: dict[str, TalkNet] = {}
    clean_map: dict[str, float] = {}
    clean_scores: dict[str, tuple[Tensor, Tensor]] = {}
    for spec in config.models:
        if train_data is None and not _cached(spec, config, cache):
            train_data = train_set.tensors()
        t0 = time.perf_counter()
        model, cached = _load_or_train(
            spec,
            config,
            train_data if train_data is not None else ({}, torch.zeros(0)),
            trained,
            cache,
            progress,
        )
        trained[spec.key] = model
        if not cached:  # cells of an earlier model of this recipe are stale
            drop_results(folder, spec.key, say)
        clean_scores[spec.key] = (_clean_scores(model, test_data), test_data[1])  # intervals
        clean_map[spec.key] = float(ava_average_precision(*clean_scores[spec.key]))
        how = "loaded from cache" if cached else f"trained in {time.perf_counter() - t0:.0f} s"
        say(
            f"model ({spec.key}) {spec.description}: {how}, clean mAP {100 * clean_map[spec.key]:.2f}%"
        )
    train_seconds = time.perf_counter() - start

    selection, how = _attacked_clips(config, trained, test_data)
    say(f"attacking {len(selection)} held-out clips: {how}")

    eval_start = time.perf_counter()

    def grid(
        model: TalkNet,
        name: str,
        eps: Sequence[float],
        modalities: Sequence[str],
        rules: Sequence[str] = config.rules,
        objective: str = "training",
        surrogate: TalkNet | None = None,
    ) -> EvaluationReport:
        return evaluate(
            model,
            test_data,
            rules=rules,
            eps=eps,
            modalities=modalities,
            steps=config.attack_steps,
            objective=objective,
            surrogate=surrogate,
            select=selection,
            balance=False,
            seed=config.seed,
            progress=progress,
            results_file=os.path.join(results, f"{name}.jsonl"),
        )

    reports: dict[str, EvaluationReport] = {}
    for key, model in trained.items():
        t0 = time.perf_counter()
        reports[key] = grid(model, key, config.eps_grid, config.modalities)
        seconds = time.perf_counter() - t0
        say(f"model ({key}) attacked: {len(reports[key].cells)} cells in {seconds:.0f} s")
    extras: dict[str, EvaluationReport] = {}
    if config.extras and "A" in trained:
        av = ["audio+visual"]
        extras["inference"] = grid(
            trained["A"], "A-inference", [config.table_eps], av, objective="inference"
        )
        if "C" in trained:
            extras["transfer"] = grid(
                trained["A"], "C-to-A", config.eps_grid, av, ("pgd",), surrogate=trained["C"]
            )
        say("extras: inference-aware attack on (A), transfer attack (C) -> (A)")
    eval_seconds = time.perf_counter() - eval_start

    xab = _export_examples(out, config, trained, test_data, selection) if "A" in trained else []
    if xab:
        say(f"XAB listening/viewing test: {len(xab)} genuine/adversarial pairs in {out}/xab_test")
    times = {"train": train_seconds, "evaluate": eval_seconds}
    table, summary, files = write_outputs(
        out, config, clean_map, reports, extras, plots, times, how, clean_scores=clean_scores
    )
    files += [os.path.join(out, "xab_test", "manifest.csv")] if xab else []
    folder.record(before)
    total = time.perf_counter() - start
    times["total"] = total
    say(
        f"done in {total:.0f} s (training/loading {train_seconds:.0f} s, attacks {eval_seconds:.0f} s)"
    )
    return DemoResult(config, clean_map, reports, extras, table, summary, files, times, selection)


def _attacked_clips(
    config: DemoConfig, trained: Mapping[str, TalkNet], data: tuple[dict[str, Tensor], Tensor]
) -> tuple[list[int], str]:
    """Held-out clips every model predicts correctly, balanced (Push-Pull §4.1 and Table 1).

    Every frame must be right; if that leaves a class empty (a barely trained model, as in the
    ``test`` preset), most frames must be right; failing that, every clip is a candidate.
    """
    for accuracy, what in ((1.0, "every frame"), (0.5, "most frames")):
        ids: list[int] = []
        positive: list[bool] = []
        ok = [True] * config.test_clips
        for model in trained.values():
            ids, correct, positive = correct_samples(model, data, min_accuracy=accuracy)
            ok = [a and b for a, b in zip(ok, correct)]
        candidates = [i for i, k in zip(ids, ok) if k]
        cand_pos = [p for p, k in zip(positive, ok) if k]
        per_class = min(config.per_class, sum(cand_pos), len(cand_pos) - sum(cand_pos))
        if per_class > 0:
            chosen = balanced_subset(candidates, cand_pos, per_class=per_class, seed=config.seed)
            return chosen, (
                f"{per_class} speaking + {per_class} not speaking, {what} predicted correctly by "
                f"all {len(trained)} models ({len(candidates)} of {config.test_clips} clips are)"
            )
    positive = correct_samples(next(iter(trained.values())), data, min_accuracy=0.0)[2]
    per_class = min(config.per_class, sum(positive), len(positive) - sum(positive))
    if per_class == 0:
        raise RuntimeError("demo: the held-out clips lack a class; use more test_clips")
    chosen = balanced_subset(
        list(range(len(positive))), positive, per_class=per_class, seed=config.seed
    )
    return chosen, (
        f"{per_class} speaking + {per_class} not speaking, drawn from all clips (no clip of "
        "each class is predicted correctly by every model: the models are barely trained)"
    )


def _export_examples(
    out: str,
    config: DemoConfig,
    trained: Mapping[str, TalkNet],
    data: tuple[dict[str, Tensor], Tensor],
    selection: Sequence[int],
) -> list[ExportedPair]:
    """Push-Pull's XAB material: (A) under the audio-visual PGD attack at ``table_eps``, two
    speaking and two not-speaking clips (§4.2), as WAV files and PNG frames."""
    inputs, labels = data
    speaking = [i for i in selection if float(labels[i].float().mean()) > 0.5][:2]
    silent = [i for i in selection if float(labels[i].float().mean()) <= 0.5][:2]
    chosen = torch.tensor(speaking + silent, dtype=torch.long)
    if chosen.numel() == 0:
        return []
    clean = {k: v[chosen] for k, v in inputs.items()}
    attack = MultimodalAttack(
        trained["A"],
        "pgd",
        push_pull_budgets(config.table_eps),
        config.attack_steps,
        seed=config.seed,
    )
    result = attack(clean, labels[chosen])
    import importlib.util

    return export_pairs(
        os.path.join(out, "xab_test"),
        clean,
        result.inputs,
        labels=labels[chosen],
        gif=importlib.util.find_spec("PIL") is not None,  # moving faces where pillow is there
        seed=config.seed,
    )


def _planned(config: DemoConfig) -> list[str]:
    """The paths (relative to the output folder) a run of ``config`` writes, known up front."""
    names = [spec.key for spec in config.models] + ["A-inference", "C-to-A"]
    paths = [f"results/{n}.jsonl" for n in names]
    for spec in config.models:
        model = os.path.basename(_cache_path(spec, config, ""))
        paths += [f"models/{model}", f"models/{model[: -len('.model')]}.json"]
    paths += ["table.md", "table.csv", "results.csv", "results.json", "summary.md"]
    return [*paths, "fig3_model_A.png", "fig3_models.png", "ecr.png", "xab_test/manifest.csv"]


def _cached(spec: ModelSpec, config: DemoConfig, cache: str) -> bool:
    return os.path.exists(_cache_path(spec, config, cache))


def _clean_scores(model: TalkNet, data: tuple[dict[str, Tensor], Tensor]) -> Tensor:
    """P(speaking) of every frame of every clip, ``(N, T)``, clean."""
    inputs, labels = data
    scores = []
    with torch.no_grad():
        for start in range(0, labels.shape[0], 64):
            part = {k: v[start : start + 64] for k, v in inputs.items()}
            scores.append(speaking_probability(model(**part)))
    return torch.cat(scores)


# ----------------------------------------------------------------------------- outputs

_AV = "audio+visual"


def _map(report: EvaluationReport, rule: str, eps: float, attacked: str = _AV) -> float | None:
    try:
        return 100 * report.cell(rule, eps, attacked).map_adv
    except KeyError:
        return None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(r) for r in rows)])


BOOTSTRAP_RESAMPLES = 1000  # resamples of the attacked clips behind every interval
BOOTSTRAP_LEVEL = 0.95  # coverage of the intervals


class _Intervals:
    """Bootstrap samples, in mAP points, of the demo's measures (:mod:`avrobust.bootstrap`).

    Every cell is resampled over its attacked clips with the same seeded counts; every report
    of the demo attacks the same clips, so two models (or two budgets, or clean and attacked)
    are compared *paired*, on the same resampled clips. The clean mAP over every held-out clip is
    resampled over those clips when their frame scores are given (``{key: (scores, labels)}``).
    """

    def __init__(
        self, config: DemoConfig, clean_scores: Mapping[str, tuple[Tensor, Tensor]] | None = None
    ) -> None:
        self.boot = CellBootstrap(
            resamples=BOOTSTRAP_RESAMPLES, seed=config.seed, level=BOOTSTRAP_LEVEL
        )
        self.clean_scores = dict(clean_scores or {})
        self._clean: dict[str, np.ndarray] = {}

    def cell(
        self, report: EvaluationReport, rule: str, eps: float, attacked: str = _AV, which="adv"
    ) -> np.ndarray | None:
        try:
            samples = self.boot.map(report.cell(rule, eps, attacked), which)
        except KeyError:
            return None
        return None if samples is None else 100 * samples

    def clean(self, key: str) -> np.ndarray | None:
        if key not in self.clean_scores:
            return None
        if key not in self._clean:
            scores, labels = (t.reshape(t.shape[0], -1).tolist() for t in self.clean_scores[key])
            self._clean[key] = 100 * bootstrap_map(scores, labels, self.boot.counts(len(scores)))
        return self._clean[key]

    def text(self, value: float | None, samples: np.ndarray | None, sign: str = "") -> str:
        """``"70.6 [62.1, 78.3]"`` (``sign="+"``: signed), or the value alone without samples."""
        if value is None or not math.isfinite(value):
            return "-"
        low, high = self.boot.interval(samples)
        if not (math.isfinite(low) and math.isfinite(high)):
            return f"{value:{sign}.2f}"
        return f"{value:{sign}.1f} [{low:{sign}.1f}, {high:{sign}.1f}]"

    def outcome(self, samples: np.ndarray | None, threshold: float) -> str:
        return _outcome(self.boot.interval(samples), threshold)


def _diff(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return None if a is None or b is None else a - b


def table_one(
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, EvaluationReport],
    *,
    intervals: _Intervals | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The Table-1-like table: per model, clean mAP and, per rule, A(ECR), V(ECR) and mAP under
    the audio-visual attack at ``eps_av = table_eps``; each mAP with its 95 % bootstrap interval
    over the clips (``"70.6 [62.1, 78.3]"``; the clean mAP's only when its scores were given).

    Returns:
        ``(markdown, rows)`` with one dict per model (the CSV rows; ``*_low`` and ``*_high``
        are the interval's bounds, ``None`` without per-clip scores).
    """
    ci = intervals or _Intervals(config)
    eps = config.table_eps
    head = ["Model", "Training loss", "Adv. training", "Clean mAP (%)"]
    for rule in config.rules:
        head += [f"{rule.upper()} A(ECR)", f"{rule.upper()} V(ECR)", f"{rule.upper()} mAP (%)"]
    rows: list[list[str]] = []
    records: list[dict[str, Any]] = []
    for spec in config.models:
        if spec.key not in reports:
            continue
        loss = "CE_all" + "".join(f" + {t.upper()}" for t in spec.avil_terms)
        adv = config.adv_rule.upper() if spec.adversarial else "no"
        clean = ci.clean(spec.key)
        row = [f"({spec.key})", loss, adv, ci.text(100 * clean_map[spec.key], clean)]
        record: dict[str, Any] = {
            "model": spec.key,
            "loss": loss,
            "adversarial_training": adv,
            "clean_map": 100 * clean_map[spec.key],
            **_bounds("clean_map", ci, clean),
            "eps_av": eps,
        }
        for rule in config.rules:
            try:
                cell = reports[spec.key].cell(rule, eps, _AV)
            except KeyError:
                row += ["-", "-", "-"]
                continue
            a, v = cell.ecr.get("audio"), cell.ecr.get("visual")
            samples = ci.cell(reports[spec.key], rule, eps)
            row += [_fmt(a, 4), _fmt(v, 4), ci.text(100 * cell.map_adv, samples)]
            record.update(
                {f"{rule}_ecr_audio": a, f"{rule}_ecr_visual": v, f"{rule}_map": 100 * cell.map_adv}
            )
            record.update(_bounds(f"{rule}_map", ci, samples))
        rows.append(row)
        records.append(record)
    return _markdown(head, rows), records


def _bounds(name: str, ci: _Intervals, samples: np.ndarray | None) -> dict[str, float | None]:
    low, high = ci.boot.interval(samples)
    finite = math.isfinite(low) and math.isfinite(high)
    return {f"{name}_low": low if finite else None, f"{name}_high": high if finite else None}


def table_modalities(
    config: DemoConfig,
    reports: Mapping[str, EvaluationReport],
    *,
    intervals: _Intervals | None = None,
) -> str:
    """mAP (%) per model under every rule × attacked modality set at ``eps_av = table_eps``,
    with 95 % bootstrap intervals over the clips."""
    ci = intervals or _Intervals(config)
    head = ["Model"] + [
        f"{r.upper()} {m.replace('audio+visual', 'AV').replace('audio', 'A').replace('visual', 'V')}"
        for r in config.rules
        for m in config.modalities
    ]
    eps = config.table_eps
    rows = [
        [f"({k})"]
        + [
            ci.text(_map(rep, r, eps, m), ci.cell(rep, r, eps, m))
            for r in config.rules
            for m in config.modalities
        ]
        for k, rep in reports.items()
    ]
    return _markdown(head, rows)


def table_curve(
    config: DemoConfig,
    reports: Mapping[str, EvaluationReport],
    rule: str,
    *,
    intervals: _Intervals | None = None,
) -> str:
    """mAP (%) against ``eps_av`` under the audio-visual ``rule`` attack, one row per model, with
    95 % bootstrap intervals over the clips (``eps_av = 0``: the attacked clips' clean mAP)."""
    ci = intervals or _Intervals(config)
    head = ["Model", "eps_av = 0"] + [f"{e:g}" for e in config.eps_grid]
    rows = []
    for k, rep in reports.items():
        cells = [c for c in rep.cells if c.rule == rule and c.attacked == _AV]
        clean = None
        if cells:
            clean = ci.text(
                100 * cells[0].map_clean, ci.cell(rep, rule, cells[0].eps, _AV, "clean")
            )
        rows.append(
            [f"({k})", clean or "-"]
            + [ci.text(_map(rep, rule, e), ci.cell(rep, rule, e)) for e in config.eps_grid]
        )
    return _markdown(head, rows)


@dataclass(frozen=True)
class Finding:
    """One of the paper's claims checked on the demo's numbers.

    Attributes:
        claim: the claim, as the paper makes it.
        verdict: ``"held"`` (the 95 % bootstrap interval of every compared quantity lies on the
            claim's side of its threshold), ``"did not hold"`` (every one on the other side),
            ``"partly"`` (some clearly one way, some clearly the other), ``"inconclusive"``
            (an interval straddles its threshold, or there is none) or ``"not tested"``.
        evidence: the measured numbers behind the verdict, with their intervals.
    """

    claim: str
    verdict: str
    evidence: str


def _outcome(interval: tuple[float, float], threshold: float) -> str:
    """``"held"`` if the interval lies above ``threshold``, ``"did not hold"`` if below,
    else (straddling, or NaN: no interval) ``"inconclusive"``."""
    low, high = interval
    if low > threshold:
        return "held"
    if high < threshold:
        return "did not hold"
    return "inconclusive"


def _count(outcomes: Sequence[str]) -> str:
    """One verdict from the outcomes of a claim's comparisons (see :class:`Finding`)."""
    kinds = set(outcomes)
    if not kinds:
        return "not tested"
    if len(kinds) == 1 and kinds <= {"held", "did not hold"}:
        return outcomes[0]
    return "partly" if {"held", "did not hold"} <= kinds else "inconclusive"


def _compare_verdict(intervals: Sequence[tuple[float, float]], margin: float) -> str:
    """Verdict on "better > worse" from the bootstrap intervals of each comparison's gain (mAP
    points): held when every gain's interval lies above ``margin``, did not hold when every one
    lies below it (no gain of ``margin`` points: a tie or a loss)."""
    return _count([_outcome(i, margin) for i in intervals])


def findings(
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
    *,
    intervals: _Intervals | None = None,
) -> list[Finding]:
    """Check the Push-Pull findings (§4.2–4.4) against the demo's measurements.

    Every verdict compares mAP under attack at ``eps_av = table_eps`` (audio-visual attack unless
    the claim is about modalities) through paired 95 % bootstrap intervals over the attacked
    clips, and states the numbers, whatever they say. Differences between mAPs count only
    beyond ``config.tie_margin`` points. The intervals cover the choice of clips, not another
    training run.
    """
    ci = intervals or _Intervals(config)
    out: list[Finding] = []
    a = reports.get("A")
    if a is not None:
        out += _attack_findings(config, a, ci)
    out += _model_findings(config, clean_map, reports, ci)
    if a is not None:
        out += _extra_findings(config, a, extras, ci)
    return out


def _attack_findings(config: DemoConfig, a: EvaluationReport, ci: _Intervals) -> list[Finding]:
    """The attack-side claims, on (A)."""
    eps, margin, out = config.table_eps, config.tie_margin, []
    outcomes, text = [], []
    for r in config.rules:
        adv, clean = ci.cell(a, r, eps), ci.cell(a, r, eps, which="clean")
        value = _map(a, r, eps)
        if value is not None:
            drop = 100 * a.cell(r, eps, _AV).map_clean - value
            outcomes.append(ci.outcome(_diff(clean, adv), 10.0))
            text.append(f"{r.upper()} {ci.text(drop, _diff(clean, adv))}")
    out.append(
        Finding(
            "White-box attacks seriously degrade the undefended model (A).",
            _count(outcomes),
            ", ".join(text) + f" points of mAP lost at eps_av={eps:g} (audio-visual; serious: "
            "more than 10 points)",
        )
    )
    if "pgd" in config.rules and {"audio", "visual", _AV} <= set(config.modalities):
        pa, pv = (ci.cell(a, "pgd", eps, m) for m in ("audio", "visual"))
        va, vv = (_map(a, "pgd", eps, m) for m in ("audio", "visual"))
        if va is not None and vv is not None:
            clean = ci.cell(a, "pgd", eps, "audio", which="clean")
            lost = 100 * a.cell("pgd", eps, "audio").map_clean - va
            out.append(
                Finding(
                    "Audio-only attacks barely change mAP.",
                    ci.outcome(_diff(pa, clean), -5.0),
                    f"PGD audio-only mAP {ci.text(va, pa)}% at eps_av={eps:g}, "
                    f"{ci.text(lost, _diff(clean, pa))} points lost (barely: fewer than 5)",
                )
            )
            out.append(
                Finding(
                    "Visual-only attacks do more harm than audio-only ones.",
                    ci.outcome(_diff(pa, pv), margin),
                    f"PGD visual-only {ci.text(vv, pv)}% vs audio-only {ci.text(va, pa)}%, "
                    f"audio minus visual {ci.text(va - vv, _diff(pa, pv), '+')} points",
                )
            )
    out.append(_joint_finding(config, a, ci))
    out.append(_curve_finding(config, a, ci))
    return out


def _joint_finding(config: DemoConfig, a: EvaluationReport, ci: _Intervals) -> Finding:
    eps, outcomes, text = config.table_eps, [], []
    for r in config.rules:
        values = [_map(a, r, eps, m) for m in ("audio", "visual", _AV)]
        samples = [ci.cell(a, r, eps, m) for m in ("audio", "visual", _AV)]
        if any(v is None for v in values):
            continue
        va, vv, vj = (float(v or 0.0) for v in values)
        sa, sv, sj = samples
        best = None if sa is None or sv is None else np.minimum(sa, sv)
        margin = _diff(best, sj)  # > 0: the joint attack did more harm
        outcomes.append(ci.outcome(margin, -config.tie_margin))
        text.append(
            f"{r.upper()} {ci.text(vj, sj)}% vs best single {ci.text(min(va, vv), best)}% "
            f"({ci.text(min(va, vv) - vj, margin, '+')} points)"
        )
    return Finding(
        "Audio-visual attacks do at least as much harm as the stronger single-modality one.",
        _count(outcomes),
        "; ".join(text) or "-",
    )


def _curve_finding(config: DemoConfig, a: EvaluationReport, ci: _Intervals) -> Finding:
    rule = "pgd" if "pgd" in config.rules else config.rules[0]
    cells = sorted(
        (c for c in a.cells if c.rule == rule and c.attacked == _AV), key=lambda c: c.eps
    )
    claim = "mAP falls as the budget eps_av grows."
    if len(cells) < 2:
        return Finding(claim, "not tested", "fewer than two budgets in the grid")
    values = [100 * cells[0].map_clean] + [100 * c.map_adv for c in cells]
    samples = [ci.cell(a, rule, cells[0].eps, which="clean")]
    samples += [ci.cell(a, rule, c.eps) for c in cells]
    # no step up by more than the margin, and a fall of more than the margin overall
    outcomes = [ci.outcome(_diff(x, y), -config.tie_margin) for x, y in itertools.pairwise(samples)]
    outcomes.append(ci.outcome(_diff(samples[0], samples[-1]), config.tie_margin))
    return Finding(
        claim,
        _count(outcomes),
        f"{rule.upper()} audio-visual: "
        + " -> ".join(ci.text(v, s) for v, s in zip(values, samples))
        + " (eps_av 0, "
        + ", ".join(f"{c.eps:g}" for c in cells)
        + ")",
    )


def _model_findings(
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, EvaluationReport],
    ci: _Intervals,
) -> list[Finding]:
    """The defence-side claims: models compared pairwise, ECR, the cost in clean mAP."""
    eps, out = config.table_eps, []

    def compare(claim: str, better: str, worse: Sequence[str]) -> None:
        if better not in reports or not all(w in reports for w in worse):
            return
        intervals, text = [], []
        for r in config.rules:
            mb, sb = _map(reports[better], r, eps), ci.cell(reports[better], r, eps)
            parts = []
            for w in worse:
                mw, sw = _map(reports[w], r, eps), ci.cell(reports[w], r, eps)
                if mb is None or mw is None:
                    continue
                intervals.append(ci.boot.interval(_diff(sb, sw)))
                parts.append(
                    f"({w}) {ci.text(mw, sw)}%, gain {ci.text(mb - mw, _diff(sb, sw), '+')}"
                )
            if parts:
                text.append(f"{r.upper()}: ({better}) {ci.text(mb, sb)}% vs " + "; ".join(parts))
        out.append(Finding(claim, _compare_verdict(intervals, config.tie_margin), "; ".join(text)))

    single = " + ".join(t.upper() for t in config.avil_single)
    pair = " + ".join(t.upper() for t in config.avil_pair)
    compare("Adversarial training raises robust mAP (B > A).", "B", ["A"])
    compare(f"AVIL ({single}) raises robust mAP (C > A).", "C", ["A"])
    compare(f"AVIL ({pair}) raises robust mAP (D > A).", "D", ["A"])
    compare("AVIL does better than adversarial training (D > B).", "D", ["B"])
    compare(f"The pair {pair} does better than the single term {single} (D > C).", "D", ["C"])
    compare(
        "AVIL and adversarial training complement each other (E > B and E > D).", "E", ["B", "D"]
    )
    if {"A", "C", "D"} <= set(reports) and "pgd" in config.rules:
        out.append(_ecr_finding(config, reports, ci))
    if "A" in clean_map and len(clean_map) > 1:
        outcomes = [
            ci.outcome(_diff(ci.clean(k), ci.clean("A")), -2.0) for k in clean_map if k != "A"
        ]
        out.append(
            Finding(
                "Defences cost little clean mAP: within 2 points of (A) (Table 1: within 1.3).",
                _count(outcomes),
                ", ".join(f"({k}) {ci.text(100 * v, ci.clean(k))}%" for k, v in clean_map.items())
                + " over every held-out clip",
            )
        )
    return out


def _ecr_finding(
    config: DemoConfig, reports: Mapping[str, EvaluationReport], ci: _Intervals
) -> Finding:
    cells = {k: reports[k].cell("pgd", config.table_eps, _AV) for k in ("A", "C", "D")}
    points = {k: sum(c.ecr.values()) / 2 for k, c in cells.items()}
    samples: dict[str, np.ndarray | None] = {}
    for k, c in cells.items():
        parts = [ci.boot.ecr(c, m) for m in c.ecr]
        found = [p for p in parts if p is not None]
        samples[k] = np.stack(found).sum(0) / 2 if found and len(found) == len(parts) else None
    outcomes = [ci.outcome(_diff(samples["A"], samples[k]), 0.0) for k in ("C", "D")]
    text = []
    for k, v in points.items():
        low, high = ci.boot.interval(samples[k])
        text.append(f"({k}) {v:.4f}" + (f" [{low:.4f}, {high:.4f}]" if math.isfinite(low) else ""))
    return Finding(
        "AVIL lowers the embedding change ratio (ECR).",
        _count(outcomes),
        "mean of A(ECR), V(ECR) under PGD: " + ", ".join(text),
    )


def _extra_findings(
    config: DemoConfig,
    a: EvaluationReport,
    extras: Mapping[str, EvaluationReport],
    ci: _Intervals,
) -> list[Finding]:
    """The inference-aware (Fig. 4) and transfer (Fig. 3a) claims."""
    eps, out = config.table_eps, []
    if "inference" in extras:
        outcomes, text = [], []
        for r in config.rules:
            train_map, inf_map = _map(a, r, eps), _map(extras["inference"], r, eps)
            if train_map is None or inf_map is None:
                continue
            st, si = ci.cell(a, r, eps), ci.cell(extras["inference"], r, eps)
            outcomes.append(ci.outcome(_diff(si, st), -config.tie_margin))
            text.append(
                f"{r.upper()} training-aware {ci.text(train_map, st)}% vs inference-aware "
                f"{ci.text(inf_map, si)}%"
            )
        out.append(
            Finding(
                "Training-aware attacks do at least as much harm as inference-aware ones (Fig. 4).",
                _count(outcomes),
                "; ".join(text),
            )
        )
    if "transfer" in extras and "pgd" in config.rules:
        white, black = _map(a, "pgd", eps), _map(extras["transfer"], "pgd", eps)
        if white is not None and black is not None:
            sw, sb = ci.cell(a, "pgd", eps), ci.cell(extras["transfer"], "pgd", eps)
            clean = ci.cell(a, "pgd", eps, which="clean")  # the same clips, clean
            # barely works: the transferred attack takes off at most half of the white-box harm
            spare = None
            if sw is not None and sb is not None and clean is not None:
                spare = 0.5 * (clean - sw) - (clean - sb)
            out.append(
                Finding(
                    "Black-box (transferred) attacks barely work; white-box ones do (Fig. 3a).",
                    ci.outcome(spare, 0.0),
                    f"PGD at eps_av={eps:g}: crafted on (C), scored on (A) {ci.text(black, sb)}% "
                    f"vs white-box {ci.text(white, sw)}% (barely: at most half the white-box "
                    "loss of mAP)",
                )
            )
    return out


def write_outputs(
    out: str,
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
    plots: bool,
    seconds: Mapping[str, float],
    selection_note: str = "",
    *,
    clean_scores: Mapping[str, tuple[Tensor, Tensor]] | None = None,
) -> tuple[str, str, list[str]]:
    """Write the tables, the long-form results, the plots and the summary.

    Every mAP is stated with its 95 % bootstrap interval over the attacked clips
    (:data:`BOOTSTRAP_RESAMPLES` resamples seeded by ``config.seed``; model comparisons paired,
    on the same resampled clips), and a finding is called held or not only when its interval
    says so (:func:`findings`).

    Args:
        out: the output folder.
        config: the demo settings.
        clean_map: ``{model key: clean mAP in [0, 1]}``.
        reports: ``{model key: white-box grid report}``.
        extras: ``{"inference": ..., "transfer": ...}`` reports.
        plots: write the PNG plots (skipped, with a note, without matplotlib).
        seconds: ``{"train": s, "evaluate": s}`` wall times for the summary.
        selection_note: how the attacked clips were chosen, for the summary.
        clean_scores: ``{model key: (scores, labels)}``, the ``(N, T)`` frame scores and labels
            of every held-out clip behind ``clean_map``, for the clean mAP's intervals (without
            them the clean mAP has none, and the clean-cost finding is inconclusive).

    Returns:
        ``(table, summary, files written)``; ``table`` is the Table-1-like Markdown table.
    """
    ci = _Intervals(config, clean_scores)
    table, records = table_one(config, clean_map, reports, intervals=ci)
    checks = findings(config, clean_map, reports, extras, intervals=ci)
    files = _write_data(out, config, clean_map, reports, extras, seconds, records, checks)
    plot_note = ""
    if plots:
        try:
            files += _plots(out, config, reports, extras, intervals=ci)
        except ImportError as exc:
            plot_note = f"\nPlots were not written: {exc}\n"
    tables = _tables_text(config, table, reports, extras, ci)
    path = os.path.join(out, "table.md")
    with open(path, "w") as handle:
        handle.write(tables)
    files.append(path)
    held = sum(f.verdict == "held" for f in checks)
    summary = (
        "# avrobust demo: the Push-Pull study in miniature\n\n"
        f"Tiny TalkNet ({config.face_size}x{config.face_size} faces, {config.frames}-frame clips) "
        f"on synthetic active-speaker data (difficulty {config.difficulty:g}); "
        f"{config.train_steps} training steps (A, C, D), {config.finetune_steps} adversarial "
        f"fine-tuning steps (B from A, E from D); attacks with {config.attack_steps} iterations "
        f"on held-out clips: {selection_note}. "
        "eps_av: audio eps = eps_av·1e-4 (waveform in [-1, 1]), video eps = eps_av·0.1 pixel "
        "levels (0-255).\n\n"
        + _interval_note(config)
        + tables
        + f"## Which of the paper's findings held here ({held} of {len(checks)})\n\n"
        + "\n".join(f"- **{f.verdict}**: {f.claim} {f.evidence}." for f in checks)
        + f'\n\nA finding is "held" only when the interval of every quantity it compares lies '
        f'on the claim\'s side of its threshold, "did not hold" when every one lies on the other '
        f'side, "partly" when some lie on each side, and "inconclusive" when an interval '
        f"straddles its threshold; two mAPs must differ by more than {config.tie_margin:g} "
        "points (`tie_margin`) to count as different. The intervals cover the choice of the "
        "attacked clips, not another training run (another seed or thread count trains other "
        "models). This is a tiny model on synthetic data: the verdicts describe this run, not "
        "TalkNet on AVA-ActiveSpeaker.\n"
        + plot_note
        + f"\nWall time: training/loading {seconds.get('train', 0):.0f} s, attacks "
        f"{seconds.get('evaluate', 0):.0f} s.\n"
    )
    path = os.path.join(out, "summary.md")
    with open(path, "w") as handle:
        handle.write(summary)
    files.append(path)
    return table, summary, files


def _interval_note(config: DemoConfig) -> str:
    return (
        f"Numbers are mAP (%) with their {100 * BOOTSTRAP_LEVEL:g} % bootstrap interval over the "
        f"attacked clips in brackets ({BOOTSTRAP_RESAMPLES} resamples of the clips, seed "
        f"{config.seed}; the clean mAP's over every held-out clip).\n\n"
    )


def _write_data(
    out: str,
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
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
        for row in rep.rows():
            rows.append(
                {
                    "model": name,
                    "objective": rep.config["objective"],
                    "transfer": rep.config["surrogate"],
                    **row,
                }
            )
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


def _tables_text(
    config: DemoConfig,
    table: str,
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
    ci: _Intervals,
) -> str:
    """The Markdown of ``table.md``: Table 1, mAP per attacked set, the curves, the extras."""
    eps = config.table_eps
    text = (
        f"### Table 1 (demo): audio-visual attacks at eps_av = {eps:g}\n\n{table}\n\n"
        f"### mAP (%) by attacked modality at eps_av = {eps:g}\n\n"
        f"{table_modalities(config, reports, intervals=ci)}\n\n"
        + "".join(
            f"### mAP (%) against eps_av, audio-visual {r.upper()}\n\n"
            f"{table_curve(config, reports, r, intervals=ci)}\n\n"
            for r in config.rules
        )
    )
    if "inference" in extras:
        inf = extras["inference"]
        text += (
            f"Inference-aware attack on (A) at eps_av = {eps:g} (Fig. 4): "
            + ", ".join(
                f"{r.upper()} {ci.text(_map(inf, r, eps), ci.cell(inf, r, eps))}%"
                for r in config.rules
            )
            + ".\n\n"
        )
    if "transfer" in extras:
        tr = extras["transfer"]
        text += (
            "Transfer attack, PGD crafted on (C), scored on (A) (Fig. 3a): "
            + ", ".join(
                f"eps_av {e:g}: {ci.text(_map(tr, 'pgd', e), ci.cell(tr, 'pgd', e))}%"
                for e in config.eps_grid
            )
            + ".\n\n"
        )
    return text


def _model_label(config: DemoConfig, key: str) -> str:
    """``"(B) CE_all, BIM adversarial training"``: the row key and the recipe."""
    spec = next((s for s in config.models if s.key == key), None)
    return f"({key})" if spec is None else f"({key}) {spec.description}"


def _plots(
    out: str,
    config: DemoConfig,
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
    *,
    intervals: _Intervals | None = None,
) -> list[str]:
    """``fig3_model_A.png``, ``fig3_models.png`` and ``ecr.png``; returns their paths."""
    from .evaluation import _pyplot

    plt = _pyplot()
    files = []
    if "A" in reports:
        path = os.path.join(out, "fig3_model_A.png")
        reports["A"].plot_map(
            path, title=f"{_model_label(config, 'A')} under white-box attacks (Fig. 3b/c)"
        )
        files.append(path)
    for name, fig in (
        ("fig3_models.png", _models_figure(config, reports, extras, intervals)),
        ("ecr.png", _ecr_figure(config, reports)),
    ):
        path = os.path.join(out, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def _models_figure(
    config: DemoConfig,
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
    intervals: _Intervals | None = None,
) -> Any:
    """Fig. 3a-like: every model (and the transfer attack) under the audio-visual PGD attack,
    each line named by its recipe, with its 95 % bootstrap band over the clips."""
    from .evaluation import _pyplot

    ci = intervals or _Intervals(config)
    rule = "pgd" if "pgd" in config.rules else config.rules[0]
    fig, ax = _pyplot().subplots(figsize=(6.5, 3.8))
    lines = [(k, rep, _model_label(config, k)) for k, rep in reports.items()]
    if "transfer" in extras and rule == "pgd":
        lines.append(("transfer", extras["transfer"], "(C) -> (A) transfer (black box)"))
    for key, rep, label in lines:
        cells = sorted(
            (c for c in rep.cells if c.rule == rule and c.attacked == _AV), key=lambda c: c.eps
        )
        if not cells:
            continue
        xs = [0.0] + [c.eps for c in cells]
        style = {"marker": "x", "linestyle": "--", "color": "gray"} if key == "transfer" else {}
        ys = [100 * cells[0].map_clean] + [100 * c.map_adv for c in cells]
        line = ax.plot(xs, ys, **{"marker": "o", "label": label, **style})[0]
        bands = [ci.boot.interval(ci.cell(rep, rule, cells[0].eps, which="clean"))]
        bands += [ci.boot.interval(ci.cell(rep, rule, c.eps)) for c in cells]
        if all(math.isfinite(low) for low, _ in bands):  # cells with per-clip scores
            low, high = zip(*bands)
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.12, linewidth=0)
    ax.set_xlabel("eps_av")
    ax.set_ylabel("mAP (%)")
    ax.set_ylim(0, 102)
    ax.set_title(
        f"audio-visual {rule.upper()} attack, every model "
        f"(bands: {100 * BOOTSTRAP_LEVEL:g} % bootstrap intervals over the clips)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _ecr_figure(config: DemoConfig, reports: Mapping[str, EvaluationReport]) -> Any:
    """ECR bars at the table's budget: one colour per rule, one hatching per modality."""
    from .evaluation import _pyplot

    fig, ax = _pyplot().subplots(figsize=(6.5, 3.6))
    keys = list(reports)
    width = 0.8 / (2 * max(1, len(config.rules)))
    for j, r in enumerate(config.rules):
        for i, m in enumerate(("audio", "visual")):
            values = []
            for k in keys:
                try:
                    values.append(reports[k].cell(r, config.table_eps, _AV).ecr.get(m, 0.0))
                except KeyError:
                    values.append(0.0)
            ax.bar(
                [x + (2 * j + i) * width for x in range(len(keys))],
                values,
                width,
                color=_RULE_COLOURS[j % len(_RULE_COLOURS)],
                hatch=_MODALITY_HATCHES[m],
                edgecolor="black",
                linewidth=0.5,
                label=f"{r.upper()} {'A' if m == 'audio' else 'V'}(ECR)",
            )
    ax.set_xticks([x + width * (2 * len(config.rules) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels([f"({k})" for k in keys])
    ax.set_ylim(0, 1.35 * max([1e-6] + [p.get_height() for p in ax.patches]))  # room for the legend
    ax.set_ylabel("embedding change ratio")
    ax.set_title(
        f"ECR under audio-visual attacks, eps_av = {config.table_eps:g} "
        "(colour: rule; hatched: visual)",
        fontsize=9,
    )
    ax.legend(fontsize=7, ncol=len(config.rules))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


_RULE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
_MODALITY_HATCHES = {"audio": "", "visual": "///"}
