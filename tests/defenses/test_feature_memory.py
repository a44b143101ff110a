"""ExFMem: the batched sparse-coding solver against scikit-learn's Lasso, the module and its gradient modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

import avrobust
from avrobust.defenses.memory import (
    FeatureMemory,
    collect_features,
    lasso_objective,
    lipschitz_constant,
    sparse_code,
)
from avrobust.models.event import AVEventNet


def problem(
    b: int = 6, d: int = 24, n: int = 48, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative, correlated atoms (like ReLU features) and noisy mixtures of them, in float64."""
    g = torch.Generator().manual_seed(seed)
    bank = torch.relu(torch.randn(n, d, generator=g, dtype=torch.float64))
    mix = torch.rand(b, 3, generator=g, dtype=torch.float64)
    feats = (mix[:, :, None] * bank[:3]).sum(1) + 0.3 * torch.randn(
        b, d, generator=g, dtype=torch.float64
    )
    return feats, bank


def sklearn_objective(features: torch.Tensor, bank: torch.Tensor, lam: float) -> np.ndarray:
    """Solve each sample with sklearn and evaluate OUR objective at its solution.

    sklearn minimises (1/(2 n)) ||y - X w||² + α ||w||₁ with n = n_samples = D (rows of X = Mᵀ).
    Multiplying by 2n gives ||y - X w||² + 2 n α ||w||₁, i.e. our ||f - M a||² + λ ||a||₁ with
    α = λ / (2 D). Same minimiser, so the objectives must agree.
    """
    d = bank.shape[1]
    out = []
    for f in features:
        lasso = Lasso(alpha=lam / (2 * d), fit_intercept=False, tol=1e-8, max_iter=100_000)
        lasso.fit(bank.T.numpy(), f.numpy())
        codes = torch.from_numpy(lasso.coef_)[None]
        out.append(float(lasso_objective(f[None], bank, codes, lam)))
    return np.array(out)


@pytest.mark.parametrize("solver", ["fista", "ista"])
@pytest.mark.parametrize("lam", [0.5, 5.0])
def test_reaches_the_sklearn_lasso_objective(solver, lam):
    feats, bank = problem()
    result = sparse_code(feats, bank, lam, solver=solver, tol=1e-6, max_iter=20_000)
    ours = lasso_objective(feats, bank, result.codes, lam).numpy()
    ref = sklearn_objective(feats, bank, lam)
    assert result.converged
    np.testing.assert_allclose(ours, ref, rtol=1e-3)
    assert (result.codes == 0).any()  # it is a sparse code, not least squares


def test_float32_default_tolerance_is_within_1e_3_of_sklearn():
    feats, bank = problem(seed=1)
    result = sparse_code(feats.float(), bank.float(), 1.0, max_iter=5000)
    ours = lasso_objective(feats, bank, result.codes.double(), 1.0).numpy()
    np.testing.assert_allclose(ours, sklearn_objective(feats, bank, 1.0), rtol=1e-3)


def test_identity_bank_gives_soft_thresholding():
    f = torch.tensor([[1.0, 0.05, -2.0, -0.1]])
    codes = sparse_code(f, torch.eye(4), lam=0.2, tol=1e-8).codes
    expected = torch.sign(f) * torch.relu(f.abs() - 0.1)  # argmin (f - a)² + 0.2 |a|
    torch.testing.assert_close(codes, expected)


def test_batch_equals_one_by_one_and_lambda_max_gives_zero():
    feats, bank = problem(b=4)
    batched = sparse_code(feats, bank, 1.0, tol=1e-10, max_iter=20_000).codes
    single = torch.cat(
        [sparse_code(f[None], bank, 1.0, tol=1e-10, max_iter=20_000).codes for f in feats]
    )
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)
    lam_max = float(2 * (feats @ bank.T).abs().max())
    assert bool((sparse_code(feats, bank, lam_max * 1.01).codes == 0).all())


def test_step_size_guard_and_lipschitz():
    feats, bank = problem()
    lipschitz = float(lipschitz_constant(bank))
    assert lipschitz == pytest.approx(
        2 * float(torch.linalg.eigvalsh(bank @ bank.T).max()), rel=1e-9
    )
    with pytest.raises(
        ValueError, match=r"step: must be <= 1/L = .* for the solver to converge, got"
    ):
        sparse_code(feats, bank, 0.5, step=2 / lipschitz)
    small = sparse_code(feats, bank, 0.5, step=0.5 / lipschitz, max_iter=10)
    assert small.iterations == 10 and not small.converged


def test_errors_name_the_argument():
    feats, bank = problem()
    with pytest.raises(
        ValueError, match=r"features: expected width D = 24 \(the bank's\), got \(6, 23\)"
    ):
        sparse_code(feats[:, :23], bank)
    with pytest.raises(ValueError, match="solver: expected one of"):
        sparse_code(feats, bank, solver="admm")
    with pytest.raises(ValueError, match=r"blend: must be a number in \[0, 1\], got 1.5"):
        FeatureMemory(blend=1.5)
    with pytest.raises(ValueError, match="gradient: expected one of"):
        FeatureMemory(gradient="implicit")
    with pytest.raises(ValueError, match="modality: expected an identifier-like name"):
        FeatureMemory({"a.b": bank})
    with pytest.raises(KeyError, match="no bank for 'visual'"):
        FeatureMemory({"audio": bank}).bank("visual")


def test_module_errors_name_the_modality():
    feats, bank = problem()
    mem = FeatureMemory({"audio": bank})
    with pytest.raises(ValueError, match=r"features\['audio'\]: expected width D = 24"):
        mem({"audio": feats[:, :23]})
    with pytest.raises(ValueError, match=r"features\['audio'\]: expected a tensor with 2 dim"):
        mem({"audio": feats[None]})


def test_converged_flag_is_tested_at_the_last_iteration():
    """An identity bank is solved exactly by one step of 1/L: max_iter=1 has converged."""
    result = sparse_code(torch.tensor([[1.0, -2.0]]), torch.eye(2), lam=0.2, max_iter=1)
    assert result.iterations == 1 and result.converged


# --------------------------------------------------------------------------- the module


def memory(gradient: str = "unrolled", blend: float = 0.5) -> FeatureMemory:
    _, bank = problem(n=12, d=24)
    return FeatureMemory(
        {"audio": bank}, lam=0.5, blend=blend, tol=1e-12, max_iter=4000, gradient=gradient
    )


def test_forward_blends_reconstruction_and_passes_other_modalities():
    feats, _ = problem(b=3)
    mem = memory()
    out = mem({"audio": feats, "visual": feats + 1})
    codes = sparse_code(feats, mem.bank("audio"), 0.5, tol=1e-12, max_iter=4000).codes
    torch.testing.assert_close(out["audio"], 0.5 * codes @ mem.bank("audio") + 0.5 * feats)
    assert out["visual"] is not None and torch.equal(out["visual"], feats + 1)
    assert set(mem.last_iterations) == {"audio"}


def test_unrolled_gradient_is_the_projection_onto_the_active_atoms():
    """At the solution, d(M a*)/df = M_S (M_Sᵀ M_S)⁻¹ M_Sᵀ (active set S): an independent formula."""
    feats, _ = problem(b=1)
    mem = memory()
    f = feats.clone().requires_grad_(True)
    w = torch.randn_like(feats)
    (mem.reconstruct(f, "audio") * w).sum().backward()
    codes = sparse_code(feats, mem.bank("audio"), 0.5, tol=1e-12, max_iter=4000).codes[0]
    m_s = mem.bank("audio")[codes != 0].T  # (D, |S|)
    projection = m_s @ torch.linalg.solve(m_s.T @ m_s, m_s.T)
    assert f.grad is not None
    torch.testing.assert_close(f.grad[0], projection @ w[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("mode", "scale"), [("bpda", 1.0), ("detached", 0.5)])
def test_bpda_and_detached_gradients(mode, scale):
    feats, _ = problem(b=2)
    mem = memory(mode)
    f = feats.clone().requires_grad_(True)
    out = mem({"audio": f})["audio"]
    torch.testing.assert_close(out, memory()({"audio": feats})["audio"])  # same forward
    w = torch.randn_like(feats)
    (out * w).sum().backward()
    assert f.grad is not None
    torch.testing.assert_close(f.grad, scale * w)


def test_banks_are_buffers_truncated_to_size():
    _, bank = problem(n=40)
    mem = FeatureMemory({"audio": bank, "visual": bank * 2}, size=16)
    assert mem.modalities == ("audio", "visual")
    assert torch.equal(mem.bank("visual"), 2 * bank[:16])
    state = mem.state_dict()
    assert {"bank_audio", "bank_visual", "lipschitz_audio"} <= set(state)
    mem.float()
    assert mem.bank("audio").dtype == torch.float32


def test_collect_features_and_memory_inside_a_model_train_time():
    torch.manual_seed(0)
    model = AVEventNet(3, "concat", dim=8, width=4).train()
    g = torch.Generator().manual_seed(0)
    batches = [
        {
            "audio": torch.rand(5, 256, generator=g) * 2 - 1,
            "visual": torch.rand(5, 3, 16, 16, generator=g),
        }
        for _ in range(3)
    ]
    banks = collect_features(model, batches, limit=12)
    assert model.training  # restored
    assert {m: tuple(b.shape) for m, b in banks.items()} == {"audio": (12, 8), "visual": (12, 8)}
    model.memory = FeatureMemory(banks, lam=0.01, max_iter=50)
    out = model(**batches[0])
    torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1, 2, 0, 1])).backward()
    grads = [p.grad for p in model.audio_encoder.parameters()] + [
        p.grad for p in model.visual_encoder.parameters()
    ]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    with pytest.raises(KeyError, match="'depth' not in the model's embeddings"):
        collect_features(model, batches, modalities=("depth",))
    with pytest.raises(ValueError, match="limit: must be >= 1, got -1"):
        collect_features(model, batches, limit=-1)


def test_collect_features_takes_the_modality_names_from_the_model() -> None:
    """No modality names are assumed: by default every embedding the model returns is collected
    (here ``left`` and ``right``, compared with the embeddings computed directly), and an explicit
    ``modalities`` picks a subset."""

    class Stereo(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 3)

        def forward(self, left: torch.Tensor, right: torch.Tensor) -> avrobust.AVOutput:
            z_left, z_right = self.proj(left), self.proj(right)
            return avrobust.AVOutput(
                z_left + z_right, embeddings={"left": z_left, "right": z_right}
            )

    model = Stereo()
    g = torch.Generator().manual_seed(1)
    batches = [{"left": torch.randn(3, 4, generator=g), "right": torch.randn(3, 4, generator=g)}]
    banks = collect_features(model, batches)
    with torch.no_grad():
        expected = model(**batches[0]).embeddings
    assert sorted(banks) == ["left", "right"]
    torch.testing.assert_close(banks["left"], expected["left"])
    torch.testing.assert_close(banks["right"], expected["right"])
    assert sorted(collect_features(model, batches, modalities=["right"])) == ["right"]
