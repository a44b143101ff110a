"""The Push-Pull study in miniature: train, attack and defend a tiny TalkNet on synthetic data.

:func:`run_demo` reproduces the shape of Push-Pull (Chen et al., ICASSP 2023) on a laptop CPU,
with no download:

0. Every model row is trained from ``DemoConfig.seeds`` seeds (3 by default; the runs run as
   single-threaded jobs, :mod:`.jobs`, so every thread count gives the same numbers); every
   number is the mean over the runs and every interval covers the runs and the clips
   (:mod:`.intervals`, :class:`.runs.SeededReport`).
1. Synthetic active-speaker clips (:class:`~avrobust.data.synthetic.SyntheticActiveSpeaker`, the
   four situations of §2.1): a training set and a held-out set.
2. Five tiny TalkNets (Table 1's rows): **(A)** TalkNet's loss ``CE_all`` (eq. 4); **(B)** (A)
   fine-tuned with adversarial training (half of each batch replaced by BIM examples);
   **(C)** ``CE_all`` + one AVIL term (default ``L1``); **(D)** ``CE_all`` + the paper's best pair
   (default ``L1 + L4``); **(E)** (D) fine-tuned with adversarial training and the same AVIL.
3. Each model is attacked by BIM, MIM and PGD on the audio, the video, and both (the joint attack
   of eq. 5) over an ``eps_av`` grid (audio ``eps_av·1e-4``, video ``eps_av·0.1`` pixel levels), on
   held-out clips every model predicts correctly, balanced speaking / not speaking (§4.1).
   Each model is also attacked by the worst case over a strong ensemble
   (:class:`avrobust.evaluation.WorstCase`) at every budget of the grid; the comparisons of
   models rest on it. Extras: the inference-aware attack on (A) (Fig. 4), and
   perturbations crafted on the paper's surrogate (S), an ncTalkNet (no cross-attention) or a
   specTalkNet (``DemoConfig.surrogate``), transferred to (A) (black box, Fig. 3a).
4. Outputs: a Table-1-like table (mAP and frame accuracy), Fig.-3-like plots, ECR bars, every
   cell as CSV/JSON, a short summary of which of the paper's findings held on this data, and the material of an XAB
   listening/viewing test (four genuine/adversarial pairs of (A), as in §4.2).

Trained models are cached under ``<out>/models`` (keyed by their training settings and run),
every attack cell under ``<out>/results`` and the masking checks (of each model's first run) in
``<out>/results/masking-<model>.json`` (keyed by the models' weights), so a rerun only evaluates what is missing, and an interrupted
run resumes.

The package: :mod:`.config` (settings, recipes, presets), :mod:`.checks` (their validation),
:mod:`.training` (training and the model cache), :mod:`.folder` (the output folder and its
manifest), :mod:`.selection` (which clips are attacked), :mod:`.pipeline` (:func:`run_demo`),
:mod:`.listening` (the XAB material), :mod:`.intervals` (bootstrap intervals), :mod:`.tables`,
:mod:`.plots`, :mod:`.verdicts` and :mod:`.findings` (the paper's claims, one function each),
:mod:`.masking` (the gradient-masking checks, cached by :mod:`._masking_cache`), :mod:`.outputs`
(the files written), :mod:`.runs` (a row's training runs), :mod:`.jobs` (the single-threaded
jobs) and :mod:`.work` (their bodies).
"""

from .config import PRESETS, DemoConfig, ModelSpec, default_models
from .findings import CLAIMS, findings
from .folder import FolderConflict
from .intervals import BOOTSTRAP_LEVEL, BOOTSTRAP_RESAMPLES, Intervals
from .outputs import Outputs, write_outputs
from .pipeline import DemoResult, run_demo
from .plots import ecr_figure, models_figure
from .runs import SeedCell, SeededReport
from .tables import table_curve, table_modalities, table_one
from .training import train_model
from .verdicts import (
    BARELY_CHANGES_POINTS,
    CLEAN_COST_POINTS,
    SERIOUS_LOSS_POINTS,
    TRANSFER_HARM_SHARE,
    VERDICTS,
    Evidence,
    Finding,
    Number,
    compare_verdict,
)

__all__ = [
    "BARELY_CHANGES_POINTS",
    "BOOTSTRAP_LEVEL",
    "BOOTSTRAP_RESAMPLES",
    "CLAIMS",
    "CLEAN_COST_POINTS",
    "PRESETS",
    "SERIOUS_LOSS_POINTS",
    "TRANSFER_HARM_SHARE",
    "VERDICTS",
    "DemoConfig",
    "DemoResult",
    "Evidence",
    "Finding",
    "FolderConflict",
    "Intervals",
    "ModelSpec",
    "Number",
    "Outputs",
    "SeedCell",
    "SeededReport",
    "compare_verdict",
    "default_models",
    "ecr_figure",
    "findings",
    "models_figure",
    "run_demo",
    "table_curve",
    "table_modalities",
    "table_one",
    "train_model",
    "write_outputs",
]
