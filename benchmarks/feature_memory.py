"""ExFMem sparse coding: the batched torch solver against solving each sample with scikit-learn's Lasso.

Problem (the defense's paper setting): a batch of ``B = 256`` features of dimension ``D = 512`` coded
over a bank of ``N = 1024`` atoms, ``min_a ‖f − M a‖² + λ‖a‖₁``. Bank and features imitate
ReLU-pooled CNN features: non-negative, correlated atoms; features are sparse mixtures of atoms
plus noise (an "adversarial" perturbation). λ is set relative to ``λ_max = 2‖Mᵀf‖∞`` (median over
the batch; above it the code is all zeros): small ratios give dense codes (the paper's regime: its
λ = 0.2 on ReLU features of norm ~20 is well below 0.1 % of λ_max), large ratios very sparse ones.

scikit-learn gets the same problem (``alpha = λ / (2 D)``, no intercept, its default tolerance 1e-4
on the duality gap, which is also our stopping rule and default) and is timed on
``--sklearn-samples`` of the features, extrapolated linearly to the batch (the fits are
independent). Our solver runs at most ``--max-iter`` iterations; both mean objectives are printed,
so the speed is compared at equal accuracy.

Run: ``python benchmarks/feature_memory.py`` (``--threads``, ``--ratios``, ``--device cuda``).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso

from avrobust.defenses.memory import lasso_objective, lipschitz_constant, sparse_code


def make_problem(b: int, d: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative bank ``(N, D)`` and features ``(B, D)`` = 3-atom mixtures + noise."""
    g = torch.Generator().manual_seed(seed)
    bank = torch.relu(torch.randn(n, d, generator=g))
    picks = torch.randint(n, (b, 3), generator=g)
    weights = torch.rand(b, 3, 1, generator=g)
    feats = (weights * bank[picks]).sum(1) + 0.1 * torch.randn(b, d, generator=g)
    return feats, bank


def time_torch(
    feats: torch.Tensor, bank: torch.Tensor, lam: float, device: str, max_iter: int
) -> tuple[float, np.ndarray, int, float]:
    f, m = feats.to(device), bank.to(device)
    lipschitz = lipschitz_constant(m)  # computed once per bank (FeatureMemory caches it)
    sparse_code(f[:8], m, lam, lipschitz=lipschitz, max_iter=5)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = sparse_code(f, m, lam, lipschitz=lipschitz, max_iter=max_iter)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    objective = lasso_objective(f, m, result.codes, lam).double().cpu().numpy()
    nonzeros = float((result.codes != 0).float().sum(1).mean())
    return elapsed, objective, result.iterations, nonzeros


def time_sklearn(
    feats: torch.Tensor, bank: torch.Tensor, lam: float, samples: int
) -> tuple[float, np.ndarray]:
    x = bank.T.double().numpy()  # (D, N): sklearn's samples are the feature's D coordinates
    lasso = Lasso(alpha=lam / (2 * bank.shape[1]), fit_intercept=False, max_iter=100_000)
    objectives = []
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for f in feats[:samples]:
            lasso.fit(x, f.double().numpy())
            codes = torch.from_numpy(lasso.coef_)[None]
            objectives.append(float(lasso_objective(f[None].double(), bank.double(), codes, lam)))
    per_sample = (time.perf_counter() - start) / samples
    return per_sample * len(feats), np.array(objectives)


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--bank", type=int, default=1024)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.0005, 0.005, 0.05])
    parser.add_argument("--max-iter", type=int, default=5000)
    parser.add_argument("--sklearn-samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    feats, bank = make_problem(args.batch, args.dim, args.bank)
    print(
        f"B={args.batch} features, D={args.dim}, bank N={args.bank}, torch threads={args.threads}, "
        f"device={args.device}; sklearn timed on {args.sklearn_samples} samples, x{args.batch} extrapolated"
    )
    print(
        "| λ / λ_max (λ) | sklearn Lasso, one by one (s) | avrobust batched FISTA (s) | iterations | speed-up "
        "| mean objective sklearn | mean objective ours | nonzeros / atoms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    lam_max = float(2 * (feats @ bank.T).abs().amax(-1).median())
    for ratio in args.ratios:
        lam = ratio * lam_max
        t_ours, obj_ours, iters, nnz = time_torch(feats, bank, lam, args.device, args.max_iter)
        t_sk, obj_sk = time_sklearn(feats, bank, lam, args.sklearn_samples)
        nnz = float(
            (sparse_code(feats, bank, lam, max_iter=20_000).codes != 0).float().sum(1).mean()
        )
        k = args.sklearn_samples
        row = {
            "lam": lam,
            "sklearn_s": t_sk,
            "ours_s": t_ours,
            "speedup": t_sk / t_ours,
            "obj_sklearn": float(obj_sk.mean()),
            "obj_ours": float(obj_ours[:k].mean()),
        }
        rows.append(row)
        print(
            f"| {ratio:g} ({lam:.3g}) | {t_sk:.2f} | {t_ours:.2f} | {iters} | {row['speedup']:.1f}x "
            f"| {row['obj_sklearn']:.4f} | {row['obj_ours']:.4f} | {nnz:.0f} / {args.bank} |"
        )
    return rows


if __name__ == "__main__":
    main()
