"""APGD: avrobust's rule against torchattacks 3.5.1's APGD, strength and time side by side.

    python benchmarks/apgd_vs_torchattacks.py [--reps 7] [--threads 1]

1. Strength: robust accuracy (fraction of samples no iterate misclassified), median over seeds
   0-4 of each library, same budget, steps and restarts, cross-entropy and DLR, on small rugged
   single-input models (a sine feature makes the step-size control matter) over a grid of
   model seeds, budgets and step counts, in float64. Prints each configuration and a summary
   (mean difference, configurations where ours is at most theirs). PGD with the same loss and
   steps is printed for reference.
2. Time: APGD-10 on a single-input video CNN (the video stream of attack_overhead.py's CNN
   with a 10-class head), batch 32, float32: ours / torchattacks (target <= 1.0), with both
   robust accuracies.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

import avrobust

sys.path.insert(0, str(Path(__file__).parent))
from attack_overhead import TwoStreamCNN, median_times


class Rugged(nn.Module):
    """Images (B, 3, 4, 4) in [0, 1] -> 10 logits through ReLU plus a sine of the features."""

    def __init__(self, seed: int, freq: float) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a, self.b, self.freq = nn.Linear(48, 64), nn.Linear(64, 10), freq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x.flatten(1))
        return self.b(torch.relu(h) + 0.3 * torch.sin(self.freq * h))


def ours(model, x, y, eps, steps, loss, seed, rule="apgd", dtype_model=True):
    attack = avrobust.MultimodalAttack(
        avrobust.wrap(model, ["image"]),
        {"image": avrobust.Linf(eps, bounds=(0, 1))},
        rule=rule,
        steps=steps,
        objective="inference" if loss == "ce" else "dlr",
        seed=seed,
    )
    return attack({"image": x}, y)


def robust(model: nn.Module, adv: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(adv).argmax(1) == y).double().mean())


def strength(seeds: int = 5) -> None:
    import torchattacks

    diffs: dict[str, list[float]] = {"ce": [], "dlr": []}
    print("model freq eps    steps loss | torchattacks  ours   | PGD (ours)")
    for mseed in range(4):
        for freq, eps in ((30, 0.01), (30, 0.007), (10, 0.02), (60, 0.01)):
            model = Rugged(mseed, freq).double().eval()
            gen = torch.Generator().manual_seed(1)
            x = torch.rand(128, 3, 4, 4, generator=gen, dtype=torch.float64)
            with torch.no_grad():
                y = model(x).argmax(1)
            for steps in (10, 25):
                for loss in ("ce", "dlr"):
                    theirs = [
                        robust(
                            model,
                            torchattacks.APGD(model, eps=eps, steps=steps, seed=s, loss=loss)(x, y),
                            y,
                        )
                        for s in range(seeds)
                    ]
                    mine = [
                        1 - float(ours(model, x, y, eps, steps, loss, s).success.double().mean())
                        for s in range(seeds)
                    ]
                    pgd = 1 - float(
                        ours(model, x, y, eps, steps, loss, 0, "pgd").success.double().mean()
                    )
                    t, m = statistics.median(theirs), statistics.median(mine)
                    diffs[loss].append(m - t)
                    print(
                        f"{mseed:5} {freq:4} {eps:<6} {steps:5} {loss:4} | {t:12.4f} {m:6.4f} | {pgd:.4f}"
                    )
    for loss, d in diffs.items():
        print(
            f"summary {loss}: mean (ours - torchattacks) {statistics.mean(d) * 100:+.2f} points; "
            f"ours <= torchattacks in {sum(v <= 0 for v in d)} of {len(d)} configurations"
        )


def timing(reps: int, eps: float = 20 / 255) -> None:
    import torchattacks

    torch.manual_seed(0)
    model = TwoStreamCNN().video  # the video stream of attack_overhead.py's CNN, with a head
    model = nn.Sequential(model, nn.Linear(32, 10))
    with torch.no_grad():  # BatchNorm statistics of real batches
        model.train()
        model(torch.rand(64, 8, 32, 32))
    model.eval()
    x = torch.rand(32, 8, 32, 32)
    with torch.no_grad():
        y = model(x).argmax(1)
    attack = avrobust.MultimodalAttack(
        avrobust.wrap(model, ["image"]),
        {"image": avrobust.Linf(eps, bounds=(0, 1))},
        rule="apgd",
        steps=10,
        objective="inference",
        seed=0,
    )
    ta = torchattacks.APGD(model, eps=eps, steps=10, seed=0, loss="ce")
    results = {}
    variants = {
        "ours_apgd10": lambda: results.__setitem__("ours", attack({"image": x}, y)),
        "torchattacks_apgd10": lambda: results.__setitem__("ta", ta(x, y)),
    }
    med = median_times(variants, reps)
    ours_acc = 1 - float(results["ours"].success.float().mean())
    ta_acc = robust(model, results["ta"], y)
    print(
        f"time: video CNN (B=32, 8x32x32 frames in [0, 1]), APGD-10 (CE), eps {eps * 255:g}/255, "
        f"torch threads {torch.get_num_threads()}:"
    )
    for k, v in med.items():
        print(f"  {k:<22} {v * 1e3:8.1f} ms (median of {reps})")
    print(f"  robust accuracy: ours {ours_acc:.4f}, torchattacks {ta_acc:.4f}")
    ratio = med["ours_apgd10"] / med["torchattacks_apgd10"]
    print(f"  ratio ours / torchattacks {ratio:.3f}   target <= 1.0")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="APGD vs torchattacks")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: default)")
    parser.add_argument("--skip-strength", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.skip_strength:
        strength()
    timing(args.reps)


if __name__ == "__main__":
    main()
