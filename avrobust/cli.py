"""The ``avrobust`` command: ``avrobust demo`` and ``avrobust evaluate``.

Run ``avrobust --help``, ``avrobust demo --help`` or ``avrobust evaluate --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main"]

_DESCRIPTION = """\
avrobust: adversarial attacks on, and defences of, audio-visual models.

  avrobust demo        the Push-Pull study in miniature, on synthetic data (no download):
                       train a tiny TalkNet five ways, attack it, write tables, plots, summary
  avrobust evaluate    attack your own TalkNet checkpoint on AVA-ActiveSpeaker (TalkNet's
                       preprocessed layout) or on synthetic data, and report the damage
"""

_DEMO_HELP = """\
Train a tiny TalkNet on synthetic active-speaker data as (A) plain, (B) adversarially trained,
(C) with one AVIL term, (D) with two AVIL terms, (E) AVIL + adversarial training; attack each
with BIM, MIM and PGD on the audio, the video and both over an eps_av grid; write a Table-1-like
table, Fig.-3-like plots and a summary of which Push-Pull findings held.

Trained models and finished attack cells are cached in OUT, so a rerun only evaluates (and an
interrupted run resumes). The default run takes about 6 minutes on 2 CPU cores; --quick under 2.

examples:
  avrobust demo                       # the full demo into ./avrobust-demo
  avrobust demo --quick --out /tmp/d  # a 2-minute smoke run
  avrobust demo --eps 2,5,10 --table-eps 5 --avil-pair l2,l4
"""

_EVALUATE_HELP = """\
Attack a TalkNet checkpoint over a grid of rules x eps_av budgets x attacked modalities and
report, per cell, frame mAP (clean and adversarial), ECR per modality, success rate and SNR/PSNR.

--data is either a folder in TalkNet's preprocessed AVA-ActiveSpeaker layout
    DIR/csv/{split}_loader.csv, DIR/csv/{split}_orig.csv,
    DIR/clips_audios/{split}/<video>/<entity>.wav, DIR/clips_videos/{split}/<video>/<entity>/*.jpg
or 'synthetic' / 'synthetic:N' for N synthetic clips (default 128).

examples:
  avrobust evaluate --checkpoint pretrain_AVA.model --data AVA --eps 1,2,5 --per-class 225
  avrobust evaluate --checkpoint avrobust-demo/models/A-*.model --model tiny --face-size 32 \\
      --data synthetic:192 --rules pgd --eps 5,20,50
"""


def _csv_list(kind: type) -> Any:
    def parse(text: str) -> list[Any]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
        try:
            return [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list of {kind.__name__} values, got {text!r}"
            ) from None

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``avrobust`` command (with the ``demo`` and ``evaluate`` commands)."""
    parser = argparse.ArgumentParser(
        prog="avrobust",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"avrobust {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="the Push-Pull study in miniature on synthetic data (the main job)",
        description=_DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--quick", action="store_true", help="a smoke run of every step (under 2 minutes)"
    )
    demo.add_argument("--preset", choices=["default", "quick", "test"], help=argparse.SUPPRESS)
    demo.add_argument(
        "--out", default="avrobust-demo", metavar="DIR", help="output folder (default: %(default)s)"
    )
    demo.add_argument(
        "--eps", type=_csv_list(float), metavar="LIST", help="eps_av grid, e.g. 5,20,50"
    )
    demo.add_argument(
        "--table-eps", type=float, metavar="X", help="eps_av of the table (one of --eps)"
    )
    demo.add_argument(
        "--avil-single",
        type=_csv_list(str),
        metavar="TERMS",
        help="AVIL term(s) of model C (default l1)",
    )
    demo.add_argument(
        "--avil-pair",
        type=_csv_list(str),
        metavar="TERMS",
        help="AVIL terms of models D and E (default l1,l4)",
    )
    demo.add_argument(
        "--train-steps", type=_positive_int, metavar="N", help="training steps of models A, C, D"
    )
    demo.add_argument(
        "--seed", type=int, metavar="N", help="seed of data, models and attacks (default 0)"
    )
    demo.add_argument("--retrain", action="store_true", help="ignore cached models and results")
    demo.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    _common(demo)

    ev = commands.add_parser(
        "evaluate",
        help="attack a checkpoint on AVA or synthetic data and report the damage",
        description=_EVALUATE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument(
        "--checkpoint",
        required=True,
        metavar="FILE",
        help="TalkNet weights (official layout, e.g. pretrain_AVA.model)",
    )
    ev.add_argument(
        "--data",
        required=True,
        metavar="SOURCE",
        help="AVA folder (TalkNet layout), or synthetic[:N]",
    )
    ev.add_argument(
        "--model",
        default="talknet",
        choices=["talknet", "nc_talknet", "spec_talknet", "tiny"],
        help="architecture of the checkpoint (default: %(default)s)",
    )
    ev.add_argument(
        "--face-size",
        type=_positive_int,
        metavar="PX",
        help="face crop side of the model (default: the variant's, 112 for talknet)",
    )
    ev.add_argument(
        "--fps",
        type=float,
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
        "--max-clips", type=_positive_int, metavar="N", help="use only the first N clips/tracks"
    )
    ev.add_argument(
        "--rules",
        type=_csv_list(str),
        default=["bim", "mim", "pgd"],
        metavar="LIST",
        help="attack rules (default: bim,mim,pgd)",
    )
    ev.add_argument(
        "--eps",
        type=_csv_list(float),
        default=[1.0, 2.0, 5.0],
        metavar="LIST",
        help="eps_av grid (default: 1,2,5)",
    )
    ev.add_argument(
        "--modalities",
        type=_csv_list(str),
        default=["audio", "visual", "audio+visual"],
        metavar="LIST",
        help="attacked sets (default: audio,visual,audio+visual)",
    )
    ev.add_argument(
        "--steps",
        type=_positive_int,
        default=10,
        metavar="N",
        help="attack iterations (default: %(default)s)",
    )
    ev.add_argument(
        "--objective",
        default="training",
        choices=["training", "inference"],
        help="training-aware or inference-aware attack (default: %(default)s)",
    )
    ev.add_argument(
        "--surrogate",
        metavar="FILE",
        help="craft the attack on this checkpoint instead (black-box transfer)",
    )
    ev.add_argument(
        "--surrogate-model",
        choices=["talknet", "nc_talknet", "spec_talknet", "tiny"],
        help="architecture of --surrogate (default: --model)",
    )
    ev.add_argument(
        "--select",
        default="correct",
        choices=["correct", "all"],
        help="attack the correctly predicted clips (default) or all",
    )
    ev.add_argument(
        "--per-class",
        type=_positive_int,
        metavar="N",
        help="clips per class, speaking / not speaking (Push-Pull: 225)",
    )
    ev.add_argument(
        "--no-balance", action="store_true", help="do not balance speaking and not-speaking clips"
    )
    ev.add_argument(
        "--batch-frames",
        type=_positive_int,
        default=2500,
        metavar="N",
        help="AVA: frames per batch (default: %(default)s)",
    )
    ev.add_argument(
        "--seed",
        type=int,
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
    return parser


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--threads",
        type=_positive_int,
        metavar="N",
        help="torch CPU threads (default: torch's choice)",
    )
    sub.add_argument("--quiet", action="store_true", help="no progress bars or progress messages")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``avrobust`` command; returns the exit status (0 on success).

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        if args.command == "demo":
            return _demo(args, parser)
        return _evaluate(args, parser)
    except (FileNotFoundError, ValueError, TypeError, ImportError, RuntimeError) as exc:
        print(f"avrobust {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"avrobust {args.command}: interrupted; finished cells are saved, rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return 130


def _say(quiet: bool) -> Any:
    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    return say


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .demo import PRESETS

    preset = args.preset or ("quick" if args.quick else "default")
    if args.quick and args.preset and args.preset != "quick":
        parser.error(f"--quick contradicts --preset {args.preset}")
    config = PRESETS[preset]
    changes: dict[str, Any] = {}
    if args.eps is not None:
        if any(e <= 0 for e in args.eps):
            parser.error(f"--eps: every value must be > 0, got {args.eps}")
        changes["eps_grid"] = tuple(args.eps)
        changes["table_eps"] = args.table_eps if args.table_eps is not None else max(args.eps)
    elif args.table_eps is not None:
        changes["table_eps"] = args.table_eps
    grid = changes.get("eps_grid", config.eps_grid)
    if changes.get("table_eps", config.table_eps) not in grid:
        parser.error(
            f"--table-eps: must be one of the eps grid {[f'{e:g}' for e in grid]}, got "
            f"{changes.get('table_eps'):g}"
        )
    for option, name in (("avil_single", "avil_single"), ("avil_pair", "avil_pair")):
        terms = getattr(args, option)
        if terms is not None:
            bad = [t for t in terms if t.lower() not in ("l1", "l2", "l3", "l4")]
            if bad:
                parser.error(
                    f"--{option.replace('_', '-')}: expected AVIL terms among l1,l2,l3,l4, got {bad}"
                )
            changes[name] = tuple(t.lower() for t in terms)
    if args.train_steps is not None:
        changes["train_steps"] = args.train_steps
    if args.seed is not None:
        if args.seed < 0:
            parser.error(f"--seed: expected a number >= 0, got {args.seed}")
        changes["seed"] = args.seed
    if changes:
        config = config.replace(**changes)
    from .demo import run_demo

    say = _say(args.quiet)
    say(f"avrobust demo ({preset}) -> {os.path.abspath(args.out)}")
    result = run_demo(
        args.out,
        config,
        progress=not args.quiet,
        plots=not args.no_plots,
        retrain=args.retrain,
        report=say,
    )
    print()
    print(f"Table 1 (demo): audio-visual attacks at eps_av = {config.table_eps:g}")
    print(result.table)
    print()
    verdicts = [line for line in result.summary.splitlines() if line.startswith("- **")]
    print("Push-Pull findings on this run:")
    for line in verdicts:
        print("  " + line[2:].replace("**", ""))
    print()
    print(f"wrote {len(result.files)} files to {os.path.abspath(args.out)}:")
    for path in result.files:
        print(f"  {os.path.relpath(path, args.out)}")
    print(f"total {result.seconds['total']:.0f} s")
    return 0


def _evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint: file not found: {args.checkpoint}")
    if args.surrogate is not None and not os.path.isfile(args.surrogate):
        parser.error(f"--surrogate: file not found: {args.surrogate}")
    rules = [r.lower() for r in args.rules]
    bad = [r for r in rules if r not in ("fgsm", "bim", "mim", "pgd")]
    if bad:
        parser.error(f"--rules: expected names among fgsm,bim,mim,pgd, got {bad}")
    if any(e <= 0 for e in args.eps):
        parser.error(f"--eps: every value must be > 0, got {args.eps}")
    for m in args.modalities:
        if any(part not in ("audio", "visual") for part in m.split("+")):
            parser.error(f"--modalities: expected audio, visual or audio+visual, got {m!r}")
    data_text = args.data
    synthetic = data_text == "synthetic" or data_text.startswith("synthetic:")
    if not synthetic and not os.path.isdir(data_text):
        parser.error(
            f"--data: expected an AVA folder (TalkNet's preprocessed layout) or synthetic[:N], "
            f"got {data_text!r}, which is not a folder"
        )

    from torch.utils.data import DataLoader

    from .evaluation import evaluate
    from .models import TalkNet

    say = _say(args.quiet)
    overrides: dict[str, Any] = {}
    if args.face_size is not None:
        overrides["face_size"] = args.face_size
    if args.fps is not None:
        overrides["fps"] = args.fps
    model = TalkNet.from_checkpoint(args.checkpoint, args.model, **overrides)
    surrogate = None
    if args.surrogate is not None:
        surrogate = TalkNet.from_checkpoint(
            args.surrogate, args.surrogate_model or args.model, **overrides
        )
    face_size, fps = model.config.face_size, model.config.fps
    data: Any
    ava = None
    if synthetic:
        from .data.synthetic import SyntheticActiveSpeaker

        count = 128
        if ":" in data_text:
            try:
                count = int(data_text.split(":", 1)[1])
            except ValueError:
                parser.error(
                    f"--data: expected synthetic:N with N a number of clips, got {data_text!r}"
                )
        if args.max_clips is not None:
            count = min(count, args.max_clips)
        data = SyntheticActiveSpeaker(count, face_size=face_size, seed=args.seed + 2).tensors()
        say(f"data: {count} synthetic clips, {face_size}x{face_size} faces")
    else:
        from .data.ava import AVAActiveSpeaker, collate_clips, length_batches

        everything = AVAActiveSpeaker(data_text, args.split, face_size=face_size)
        ava = AVAActiveSpeaker(
            data_text, args.split, face_size=face_size, fps=fps, sort_by_length=True
        )
        skipped = len(everything) - len(ava)
        if args.max_clips is not None:
            chosen = [e.entity_id for e in ava.entries[: args.max_clips]]
            ava = AVAActiveSpeaker(data_text, args.split, face_size=face_size, entities=chosen)
        note = f" ({skipped} tracks at other frame rates skipped; see --fps)" if skipped else ""
        say(f"data: {len(ava)} AVA {args.split} tracks at {fps:g} fps{note}")
        batches = length_batches(ava.lengths, args.batch_frames)
        data = DataLoader(ava, batch_sampler=batches, collate_fn=collate_clips)
    os.makedirs(args.out, exist_ok=True)
    results_file = os.path.join(args.out, "results.jsonl")
    start = time.perf_counter()
    report = evaluate(
        model,
        data,
        rules=rules,
        eps=args.eps,
        modalities=args.modalities,
        steps=args.steps,
        objective=args.objective,
        surrogate=surrogate,
        select=args.select,
        balance=not args.no_balance,
        per_class=args.per_class,
        seed=args.seed,
        results_file=results_file,
        resume=not args.no_resume,
        progress=not args.quiet,
    )
    print(report.table())
    files = report.save(args.out, "report", plots=not args.no_plots)
    if not args.no_plots and not any(f.endswith(".png") for f in files):
        print("(plots skipped: matplotlib is not installed; pip install 'avrobust[plots]')")
    if args.predictions and ava is not None:
        files += _write_ava_predictions(model, ava, args)
    elif args.predictions:
        print("(--predictions applies to AVA data only)")
    print(f"wrote {results_file} and:")
    for path in files:
        print(f"  {path}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


def _write_ava_predictions(model: Any, ava: Any, args: argparse.Namespace) -> list[str]:
    """Clean predictions of the evaluated tracks as AVA CSV, with the ground truth of those tracks."""
    from .data.ava import predict_entities, write_predictions
    from .metrics import AVARows, evaluate_ava_csv, read_ava_ground_truth, write_ava_ground_truth

    if not os.path.isfile(ava.ground_truth_csv):
        raise FileNotFoundError(f"--predictions needs the ground truth {ava.ground_truth_csv}")
    scores = predict_entities(model, ava, max_frames=args.batch_frames, progress=not args.quiet)
    truth = read_ava_ground_truth(ava.ground_truth_csv)
    keep = [i for i, e in enumerate(truth.entity_id) if e in scores]
    rows = AVARows(
        video_id=[truth.video_id[i] for i in keep],
        frame_timestamp=truth.frame_timestamp[keep],
        boxes=truth.boxes[keep],
        label=[truth.label[i] for i in keep],
        entity_id=[truth.entity_id[i] for i in keep],
    )
    path = os.path.join(args.out, "predictions.csv")
    truth_path = os.path.join(args.out, "ground_truth_subset.csv")
    write_predictions(path, rows, scores)
    write_ava_ground_truth(truth_path, rows)
    print(f"clean AVA mAP of the predictions: {100 * evaluate_ava_csv(truth_path, path):.2f}%")
    return [path, truth_path]
