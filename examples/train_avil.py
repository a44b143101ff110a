"""Train a toy two-stream active speaker detector with AVILoss and adversarial training.

A plain PyTorch loop (no trainer) on synthetic, learnable data: in "speaking" frames the audio
carries a tone and the face's mouth region is bright. Two models are trained with the same
seed and budget of steps:

* ``baseline``: TalkNet's loss ``CE_av + 0.4 CE_a + 0.4 CE_v`` (Push-Pull eq. 4);
* ``defended``: the same + ``AVILoss`` (eq. 11) on the frame embeddings, with half of every
  batch replaced by BIM adversarial examples (adversarial training).

Both are then evaluated on held-out clips: frame mAP (as the AVA evaluation computes it) on
clean inputs and under a joint audio-visual PGD attack, the embedding change ratio (ECR), and
how audible/visible the attack is (SNR, PSNR).

Run:  python examples/train_avil.py            (about a minute on a laptop CPU)
      python examples/train_avil.py --fast     (a few seconds; also AVROBUST_FAST=1)
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

import avrobust
from avrobust.defenses import AdversarialTraining
from avrobust.losses import AVILoss
from avrobust.metrics import ECR, AveragePrecision, psnr, snr
from avrobust.testing import TinyAV

FRAMES, SAMPLES_PER_FRAME, SIZE = 8, 64, 16
AUDIO_LEVEL, MOUTH_LEVEL = 0.1, 15.0  # signal strengths: speech tone amplitude, mouth contrast
EPS_A, EPS_V = 0.03, 6.0  # L-inf budgets: waveform units, pixel levels


def make_data(clips: int, seed: int) -> tuple[dict[str, Tensor], Tensor]:
    """Synthetic clips: audio ``(N, S)`` in [-1, 1], faces ``(N, T, H, W)`` in [0, 255], labels ``(N, T)``."""
    g = torch.Generator().manual_seed(seed)
    # Speaking turns: a two-state Markov chain per clip (runs of a few frames).
    labels = torch.zeros(clips, FRAMES, dtype=torch.long)
    labels[:, 0] = torch.randint(0, 2, (clips,), generator=g)
    for t in range(1, FRAMES):
        flip = torch.rand(clips, generator=g) < 0.3
        labels[:, t] = torch.where(flip, 1 - labels[:, t - 1], labels[:, t - 1])
    speaking = labels.repeat_interleave(SAMPLES_PER_FRAME, dim=1).float()
    time = torch.arange(FRAMES * SAMPLES_PER_FRAME) / SAMPLES_PER_FRAME
    pitch = 2 + 3 * torch.rand(clips, 1, generator=g)
    tone = AUDIO_LEVEL * (torch.sin(2 * math.pi * pitch * time) + 1)
    audio = speaking * tone + 0.1 * torch.randn(clips, time.numel(), generator=g)
    faces = 110 + 25 * torch.randn(clips, FRAMES, SIZE, SIZE, generator=g)
    mouth = (slice(SIZE // 2, SIZE - 2), slice(SIZE // 4, 3 * SIZE // 4))
    faces[:, :, mouth[0], mouth[1]] += (labels.float() * 2 - 1)[:, :, None, None] * MOUTH_LEVEL
    return {"audio": audio.clamp(-1, 1), "visual": faces.clamp(0, 255)}, labels


def task_loss(out: avrobust.AVOutput, labels: Tensor) -> Tensor:
    """TalkNet's training loss: ``CE_av + 0.4 CE_a + 0.4 CE_v`` over all frames."""
    loss = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten())
    for head in out.heads.values():
        loss = loss + 0.4 * F.cross_entropy(head.flatten(0, 1), labels.flatten())
    return loss


def train(defended: bool, data: tuple[dict[str, Tensor], Tensor], steps: int, seed: int) -> dict:
    """Train one model; returns it with its loss and AVIL-term history."""
    torch.manual_seed(seed)
    model = TinyAV(frames=FRAMES, frame_level=True, dim=16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    avil = AVILoss(weight=0.1)  # all four terms, lambda = 0.1 as in the paper
    budgets = {
        "audio": avrobust.Linf(EPS_A, bounds=(-1, 1)),
        "visual": avrobust.Linf(EPS_V, bounds=(0, 255)),
    }
    attack = avrobust.MultimodalAttack(
        model, budgets=budgets, rule=avrobust.BIM(), steps=3, seed=seed
    )
    adversarial = AdversarialTraining(attack, ratio=0.5, seed=seed)
    inputs, labels = data
    history: dict[str, list[float]] = {"task": [], **{t: [] for t in avil.terms}}
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randperm(labels.shape[0], generator=g)[:16]
        batch_inputs, batch_labels = {k: v[idx] for k, v in inputs.items()}, labels[idx]
        model.train()
        if defended:
            batch = adversarial(batch_inputs, batch_labels)  # model stays in train mode
            batch_inputs, batch_labels = batch.inputs, batch.labels
        out = model(**batch_inputs)
        loss = task_loss(out, batch_labels)
        history["task"].append(float(loss.detach()))
        if defended:
            loss = loss + avil(out.embeddings["audio"], out.embeddings["visual"], batch_labels)
            for name, value in avil.last_terms.items():
                history[name].append(float(value))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return {"model": model.eval(), "history": history}


@torch.no_grad()
def _scores(model: TinyAV, inputs: dict[str, Tensor]) -> avrobust.AVOutput:
    return model(**inputs)


def evaluate(model: TinyAV, data: tuple[dict[str, Tensor], Tensor], seed: int) -> dict[str, float]:
    """Clean and attacked frame mAP, ECR per modality, perceptibility of the attack."""
    inputs, labels = data
    budgets = {
        "audio": avrobust.Linf(EPS_A, bounds=(-1, 1)),
        "visual": avrobust.Linf(EPS_V, bounds=(0, 255)),
    }
    attack = avrobust.MultimodalAttack(
        model, budgets=budgets, rule=avrobust.PGD(), steps=5, seed=seed
    )
    adv = attack(inputs, labels).inputs
    clean_out, adv_out = _scores(model, inputs), _scores(model, adv)
    clean_map, adv_map, change = AveragePrecision(), AveragePrecision(), ECR()
    clean_map.update(clean_out.logits.softmax(-1)[..., 1], labels)
    adv_map.update(adv_out.logits.softmax(-1)[..., 1], labels)
    change.update(dict(clean_out.embeddings), dict(adv_out.embeddings))
    ecr = change.compute()
    assert isinstance(ecr, dict)
    avil = AVILoss()
    avil(clean_out.embeddings["audio"], clean_out.embeddings["visual"], labels)
    return {
        **{f"test_{name}": float(value) for name, value in avil.last_terms.items()},
        "clean_map": float(clean_map.compute()),
        "adv_map": float(adv_map.compute()),
        "ecr_audio": float(ecr["audio"]),
        "ecr_visual": float(ecr["visual"]),
        "snr_db": float(snr(inputs["audio"], adv["audio"]).mean()),
        "psnr_db": float(psnr(inputs["visual"], adv["visual"]).mean()),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    """Train the baseline and the defended model, print a report, return the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="a few seconds (for the test suite)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fast = args.fast or os.environ.get("AVROBUST_FAST") == "1"
    steps = args.steps or (60 if fast else 400)
    train_data = make_data(96 if fast else 512, seed=args.seed)
    test_data = make_data(32 if fast else 256, seed=args.seed + 1)
    results = {}
    for name in ("baseline", "defended"):
        trained = train(name == "defended", train_data, steps, args.seed)
        results[name] = {**evaluate(trained["model"], test_data, args.seed), **trained}
    print(
        f"{'model':<10} {'clean mAP':>9} {'PGD mAP':>8} {'A ECR':>7} {'V ECR':>7} "
        f"{'SNR dB':>7} {'PSNR dB':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:<10} {100 * r['clean_map']:9.2f} {100 * r['adv_map']:8.2f} "
            f"{r['ecr_audio']:7.4f} {r['ecr_visual']:7.4f} {r['snr_db']:7.1f} {r['psnr_db']:8.1f}"
        )
    print("AVIL terms on held-out clean clips (lower = the geometry Push-Pull asks for):")
    for name, r in results.items():
        print(
            f"  {name:<10}",
            "  ".join(f"{t}={r[f'test_{t}']:+.3f}" for t in ("l1", "l2", "l3", "l4")),
        )
    return results


if __name__ == "__main__":
    main()
