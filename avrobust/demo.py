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

import torch
from torch import Tensor

from ._checks import check_choice, check_int, check_number, describe, replace_fields
from .attacks import MultimodalAttack, push_pull_budgets
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
        adv_eps: its ``eps_av`` (default: ``table_eps``).
        adv_ratio: share of each batch replaced by adversarial examples.
        rules: attack rules evaluated.
        modalities: attacked-modality sets evaluated.
        eps_grid: the ``eps_av`` values (Fig. 3's x-axis).
        table_eps: the ``eps_av`` of the table (the paper: 5); must be in ``eps_grid``.
        attack_steps: iterations of every evaluation attack.
        per_class: attacked clips per class (speaking / not speaking).
        tie_margin: mAP points (>= 0) within which two models count as tied when the findings
            compare them ("no clear difference"): the attacked subset is small (2 x
            ``per_class`` clips), so a difference of a point or two is within run-to-run noise
            (changing only the number of CPU threads moves clean mAP by several points).
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
    adv_eps: float | None = None
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
        for name in ("train_clips", "test_clips", "frames", "batch_size", "attack_steps"):
            check_int(getattr(self, name), name, min_value=1)
        for name in ("train_steps", "finetune_steps", "adv_steps", "per_class", "seed"):
            check_int(getattr(self, name), name, min_value=0)
        if self.table_eps not in self.eps_grid:
            raise ValueError(
                f"table_eps: must be one of eps_grid {list(self.eps_grid)}, got {self.table_eps:g}"
            )
        check_choice(self.adv_rule, "adv_rule", ("fgsm", "bim", "mim", "pgd"))
        check_number(self.tie_margin, "tie_margin", min_value=0.0)
        if not self.models:
            object.__setattr__(self, "models", default_models(self))

    def replace(self, **changes: Any) -> DemoConfig:
        """A copy with some settings changed (the model list is rebuilt from the AVIL terms).

        Raises:
            TypeError: an unknown setting; the message lists the known ones.
        """
        return replace_fields(self, {"models": (), **changes})

    def training_dict(self) -> dict[str, Any]:
        """The settings a trained model depends on (its cache key)."""
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
        out = {n: getattr(self, n) for n in names}
        out["adv_eps"] = self.adv_eps if self.adv_eps is not None else self.table_eps
        return out


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
    # the main job: clean mAP >= 90 %, about 6 minutes on 2 CPU cores (378 s measured)
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


def _model_payload(spec: ModelSpec, config: DemoConfig) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "spec": dataclasses.asdict(spec),
        "training": config.training_dict(),
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
        eps = config.adv_eps if config.adv_eps is not None else config.table_eps
        attack = MultimodalAttack(
            model,
            config.adv_rule,
            push_pull_budgets(eps),
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
        retrain: ignore cached models and results (they are overwritten).
        report: called with each progress message (e.g. ``print``); messages also go to the
            ``avrobust.demo`` logger.

    Returns:
        :class:`DemoResult`.

    Raises:
        ValueError: an unknown preset.
    """
    if isinstance(config, str):
        config = PRESETS[check_choice(config, "config", PRESETS)]
    elif not isinstance(config, DemoConfig):
        raise TypeError(f"config: expected a DemoConfig or a preset name, got {describe(config)}")

    def say(message: str) -> None:
        log.info(message)
        if report is not None:
            report(message)

    start = time.perf_counter()
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    cache, results = os.path.join(out, "models"), os.path.join(out, "results")
    if retrain:
        for folder in (cache, results):
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    os.remove(os.path.join(folder, name))

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
        clean_map[spec.key] = _clean_map(model, test_data)
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
            resume=not retrain,
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
        out, config, clean_map, reports, extras, plots, times, selection_note=how
    )
    files += [os.path.join(out, "xab_test", "manifest.csv")] if xab else []
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


def _cached(spec: ModelSpec, config: DemoConfig, cache: str) -> bool:
    return os.path.exists(_cache_path(spec, config, cache))


def _clean_map(model: TalkNet, data: tuple[dict[str, Tensor], Tensor]) -> float:
    inputs, labels = data
    scores = []
    with torch.no_grad():
        for start in range(0, labels.shape[0], 64):
            part = {k: v[start : start + 64] for k, v in inputs.items()}
            scores.append(speaking_probability(model(**part)))
    return float(ava_average_precision(torch.cat(scores), labels))


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


def table_one(
    config: DemoConfig, clean_map: Mapping[str, float], reports: Mapping[str, EvaluationReport]
) -> tuple[str, list[dict[str, Any]]]:
    """The Table-1-like table: per model, clean mAP and, per rule, A(ECR), V(ECR) and mAP under
    the audio-visual attack at ``eps_av = table_eps``.

    Returns:
        ``(markdown, rows)`` with one dict per model (the CSV rows).
    """
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
        row = [f"({spec.key})", loss, adv, _fmt(100 * clean_map[spec.key])]
        record: dict[str, Any] = {
            "model": spec.key,
            "loss": loss,
            "adversarial_training": adv,
            "clean_map": 100 * clean_map[spec.key],
            "eps_av": eps,
        }
        for rule in config.rules:
            try:
                cell = reports[spec.key].cell(rule, eps, _AV)
            except KeyError:
                row += ["-", "-", "-"]
                continue
            a, v = cell.ecr.get("audio"), cell.ecr.get("visual")
            row += [_fmt(a, 4), _fmt(v, 4), _fmt(100 * cell.map_adv)]
            record.update(
                {f"{rule}_ecr_audio": a, f"{rule}_ecr_visual": v, f"{rule}_map": 100 * cell.map_adv}
            )
        rows.append(row)
        records.append(record)
    return _markdown(head, rows), records


def table_modalities(config: DemoConfig, reports: Mapping[str, EvaluationReport]) -> str:
    """mAP (%) per model under every rule × attacked modality set at ``eps_av = table_eps``."""
    head = ["Model"] + [
        f"{r.upper()} {m.replace('audio+visual', 'AV').replace('audio', 'A').replace('visual', 'V')}"
        for r in config.rules
        for m in config.modalities
    ]
    rows = [
        [f"({k})"]
        + [_fmt(_map(rep, r, config.table_eps, m)) for r in config.rules for m in config.modalities]
        for k, rep in reports.items()
    ]
    return _markdown(head, rows)


def table_curve(config: DemoConfig, reports: Mapping[str, EvaluationReport], rule: str) -> str:
    """mAP (%) against ``eps_av`` under the audio-visual ``rule`` attack, one row per model."""
    head = ["Model", "eps_av = 0"] + [f"{e:g}" for e in config.eps_grid]
    rows = []
    for k, rep in reports.items():
        cells = [c for c in rep.cells if c.rule == rule and c.attacked == _AV]
        clean = 100 * cells[0].map_clean if cells else None
        rows.append([f"({k})", _fmt(clean)] + [_fmt(_map(rep, rule, e)) for e in config.eps_grid])
    return _markdown(head, rows)


@dataclass(frozen=True)
class Finding:
    """One of the paper's claims checked on the demo's numbers.

    Attributes:
        claim: the claim, as the paper makes it.
        verdict: ``"held"``, ``"did not hold"``, ``"partly"``, ``"no clear difference"`` (every
            compared difference within ``DemoConfig.tie_margin``) or ``"not tested"``.
        evidence: the measured numbers behind the verdict.
    """

    claim: str
    verdict: str
    evidence: str


def _count(flags: Sequence[bool]) -> str:
    if not flags:
        return "not tested"
    return "held" if all(flags) else ("did not hold" if not any(flags) else "partly")


def _compare_verdict(gains: Sequence[float], margin: float) -> str:
    """Verdict on "better > worse" from the mAP gains (points) of each comparison."""
    if not gains:
        return "not tested"
    if all(abs(g) <= margin for g in gains):
        return "no clear difference"
    if all(g > margin for g in gains):
        return "held"
    if all(g < -margin for g in gains):
        return "did not hold"
    return "partly"


def findings(
    config: DemoConfig,
    clean_map: Mapping[str, float],
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
) -> list[Finding]:
    """Check the Push-Pull findings (§4.2–4.4) against the demo's measurements.

    Every verdict compares mAP under attack at ``eps_av = table_eps`` (audio-visual attack unless
    the claim is about modalities) and states the numbers, whatever they say.
    """
    eps, rules, out = config.table_eps, config.rules, []
    a = reports.get("A")
    if a is not None:
        clean_sel = 100 * a.cells[0].map_clean if a.cells else 100.0
        drops = {r: clean_sel - (_map(a, r, eps) or 0.0) for r in rules}
        out.append(
            Finding(
                "White-box attacks seriously degrade the undefended model (A).",
                _count([d >= 10 for d in drops.values()]),
                ", ".join(f"{r.upper()} -{d:.1f} points" for r, d in drops.items())
                + f" of mAP at eps_av={eps:g} (audio-visual; clean mAP of the attacked clips "
                f"{clean_sel:.2f}%)",
            )
        )
        per = {m: _map(a, "pgd", eps, m) for m in config.modalities} if "pgd" in rules else {}
        if all(v is not None for v in per.values()) and {"audio", "visual", _AV} <= set(per):
            pa, pv = (float(per[m] or 0) for m in ("audio", "visual"))
            out.append(
                Finding(
                    "Audio-only attacks barely change mAP.",
                    "held" if pa >= 95 else "did not hold",
                    f"PGD audio-only mAP {pa:.2f}% at eps_av={eps:g}",
                )
            )
            out.append(
                Finding(
                    "Visual-only attacks do more harm than audio-only ones.",
                    "held" if pv < pa else "did not hold",
                    f"PGD visual-only {pv:.2f}% vs audio-only {pa:.2f}%",
                )
            )
        joint = []
        text = []
        for r in rules:
            values = {m: _map(a, r, eps, m) for m in ("audio", "visual", _AV)}
            if None in values.values():
                continue
            best_single = min(float(values["audio"] or 0), float(values["visual"] or 0))
            joint.append(float(values[_AV] or 0) <= best_single + 1e-9)
            text.append(
                f"{r.upper()} {float(values[_AV] or 0):.2f}% vs best single {best_single:.2f}%"
            )
        out.append(
            Finding(
                "Audio-visual attacks do at least as much harm as the stronger single-modality one.",
                _count(joint),
                "; ".join(text) or "-",
            )
        )
        curve = [100 * a.cells[0].map_clean] + [_map(a, "pgd", e) or 0.0 for e in config.eps_grid]
        monotone = all(x >= y - 0.5 for x, y in itertools.pairwise(curve))
        out.append(
            Finding(
                "mAP falls as the budget eps_av grows.",
                "held"
                if monotone and len(curve) > 2
                else ("did not hold" if len(curve) > 2 else "not tested"),
                "PGD audio-visual: "
                + " -> ".join(f"{v:.1f}" for v in curve)
                + " (eps_av 0, "
                + ", ".join(f"{e:g}" for e in config.eps_grid)
                + ")",
            )
        )

    def compare(claim: str, better: str, worse: Sequence[str]) -> None:
        if better not in reports or not all(w in reports for w in worse):
            return
        gains, text = [], []
        for r in rules:
            mb = _map(reports[better], r, eps) or 0.0
            for w in worse:
                gains.append(mb - (_map(reports[w], r, eps) or 0.0))
            text.append(
                f"{r.upper()}: ({better}) {mb:.2f}% vs "
                + ", ".join(f"({w}) {(_map(reports[w], r, eps) or 0.0):.2f}%" for w in worse)
            )
        out.append(Finding(claim, _compare_verdict(gains, config.tie_margin), "; ".join(text)))

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
    if {"A", "C", "D"} <= set(reports) and "pgd" in rules:
        ecr = {k: sum(reports[k].cell("pgd", eps, _AV).ecr.values()) / 2 for k in ("A", "C", "D")}
        out.append(
            Finding(
                "AVIL lowers the embedding change ratio (ECR).",
                _count([ecr["C"] < ecr["A"], ecr["D"] < ecr["A"]]),
                "mean of A(ECR), V(ECR) under PGD: "
                + ", ".join(f"({k}) {v:.4f}" for k, v in ecr.items()),
            )
        )
    clean_drop = (
        {k: 100 * (clean_map["A"] - v) for k, v in clean_map.items() if k != "A"}
        if "A" in clean_map
        else {}
    )
    if clean_drop:
        out.append(
            Finding(
                "Defences cost little clean mAP: within 2 points of (A) (Table 1: within 1.3).",
                _count([d <= 2 for d in clean_drop.values()]),
                ", ".join(f"({k}) {100 * clean_map[k]:.2f}%" for k in clean_map),
            )
        )
    if "inference" in extras and a is not None:
        flags, text = [], []
        for r in rules:
            train_map, inf_map = _map(a, r, eps), _map(extras["inference"], r, eps)
            if train_map is None or inf_map is None:
                continue
            flags.append(train_map <= inf_map)
            text.append(
                f"{r.upper()} training-aware {train_map:.2f}% vs inference-aware {inf_map:.2f}%"
            )
        out.append(
            Finding(
                "Training-aware attacks do at least as much harm as inference-aware ones (Fig. 4).",
                _count(flags),
                "; ".join(text),
            )
        )
    if "transfer" in extras and a is not None and "pgd" in rules:
        white, black = _map(a, "pgd", eps), _map(extras["transfer"], "pgd", eps)
        if white is not None and black is not None:
            out.append(
                Finding(
                    "Black-box (transferred) attacks barely work; white-box ones do (Fig. 3a).",
                    "held" if (100 - black) <= 0.5 * (100 - white) else "did not hold",
                    f"PGD at eps_av={eps:g}: crafted on (C), scored on (A) {black:.2f}% vs white-box "
                    f"{white:.2f}%",
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
) -> tuple[str, str, list[str]]:
    """Write the tables, the long-form results, the plots and the summary.

    Args:
        out: the output folder.
        config: the demo settings.
        clean_map: ``{model key: clean mAP in [0, 1]}``.
        reports: ``{model key: white-box grid report}``.
        extras: ``{"inference": ..., "transfer": ...}`` reports.
        plots: write the PNG plots (skipped, with a note, without matplotlib).
        seconds: ``{"train": s, "evaluate": s}`` wall times for the summary.
        selection_note: how the attacked clips were chosen, for the summary.

    Returns:
        ``(table, summary, files written)``; ``table`` is the Table-1-like Markdown table.
    """
    files: list[str] = []
    table, records = table_one(config, clean_map, reports)
    by_modality = table_modalities(config, reports)
    curves = {r: table_curve(config, reports, r) for r in config.rules}
    path = os.path.join(out, "table.csv")
    write_csv_rows(path, records)
    files.append(path)
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
    path = os.path.join(out, "results.csv")
    write_csv_rows(path, rows)
    files.append(path)
    path = os.path.join(out, "results.json")
    with open(path, "w") as handle:
        json.dump(
            {
                "config": {k: v for k, v in dataclasses.asdict(config).items() if k != "models"},
                "models": [dataclasses.asdict(s) for s in config.models],
                "clean_map": dict(clean_map),
                "reports": {k: r.to_dict() for k, r in reports.items()},
                "extras": {k: r.to_dict() for k, r in extras.items()},
                "seconds": dict(seconds),
            },
            handle,
            indent=2,
        )
    files.append(path)

    plotted: list[str] = []
    plot_note = ""
    if plots:
        try:
            plotted = _plots(out, config, reports, extras)
        except ImportError as exc:
            plot_note = f"\nPlots were not written: {exc}\n"
    files += plotted

    checks = findings(config, clean_map, reports, extras)
    tables = (
        f"### Table 1 (demo): audio-visual attacks at eps_av = {config.table_eps:g}\n\n{table}\n\n"
        f"### mAP (%) by attacked modality at eps_av = {config.table_eps:g}\n\n{by_modality}\n\n"
        + "".join(
            f"### mAP (%) against eps_av, audio-visual {r.upper()}\n\n{c}\n\n"
            for r, c in curves.items()
        )
    )
    extras_text = ""
    if "inference" in extras:
        inf = extras["inference"]
        extras_text += (
            f"Inference-aware attack on (A) at eps_av = {config.table_eps:g} (Fig. 4): "
            + ", ".join(
                f"{r.upper()} {_fmt(_map(inf, r, config.table_eps))}%" for r in config.rules
            )
            + ".\n\n"
        )
    if "transfer" in extras:
        tr = extras["transfer"]
        extras_text += (
            "Transfer attack, PGD crafted on (C), scored on (A) (Fig. 3a): "
            + ", ".join(f"eps_av {e:g}: {_fmt(_map(tr, 'pgd', e))}%" for e in config.eps_grid)
            + ".\n\n"
        )
    path = os.path.join(out, "table.md")
    with open(path, "w") as handle:
        handle.write(tables + extras_text)
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
        + tables
        + extras_text
        + f"## Which of the paper's findings held here ({held} of {len(checks)})\n\n"
        + "\n".join(f"- **{f.verdict}**: {f.claim} {f.evidence}." for f in checks)
        + f"\n\nComparisons between models call differences of at most {config.tie_margin:g} mAP "
        'points "no clear difference": the attacked subset is small. This is a tiny model on '
        "synthetic data: the verdicts describe this run, not TalkNet on AVA-ActiveSpeaker.\n"
        + plot_note
        + f"\nWall time: training/loading {seconds.get('train', 0):.0f} s, attacks "
        f"{seconds.get('evaluate', 0):.0f} s.\n"
    )
    path = os.path.join(out, "summary.md")
    with open(path, "w") as handle:
        handle.write(summary)
    files.append(path)
    return table, summary, files


def _plots(
    out: str,
    config: DemoConfig,
    reports: Mapping[str, EvaluationReport],
    extras: Mapping[str, EvaluationReport],
) -> list[str]:
    from .evaluation import _pyplot

    plt = _pyplot()
    files = []
    if "A" in reports:
        path = os.path.join(out, "fig3_model_A.png")
        reports["A"].plot_map(path, title="(A) under white-box attacks (Fig. 3b/c)")
        files.append(path)
    # Fig. 3a-like: every model (and the transfer attack) under audio-visual PGD
    rule = "pgd" if "pgd" in config.rules else config.rules[0]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for key, rep in reports.items():
        cells = sorted(
            (c for c in rep.cells if c.rule == rule and c.attacked == _AV), key=lambda c: c.eps
        )
        if cells:
            ax.plot(
                [0.0] + [c.eps for c in cells],
                [100 * cells[0].map_clean] + [100 * c.map_adv for c in cells],
                marker="o",
                label=f"({key})",
            )
    if "transfer" in extras:
        cells = sorted(extras["transfer"].cells, key=lambda c: c.eps)
        ax.plot(
            [0.0] + [c.eps for c in cells],
            [100 * cells[0].map_clean] + [100 * c.map_adv for c in cells],
            marker="x",
            linestyle="--",
            color="gray",
            label="(C) -> (A) transfer",
        )
    ax.set_xlabel("eps_av")
    ax.set_ylabel("mAP (%)")
    ax.set_ylim(0, 102)
    ax.set_title(f"audio-visual {rule.upper()} attack, every model")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "fig3_models.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)
    # ECR bars at the table's budget
    fig, ax = plt.subplots(figsize=(6, 3.4))
    keys = [k for k in reports]
    width = 0.8 / (2 * max(1, len(config.rules)))
    for j, r in enumerate(config.rules):
        for i, m in enumerate(("audio", "visual")):
            values = []
            for k in keys:
                try:
                    values.append(reports[k].cell(r, config.table_eps, _AV).ecr.get(m, 0.0))
                except KeyError:
                    values.append(0.0)
            offset = (2 * j + i) * width
            ax.bar(
                [x + offset for x in range(len(keys))],
                values,
                width,
                label=f"{r.upper()} {'A' if m == 'audio' else 'V'}(ECR)",
            )
    ax.set_xticks([x + width * (2 * len(config.rules) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels([f"({k})" for k in keys])
    ax.set_ylim(0, 1.35 * max([1e-6] + [p.get_height() for p in ax.patches]))  # room for the legend
    ax.set_ylabel("embedding change ratio")
    ax.set_title(f"ECR under audio-visual attacks, eps_av = {config.table_eps:g}")
    ax.legend(fontsize=7, ncol=len(config.rules))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out, "ecr.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)
    return files
