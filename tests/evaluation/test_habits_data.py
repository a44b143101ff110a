"""evaluate with the data researchers actually pass: shuffling or sharding loaders, augmentation,
one-shot and endless iterables, IterableDatasets, [0, 1] frames, inference mode.

Each case was a silent wrong result (or a memory climb) before: evaluate took a shuffled loader's
clips by position, so the clean pass and the attack saw other clips. Now a clip's content is
checked on every read against the pass that chose it.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import replace

import pytest
import torch
from test_evaluation import GRID, QUIET, ClipDataset, Toy, make_data
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from avrobust import Linf
from avrobust.evaluation import Grid, Measures, Selection, evaluate
from avrobust.metrics import psnr

ONE = replace(GRID, rules=["bim"], eps=[100.0], modalities=["audio"], steps=2)
ALL = {"selection": Selection(clips="all"), **QUIET}


@pytest.fixture(scope="module")
def data():
    return make_data(12)


def _no_cell(cell) -> None:
    raise AssertionError(f"a cell was computed: {cell.key}")


def test_a_shuffling_loader_is_refused_before_any_work(data) -> None:
    loader = DataLoader(ClipDataset(data), batch_size=4, shuffle=True)
    with pytest.raises(ValueError, match=r"data: a DataLoader with shuffle=True") as info:
        evaluate(Toy(), loader, ONE, on_cell=_no_cell, **ALL)
    assert "shuffle=False" in str(info.value)
    sampled = DataLoader(
        ClipDataset(data), batch_sampler=BatchSampler(RandomSampler(range(12)), 4, False)
    )
    with pytest.raises(ValueError, match=r"data: a DataLoader with shuffle=True"):
        evaluate(Toy(), sampled, ONE, on_cell=_no_cell, **ALL)


def test_a_distributed_sampler_is_refused_with_the_fix(data) -> None:
    sampler = DistributedSampler(ClipDataset(data), num_replicas=2, rank=0, shuffle=False)
    loader = DataLoader(ClipDataset(data), batch_size=4, sampler=sampler)
    with pytest.raises(ValueError, match=r"data: a DataLoader with a DistributedSampler") as info:
        evaluate(Toy(), loader, ONE, **ALL)
    assert "shards the batches over the ranks itself" in str(info.value)


class Reshuffled(Sampler):
    """A sampler of its own that draws a new order on every pass (not a RandomSampler)."""

    def __init__(self, n: int) -> None:
        self.n, self.passes = n, 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        self.passes += 1
        gen = torch.Generator().manual_seed(self.passes)
        return iter(torch.randperm(self.n, generator=gen).tolist())


class Augmented(ClipDataset):
    """Random augmentation: each read adds fresh noise to the frames."""

    def __getitem__(self, i):
        inputs, labels = super().__getitem__(i)
        return {**inputs, "visual": inputs["visual"] + torch.rand(inputs["visual"].shape)}, labels


@pytest.mark.parametrize("kind", ["sampler", "augmentation"])
def test_data_whose_content_changes_between_passes_is_refused_before_its_attack(
    data, kind: str
) -> None:
    if kind == "sampler":
        given = DataLoader(ClipDataset(data), batch_size=4, sampler=Reshuffled(12))
    else:
        given = Augmented(data)
    attacked: list[int] = []

    class Counting(Toy):
        def forward(self, audio, visual):
            attacked.append(int(torch.is_grad_enabled()))
            return super().forward(audio, visual)

    with pytest.raises(ValueError, match=r"data: clip \d+ has other content on this read") as info:
        evaluate(Counting(), given, ONE, on_cell=_no_cell, **ALL)
    assert "random augmentation" in str(info.value)
    assert sum(attacked) == 0, "a clip was attacked before the data was checked"


def test_one_shot_and_endless_iterables_are_refused(data) -> None:
    inputs, labels = data
    batches = [({k: v[i : i + 4] for k, v in inputs.items()}, labels[i : i + 4]) for i in (0, 4)]
    with pytest.raises(TypeError, match=r"data: got cycle, an iterator that can be read only"):
        evaluate(Toy(), itertools.cycle(batches), ONE, **ALL)
    with pytest.raises(TypeError, match=r"data: got list_iterator"):
        evaluate(Toy(), iter(batches), ONE, **ALL)

    class Endless:
        """Re-iterable, but every pass repeats the batches forever (a stream's .repeat())."""

        def __iter__(self):
            return itertools.cycle(batches)

    with pytest.raises(ValueError, match=r"data: gave more than max_clips=40 clips"):
        evaluate(Toy(), Endless(), ONE, max_clips=40, **ALL)
    with pytest.raises(ValueError, match=r"max_clips: must be >= 1, got 0"):
        evaluate(Toy(), batches, ONE, max_clips=0, **ALL)


class Stream(IterableDataset):
    """An IterableDataset of single clips, without __len__."""

    def __init__(self, data) -> None:
        self.inputs, self.labels = data

    def __iter__(self):
        for i in range(self.labels.shape[0]):
            yield {k: v[i] for k, v in self.inputs.items()}, self.labels[i]


def test_an_iterable_dataset_without_len_works_like_the_map_style_one(data) -> None:
    """Compared with the same clips as a map-style Dataset: the same report, cell by cell."""
    streamed = evaluate(Toy(), Stream(data), ONE, batch_size=5, **ALL)
    mapped = evaluate(Toy(), ClipDataset(data), ONE, batch_size=5, **ALL)
    one, two = streamed.to_dict(), mapped.to_dict()
    for cell in one["cells"] + two["cells"]:
        cell.pop("seconds")
    assert one["cells"] == two["cells"] and one["selection"] == two["selection"]
    assert one["config"]["samples"] is None and two["config"]["samples"] == 12


def test_evaluate_under_inference_mode_says_so(data) -> None:
    with torch.inference_mode(), pytest.raises(RuntimeError, match=r"torch.inference_mode\(\)"):
        evaluate(Toy(), data, ONE, **ALL)


def test_frames_in_0_1_under_0_255_budgets_warn_and_psnr_uses_their_span(data) -> None:
    """[0, 1] frames with the default budgets (eps in 0-255 levels): a warning naming the
    modality, the range seen and the bounds, and a PSNR whose peak is the frames' span, so it
    agrees with the SNR (both low) instead of reporting the frames at 55 dB."""
    inputs, labels = data
    unit = ({"audio": inputs["audio"], "visual": inputs["visual"] / 255}, labels)
    grid = Grid(rules=["bim"], eps=[20.0], modalities=["visual"], steps=2)
    with pytest.warns(UserWarning, match=r"data\['visual'\]: the data's values lie in \[0") as w:
        report = evaluate(Toy(), unit, grid, **ALL)
    said = [str(x.message) for x in w if "the data's values lie" in str(x.message)]
    assert len(said) == 1 and "(0, 255)" in said[0]  # once per run, not once per batch
    cell = report.cells[0]
    low, high = (float(v) for v in torch.aminmax(unit[0]["visual"]))
    assert 0 < low and cell.psnr_peak == {"visual": pytest.approx(high)}  # the span from 0
    assert cell.psnr_db["visual"] < 15 and cell.snr_db["visual"] < 15
    assert f"PSNR visual (R={high:g})" in report.table()


def test_frames_in_0_255_give_the_bounds_width_as_peak_and_no_warning(data) -> None:
    """The ordinary case stays silent and its PSNR is the functional psnr with peak 255."""
    grid = Grid(rules=["bim"], eps=[20.0], modalities=["visual"], steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = evaluate(Toy(), data, grid, **ALL)
    cell = report.cells[0]
    assert cell.psnr_peak == {"visual": 255.0}
    assert "PSNR visual (R=255)" in report.table()
    assert math.isfinite(cell.psnr_db["visual"]) and cell.psnr_db["visual"] > 20


def test_a_budget_in_the_datas_units_is_silent(data) -> None:
    """[0, 1] frames with a budget in [0, 1] units: no warning, and the PSNR equals the
    functional psnr with peak 1 (a reference computed here from the attacked frames)."""
    inputs, labels = data
    unit = ({"audio": inputs["audio"], "visual": inputs["visual"] / 255}, labels)
    budgets = {"visual": Linf(8 / 255, bounds=(0.0, 1.0))}
    grid = Grid(rules=["bim"], eps=[1.0], modalities=["visual"], budgets=lambda eps: budgets)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = evaluate(Toy(), unit, grid, **ALL)
    cell = report.cells[0]
    assert cell.psnr_peak == {"visual": 1.0}
    # |delta| <= 8/255 with peak 1 bounds the PSNR below by 20 log10(255/8) = 30.07 dB; a peak
    # of 255 would give about 78 dB
    floor = float(psnr(torch.zeros(1, 4), torch.full((1, 4), 8 / 255), data_range=1.0)[0])
    assert floor - 1e-6 <= cell.psnr_db["visual"] < 50


def test_non_finite_data_or_scores_name_the_clip_and_modality(data) -> None:
    inputs, labels = data
    broken = {k: v.clone() for k, v in inputs.items()}
    broken["audio"][3, 5] = float("nan")
    with pytest.raises(ValueError, match=r"data\[3\]\['audio'\]: holds 1 NaN/Inf values"):
        evaluate(Toy(), (broken, labels), ONE, **ALL)

    def score(out):
        p = out.logits.softmax(-1)[..., 1].clone()
        p[2, 0] = float("inf")
        return p

    with pytest.raises(ValueError, match=r"NaN/Inf scores for clip 2 of the data at the clean"):
        evaluate(Toy(), data, ONE, measures=Measures(score_fn=score), **ALL)

    class NanUnderAttack(Toy):
        def forward(self, audio, visual):
            out = super().forward(audio, visual)
            if not torch.equal(audio, inputs["audio"][: audio.shape[0]]):  # an attacked batch
                out.logits[1:2] = float("nan")
            return out

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the attack's own NaN-logits warning
        with pytest.raises(ValueError, match=r"for clip 1 of the data at the adversarial inputs"):
            evaluate(NanUnderAttack(), data, ONE, batch_size=12, **ALL)
