"""RI and the slides' tables; Li et al.'s convexity procedure and our k-NN density."""

from __future__ import annotations

import pytest
import torch

from avrobust.metrics.geometry import convexity_ratio, knn_density
from avrobust.metrics.ri import RobustnessRow, relative_improvement, robustness_table

# Tian & Xu, slides "Defense Results", MUSIC: ✓AV, ✗A, ✗V, ✗AV, printed Avg, printed RI.
MUSIC_DEFENSES = {
    "None": (88.46, 51.92, 45.19, 15.38, 37.50, 0.00),
    "Unimodal A": (59.62, 0.00, 59.62, 0.00, 19.87, -46.47),
    "Unimodal V": (81.73, 81.73, 11.54, 11.54, 34.94, -9.29),
    "PCL": (83.65, 81.73, 37.50, 36.54, 51.91, 9.60),
    "MaxSim": (89.42, 52.88, 45.19, 31.73, 43.27, 6.73),
    "MinSim": (91.35, 70.19, 46.15, 36.54, 50.96, 16.35),
    "ExFMem": (89.42, 53.85, 50.00, 20.19, 41.34, 4.80),
    "MinSim+ExFMem": (90.38, 73.08, 53.85, 42.31, 56.41, 20.83),
}
# "Different Fusions under Attacks" (MUSIC): the four columns and the printed Avg (mean of four).
MUSIC_FUSIONS = {
    "Sum": (88.46, 35.58, 45.19, 3.85, 43.27),
    "Concat": (88.46, 51.92, 45.19, 15.38, 50.24),
    "FiLM": (83.65, 28.85, 39.42, 3.85, 38.95),
    "Gated-Sum": (89.42, 33.65, 44.23, 4.81, 43.03),
    "Gated-Concat": (89.42, 45.19, 43.27, 13.46, 47.84),
}


def test_ri_reproduces_the_minsim_row_on_music():
    none = RobustnessRow(*MUSIC_DEFENSES["None"][:4])
    minsim = RobustnessRow(*MUSIC_DEFENSES["MinSim"][:4])
    assert round(minsim.ri(none), 2) == 16.35
    assert round(minsim.attacked_mean, 2) == 50.96


@pytest.mark.parametrize("name", list(MUSIC_DEFENSES))
def test_every_defense_row_matches_the_slides(name):
    """Within 0.02: the slides computed RI from Avg values already rounded to 2 decimals."""
    *acc, avg, ri = MUSIC_DEFENSES[name]
    row, none = RobustnessRow(*acc), RobustnessRow(*MUSIC_DEFENSES["None"][:4])
    assert row.attacked_mean == pytest.approx(avg, abs=0.02)
    assert relative_improvement(row, none) == pytest.approx(ri, abs=0.02)


@pytest.mark.parametrize("name", list(MUSIC_FUSIONS))
def test_fusion_table_avg_is_the_mean_of_four_columns(name):
    *acc, avg = MUSIC_FUSIONS[name]
    assert RobustnessRow(*acc).overall_mean == pytest.approx(avg, abs=0.01)


def test_table_text_and_from_mapping():
    rows = {n: RobustnessRow(*v[:4]) for n, v in MUSIC_DEFENSES.items()}
    text = robustness_table(rows, baseline="None")
    lines = text.splitlines()
    assert lines[0] == "| method | ✓AV | ✗A | ✗V | ✗AV | Avg | RI |"
    assert lines[7] == "| MinSim | 91.35 | 70.19 | 46.15 | 36.54 | 50.96 | 16.35 |"
    fusion = robustness_table(
        {"Sum": RobustnessRow(*MUSIC_FUSIONS["Sum"][:4])}, avg="all", digits=1
    )
    assert fusion.splitlines()[-1] == "| Sum | 88.5 | 35.6 | 45.2 | 3.9 | 43.3 |"
    report = {"clean": 1.0, "audio": 0.5, "visual": 0.25, "audiovisual": 0.0, "extra": 9.0}
    assert RobustnessRow.from_mapping(report) == RobustnessRow(1.0, 0.5, 0.25, 0.0)


def test_ri_errors_name_the_argument():
    with pytest.raises(KeyError, match=r"values: missing \['audiovisual'\]"):
        RobustnessRow.from_mapping({"clean": 1, "audio": 1, "visual": 1})
    with pytest.raises(KeyError, match="baseline: 'Concat' is not one of the rows"):
        robustness_table({"None": RobustnessRow(1, 1, 1, 1)}, baseline="Concat")
    with pytest.raises(
        ValueError, match=r"RobustnessRow\.visual: must be a finite number, got nan"
    ):
        RobustnessRow(1, 1, float("nan"), 1)
    with pytest.raises(ValueError, match="avg: expected one of"):
        robustness_table({}, avg="mean")
    with pytest.raises(TypeError, match=r"values\['clean'\]: expected a real number, got None"):
        RobustnessRow.from_mapping({"clean": None, "audio": 1, "visual": 1, "audiovisual": 1})


def test_table_with_an_empty_baseline_name_keeps_the_ri_column():
    text = robustness_table({"": RobustnessRow(1, 1, 1, 1), "b": RobustnessRow(2, 2, 2, 2)}, "")
    widths = {line.count("|") for line in text.splitlines()}
    assert widths == {8}


# --------------------------------------------------------------------------- convexity


def two_class_line(n: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0 sits at x = ±2 (two clusters, not convex), class 1 near x = 0."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.cat([torch.full((n // 2,), 2.0), torch.full((n // 2,), -2.0)])
    x1 = 0.2 * torch.randn(n, generator=g)
    return torch.cat([x0, x1])[:, None], torch.cat([torch.zeros(n), torch.ones(n)]).long()


def abs_head(e: torch.Tensor) -> torch.Tensor:
    """Class 0 where |x| > 1, class 1 inside."""
    s = e[:, 0].abs() - 1
    return torch.stack([s, -s], dim=1)


def test_convexity_of_a_convex_and_a_split_class():
    e, y = two_class_line()
    result = convexity_ratio(e, y, abs_head, num_pairs=4000, threshold=None, activation="softmax")
    # class 1 is convex: every segment stays inside; class 0: half the pairs cross the gap,
    # and a crossing segment stays in class 0 for λ < 1/4 or λ > 3/4, so 1/2 + 1/2 · 1/2 = 0.75.
    assert result.per_class[1] == 1.0
    assert 0.72 <= float(result.per_class[0]) <= 0.78
    assert result.overall == pytest.approx(float(result.per_class.mean()))
    assert result.pairs.tolist() == [4000, 4000]


def test_sequential_pairing_follows_itertools_permutations():
    """With one-hot embeddings, each point shows which two members it interpolates."""
    e = torch.eye(5)
    seen: list[torch.Tensor] = []

    def head(points: torch.Tensor) -> torch.Tensor:
        seen.append(points)
        return torch.zeros(len(points), 2)

    convexity_ratio(e, torch.tensor([0, 0, 0, 0, 1]), head, num_pairs=3, pairing="sequential")
    support = [tuple(torch.nonzero(p > 1e-9).flatten().tolist()) for p in seen[0]]
    assert [tuple(sorted(s)) for s in support] == [(0, 1), (0, 2), (0, 3)]
    assert len(seen) == 1  # class 1 has one member: no pairs, NaN


def test_convexity_accepts_dict_embeddings_and_multi_hot_labels():
    e, y = two_class_line(20)
    embeddings = {"audio": e, "visual": -e}
    multi_hot = torch.nn.functional.one_hot(y, 2)

    def head(d: dict[str, torch.Tensor]) -> torch.Tensor:
        return abs_head((d["audio"] - d["visual"]) / 2)

    result = convexity_ratio(embeddings, multi_hot, head, num_pairs=500, threshold=0.5)
    assert float(result.per_class[1]) == 1.0
    single = convexity_ratio(torch.eye(3), torch.tensor([0, 1, 2]), lambda p: p, num_pairs=5)
    assert single.per_class.isnan().all() and single.overall != single.overall


@pytest.mark.parametrize("n", [5, 9])
def test_convexity_checks_that_embeddings_and_labels_align(n):
    labels = torch.tensor([0, 0, 1, 1, 1, 0, 0])
    with pytest.raises(
        ValueError, match=rf"embeddings: expected 7 rows \(= len\(labels\)\), got \({n}, 3\)"
    ):
        convexity_ratio(torch.randn(n, 3), labels, lambda p: p[:, :2])
    with pytest.raises(ValueError, match=r"embeddings\['visual'\]: expected 7 rows"):
        convexity_ratio({"audio": torch.randn(7, 3), "visual": torch.randn(n, 3)}, labels, len)


# --------------------------------------------------------------------------- density (ours)


def test_density_closed_form_and_scale_invariance():
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.01]])
    y = torch.tensor([0, 0, 1, 1])
    result = knn_density(e, y, k=1)
    assert float(result.per_class[0]) == pytest.approx(1 / 2**0.5)  # unit vectors 90° apart
    unit = torch.nn.functional.normalize(e[2:], dim=-1)
    assert float(result.per_class[1]) == pytest.approx(
        1 / float((unit[0] - unit[1]).norm()), rel=1e-6
    )
    scaled = knn_density(e * torch.tensor([[3.0], [0.5], [7.0], [2.0]]), y, k=1)
    torch.testing.assert_close(scaled.per_class, result.per_class)


def test_tighter_clusters_are_denser():
    g = torch.Generator().manual_seed(0)
    centre = torch.randn(1, 16, generator=g)
    y = torch.zeros(50, dtype=torch.long)
    tight = knn_density(centre + 0.05 * torch.randn(50, 16, generator=g), y, k=5)
    loose = knn_density(centre + 0.5 * torch.randn(50, 16, generator=g), y, k=5)
    assert tight.overall > 2 * loose.overall


def test_density_warns_for_small_classes_and_checks_shapes():
    e = torch.randn(4, 3)
    with pytest.warns(
        UserWarning, match=r"class [01] has 2 members, k=3; using 1 neighbours"
    ) as record:
        result = knn_density(e, torch.tensor([0, 0, 1, 1]), k=3)
    assert len(record) == 2 and record[0].filename == __file__
    assert result.radius.shape == (4,)
    with pytest.raises(
        ValueError, match=r"embeddings: expected \(N, D\) with N = len\(labels\) = 3"
    ):
        knn_density(e, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="k: must be >= 1, got 0"):
        knn_density(e, torch.tensor([0, 0, 1, 1]), k=0)
    with pytest.raises(ValueError, match=r"labels: .*got shape \(4,\) and dtype torch.float32"):
        knn_density(e, torch.tensor([0.0, 0.0, 1.0, 1.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("labels_device", ["cpu", "cuda"])
def test_density_runs_on_the_embeddings_device(labels_device):
    e, y = torch.randn(6, 3), torch.tensor([0, 0, 0, 1, 1, 1])
    expected = knn_density(e, y, k=2)
    result = knn_density(e.cuda(), y.to(labels_device), k=2)
    torch.testing.assert_close(result.per_class, expected.per_class)
    torch.testing.assert_close(result.radius.cpu(), expected.radius)
