"""Fusions and defenses under multimodal attacks on synthetic audio-visual events (Tian & Xu, CVPR 2021).

Reproduces the *shape* of the slides' two tables on :class:`avrobust.data.AVEventDataset`:

1. clean (✓AV) and attacked accuracy (✗A audio-only, ✗V visual-only, ✗AV joint) of
   :class:`avrobust.models.event.AVEventNet` with the five fusions (Avg = mean of the four columns);
2. the Concat model with no defense, unimodal baselines, MaxSim, MinSim, our modality mix-up,
   ExFMem and MinSim+ExFMem, with Avg = mean of the attacked columns and RI against the
   undefended model; the ExFMem models once more against a BPDA attacker;
3. a small table of embedding geometry: our k-NN density per modality and Li et al.'s convexity
   check of the fused head.

As in the paper's evaluation scripts, single-modality attacks use ``eps`` and the joint attack
``eps / 2`` per modality; the defense table's attacker maximises CE + cos(z_audio, z_visual) (adaptive against
MinSim, as the released ``main_defense.py``) and differentiates through ExFMem's unrolled solver.

Run ``python examples/fusion_defenses.py`` (2–3 minutes on 2 shared CPU cores; ``--threads``
torch threads, default 1, restored afterwards) or with ``--fast`` (a few seconds, tiny settings:
the numbers are then meaningless). Progress lines go to stderr, the tables to stdout. Attacks run
``attack_batch`` clips at a time: differentiating through ExFMem's unrolled solver keeps every
solver iteration of the batch in memory (all 300 test clips at once peaked at 2.5 GB).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import avrobust
from avrobust.data import AVEventDataset
from avrobust.defenses.memory import FeatureMemory, collect_features
from avrobust.defenses.mixup import modality_mixup
from avrobust.losses.minsim import MaxSimLoss, MinSimLoss, av_similarity
from avrobust.metrics.geometry import convexity_ratio, knn_density
from avrobust.metrics.ri import RobustnessRow, robustness_table
from avrobust.models.event import AVEventNet, UnimodalEventNet
from avrobust.models.fusion import FUSIONS

Data = tuple[dict[str, Tensor], Tensor]


@dataclass(frozen=True)
class Config:
    """Sizes and budgets of one run."""

    classes: int = 8
    train: int = 1200
    test: int = 300
    epochs: int = 6
    finetune_epochs: int = 2
    batch: int = 64
    dim: int = 32
    width: int = 8
    steps: int = 10
    eps_audio: float = 0.02
    eps_visual: float = 0.06
    bank: int = 512
    solver_iters: int = 100
    audio_noise: float = 0.3
    visual_noise: float = 0.2
    audio_missing: float = 0.4
    visual_missing: float = 0.2
    seed: int = 0
    attack_batch: int = 64  # clips attacked at once (the memory of ExFMem's unrolled solver)


FAST = Config(train=128, test=48, epochs=1, finetune_epochs=1, steps=2, bank=64, solver_iters=10)


_CLOCK = [time.perf_counter()]  # when the run started, for the progress lines


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the run started."""
    print(f"[{time.perf_counter() - _CLOCK[0]:5.0f} s] {message}", file=sys.stderr, flush=True)


def make_data(cfg: Config) -> tuple[Data, Data]:
    """Train and test tensors; the audio is the less reliable modality (missing more often)."""

    def data(n: int, seed: int) -> Data:
        return AVEventDataset(n, cfg.classes, audio_noise=cfg.audio_noise,
                              visual_noise=cfg.visual_noise, audio_missing=cfg.audio_missing,
                              visual_missing=cfg.visual_missing, seed=seed).tensors()  # fmt: skip

    return data(cfg.train, cfg.seed), data(cfg.test, cfg.seed + 1)


def train(
    model: nn.Module,
    data: Data,
    cfg: Config,
    epochs: int,
    sim: nn.Module | None = None,
    mixup: bool = False,
) -> nn.Module:
    """Adam on CE (+ a similarity loss on the embeddings, or on modality mix-up batches)."""
    inputs, labels = data
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(labels), generator=gen).split(cfg.batch):
            x, y = {m: v[idx] for m, v in inputs.items()}, labels[idx]
            if mixup:
                mixed = modality_mixup(x, y, num_classes=cfg.classes, mode="per_modality",
                                       generator=gen)  # fmt: skip
                x, y = mixed.inputs, mixed.targets
            out = model(**x)
            loss = F.cross_entropy(out.logits, y)
            if sim is not None:
                loss = loss + sim(out.embeddings["audio"], out.embeddings["visual"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def adaptive_objective(out: avrobust.AVOutput, labels: Tensor) -> Tensor:
    """CE + cos(z_audio, z_visual) per sample (the released defense evaluation's attacker)."""
    ce = F.cross_entropy(out.logits, labels, reduction="none")
    e = out.embeddings
    return ce + av_similarity(e["audio"], e["visual"]) if len(e) == 2 else ce


def accuracy(model: nn.Module, inputs: dict[str, Tensor], labels: Tensor) -> float:
    """Top-1 accuracy in percent."""
    with torch.no_grad():
        return 100.0 * float((model(**inputs).logits.argmax(-1) == labels).float().mean())


def robustness(
    model: nn.Module, data: Data, cfg: Config, objective: str | Callable
) -> RobustnessRow:
    """✓AV, ✗A (eps_a), ✗V (eps_v), ✗AV (eps_a / 2 and eps_v / 2) with PGD-style BIM steps."""
    inputs, labels = data
    used = getattr(model, "modality", None)

    def attacked(scale_a: float, scale_v: float) -> float:
        budgets = {"audio": avrobust.Linf(cfg.eps_audio * scale_a, bounds=(-1, 1)),
                   "visual": avrobust.Linf(cfg.eps_visual * scale_v, bounds=(0, 1))}  # fmt: skip
        budgets = {m: b for m, b in budgets.items() if float(b.eps) > 0 and used in (None, m)}
        if not budgets:
            return accuracy(model, inputs, labels)
        attack = avrobust.MultimodalAttack(model, budgets=budgets, rule=avrobust.BIM(),
                                           steps=cfg.steps, objective=objective,
                                           seed=cfg.seed)  # fmt: skip
        fooled = 0.0
        for start in range(0, len(labels), cfg.attack_batch):  # chunks: bounded memory
            part = slice(start, start + cfg.attack_batch)
            result = attack({m: x[part] for m, x in inputs.items()}, labels[part])
            fooled += result.success_rate * len(labels[part])
        return 100.0 * (1 - fooled / len(labels))

    clean = accuracy(model, inputs, labels)
    return RobustnessRow(clean, attacked(1, 0), attacked(0, 1), attacked(0.5, 0.5))


def with_memory(model: nn.Module, data: Data, cfg: Config) -> nn.Module:
    """A copy of ``model`` with ExFMem banks built from its clean training features."""
    inputs, labels = data
    starts = range(0, len(labels), cfg.batch)
    batches = ({m: x[i : i + cfg.batch] for m, x in inputs.items()} for i in starts)
    banks = collect_features(model, batches, limit=cfg.bank)
    defended = copy.deepcopy(model)
    defended.memory = FeatureMemory(banks, lam=memory_lambda(banks), max_iter=cfg.solver_iters)
    return defended


def memory_lambda(banks: dict[str, Tensor], ratio: float = 0.05) -> float:
    """λ = ratio × median of 2‖Mᵀ f‖∞ over bank features (λ_max, above which the code is 0)."""
    values = [2 * (f @ f.T).abs().amax(-1).median() for f in banks.values()]
    return ratio * float(torch.stack(values).mean())


def fusion_table(train_data: Data, test_data: Data, cfg: Config) -> dict[str, RobustnessRow]:
    """Train one AVEventNet per fusion and score it (objective: CE)."""
    rows = {}
    for i, name in enumerate(FUSIONS, 1):
        torch.manual_seed(cfg.seed)
        model = AVEventNet(cfg.classes, name, dim=cfg.dim, width=cfg.width)
        train(model, train_data, cfg, cfg.epochs)
        rows[name] = robustness(model, test_data, cfg, "training")
        progress(f"fusion {i}/{len(FUSIONS)} ({name}): trained and attacked")
    return rows


def defense_models(train_data: Data, cfg: Config) -> dict[str, nn.Module]:
    """The Concat model without and with each defense, and the unimodal baselines, trained."""

    def fresh() -> AVEventNet:
        torch.manual_seed(cfg.seed)
        return AVEventNet(cfg.classes, "concat", dim=cfg.dim, width=cfg.width)

    models: dict[str, nn.Module] = {"None": train(fresh(), train_data, cfg, cfg.epochs)}
    progress("defense model 1/8 (None) trained")
    for modality in ("audio", "visual"):
        torch.manual_seed(cfg.seed)
        net = UnimodalEventNet(cfg.classes, modality, dim=cfg.dim, width=cfg.width)
        models[f"Unimodal {modality[0].upper()}"] = train(net, train_data, cfg, cfg.epochs)
        progress(f"defense model {len(models)}/8 (Unimodal {modality[0].upper()}) trained")
    for name, sim, mixup in (
        ("MaxSim", MaxSimLoss(), False),
        ("MinSim", MinSimLoss(), False),
        ("Mix-up (ours)", None, True),
    ):
        models[name] = train(fresh(), train_data, cfg, cfg.epochs, sim, mixup)
        progress(f"defense model {len(models)}/8 ({name}) trained")
    for name, base, sim in (("ExFMem", "None", None), ("MinSim+ExFMem", "MinSim", MinSimLoss())):
        defended = with_memory(models[base], train_data, cfg)
        models[name] = train(defended, train_data, cfg, cfg.finetune_epochs, sim)
        progress(f"defense model {len(models)}/8 ({name}) fine-tuned")
    return models


def bpda(model: nn.Module) -> nn.Module:
    """A copy of a defended model whose ExFMem backward pass is the identity (BPDA)."""
    twin = copy.deepcopy(model)
    memory = twin.get_submodule("memory")
    if isinstance(memory, FeatureMemory):
        memory.gradient = "bpda"
    return twin


def defense_table(
    models: dict[str, nn.Module], test_data: Data, cfg: Config
) -> dict[str, RobustnessRow]:
    """Score every model against the adaptive attacker; ExFMem rows also against BPDA."""
    rows = {}
    total = len(models) + 2
    for name, model in models.items():
        rows[name] = robustness(model, test_data, cfg, adaptive_objective)
        progress(f"defense row {len(rows)}/{total} ({name}) attacked")
    for name in ("ExFMem", "MinSim+ExFMem"):
        twin = bpda(models[name])
        rows[f"{name}, BPDA attack"] = robustness(twin, test_data, cfg, adaptive_objective)
        progress(f"defense row {len(rows)}/{total} ({name}, BPDA attack) attacked")
    return rows


def geometry_table(models: dict[str, nn.Module], test_data: Data) -> str:
    """k-NN density (ours) of each modality's test embeddings and convexity of the fused head."""
    inputs, labels = test_data
    lines = [
        "| model | density A (ours) | density V (ours) | convexity (AV head) |",
        "|---|---|---|---|",
    ]
    for name in ("None", "MaxSim", "MinSim", "Mix-up (ours)"):
        model = models[name]
        with torch.no_grad():
            emb = dict(model(**inputs).embeddings)
        k = max(1, min(10, int(torch.bincount(labels).min()) - 1))
        dens = [knn_density(emb[m], labels, k=k).overall for m in ("audio", "visual")]
        head = lambda e, model=model: model.classify(e["audio"], e["visual"])  # noqa: E731
        conv = convexity_ratio(
            emb, labels, head, num_pairs=500, threshold=None, activation="softmax"
        )
        lines.append(f"| {name} | {dens[0]:.2f} | {dens[1]:.2f} | {conv.overall:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, RobustnessRow]]:
    """Run both tables, print them as Markdown and return them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="tiny settings for a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (restored after)")
    args = parser.parse_args(argv)
    cfg = replace(FAST if args.fast else Config(), seed=args.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # one thread is the fastest on a shared, busy CPU
    try:
        return run(cfg)
    finally:
        torch.set_num_threads(threads)


def run(cfg: Config) -> dict[str, dict[str, RobustnessRow]]:
    """Both tables for one configuration, printed as Markdown."""
    start = _CLOCK[0] = time.perf_counter()
    progress(f"{cfg.train} training / {cfg.test} test clips; 5 fusions, then 8 defense models")
    train_data, test_data = make_data(cfg)
    fusions = fusion_table(train_data, test_data, cfg)
    print("Fusions (Avg = mean of the four columns)\n")
    print(robustness_table(fusions, avg="all"), "\n")
    models = defense_models(train_data, cfg)
    defenses = defense_table(models, test_data, cfg)
    print("Defenses on Concat (Avg = mean of the attacked columns, RI vs None)\n")
    print(robustness_table(defenses, baseline="None"), "\n")
    print("Embedding geometry on the test set (Li et al.-style measures)\n")
    geometry = geometry_table(models, test_data)
    progress("embedding geometry measured")
    print(geometry, "\n")
    print(f"({cfg.train} train / {cfg.test} test clips, {time.perf_counter() - start:.0f} s)")
    return {"fusions": fusions, "defenses": defenses}


if __name__ == "__main__":
    main()
