"""The ``avrobust`` command's argument parser: ``avrobust demo`` and ``avrobust evaluate``.

The names an option accepts come from the library's registries (:mod:`.argtypes`); every other
check is the library's (a :class:`~avrobust.demo.DemoConfig` or the evaluation grid refuses a bad
setting, and the command reports it naming the option).
"""

from __future__ import annotations

import argparse
from typing import Any

from ..attacks.objectives import OBJECTIVE_NAMES
from ..demo.checks import SURROGATES
from ..demo.config import PRESETS
from ..evaluation.recipes import RECIPES
from .argtypes import (
    avil_term_names,
    data_source,
    eps_list,
    eps_value,
    modality_sets,
    model_names,
    model_source,
    name_list,
    positive_float,
    positive_int,
    rule_names,
    seed,
)

__all__ = ["build_parser"]

_DESCRIPTION = """\
avrobust: adversarial attacks on, and defences of, audio-visual models.

  avrobust demo        the Push-Pull study in miniature, on synthetic data (no download):
                       train a tiny TalkNet five ways, attack it, write tables, plots, summary
  avrobust evaluate    attack a TalkNet checkpoint, or your own model (--model FILE.py:FACTORY),
                       on AVA-ActiveSpeaker (TalkNet's preprocessed layout), synthetic data or
                       your own dataset, and report the damage
"""

_DEMO_HELP = """\
Train a tiny TalkNet on synthetic active-speaker data as (A) plain, (B) adversarially trained,
(C) with one AVIL term, (D) with two AVIL terms, (E) AVIL + adversarial training; attack each
with BIM, MIM and PGD on the audio, the video and both over an eps_av grid; write a Table-1-like
table, Fig.-3-like plots and a summary of which Push-Pull findings held.

Every model is also attacked by the worst case over a strong ensemble (APGD-CE, targeted
APGD-margin, Square) at the table's budget, the comparisons of models rest on it, and the summary
reports the gradient-masking checks of every model.

Trained models, finished attack cells and masking checks are cached in OUT, so a rerun only
evaluates (and an interrupted run resumes); changing only --eps/--table-eps, --surrogate or the
worst-case settings reuses every model of the table. A rerun with other settings is refused
before any work: use --fresh (or another --out). The demo deletes or
overwrites only files it wrote (listed in OUT/.avrobust-manifest.json with their
SHA-256), never yours nor one you edited since: a run that would write an edited
output again stops before any work, naming it.
Every model is trained from 3 seeds (--seeds); the jobs run on --threads single-threaded workers,
so every thread count gives the same numbers. The default run takes about 19 minutes on 2 idle
CPU cores; --quick about 1.

examples:
  avrobust demo                       # the full demo into ./avrobust-demo
  avrobust demo --quick --out /tmp/d  # a 1-minute smoke run
  avrobust demo --eps 2,5,10 --table-eps 5 --avil-pair l2,l4
"""

_EVALUATE_HELP = """\
Attack a model over a grid of rules x eps_av budgets x attacked modalities and report, per
cell, frame mAP (clean and adversarial), ECR per modality, success rate and SNR/PSNR.

--model is a TalkNet variant (its weights: --checkpoint; a demo checkpoint's JSON beside it
records the variant and the face size, so --model and --face-size may be left out) or your own
model as MODULE:FACTORY: a .py file or a dotted module path, and a callable in it that takes no
arguments and returns the nn.Module (called as model(**inputs), returning avrobust.AVOutput or
logits); --checkpoint is then optional, a state dict (torch.save(model.state_dict(), FILE)).

--data is either a folder in TalkNet's preprocessed AVA-ActiveSpeaker layout
    DIR/csv/{split}_loader.csv, DIR/csv/{split}_orig.csv,
    DIR/clips_audios/{split}/<video>/<entity>.wav, DIR/clips_videos/{split}/<video>/<entity>/*.jpg
or 'synthetic' / 'synthetic:N' for N synthetic clips (default 128), or your own data as
MODULE:FACTORY returning a Dataset of ({modality: tensor}, labels) items.

examples:
  avrobust evaluate --checkpoint pretrain_AVA.model --data AVA --eps 1,2,5 --per-class 225
  avrobust evaluate --checkpoint avrobust-demo/models/A-*.model --data synthetic:192 \\
      --rules pgd --eps 5,20,50
  avrobust evaluate --model my_model.py:build --checkpoint my_model.pt --data my_model.py:clips
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``avrobust`` command (with the ``demo`` and ``evaluate`` commands)."""
    parser = argparse.ArgumentParser(
        prog="avrobust",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"avrobust {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _demo_parser(commands)
    ev = _evaluate_parser(commands)
    _attack_options(ev)
    _selection_options(ev)
    return parser


def _demo_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="the Push-Pull study in miniature on synthetic data (the main job)",
        description=_DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of every step, one training run (about 1 minute)",
    )
    demo.add_argument("--preset", choices=list(PRESETS), help=argparse.SUPPRESS)
    demo.add_argument(
        "--out", default="avrobust-demo", metavar="DIR", help="output folder (default: %(default)s)"
    )
    demo.add_argument("--eps", type=eps_list, metavar="LIST", help="eps_av grid, e.g. 5,20,50")
    demo.add_argument(
        "--table-eps", type=eps_value, metavar="X", help="eps_av of the table (one of --eps)"
    )
    demo.add_argument(
        "--avil-single",
        type=name_list(avil_term_names, "AVIL terms", distinct=True),
        metavar="TERMS",
        help="AVIL term(s) of model C (default l1)",
    )
    demo.add_argument(
        "--avil-pair",
        type=name_list(avil_term_names, "AVIL terms", distinct=True),
        metavar="TERMS",
        help="AVIL terms of models D and E (default l1,l4)",
    )
    demo.add_argument(
        "--train-steps", type=positive_int, metavar="N", help="training steps of models A, C, D"
    )
    demo.add_argument(
        "--seed", type=seed, metavar="N", help="seed of data, models and attacks (default 0)"
    )
    demo.add_argument(
        "--seeds",
        type=positive_int,
        metavar="N",
        help="training runs of every model, from N seeds; intervals and verdicts cover them "
        "(default 3, at most 9; --quick 1)",
    )
    demo.add_argument(
        "--surrogate",
        choices=SURROGATES,
        help="the transfer attack's surrogate (S): Push-Pull's ncTalkNet or specTalkNet "
        "(default nc_talknet)",
    )
    demo.add_argument(
        "--worst-case-steps",
        type=positive_int,
        metavar="N",
        help="APGD steps of the worst-case ensemble at the table's budget (default 100; "
        "--quick 20)",
    )
    demo.add_argument(
        "--worst-case-queries",
        type=positive_int,
        metavar="N",
        help="Square's queries per clip in the worst-case ensemble (default 100; --quick 50)",
    )
    demo.add_argument(
        "--fresh",
        "--retrain",
        dest="fresh",
        action="store_true",
        help=(
            "start afresh: delete the files the demo wrote in DIR (only those, and none you "
            "changed since), retrain all"
        ),
    )
    demo.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    _common(demo)


def _evaluate_parser(commands: Any) -> argparse.ArgumentParser:
    """``avrobust evaluate`` and its model and data options (the attack's: :func:`_attack_options`)."""
    ev: argparse.ArgumentParser = commands.add_parser(
        "evaluate",
        help="attack a checkpoint on AVA or synthetic data and report the damage",
        description=_EVALUATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="the weights: TalkNet's (official layout, e.g. pretrain_AVA.model; required for a "
        "TalkNet --model), or a state dict of a --model MODULE:FACTORY (optional)",
    )
    ev.add_argument(
        "--data",
        required=True,
        type=data_source,
        metavar="SOURCE",
        help="AVA folder (TalkNet layout), synthetic[:N], or MODULE:FACTORY returning a Dataset",
    )
    ev.add_argument(
        "--model",
        type=model_source,
        metavar=_model_metavar(),
        help="a TalkNet variant (default: the one a demo checkpoint's JSON records, else "
        "talknet), or MODULE:FACTORY returning your nn.Module",
    )
    ev.add_argument(
        "--face-size",
        type=positive_int,
        metavar="PX",
        help="face crop side of a TalkNet model and of the synthetic or AVA clips (default: the "
        "checkpoint's JSON, else the variant's, 112 for talknet)",
    )
    ev.add_argument(
        "--fps",
        type=positive_float,
        metavar="FPS",
        help="AVA: evaluate the tracks at this frame rate, with the model built for it (default 25)",
    )
    ev.add_argument(
        "--split",
        default="val",
        choices=["train", "val", "test"],
        help="AVA split (default: %(default)s)",
    )
    ev.add_argument(
        "--max-clips", type=positive_int, metavar="N", help="use only the first N clips/tracks"
    )
    return ev


def _attack_options(ev: argparse.ArgumentParser) -> None:
    ev.add_argument(
        "--rules",
        type=name_list(rule_names, "names", also=tuple(RECIPES)),
        default=["bim", "mim", "pgd"],
        metavar="LIST",
        help="attack rules (default: bim,mim,pgd); worst-case: per clip the worst case over "
        "APGD-CE, targeted APGD-margin and Square (--steps APGD iterations, 1000 queries; "
        "--objective does not apply)",
    )
    ev.add_argument(
        "--eps",
        type=eps_list,
        default=[1.0, 2.0, 5.0],
        metavar="LIST",
        help="eps_av grid (default: 1,2,5)",
    )
    ev.add_argument(
        "--modalities",
        type=modality_sets,
        default=["audio", "visual", "audio+visual"],
        metavar="LIST",
        help="attacked sets (default: audio,visual,audio+visual)",
    )
    ev.add_argument(
        "--steps",
        type=positive_int,
        default=10,
        metavar="N",
        help="attack iterations (default: %(default)s)",
    )
    ev.add_argument(
        "--objective",
        default="training",
        choices=list(OBJECTIVE_NAMES),
        help="the attack's objective: training-aware or inference-aware cross-entropy, the "
        "margin loss, or DLR (3+ classes) (default: %(default)s)",
    )
    ev.add_argument(
        "--surrogate",
        metavar="FILE",
        help="craft the attack on this checkpoint instead (black-box transfer)",
    )
    ev.add_argument(
        "--surrogate-model",
        type=model_source,
        metavar=_model_metavar(),
        help="architecture of --surrogate (default: the one its JSON records, else --model)",
    )


def _selection_options(ev: argparse.ArgumentParser) -> None:
    ev.add_argument(
        "--select",
        default="correct",
        choices=["correct", "all"],
        help="attack the correctly predicted clips (default) or all",
    )
    ev.add_argument(
        "--per-class",
        type=positive_int,
        metavar="N",
        help="clips per class, speaking / not speaking (Push-Pull: 225)",
    )
    ev.add_argument(
        "--no-balance", action="store_true", help="do not balance speaking and not-speaking clips"
    )
    ev.add_argument(
        "--batch-frames",
        type=positive_int,
        default=2500,
        metavar="N",
        help="AVA: frames per batch (default: %(default)s)",
    )
    ev.add_argument(
        "--seed",
        type=seed,
        default=0,
        metavar="N",
        help="seed of the selection and the random starts",
    )
    ev.add_argument(
        "--out", default="avrobust-eval", metavar="DIR", help="output folder (default: %(default)s)"
    )
    ev.add_argument(
        "--predictions",
        action="store_true",
        help="AVA: also write the clean predictions CSV and its official-style mAP",
    )
    ev.add_argument("--no-resume", action="store_true", help="start the results file afresh")
    ev.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    _common(ev)


def _model_metavar() -> str:
    """``{talknet,tiny,...}|MODULE:FACTORY``: the registered names, or a factory."""
    return "{" + ",".join(model_names()) + "}|MODULE:FACTORY"


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch CPU threads (default: the CPUs other processes leave free)",
    )
    sub.add_argument("--quiet", action="store_true", help="no progress bars or progress messages")
