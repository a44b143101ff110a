"""Shared test helpers and parametrisation lists: a new rule or norm is tested everywhere by adding it here.

Import them as ``from helpers import ...`` (``tests/`` is on ``sys.path`` under pytest's default
rootdir-relative import mode); ``conftest.py`` keeps only fixtures and suite-wide settings.
"""

from __future__ import annotations

import torch
from torch import nn

import avrobust
from avrobust.testing import TinyAV

ALL_RULES = {
    "fgsm": lambda: avrobust.FGSM(),
    "bim": lambda: avrobust.BIM(),
    "mim": lambda: avrobust.MIM(decay=1.0),
    "pgd": lambda: avrobust.PGD(restarts=2),
}
DETERMINISTIC_RULES = ("fgsm", "bim", "mim")
ALL_NORMS = {"linf": avrobust.Linf, "l2": avrobust.L2}

AUDIO_BOUNDS = (-1.0, 1.0)
VISUAL_BOUNDS = (0.0, 255.0)


def make_inputs(
    batch: int = 3,
    seed: int = 0,
    samples: int = 640,
    frames: int = 4,
    size: int = 16,
    dtype: torch.dtype = torch.float32,
) -> dict[str, torch.Tensor]:
    """Random audio (B, S) in [-1, 1] and video (B, T, H, W) in [0, 255]."""
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": (torch.rand(batch, samples, generator=g) * 2 - 1).to(dtype),
        "visual": (torch.rand(batch, frames, size, size, generator=g) * 255).to(dtype),
    }


def make_model(seed: int = 0, **kwargs: object) -> TinyAV:
    """A TinyAV with non-trivial BatchNorm statistics, left in training mode on purpose."""
    torch.manual_seed(seed)
    model = TinyAV(**kwargs)  # type: ignore[arg-type]
    with torch.no_grad():
        for _ in range(2):
            model(**make_inputs(batch=4, seed=seed + 100))
    return model


def budgets_for(
    norm: str, eps_audio: float = 0.01, eps_visual: float = 4.0
) -> dict[str, avrobust.Budget]:
    cls = ALL_NORMS[norm]
    if norm == "l2":  # an L2 ball of the same order of size as the L-inf one
        eps_audio, eps_visual = eps_audio * 8, eps_visual * 8
    return {
        "audio": cls(eps_audio, bounds=AUDIO_BOUNDS),
        "visual": cls(eps_visual, bounds=VISUAL_BOUNDS),
    }


def snapshot(model: nn.Module) -> dict[str, object]:
    """Everything about a model an attack must not change."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [(n, m.training) for n, m in model.named_modules()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grad": [
            (n, None if p.grad is None else p.grad.clone()) for n, p in model.named_parameters()
        ],
    }


def assert_same_model(before: dict[str, object], model: nn.Module) -> None:
    after = snapshot(model)
    assert before["training"] == after["training"]
    assert before["requires_grad"] == after["requires_grad"]
    for (n1, g1), (n2, g2) in zip(before["grad"], after["grad"]):  # type: ignore[call-overload]
        assert n1 == n2
        assert (g1 is None and g2 is None) or torch.equal(g1, g2), f"grad of {n1} changed"
    for k, v in before["state"].items():  # type: ignore[attr-defined]
        assert torch.equal(v, after["state"][k]), f"state {k} changed"  # type: ignore[index]


def assert_raises_naming(
    exc_type: type[BaseException], argument: str, func: object, *args: object, **kwargs: object
) -> str:
    """Call ``func(*args, **kwargs)``, assert it raises ``exc_type`` whose message names
    ``argument``, and return the message (for further checks)."""
    import pytest

    with pytest.raises(exc_type) as info:
        func(*args, **kwargs)  # type: ignore[operator]
    message = str(info.value)
    assert argument in message, f"the message does not name {argument!r}: {message}"
    return message


def run_on_gloo_ranks(
    work: object, out_dir: object, *, world: int = 2, timeout_s: float = 180.0
) -> list[object]:
    """Run ``work(rank, out_dir) -> result`` on ``world`` CPU processes joined by gloo and return
    the results by rank. ``work`` must be a module-level function (it is pickled by reference).

    Every rank meets a barrier before the group is torn down: a rank that destroys the group
    while its peer still finishes a collective aborts the peer ("terminate called without an
    active exception", SIGABRT), about one run in five on a 2-core machine.
    """
    from pathlib import Path

    import torch.multiprocessing as mp

    args = (work, _free_port(), str(out_dir), world, timeout_s)
    mp.spawn(_gloo_worker, args=args, nprocs=world, join=True)
    return [torch.load(Path(str(out_dir)) / f"rank{r}.pt") for r in range(world)]


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gloo_worker(
    rank: int, work: object, port: int, out_dir: str, world: int, timeout_s: float
) -> None:
    import datetime
    import os
    import sys
    from pathlib import Path

    import torch.distributed as dist

    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    try:
        result = work(rank, out_dir)  # type: ignore[operator]
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def fail_writes_under(folder: object, monkeypatch: object) -> None:
    """Make every ``open(..., "w")`` of a file under ``folder`` write half of its first chunk,
    flush it, and raise ``OSError(ENOSPC)`` (a full disk); other files open as usual. Undo with
    ``monkeypatch.undo()`` or by the end of the test."""
    import builtins
    import errno

    real_open = builtins.open

    class FailingWrite:
        def __init__(self, handle: object) -> None:
            self.handle = handle

        def __enter__(self) -> FailingWrite:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()  # type: ignore[attr-defined]

        def write(self, text: str) -> int:
            self.handle.write(text[: len(text) // 2])  # type: ignore[attr-defined]
            self.handle.flush()  # type: ignore[attr-defined]
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")

        def __getattr__(self, name: str) -> object:
            return getattr(self.handle, name)

    def failing_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        handle = real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]
        return FailingWrite(handle) if "w" in mode and str(folder) in str(file) else handle

    monkeypatch.setattr(builtins, "open", failing_open)  # type: ignore[attr-defined]


class BrightLoud(nn.Module):
    """A toy speaker detector for evaluation tests: speaking when the frame is bright and the
    audio loud, both streams count and attacks can flip it. ``visual (B, T, H, W)`` in 0-255,
    ``audio (B, T·S)``; frame logits ``(B, T, 2)``, both heads, and embeddings ``(B, T, 4)``.

    Args:
        scale: the learnable logit scale.
        proj: the 4 values the embeddings are built from (a buffer).
        offset: the audio loudness (mean absolute sample) that counts as neither loud nor quiet.
    """

    def __init__(self, scale: float, proj: torch.Tensor, offset: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))
        self.register_buffer("proj", proj)
        self.offset = offset

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> avrobust.AVOutput:
        b, t = visual.shape[:2]
        v = visual.mean(dim=(2, 3)) / 255 - 0.5
        a = audio.view(b, t, -1).abs().mean(-1) - self.offset
        logit = self.scale * (20 * v + 20 * a)
        logits = torch.stack([-logit, logit], dim=-1)
        emb = {
            "audio": (a[..., None] + 1) * self.proj,
            "visual": (v[..., None] + 1) * self.proj.flip(0),
        }
        return avrobust.AVOutput(logits, heads={"audio": logits, "visual": logits}, embeddings=emb)
