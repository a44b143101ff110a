"""Issue 17 sweep, the data: an AVA loader CSV that lists a track twice (its frames would count
twice in the mAP), a WAV file that is none, and asking for every clip of a huge synthetic set at
once (memory climbs until the machine swaps) are refused, naming what to do."""

from __future__ import annotations

import pytest

from avrobust.data.ava import read_loader_csv, read_wav
from avrobust.data.synthetic import SyntheticActiveSpeaker


def test_a_track_listed_twice_is_refused_naming_both_lines(tmp_path):
    path = tmp_path / "val_loader.csv"
    path.write_text("vid:1\t2\t25\t[0,1]\t0\nvid:2\t2\t25\t[1,1]\t1\nvid:1\t2\t25\t[1,1]\t2\n")
    with pytest.raises(ValueError, match="vid:1") as info:
        read_loader_csv(path)
    assert "lines 1 and 3" in str(info.value)


def test_a_file_that_is_no_wav_says_why(tmp_path):
    path = tmp_path / "a.wav"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"a\.wav") as info:
        read_wav(path)
    assert "()" not in str(info.value)


def test_tensors_of_more_clips_than_memory_holds_is_refused_at_once():
    data = SyntheticActiveSpeaker(10**9)
    with pytest.raises(MemoryError, match="tensors") as info:
        data.tensors()
    assert "indices" in str(info.value)
    _, labels = data.tensors([0, 5])  # a few of them: fine
    assert labels.shape[0] == 2
