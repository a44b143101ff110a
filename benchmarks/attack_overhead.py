"""Attack overhead, measured side by side in one run (ratios, not absolute times).

    python benchmarks/attack_overhead.py [--reps 5] [--batch 32]

Prints, on a small two-stream CNN (audio (B, 4000) waveform, video (B, 8, 32, 32) frames):

1. MultimodalAttack PGD-10 / a hand-written minimal PGD loop doing the same work
   (target <= 1.05), for keep="last" (the same algorithm) and keep="best" (the default);
2. MultimodalAttack PGD-10 (video only) / torchattacks PGD on the equivalent single-input model
   (the same network with the audio held fixed) (target <= 1.0), also against torchattacks
   followed by the forwards whose results AttackResult carries: the adversarial logits
   ("+predict"), and the clean logits too ("+clean+predict": the same model passes,
   10 forward+backward and 2 forwards). MultimodalAttack's PGD cannot run fewer passes than
   that: with a random start neither the clean inputs nor the final iterate is any step's
   input, and its result reports both (clean_loss, the refusal of NaN/Inf clean logits; the
   returned logits and success). On one CPU thread those two forwards cost about 8-10% of
   torchattacks' time, which bounds the bare ratio from below at about 1.05-1.1;
3. PGD with R=4 restarts batched / four sequential 1-restart runs (target: >= 1.3x faster), on
   a small model with 4 samples (where per-call overhead dominates, the case batching is for) and
   on the CNN with 32 samples (compute-bound on a CPU, printed for honesty).

Each variant is timed ``reps`` times in interleaved order; the median is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import avrobust
from avrobust.testing import TinyAV


class TwoStreamCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.audio = nn.Sequential(
            nn.Conv1d(1, 16, 25, stride=4, padding=12),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Conv1d(16, 32, 9, stride=4, padding=4),
            nn.BatchNorm1d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
        )
        self.video = nn.Sequential(
            nn.Conv2d(8, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(64, 2)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.audio(audio[:, None]), self.video(visual / 255)], dim=1))


class VideoOnly(nn.Module):
    """The same network as a single-input model of the video in [0, 1], audio held fixed."""

    def __init__(self, model: TwoStreamCNN, audio: torch.Tensor) -> None:
        super().__init__()
        self.model, self.fixed_audio = model, audio

    def forward(self, video01: torch.Tensor) -> torch.Tensor:
        return self.model(self.fixed_audio, video01 * 255)


def minimal_pgd(
    model: nn.Module,
    x: dict[str, torch.Tensor],
    y: torch.Tensor,
    eps: dict[str, float],
    bounds: dict[str, tuple[float, float]],
    steps: int,
    gen: torch.Generator,
) -> dict[str, torch.Tensor]:
    """The shortest correct joint PGD: random start, sign steps, projection, clamp, final logits."""
    alpha = {k: 2.5 * e / steps for k, e in eps.items()}
    adv = {
        k: (x[k] + (2 * torch.rand(x[k].shape, generator=gen) - 1) * eps[k]).clamp(*bounds[k])
        for k in x
    }
    for _ in range(steps):
        for v in adv.values():
            v.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(**adv), y, reduction="sum")
        grads = torch.autograd.grad(loss, list(adv.values()))
        with torch.no_grad():
            adv = {
                k: torch.min(
                    torch.max(adv[k] + alpha[k] * g.sign(), x[k] - eps[k]), x[k] + eps[k]
                ).clamp(*bounds[k])
                for (k, g) in zip(adv, grads)
            }
    with torch.no_grad():
        model(**adv)
    return adv


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_times(variants: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Warm up, then time every variant ``reps`` times in interleaved order; medians in seconds."""
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            times[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def our_attack(
    net: nn.Module,
    data: dict[str, torch.Tensor],
    labels: torch.Tensor,
    budgets: dict[str, avrobust.Budget],
    steps: int,
    keep: str = "best",
    restarts: int = 1,
) -> Callable[[], object]:
    """A timed variant: avrobust's PGD (inference objective, seed 0) on ``data``."""
    attack = avrobust.MultimodalAttack(
        net,
        budgets=budgets,
        rule=avrobust.PGD(restarts=restarts),
        steps=steps,
        seed=0,
        keep=keep,
        objective="inference",
    )
    return lambda: attack(data, labels)


def torchattacks_variants(
    model: nn.Module, x: dict[str, torch.Tensor], y: torch.Tensor, eps: float, steps: int
) -> dict[str, Callable[[], object]]:
    """torchattacks' PGD on the video alone (pixels scaled to [0, 1]), bare and with predictions."""
    try:
        import torchattacks
    except ImportError:
        print("torchattacks not installed: pip install --no-deps torchattacks==3.5.1")
        return {}
    video_model = VideoOnly(model, x["audio"])
    ta = torchattacks.PGD(
        video_model, eps=eps / 255, alpha=2.5 * eps / 255 / steps, steps=steps, random_start=True
    )
    video01 = x["visual"] / 255

    def ta_and_predict() -> object:  # what AttackResult carries: the adversarial predictions
        adv = ta(video01, y)
        with torch.no_grad():
            return video_model(adv).argmax(-1)

    def ta_clean_and_predict() -> object:  # the same model passes as MultimodalAttack's PGD:
        with torch.no_grad():  # the clean logits (its clean_loss and NaN/Inf check) as well
            clean = video_model(video01)
        return clean, ta_and_predict()

    return {
        "torchattacks_video": lambda: ta(video01, y),
        "ta_video+predict": ta_and_predict,
        "ta_video+clean+pred": ta_clean_and_predict,
    }


def restart_variants(
    model: nn.Module,
    x: dict[str, torch.Tensor],
    y: torch.Tensor,
    budgets: dict[str, avrobust.Budget],
    steps: int,
) -> dict[str, Callable[[], object]]:
    """4 restarts batched vs 4 single-restart calls: a small model on a few samples (per-call
    overhead dominates: where batching pays) and the CNN (compute-bound on a CPU: batching cannot
    beat the arithmetic)."""
    torch.manual_seed(0)
    tiny = TinyAV(frames=8).eval()
    xs = {"audio": torch.rand(4, 8 * 160) * 2 - 1, "visual": torch.rand(4, 8, 32, 32) * 255}
    ys = torch.randint(0, 2, (4,))
    small_r1, cnn_r1 = (
        our_attack(tiny, xs, ys, budgets, steps),
        our_attack(model, x, y, budgets, steps),
    )
    return {
        "small_r4_batched": our_attack(tiny, xs, ys, budgets, steps, restarts=4),
        "small_r1_x4": lambda: [small_r1() for _ in range(4)],
        "cnn_r4_batched": our_attack(model, x, y, budgets, steps, restarts=4),
        "cnn_r1_x4": lambda: [cnn_r1() for _ in range(4)],
    }


TARGETS = {
    "pgd10_keep_last / minimal_loop": "<= 1.05",
    "pgd10_keep_best / minimal_loop": "(default keep)",
    "pgd10_video_only / torchattacks_pgd+predict": "(same outputs)",
    "pgd10_video_only / torchattacks_pgd": "<= 1.0",
    "pgd10_video_only / torchattacks_pgd+clean+predict": "(same passes)",
    "restarts4 small model: sequential / batched": ">= 1.3",
    "restarts4 CNN B=32: sequential / batched": "(compute-bound)",
}


def overhead_ratios(med: dict[str, float]) -> dict[str, float]:
    """The ratios of :data:`TARGETS` from the median times."""
    ratios = {
        "pgd10_keep_last / minimal_loop": med["ours_keep_last"] / med["minimal_loop"],
        "pgd10_keep_best / minimal_loop": med["ours_keep_best"] / med["minimal_loop"],
        "restarts4 small model: sequential / batched": med["small_r1_x4"] / med["small_r4_batched"],
        "restarts4 CNN B=32: sequential / batched": med["cnn_r1_x4"] / med["cnn_r4_batched"],
    }
    if "torchattacks_video" in med:
        ratios["pgd10_video_only / torchattacks_pgd"] = (
            med["ours_video_only"] / med["torchattacks_video"]
        )
        ratios["pgd10_video_only / torchattacks_pgd+predict"] = (
            med["ours_video_only"] / med["ta_video+predict"]
        )
        ratios["pgd10_video_only / torchattacks_pgd+clean+predict"] = (
            med["ours_video_only"] / med["ta_video+clean+pred"]
        )
    return ratios


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="attack overhead ratios")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = TwoStreamCNN().eval()
    b, steps = args.batch, args.steps
    x = {"audio": torch.rand(b, 4000) * 2 - 1, "visual": torch.rand(b, 8, 32, 32) * 255}
    y = torch.randint(0, 2, (b,))
    eps = {"audio": 1e-3, "visual": 2.0}
    bounds = {"audio": (-1.0, 1.0), "visual": (0.0, 255.0)}
    budgets = {k: avrobust.Linf(eps[k], bounds=bounds[k]) for k in eps}

    gen = torch.Generator().manual_seed(0)
    variants: dict[str, Callable[[], object]] = {
        "ours_keep_last": our_attack(model, x, y, budgets, steps, "last"),
        "ours_keep_best": our_attack(model, x, y, budgets, steps, "best"),
        "minimal_loop": lambda: minimal_pgd(model, x, y, eps, bounds, steps, gen),
        "ours_video_only": our_attack(model, x, y, {"visual": budgets["visual"]}, steps, "last"),
    }
    variants |= torchattacks_variants(model, x, y, eps["visual"], steps)
    variants |= restart_variants(model, x, y, budgets, steps)
    med = median_times(variants, args.reps)
    ratios = overhead_ratios(med)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {b}, steps {steps}, "
        f"reps {args.reps}"
    )
    for k, v in med.items():
        print(f"  {k:<20} {v * 1e3:9.1f} ms (median)")
    print("ratios:")
    for k, v in ratios.items():
        print(f"  {k:<50} {v:6.3f}   target {TARGETS[k]}")
    return ratios


if __name__ == "__main__":
    main()
