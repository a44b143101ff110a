"""Training the demo's models, and their cache: one checkpoint per recipe under ``<out>/models``,
keyed by the settings the recipe uses (:func:`cache_path`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..attacks import MultimodalAttack, push_pull_budgets
from ..defenses import AdversarialTraining
from ..losses import AVILoss
from ..models import TalkNet, talknet_loss
from ..models.talknet.config import TALKNET_VARIANTS
from .config import DemoConfig, ModelSpec

__all__ = [
    "architecture_overrides",
    "cache_path",
    "is_cached",
    "load_cached",
    "load_or_train",
    "run_seed",
    "train_model",
]

Clips = tuple[dict[str, Tensor], Tensor]  # stacked inputs {modality: (N, ...)} and (N, T) labels

_ADVERSARIAL_SETTINGS = ("adv_rule", "adv_steps", "adv_ratio", "adv_eps")


def _hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def architecture_overrides(architecture: str) -> dict[str, Any]:
    """The TalkNet configuration fields by which the variant ``architecture`` (a name of
    :data:`avrobust.demo.checks.ARCHITECTURES`) differs from the official TalkNet, e.g.
    ``{"cross_attention": False}`` for ``"nc_talknet"``; ``{}`` for ``"talknet"``. The demo builds
    ``TalkNet("tiny", face_size=..., **architecture_overrides(spec.architecture))``."""
    official, variant = TALKNET_VARIANTS["talknet"], TALKNET_VARIANTS[architecture]
    return {
        f.name: getattr(variant, f.name)
        for f in dataclasses.fields(variant)
        if getattr(variant, f.name) != getattr(official, f.name)
    }


def _model_payload(spec: ModelSpec, config: DemoConfig, run: int = 0) -> dict[str, Any]:
    """What a model depends on (its cache key): only the settings its recipe uses, so that
    changing the grid, the table's budget, the surrogate, the worst-case attack or another
    model's recipe retrains nothing. A TalkNet (``architecture="talknet"``) has the payload it
    had before ``ModelSpec.architecture`` existed, and the first training run (``run=0``) the
    payload it had before several runs existed, so those caches stay valid."""
    unused = {"finetune_steps" if spec.init_from is None else "train_steps"}
    if not spec.adversarial:
        unused |= set(_ADVERSARIAL_SETTINGS)
    if not spec.avil_terms:
        unused.add("avil_weight")
    training = {k: v for k, v in config.training_dict().items() if k not in unused}
    recipe = dataclasses.asdict(spec)
    if spec.architecture == "talknet":
        del recipe["architecture"]  # the key of before the field: those caches stay valid
    payload: dict[str, Any] = {
        "spec": recipe,
        "training": training,
        "model": {
            "variant": "tiny",
            "face_size": config.face_size,
            **architecture_overrides(spec.architecture),
        },
    }
    if run:
        payload["run"] = run
    if spec.init_from is not None:
        parent = next((s for s in config.models if s.key == spec.init_from), None)
        if parent is None:
            raise ValueError(
                f"init_from: model ({spec.key}) starts from {spec.init_from!r}, which is not "
                f"among the models {[s.key for s in config.models]}"
            )
        payload["parent"] = _model_payload(parent, config, run)
    return payload


def cache_path(spec: ModelSpec, config: DemoConfig, cache: str, *, run: int = 0) -> str:
    """The checkpoint file of ``spec``'s training run ``run`` (0: the first) with ``config`` in
    the folder ``cache``."""
    return os.path.join(cache, f"{spec.key}-{_hash(_model_payload(spec, config, run))}.model")


def is_cached(spec: ModelSpec, config: DemoConfig, cache: str, *, run: int = 0) -> bool:
    """Whether the checkpoint of ``spec``'s training run ``run`` for ``config`` is in ``cache``."""
    return os.path.exists(cache_path(spec, config, cache, run=run))


def run_seed(spec: ModelSpec, config: DemoConfig, run: int = 0) -> int:
    """The seed of ``spec``'s training run ``run``: ``seed * 1000 + 100 * run + k + 1`` with
    ``k`` the position of the model's key in the alphabet (A: 0), distinct for every model and
    run of one ``config.seed`` (:data:`~avrobust.demo.checks.MAX_RUNS` runs at most)."""
    index = "ABCDEFGHIJKLMNOPQRSTUVWXYZ".find(spec.key[:1])
    return config.seed * 1000 + 100 * run + max(index, 0) + 1


def _new_model(spec: ModelSpec, config: DemoConfig, seed: int) -> TalkNet:
    """``spec``'s architecture, freshly initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        overrides = architecture_overrides(spec.architecture)
        return TalkNet("tiny", face_size=config.face_size, **overrides)


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def _adversarial(
    spec: ModelSpec, config: DemoConfig, model: TalkNet, seed: int
) -> AdversarialTraining | None:
    """The adversarial batch maker of ``spec`` (``None`` when it trains on clean batches)."""
    if not spec.adversarial:
        return None
    attack = MultimodalAttack(
        model,
        budgets=push_pull_budgets(config.adv_eps),
        rule=config.adv_rule,
        steps=max(1, config.adv_steps),
        seed=seed,
    )
    return AdversarialTraining(attack, ratio=config.adv_ratio, seed=seed)


def train_model(
    spec: ModelSpec,
    config: DemoConfig,
    data: Clips,
    init: TalkNet | None = None,
    *,
    progress: bool = False,
    run: int = 0,
) -> TalkNet:
    """Train one demo model with TalkNet's loss, its AVIL terms and (optionally) adversarial batches.

    Args:
        spec: the model's recipe.
        config: the demo settings (steps, batch size, learning rate, attack for adversarial
            training).
        data: ``(inputs, labels)`` training clips, stacked.
        init: weights to start from (copied; the argument is not changed).
        progress: show a tqdm bar.
        run: the training run (0: the first); its seed is :func:`run_seed`'s.

    Returns:
        The trained model, in eval mode.
    """
    seed = run_seed(spec, config, run)
    model = _new_model(spec, config, seed)
    if init is not None:
        model.load_state_dict(init.state_dict())
    fine_tune = init is not None
    steps = config.finetune_steps if fine_tune else config.train_steps
    lr = config.lr / 2 if fine_tune else config.lr
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    avil = AVILoss(spec.avil_terms, weight=config.avil_weight) if spec.avil_terms else None
    adversarial = _adversarial(spec, config, model, seed)
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


def load_cached(spec: ModelSpec, config: DemoConfig, cache: str, *, run: int = 0) -> TalkNet:
    """``spec``'s training run ``run`` read from its checkpoint in ``cache`` (:func:`cache_path`),
    in eval mode.

    Raises:
        FileNotFoundError: the run is not cached.
    """
    overrides = architecture_overrides(spec.architecture)
    path = cache_path(spec, config, cache, run=run)
    return TalkNet.from_checkpoint(path, "tiny", face_size=config.face_size, **overrides)


def load_or_train(
    spec: ModelSpec,
    config: DemoConfig,
    data: Clips,
    trained: Mapping[str, TalkNet],
    cache: str,
    progress: bool,
    *,
    run: int = 0,
) -> tuple[TalkNet, bool]:
    """``spec``'s model from ``cache``, or trained (from its parent in ``trained``) and cached
    in the official checkpoint layout (``avrobust evaluate`` reads it), with its settings beside
    it as JSON. Returns ``(model, whether it came from the cache)``.

    ``spec`` need not be a model of ``config.models``: the transfer surrogate
    (:func:`avrobust.demo.config.surrogate_spec`, trained from scratch) loads or trains the same
    way, with ``trained`` empty if need be. ``run`` is the training run (0: the first; the
    parent in ``trained`` must be of the same run)."""
    path = cache_path(spec, config, cache, run=run)
    if os.path.exists(path):
        return load_cached(spec, config, cache, run=run), True
    init = trained[spec.init_from] if spec.init_from is not None else None
    model = train_model(spec, config, data, init, progress=progress, run=run)
    os.makedirs(cache, exist_ok=True)
    model.save_checkpoint(path + ".tmp")
    os.replace(path + ".tmp", path)
    with open(path[: -len(".model")] + ".json", "w") as handle:
        json.dump(_model_payload(spec, config, run), handle, indent=2)
    return model, False
