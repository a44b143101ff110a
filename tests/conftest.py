"""Suite-wide settings. Shared helpers live in ``tests/helpers.py`` (``from helpers import ...``)."""

from __future__ import annotations

import torch

# One intra-op thread: the suite's tensors are small, and two spinning threads on a busy 2-core
# machine made tiny ops 10-40x slower. Benchmarks, not tests, measure threading.
torch.set_num_threads(1)
