"""Quickstart: train a tiny two-stream model on toy audio-visual data, then attack it.

Runs on a laptop CPU in about a minute (``--fast``: a few seconds), no download:

    python examples/quickstart.py            # the full run
    python examples/quickstart.py --fast     # a smoke run

It prints accuracy under audio-only, visual-only and joint audio-visual BIM/MIM/PGD attacks with
the Push-Pull coupled budgets (eps_a = eps_av * 1e-4 on a [-1, 1] waveform, eps_v = eps_av * 1e-1
on 0-255 pixels).
"""

from __future__ import annotations

import argparse
import math

import torch

import avrobust
from avrobust.testing import TinyAV


def toy_batch(
    n: int, generator: torch.Generator, frames: int = 4
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Class 1: a loud 440 Hz tone and bright frames; class 0: quiet noise and dark frames.

    Each modality alone is a noisy cue, so the model learns to use both.
    """
    labels = torch.randint(0, 2, (n,), generator=generator)
    t = torch.arange(160 * frames) / 16000
    tone = torch.sin(2 * math.pi * 440 * t)
    loud = 0.1 + 0.5 * labels[:, None] * torch.rand(n, 1, generator=generator)
    audio = (loud * tone + 0.2 * torch.randn(n, t.numel(), generator=generator)).clamp(-1, 1)
    level = (
        80 + 60 * labels[:, None, None, None] + 60 * torch.randn(n, 1, 1, 1, generator=generator)
    )
    visual = (level + 20 * torch.randn(n, frames, 16, 16, generator=generator)).clamp(0, 255)
    return {"audio": audio, "visual": visual}, labels


def train(model: TinyAV, steps: int, generator: torch.Generator) -> None:
    """Plain supervised training with the model's own weighted three-head loss."""
    objective = avrobust.CrossEntropyObjective(model.head_weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        inputs, labels = toy_batch(64, generator)
        loss = objective(model(**inputs), labels).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train, attack, print the table. Returns ``{"clean": acc, "<rule>/<eps_av>/<modalities>": acc}``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--eps-av",
        type=float,
        nargs="+",
        default=[30.0, 100.0, 300.0],
        help="Push-Pull joint budgets to try (eps_a = eps_av*1e-4, eps_v = eps_av*1e-1)",
    )
    args = parser.parse_args(argv)

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = TinyAV(num_classes=2, frames=4)
    train(model, steps=30 if args.fast else 300, generator=g)
    inputs, labels = toy_batch(64 if args.fast else 256, g)
    with torch.no_grad():
        clean = (model(**inputs).logits.argmax(-1) == labels).float().mean().item()
    results = {"clean": clean}
    print(f"clean accuracy: {clean:.3f}")
    print(f"{'rule':<6}{'eps_av':>8}{'audio only':>12}{'visual only':>13}{'audio+visual':>14}")
    for rule in ("bim", "mim", "pgd"):
        for eps_av in args.eps_av[:1] if args.fast else args.eps_av:
            coupled = avrobust.push_pull_budgets(eps_av)
            row = []
            for which in (("audio",), ("visual",), ("audio", "visual")):
                budgets = {m: coupled[m] for m in which}
                attack = avrobust.MultimodalAttack(
                    model, budgets=budgets, rule=rule, steps=3 if args.fast else 10, seed=0
                )
                acc = 1.0 - attack(inputs, labels).success.float().mean().item()
                results[f"{rule}/{eps_av:g}/{'+'.join(which)}"] = acc
                row.append(acc)
            print(f"{rule:<6}{eps_av:>8g}{row[0]:>12.3f}{row[1]:>13.3f}{row[2]:>14.3f}")
    return results


if __name__ == "__main__":
    main()
