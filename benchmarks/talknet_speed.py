"""TalkNet speed on CPU: frames/s for inference and forward+backward, and the MFCC front-end against python_speech_features.

Run from the repository root::

    python benchmarks/talknet_speed.py              # one thread (steady on a shared machine)
    python benchmarks/talknet_speed.py --threads 0  # all the threads torch would use

Figures: video frames (25 fps) per second of wall time, the median of ``--repeats`` runs after one
warm-up. "fwd+bwd" is one training step without the optimiser (loss = TalkNet's eq. 4). The MFCC
rows give seconds of audio processed per second and the speed-up over python_speech_features
(NumPy, one clip at a time, as the official loader calls it).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from avrobust.models import MFCC, TalkNet, talknet_loss


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_model(name: str, batch: int, frames: int, repeats: int) -> tuple[float, float]:
    """Frames per second of (inference, forward+backward) for a TalkNet variant."""
    torch.manual_seed(0)
    model = TalkNet(name)
    size = model.config.face_size
    audio = torch.rand(batch, 640 * frames) - 0.5
    visual = torch.rand(batch, frames, size, size) * 255
    labels = torch.randint(0, 2, (batch, frames))

    def infer() -> None:
        with torch.inference_mode():
            model.eval()(audio=audio, visual=visual)

    def train_step() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        talknet_loss(model(audio=audio, visual=visual), labels).backward()

    n = batch * frames
    return n / median_seconds(infer, repeats), n / median_seconds(train_step, repeats)


def bench_mfcc(clips: int, seconds: float, repeats: int) -> dict[str, float]:
    """Seconds of audio per second: python_speech_features vs the torch front-end."""
    from python_speech_features import mfcc as psf_mfcc

    samples = int(16000 * seconds)
    rng = np.random.default_rng(0)
    int16 = (rng.standard_normal((clips, samples)) * 3000).astype(np.int16)
    waveform = torch.tensor(int16 / 32768.0, dtype=torch.float32)
    front = MFCC(input_scale=32768.0)
    audio_seconds = clips * seconds

    def reference() -> None:
        for row in int16:
            psf_mfcc(row, 16000, numcep=13, winlen=0.025, winstep=0.010)

    def ours_loop() -> None:
        with torch.inference_mode():
            for row in waveform:
                front(row)

    def ours_batched() -> None:
        with torch.inference_mode():
            front(waveform)

    def ours_grad() -> None:
        x = waveform.clone().requires_grad_()
        front(x).sum().backward()

    return {
        name: audio_seconds / median_seconds(fn, repeats)
        for name, fn in (
            ("python_speech_features", reference),
            ("torch, one clip at a time", ours_loop),
            ("torch, batched", ours_batched),
            ("torch, batched fwd+bwd", ours_grad),
        )
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="0: torch's default")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s), median of {args.repeats}"
    )
    print(f"{'model':<28}{'clips x frames':>16}{'inference fr/s':>16}{'fwd+bwd fr/s':>15}")
    for name, batch, frames in (("talknet", 1, 25), ("tiny", 8, 25)):
        infer, train = bench_model(name, batch, frames, args.repeats)
        label = f"{name} ({TalkNet(name).config.face_size}px faces)"
        print(f"{label:<28}{f'{batch} x {frames}':>16}{infer:>16.1f}{train:>15.1f}")
    print()
    rates = bench_mfcc(clips=16, seconds=6.0, repeats=args.repeats)
    reference = rates["python_speech_features"]
    print(f"{'MFCC front-end (16 x 6 s)':<28}{'audio s / s':>16}{'vs reference':>16}")
    for name, rate in rates.items():
        print(f"{name:<28}{rate:>16.0f}{rate / reference:>15.2f}x")


if __name__ == "__main__":
    main()
