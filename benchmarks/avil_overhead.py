"""How much AVILoss adds to a training step, and how fast the AVA-style mAP is.

1. AVILoss (all four terms) forward+backward time as a fraction of one forward+backward step of
   a two-stream audio-visual model on clips of T = 100 frames (target: < 3 %). Both are timed
   side by side in this run (interleaved repeats, median), and the whole step is also timed with
   and without AVIL added to the loss.
2. Frame AP over 1,000,000 frames: ``avrobust.metrics.average_precision`` against
   scikit-learn's ``average_precision_score`` (target: faster). The values differ slightly by
   design (AVA interpolates precision, scikit-learn does not).

No assertion on time: it prints the figures.

    python benchmarks/avil_overhead.py [--device cuda] [--clips 8] [--repeats 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from avrobust.losses import AVILoss
from avrobust.metrics import average_precision


class TwoStream(nn.Module):
    """A light two-stream ASD model: MFCC-like audio (B, 4T, 13), faces (B, T, 64, 64).

    Audio: 1-D conv encoder to 128-d frames; video: a small per-frame 2-D CNN (16/32/64
    channels, about 2.8 MMAC per frame) then a temporal conv;
    cross-attention both ways, a self-attention layer, and three frame-level heads (TalkNet's
    layout, scaled down: TalkNet's own visual front-end on 112×112 faces is much heavier, so the
    fraction measured here overstates AVIL's share).
    """

    def __init__(self, dim: int = 128) -> None:
        super().__init__()
        self.audio = nn.Sequential(
            nn.Conv1d(13, 64, 3, padding=1), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, dim, 3, padding=1, stride=2), nn.BatchNorm1d(dim), nn.ReLU(),
            nn.Conv1d(dim, dim, 3, padding=1, stride=2), nn.BatchNorm1d(dim), nn.ReLU(),
        )  # fmt: skip
        self.frame = nn.Sequential(
            nn.Conv2d(1, 16, 5, stride=2, padding=2), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, dim),
        )  # fmt: skip
        self.temporal = nn.Conv1d(dim, dim, 5, padding=2)
        self.a2v = nn.MultiheadAttention(dim, 8, batch_first=True)
        self.v2a = nn.MultiheadAttention(dim, 8, batch_first=True)
        self.joint = nn.TransformerEncoderLayer(2 * dim, 8, 4 * dim, batch_first=True)
        self.head, self.head_a, self.head_v = (
            nn.Linear(2 * dim, 2),
            nn.Linear(dim, 2),
            nn.Linear(dim, 2),
        )

    def forward(self, mfcc: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        b, t = faces.shape[:2]
        e_a = rearrange(self.audio(rearrange(mfcc, "b s c -> b c s")), "b d t -> b t d")
        v = self.frame(rearrange(faces, "b t h w -> (b t) 1 h w")).flatten(1)
        e_v = rearrange(self.temporal(rearrange(v, "(b t) d -> b d t", b=b, t=t)), "b d t -> b t d")
        z_a = e_a + self.v2a(e_a, e_v, e_v, need_weights=False)[0]
        z_v = e_v + self.a2v(e_v, e_a, e_a, need_weights=False)[0]
        joint = self.joint(torch.cat([z_a, z_v], dim=-1))
        return self.head(joint), self.head_a(z_a), self.head_v(z_v), z_a, z_v


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def bench_avil(clips: int, frames: int, repeats: int, device: torch.device) -> None:
    torch.manual_seed(0)
    model = TwoStream().to(device).train()
    mfcc = torch.randn(clips, 4 * frames, 13, device=device)
    faces = torch.rand(clips, frames, 64, 64, device=device) * 255
    labels = torch.randint(0, 2, (clips, frames), device=device)
    crit = AVILoss()  # all four terms, as the paper trains

    def ce(logits: Tensor) -> Tensor:
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten())

    def step(with_avil: bool) -> None:
        model.zero_grad(set_to_none=True)
        out, out_a, out_v, z_a, z_v = model(mfcc, faces)
        loss = ce(out) + 0.4 * ce(out_a) + 0.4 * ce(out_v)
        if with_avil:
            loss = loss + crit(z_a, z_v, labels)
        loss.backward()

    with torch.no_grad():
        _, _, _, z_a, z_v = model(mfcc, faces)
    z_a, z_v = z_a.detach().requires_grad_(True), z_v.detach().requires_grad_(True)

    def avil_only() -> None:
        crit(z_a, z_v, labels).backward()

    for _ in range(3):  # warm-up
        step(True), step(False), avil_only()
    plain, full, alone = [], [], []
    for _ in range(repeats):
        plain.append(_timed(lambda: step(False), device))
        alone.append(_timed(avil_only, device))
        full.append(_timed(lambda: step(True), device))
    p, f, a = (statistics.median(x) for x in (plain, full, alone))
    print(
        f"AVILoss overhead — {clips} clips × T={frames} frames, D=128, device={device}, "
        f"threads={torch.get_num_threads()}, median of {repeats}"
    )
    print(f"  model fwd+bwd step (CE_av + 0.4 CE_a + 0.4 CE_v): {1e3 * p:9.2f} ms")
    print(
        f"  AVILoss fwd+bwd alone (4 terms):                  {1e3 * a:9.3f} ms "
        f"({1e6 * a / (clips * frames):.2f} µs per frame)"
    )
    print(
        f"  -> AVILoss / step:                                {100 * a / p:9.2f} %  (target < 3 %)"
    )
    print(
        f"  step with AVIL added to the loss:                 {1e3 * f:9.2f} ms "
        f"({100 * (f - p) / p:+.2f} %, includes timing noise)"
    )


def bench_map(frames: int, repeats: int) -> None:
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    labels = rng.random(frames) < 0.3
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.25), 0, 1).astype(np.float32)
    ours, theirs, v_ours, v_theirs = [], [], 0.0, 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        v_ours = float(average_precision(scores, labels))
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        v_theirs = float(average_precision_score(labels, scores))
        theirs.append(time.perf_counter() - start)
    o, t = statistics.median(ours), statistics.median(theirs)
    print(f"mAP over {frames:,} frames (CPU, NumPy float32 scores in, median of {repeats})")
    print(
        f"  avrobust average_precision: {1e3 * o:8.1f} ms   AP = {100 * v_ours:.4f} % (VOC-interpolated)"
    )
    print(
        f"  sklearn average_precision_score: {1e3 * t:7.1f} ms   AP = {100 * v_theirs:.4f} % (not interpolated)"
    )
    print(f"  -> speed-up: {t / o:.2f}x  (target > 1)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--map-frames", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bench_avil(args.clips, args.frames, args.repeats, torch.device(args.device))
    bench_map(args.map_frames, max(3, args.repeats // 3))


if __name__ == "__main__":
    main()
