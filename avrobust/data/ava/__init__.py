"""AVA-ActiveSpeaker in the layout TalkNet's preprocessing produces, batching by length, predictions.

TalkNet's ``trainTalkNet.py --evaluation`` / ``utils/tools.py`` leave this tree under ``root``::

    root/
      csv/{split}_loader.csv        one face track per line, tab-separated:
                                    entity_id  numFrames  fps  [l0,l1,...]  index
      csv/{split}_orig.csv          the AVA annotations (ground truth, with a header row)
      clips_audios/{split}/<video_id>/<entity_id>.wav          16 kHz mono int16, the track's span
      clips_videos/{split}/<video_id>/<entity_id>/<t>.jpg      face crops, named by timestamp (s)

``video_id`` is the first 11 characters of ``entity_id`` (the YouTube id), as in TalkNet's
loader. A clip is read as TalkNet's evaluation reads it: the first ``numFrames`` face crops in
timestamp order, converted to grayscale and resized to ``face_size`` (bilinear; TalkNet uses
``cv2.resize``, so pixels may differ by a level or two), and the waveform as float in [-1, 1]
(int16 / 32768), cut — or wrap-padded, like TalkNet's MFCC padding — to exactly
``round(numFrames · 16000 / fps)`` samples so clips of one length (and frame rate) batch together.

Reading JPEG needs Pillow (``pip install pillow``; the ``ava`` extra).

Layout: :mod:`.tracks` (the loader CSV), :mod:`.media` (WAV and face crops), :mod:`.dataset`
(:class:`AVAActiveSpeaker`), :mod:`.batching` (batches by length), :mod:`.predictions` (scores
and the predictions CSV). Everything is importable from here.
"""

from __future__ import annotations

from .batching import collate_clips, length_batches
from .dataset import AVAActiveSpeaker
from .media import SAMPLE_RATE, read_wav
from .predictions import predict_entities, write_predictions
from .tracks import AVAEntry, read_loader_csv

__all__ = [
    "SAMPLE_RATE",
    "AVAActiveSpeaker",
    "AVAEntry",
    "collate_clips",
    "length_batches",
    "predict_entities",
    "read_loader_csv",
    "read_wav",
    "write_predictions",
]
