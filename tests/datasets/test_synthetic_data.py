"""The synthetic active-speaker data: the four situations of Push-Pull §2.1, seeded, on the fly."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from avrobust.data.synthetic import SITUATIONS, SyntheticActiveSpeaker

SPF = 640  # samples per frame: 16 kHz / 25 fps


def frame_energy(audio: torch.Tensor) -> torch.Tensor:
    return audio.view(-1, SPF).square().mean(dim=1)


@pytest.fixture(scope="module")
def clips():
    data = SyntheticActiveSpeaker(48, frames=20, face_size=32, difficulty=0.3, seed=3)
    return data, [data.clip(i) for i in range(len(data))]


def test_shapes_units_and_labels(clips) -> None:
    data, items = clips
    inputs, labels = data[0]
    assert inputs["audio"].shape == (20 * SPF,) and inputs["audio"].dtype == torch.float32
    assert inputs["visual"].shape == (20, 32, 32) and labels.shape == (20,)
    assert labels.dtype == torch.long
    for c in items:
        assert float(c.audio.abs().max()) <= 1.0
        assert 0.0 <= float(c.visual.min()) and float(c.visual.max()) <= 255.0
        assert torch.equal(c.labels, (c.situations == 0).long())  # only "speaking" is positive
        assert 0.0 <= float(c.mouth.min()) and float(c.mouth.max()) <= 1.0
    situations = torch.cat([c.situations for c in items])
    assert set(situations.tolist()) == {0, 1, 2, 3}  # all four situations occur
    share = float((situations == 0).float().mean())
    assert 0.35 < share < 0.65  # about half of the frames are speaking by default
    assert SITUATIONS[0] == "speaking" and len(SITUATIONS) == 4


def test_seeded_and_order_independent() -> None:
    a = SyntheticActiveSpeaker(6, frames=8, face_size=16, seed=1)
    b = SyntheticActiveSpeaker(6, frames=8, face_size=16, seed=1)
    later = b[5]  # generate out of order first
    assert torch.equal(a[5][0]["visual"], later[0]["visual"])
    assert torch.equal(a[5][0]["audio"], later[0]["audio"])
    assert torch.equal(a[-1][1], a[5][1])
    other = SyntheticActiveSpeaker(6, frames=8, face_size=16, seed=2)
    assert not torch.equal(a[5][0]["audio"], other[5][0]["audio"])


def test_the_four_situations_look_and_sound_as_described(clips) -> None:
    _, items = clips
    energy = {k: [] for k in range(4)}
    mouth = {k: [] for k in range(4)}
    for c in items:
        e = frame_energy(c.audio)
        for k in range(4):
            energy[k].append(e[c.situations == k])
            mouth[k].append(c.mouth[c.situations == k])
    e = {k: torch.cat(v) for k, v in energy.items()}
    m = {k: torch.cat(v) for k, v in mouth.items()}
    # a voice is heard when the target or someone else speaks, not otherwise
    assert e[0].mean() > 10 * e[3].mean() and e[1].mean() > 10 * e[2].mean()
    # the mouth moves when speaking or chewing, and is (mostly) still otherwise
    assert m[0].std() > 0.05 and m[2].std() > 0.05
    assert torch.allclose(m[3], torch.full_like(m[3], 0.05))
    # speaking: the mouth follows the loudness of that very frame (in sync)
    r = torch.corrcoef(torch.stack([torch.cat(energy[0]).sqrt(), m[0]]))[0, 1]
    assert r > 0.5


def test_mouth_opening_darkens_the_mouth_region() -> None:
    data = SyntheticActiveSpeaker(30, frames=16, face_size=32, difficulty=0.0, seed=4)
    darkness, opening = [], []
    for i in range(len(data)):
        c = data.clip(i)
        darkness.append(-c.visual[:, 20:28, 10:22].mean(dim=(1, 2)))
        opening.append(c.mouth)
    r = torch.corrcoef(torch.stack([torch.cat(darkness), torch.cat(opening)]))[0, 1]
    assert r > 0.5


def test_difficulty_controls_desync_and_noise() -> None:
    easy = SyntheticActiveSpeaker(40, frames=16, face_size=16, difficulty=0.0, seed=5)
    hard = SyntheticActiveSpeaker(40, frames=16, face_size=16, difficulty=1.0, seed=5)
    assert easy.desync == 0.0 and hard.desync == 0.5
    still = torch.cat([c.mouth[c.situations == 1] for c in map(easy.clip, range(40))])
    assert torch.allclose(still, torch.full_like(still, 0.05))  # never out of sync when easy
    moving = torch.cat([c.mouth[c.situations == 1] for c in map(hard.clip, range(40))])
    assert float((moving != 0.05).float().mean()) > 0.1  # some out-of-sync faces when hard
    quiet = torch.cat([frame_energy(c.audio)[c.situations == 3] for c in map(easy.clip, range(40))])
    loud = torch.cat([frame_energy(c.audio)[c.situations == 3] for c in map(hard.clip, range(40))])
    assert loud.mean() > 10 * quiet.mean()  # a higher noise floor


def test_tensors_and_dataloader_agree() -> None:
    data = SyntheticActiveSpeaker(5, frames=6, face_size=16, seed=0)
    inputs, labels = data.tensors()
    assert inputs["audio"].shape == (5, 6 * SPF) and inputs["visual"].shape == (5, 6, 16, 16)
    batch_inputs, batch_labels = next(iter(DataLoader(data, batch_size=5)))
    assert torch.equal(batch_inputs["visual"], inputs["visual"])
    assert torch.equal(batch_labels, labels)
    _, sub_labels = data.tensors([3, 1])
    assert torch.equal(sub_labels, labels[[3, 1]])
    empty_inputs, empty_labels = data.tensors([])
    assert empty_inputs["audio"].shape == (0, 6 * SPF) and empty_labels.shape == (0, 6)


def test_situation_weights_and_segments() -> None:
    only_silence = SyntheticActiveSpeaker(
        4, frames=10, face_size=16, situation_weights=[0, 0, 0, 1]
    )
    assert all(int(only_silence[i][1].sum()) == 0 for i in range(4))
    one_segment = SyntheticActiveSpeaker(8, frames=10, face_size=16, segment_frames=(10, 10))
    for i in range(8):
        s = one_segment.clip(i).situations
        assert torch.equal(s, s[:1].expand(10))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_clips": -1}, ValueError, r"num_clips: must be >= 0, got -1"),
        ({"num_clips": 2, "frames": 0}, ValueError, r"frames: must be >= 1"),
        ({"num_clips": 2, "face_size": 8}, ValueError, r"face_size: must be >= 16, got 8"),
        (
            {"num_clips": 2, "difficulty": 1.5},
            ValueError,
            r"difficulty: must be a number in \[0, 1\]",
        ),
        (
            {"num_clips": 2, "segment_frames": (5, 2)},
            ValueError,
            r"segment_frames: expected shortest <= longest",
        ),
        ({"num_clips": 2, "segment_frames": 3}, TypeError, r"segment_frames: expected a pair"),
        (
            {"num_clips": 2, "situation_weights": [1, 1]},
            TypeError,
            r"situation_weights: expected 4",
        ),
        (
            {"num_clips": 2, "situation_weights": [0, 0, 0, 0]},
            ValueError,
            r"situation_weights: expected a positive sum",
        ),
        ({"num_clips": 2, "seed": 1.5}, TypeError, r"seed: expected an int"),
    ],
)
def test_bad_arguments(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        SyntheticActiveSpeaker(**kwargs)


def test_bad_index() -> None:
    data = SyntheticActiveSpeaker(3, frames=4, face_size=16)
    with pytest.raises(IndexError, match=r"index: expected 0 <= index < 3, got 3"):
        data[3]
    with pytest.raises(TypeError, match=r"index: expected an int"):
        data.clip("0")  # type: ignore[arg-type]


def test_numpy_and_tensor_indices_work_like_ints() -> None:
    # a Subset built from NumPy indices (np.random.permutation) hands NumPy integers to the dataset
    import numpy as np
    from torch.utils.data import Subset

    from avrobust.data import AVEventDataset

    data = SyntheticActiveSpeaker(4, frames=4, face_size=16)
    for index in (np.int64(2), torch.tensor(2)):
        inputs, labels = data[index]  # type: ignore[index]
        assert torch.equal(inputs["audio"], data[2][0]["audio"]) and torch.equal(labels, data[2][1])
    subset = Subset(data, np.array([3, 1]))
    assert torch.equal(subset[0][1], data[3][1])
    events = AVEventDataset(4)
    assert torch.equal(events[np.int64(1)][0]["audio"], events[1][0]["audio"])
    with pytest.raises(TypeError, match=r"index: expected an int, got 1.5"):
        data[1.5]  # type: ignore[index]
