"""Issue 17 sweep, the transforms: an int16-scale float waveform into the ASD MFCC (which scales
[-1, 1] samples by 32768 itself) gives features 90 dB too loud without a word: warned, naming
the fix."""

from __future__ import annotations

import pytest
import torch

from avrobust.transforms import ASDMFCC
from avrobust.transforms import functional as AF


@pytest.mark.parametrize("transform", [ASDMFCC(), AF.asd_mfcc], ids=["ASDMFCC", "asd_mfcc"])
def test_an_int16_scale_waveform_warns_naming_input_scale(transform):
    waveform = (torch.rand(2, 3200) * 2 - 1) * 32767
    with pytest.warns(UserWarning, match="input_scale"):
        transform(waveform)


@pytest.mark.parametrize("transform", [ASDMFCC(), AF.asd_mfcc], ids=["ASDMFCC", "asd_mfcc"])
def test_a_waveform_in_its_units_does_not_warn(transform, recwarn):
    transform(torch.rand(2, 3200) * 2 - 1)
    transform(torch.rand(2, 3200) * 0.01)  # quiet audio
    ASDMFCC(input_scale=1.0)((torch.rand(2, 3200) * 2 - 1) * 32767)  # int16 scale, said so
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
