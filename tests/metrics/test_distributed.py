"""AVILoss(sync=True) and synced streaming metrics on 2 CPU processes (gloo) vs one process.

Each rank holds a different number of clips (3 and 2, masks included, rank 1 without any speech
frame), runs a DistributedDataParallel encoder, AVILoss(sync=True) and backward. The loss on
every rank and the parameter gradients after DDP's averaging must equal one process on the
concatenated batch; each rank's input gradient is W = 2 times the single-process one (the
convention of torch.distributed.nn.all_gather, which DDP's averaging divides out).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from helpers import run_on_gloo_ranks
from torch import nn

from avrobust.losses import AVILoss
from avrobust.metrics import ECR, AveragePrecision, average_precision, ecr

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

WORLD = 2
CLIPS = (3, 2)
T, F_IN, D = 5, 6, 4


class Encoder(nn.Module):
    """Two linear streams: features ``(B, T, F)`` -> embeddings ``(B, T, D)``."""

    def __init__(self) -> None:
        super().__init__()
        self.audio = nn.Linear(F_IN, D)
        self.visual = nn.Linear(F_IN, D)

    def forward(self, x_a: torch.Tensor, x_v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(self.audio(x_a)), torch.tanh(self.visual(x_v))


def full_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b = sum(CLIPS)
    labels = torch.randint(0, 2, (b, T), generator=g)
    labels[CLIPS[0] :] = 0  # rank 1 has no speech frame: only global centres see both classes
    mask = torch.ones(b, T, dtype=torch.bool)
    mask[1, 3:] = False
    mask[4, 4:] = False
    return {
        "x_a": torch.randn(b, T, F_IN, generator=g, dtype=torch.float64),
        "x_v": torch.randn(b, T, F_IN, generator=g, dtype=torch.float64),
        "labels": labels,
        "mask": mask,
        "scores": torch.rand(b, T, generator=g, dtype=torch.float64),
    }


def run_step(data: dict[str, torch.Tensor], model: nn.Module, sync: bool):
    x_a = data["x_a"].clone().requires_grad_(True)
    e_a, e_v = model(x_a, data["x_v"])
    crit = AVILoss(weight=[0.3, 0.2, 0.4, 0.1], sync=sync)
    loss = crit(e_a, e_v, data["labels"], data["mask"])
    loss.backward()
    return loss.detach(), x_a.grad, e_a.detach(), e_v.detach()


def _rank_results(rank: int, out_dir: str) -> dict[str, object]:
    start = sum(CLIPS[:rank])
    part = {k: v[start : start + CLIPS[rank]] for k, v in full_batch().items()}
    torch.manual_seed(1)
    model = nn.parallel.DistributedDataParallel(Encoder().double())
    loss, x_grad, e_a, e_v = run_step(part, model, sync=True)
    grads = {n: p.grad.clone() for n, p in model.module.named_parameters()}
    ap = AveragePrecision(sync=True)
    ap.update(part["scores"], part["labels"], part["mask"])
    change = ECR(sync=True)
    change.update(e_a, e_v, part["mask"])
    return {
        "loss": loss,
        "x_grad": x_grad,
        "grads": grads,
        "ap": ap.compute(),
        "ecr": change.compute(),
    }


@pytest.mark.timeout(600)  # 10 s idle; spawning torch processes on a loaded 2-core machine is slow
def test_sync_equals_single_process_on_concatenated_batch(tmp_path: Path) -> None:
    ranks: list = run_on_gloo_ranks(_rank_results, tmp_path, world=WORLD, timeout_s=30)

    data = full_batch()
    torch.manual_seed(1)
    model = Encoder().double()
    loss, x_grad, e_a, e_v = run_step(data, model, sync=False)

    for r, res in enumerate(ranks):
        torch.testing.assert_close(res["loss"], loss, rtol=1e-12, atol=1e-12)
        start = sum(CLIPS[:r])
        torch.testing.assert_close(
            res["x_grad"], WORLD * x_grad[start : start + CLIPS[r]], rtol=1e-10, atol=1e-12
        )
        for name, p in model.named_parameters():  # after DDP's averaging: the exact gradient
            torch.testing.assert_close(res["grads"][name], p.grad, rtol=1e-10, atol=1e-12)
        expected_ap = average_precision(data["scores"][data["mask"]], data["labels"][data["mask"]])
        torch.testing.assert_close(res["ap"], expected_ap)
        torch.testing.assert_close(res["ecr"], ecr(e_a, e_v, data["mask"]).double())

    # The local (unsynced) loss of one rank differs: the test would catch a no-op sync.
    torch.manual_seed(1)
    part = {k: v[CLIPS[0] :] for k, v in data.items()}
    local, *_ = run_step(part, Encoder().double(), sync=False)
    assert not torch.allclose(local, loss)
