"""Strong attacks on the demo's model (A): the default ensemble against torchattacks' APGD.

    python benchmarks/ensemble_on_demo.py --demo-dir /tmp/demo-full [--steps 100]
        [--queries 1000] [--eps 20] [--threads 1] [--preset default]

Issue 13, "What it must show" 1. Loads the demo's model (A) from ``DEMO_DIR/models`` (the demo's
own cache, :func:`avrobust.demo.training.load_or_train`; nothing is trained: a missing model is an
error), rebuilds the demo's held-out clips and its attacked clips (the demo's own
``_data_sets`` and :func:`avrobust.demo.selection.attacked_clips`, checked against the selection
stored in ``DEMO_DIR/results/A.jsonl``), and attacks those clips audio-visually at
``eps_av = --eps`` (:func:`avrobust.push_pull_budgets`: audio ``eps_av·1e-4`` on [-1, 1], video
``eps_av·0.1`` pixel levels) with:

1. the demo's attack: 5-step PGD on the training objective (cross-entropy over every head), with
   the seed the demo's evaluation gives that cell, so its mAP equals the demo's stored cell;
2. :func:`avrobust.default_ensemble` (APGD-CE, targeted APGD-margin, Square; per clip the worst
   case), ``--steps`` APGD iterations and ``--queries`` Square queries; prints ``broken_by``;
3. torchattacks 3.5.1's ``APGD`` (Linf, one restart, ``--steps`` iterations) with two losses,
   applied jointly to both streams:

   * torchattacks takes one tensor and one scalar ``eps``. The two streams are flattened and
     concatenated into one tensor ``(B, 1, 1, D)`` (torchattacks wants 4-D inputs in [0, 1]),
     each stream scaled so that one ``eps`` fits both: ``u_m = (x_m - lo_m) / s_m`` with
     ``s_m = eps_m / e`` and ``e = min_m eps_m / (hi_m - lo_m)`` (here the audio's
     ``eps_a / 2``), so that the Linf ball of radius ``e`` in ``u`` is exactly each stream's own
     ball, and every valid input lies in [0, 1]. A wrapper module undoes the scaling before
     calling the model, and clamps to each stream's valid range (torchattacks clamps ``u`` to
     [0, 1], which is exact for audio but leaves the video's upper bound 255 to the wrapper:
     there the gradient is zero, a small handicap for torchattacks, none for the budget).
   * torchattacks' losses are ``"ce"`` and ``"dlr"`` over clip logits ``(B, C)`` with clip
     labels; DLR needs 3 classes (APGDT's targeted DLR 4) and TalkNet gives 2-class *frame*
     logits. The wrapper therefore returns, per clip, the 2-class logits ``[0, s]`` with
     label 0, whose cross-entropy ``softplus(s)`` is a strictly increasing function of ``s``:
     for ``"APGD-CE"`` ``s`` is the inverse softplus of the frame-averaged cross-entropy
     (torchattacks' CE is then exactly that loss), for ``"APGD-margin"`` ``s`` is the
     frame-averaged Carlini-Wagner margin (other logit minus true logit). An Linf APGD on a
     strictly increasing function of a loss takes the same steps as on the loss itself (sign
     gradients; the step-size checkpoints compare loss values), so this is torchattacks' APGD
     with the margin loss. The frame labels are held by the wrapper for the batch.
   * ``perturb(x, y, best_loss=True)`` returns, per clip, the iterate of highest loss (the
     default ``forward`` returns the clean input for clips it counts as unbroken, which a
     frame-level mAP would punish); seeded with ``torch.manual_seed(seed)``. A last row runs
     torchattacks' own protocol (``best_loss=False``, as its ``forward``): per clip the last
     iterate with a positive mean margin, the clean input for the others. The result is
     mapped back and clipped to each stream's box (the scaling's float32 round trip can
     overshoot a radius by an ulp; the clip moves no element by more than that).

For each attack: mAP (%) over the attacked clips' frames (the demo's measure, P(speaking),
:func:`avrobust.metrics.average_precision`; its floor on these clips is the share of speaking
frames, printed) and frame accuracy (%), the seconds taken, and the largest perturbation per
stream (checked within the budget). The issue's target: the ensemble's mAP <= torchattacks
APGD-margin's + 1 point, and well below PGD-5's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time

import torch
import torch.nn.functional as F
import torchattacks
from torch import Tensor, nn

import avrobust
from avrobust.demo import training
from avrobust.demo.config import PRESETS, DemoConfig
from avrobust.demo.pipeline import _data_sets
from avrobust.demo.selection import attacked_clips
from avrobust.metrics import average_precision
from avrobust.models import TalkNet, speaking_probability

Inputs = dict[str, Tensor]


def load_models(config: DemoConfig, demo_dir: str) -> dict[str, TalkNet]:
    """Every demo model from ``demo_dir/models`` (the attacked clips are those all get right)."""
    cache = os.path.join(demo_dir, "models")
    models: dict[str, TalkNet] = {}
    for spec in config.models:
        if not training.is_cached(spec, config, cache):
            raise SystemExit(
                f"--demo-dir: no cached model ({spec.key}) in {cache} for the preset's settings; "
                f"run `avrobust demo --out {demo_dir}` first"
            )
        empty: tuple[Inputs, Tensor] = ({}, torch.zeros(0))
        models[spec.key] = training.load_or_train(spec, config, empty, models, cache, False)[0]
    return models


def stored_cell(demo_dir: str, key: str) -> tuple[list[int] | None, float | None]:
    """The selection and the adversarial mAP of cell ``key`` in the demo's results of (A)."""
    path = os.path.join(demo_dir, "results", "A.jsonl")
    chosen, map_adv = None, None
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                record = json.loads(line)
                if record.get("kind") == "meta":
                    chosen = record["config"].get("select_indices")
                elif record.get("key") == key:
                    map_adv = record["result"]["map_adv"]
    return chosen, map_adv


def measure(model: nn.Module, adv: Inputs, labels: Tensor) -> tuple[float, float]:
    """``(mAP %, frame accuracy %)`` of ``model`` on ``adv``."""
    with torch.no_grad():
        scores = speaking_probability(model(**adv))
    ap = 100 * float(average_precision(scores.flatten(), labels.flatten()))
    acc = 100 * float(((scores >= 0.5).long() == labels).double().mean())
    return ap, acc


class Flat(nn.Module):
    """The demo model on one scaled, flattened tensor ``(B, 1, 1, D)`` in [0, 1], returning
    clip logits ``(B, 2)`` = ``[0, s]`` whose cross-entropy with label 0 grows with the loss."""

    def __init__(self, model: nn.Module, clean: Inputs, budgets: dict, loss: str) -> None:
        super().__init__()
        self.model, self.loss, self.labels = model, loss, torch.zeros(0)
        self.names = list(clean)
        self.shapes = [tuple(clean[n].shape[1:]) for n in self.names]
        ratio = {n: b.eps / (b.bounds[1] - b.bounds[0]) for n, b in budgets.items()}
        self.eps = min(ratio.values())  # the one eps in the scaled space
        self.scale = {n: budgets[n].eps / self.eps for n in self.names}
        self.bounds = {n: budgets[n].bounds for n in self.names}

    def to_flat(self, inputs: Inputs) -> Tensor:
        parts = [((inputs[n] - self.bounds[n][0]) / self.scale[n]).flatten(1) for n in self.names]
        return torch.cat(parts, dim=1)[:, None, None, :]

    def from_flat(self, u: Tensor) -> Inputs:
        sizes = [math.prod(s) for s in self.shapes]
        out = {}
        for n, part, shape in zip(self.names, u.flatten(1).split(sizes, dim=1), self.shapes):
            x = part.reshape(-1, *shape) * self.scale[n] + self.bounds[n][0]
            out[n] = x.clamp(*self.bounds[n])
        return out

    def forward(self, u: Tensor) -> Tensor:
        logits = self.model(**self.from_flat(u)).logits  # (B, T, 2)
        labels = self.labels.to(logits.device)
        if labels.shape != logits.shape[:-1]:
            raise RuntimeError("Flat: called on another batch than its frame labels'")
        if self.loss == "margin":
            true = logits.gather(-1, labels[..., None])[..., 0]
            other = logits.gather(-1, (1 - labels)[..., None])[..., 0]
            s = (other - true).mean(dim=1)
        else:  # inverse softplus of the mean frame cross-entropy: softplus(s) is that loss
            ce = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(dim=1)
            ce = ce.clamp_min(1e-12)
            s = ce + torch.log(-torch.expm1(-ce))
        return torch.stack([torch.zeros_like(s), s], dim=1)


def torchattacks_apgd(
    model: nn.Module,
    clean: Inputs,
    labels: Tensor,
    budgets: dict,
    loss: str,
    steps: int,
    seed: int,
    best: bool = True,
) -> Inputs:
    """torchattacks' APGD (Linf) jointly on both streams, with ``loss`` ``"ce"`` or ``"margin"``;
    ``best``: per clip the iterate of highest loss, else torchattacks' own return."""
    flat = Flat(model, clean, budgets, loss).eval()
    flat.labels = labels
    attack = torchattacks.APGD(
        flat, norm="Linf", eps=flat.eps, steps=steps, n_restarts=1, seed=seed
    )
    torch.manual_seed(seed)
    u = flat.to_flat(clean)
    y = torch.zeros(u.shape[0], dtype=torch.long)
    adv = attack.perturb(u, y, best_loss=best)[1]
    out = flat.from_flat(adv.detach())
    # the scaling's float32 round trip can overshoot a radius by an ulp: clip it back
    return {
        n: torch.clamp(x, clean[n] - budgets[n].eps, clean[n] + budgets[n].eps)
        for n, x in out.items()
    }


def largest_change(clean: Inputs, adv: Inputs, budgets: dict) -> str:
    """``"audio 0.0020/0.0020, visual 2.00/2.00"``; raises if a budget is exceeded."""
    parts = []
    for n, budget in budgets.items():
        linf = float((adv[n] - clean[n]).abs().max())
        lo, hi = budget.bounds
        if linf > budget.eps * (1 + 1e-5) or adv[n].min() < lo or adv[n].max() > hi:
            raise AssertionError(f"{n}: outside its budget or bounds (Linf {linf})")
        parts.append(f"{n} {linf:.4g}/{budget.eps:.4g}")
    return ", ".join(parts)


def cell_seed(seed: int, eps: float) -> int:
    """The seed the demo's evaluation gives the cell ``pgd|eps|audio+visual`` (GridCell.seed)."""
    key = f"pgd|{float(eps)}|audio+visual"
    return int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:12], 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", default="avrobust-demo")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--eps", type=float, default=20.0, help="eps_av")
    parser.add_argument("--steps", type=int, default=100, help="APGD iterations")
    parser.add_argument("--queries", type=int, default=1000, help="Square queries per clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    config = PRESETS[args.preset]
    models = load_models(config, args.demo_dir)
    model = models["A"]
    _, test_set = _data_sets(config)
    data = test_set.tensors()
    chosen, how = attacked_clips(config, models, data)
    key = f"pgd|{float(args.eps)}|audio+visual"
    stored, stored_map = stored_cell(args.demo_dir, key)
    if stored is not None and stored != chosen:
        raise SystemExit(f"the selection {chosen} differs from the demo's stored one {stored}")
    clean = {n: x[chosen] for n, x in data[0].items()}
    labels = data[1][chosen]
    budgets = avrobust.push_pull_budgets(args.eps)
    print(
        f"model (A) from {args.demo_dir}/models; {len(chosen)} clips ({how}); eps_av = "
        f"{args.eps:g}: audio Linf {budgets['audio'].eps:g}, video Linf {budgets['visual'].eps:g}"
    )
    print(
        f"settings: PGD 5 steps (training objective, the demo's cell seed); ensemble APGD "
        f"{args.steps} steps, Square {args.queries} queries, seed {args.seed}; torchattacks "
        f"{torchattacks.__version__} APGD Linf {args.steps} steps, 1 restart, seed {args.seed}; "
        f"{torch.get_num_threads()} torch thread(s)"
    )
    rows: list[tuple[str, float, float, float, str]] = []

    def row(name: str, make) -> None:
        t0 = time.perf_counter()
        adv = make()
        seconds = time.perf_counter() - t0
        ap, acc = measure(model, adv, labels)
        rows.append((name, ap, acc, seconds, largest_change(clean, adv, budgets)))

    row("clean", lambda: clean)
    pgd = avrobust.MultimodalAttack(
        model,
        budgets,
        rule="pgd",
        steps=5,
        objective="training",
        seed=cell_seed(config.seed, args.eps),
    )
    row("PGD-5, CE (the demo's attack)", lambda: pgd(clean, labels).inputs)
    ensemble = avrobust.default_ensemble(
        model, budgets, steps=args.steps, seed=args.seed, queries=args.queries
    )
    found = {}

    def run_ensemble() -> Inputs:
        found["result"] = ensemble(clean, labels)
        return found["result"].inputs

    row("avrobust.default_ensemble (worst case)", run_ensemble)
    for loss in ("ce", "margin"):
        row(
            f"torchattacks APGD-{loss}, joint",
            lambda loss=loss: torchattacks_apgd(
                model, clean, labels, budgets, loss, args.steps, args.seed
            ),
        )
    row(
        "torchattacks APGD-margin, joint, first success",
        lambda: torchattacks_apgd(
            model, clean, labels, budgets, "margin", args.steps, args.seed, best=False
        ),
    )
    floor = 100 * float(labels.double().mean())
    print()
    print("| Attack | mAP (%) | Frame accuracy (%) | Seconds | Largest change / budget |")
    print("|---|---:|---:|---:|---|")
    for name, ap, acc, seconds, change in rows:
        print(f"| {name} | {ap:.2f} | {acc:.2f} | {seconds:.1f} | {change} |")
    print()
    print(f"ensemble broken_by: {found['result'].broken_by} (of {len(chosen)} clips)")
    if stored_map is not None:
        print(f"the demo's stored cell {key}: mAP {100 * stored_map:.2f}%")
    print(f"mAP floor on these clips (share of speaking frames): {floor:.2f}%")
    ens, margin_ap, pgd_ap = rows[2][1], rows[4][1], rows[1][1]
    verdict = "holds" if ens <= margin_ap + 1 else "FAILS"
    print(
        f"target: ensemble mAP {ens:.2f} <= torchattacks APGD-margin {margin_ap:.2f} + 1: "
        f"{verdict}; below PGD-5's {pgd_ap:.2f} by {pgd_ap - ens:.2f} points"
    )


if __name__ == "__main__":
    main()
