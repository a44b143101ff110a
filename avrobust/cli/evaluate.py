"""``avrobust evaluate``: attack a checkpoint over a grid and report (called by
:func:`avrobust.cli.main`). The rules, models and modalities come checked from the parser (their
names from the registries); the rest is checked by the library."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from .demo import library_error
from .evaluate_models import build_models
from .factories import FACTORY_FORM, FactoryError, call_factory, is_factory

__all__ = ["run_evaluate"]


def _check_paths(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The files and folders named on the command line exist (exit 2 naming the option), and
    ``--face-size`` / ``--fps`` have something to set."""
    if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint: file not found: {args.checkpoint}")
    if args.surrogate is not None and not os.path.isfile(args.surrogate):
        parser.error(f"--surrogate: file not found: {args.surrogate}")
    if not _synthetic(args.data) and not is_factory(args.data) and not os.path.isdir(args.data):
        parser.error(
            f"--data: expected an AVA folder (TalkNet's preprocessed layout), synthetic[:N] or "
            f"{FACTORY_FORM}, got {args.data!r}, which is not a folder"
        )
    user_model = args.model is not None and is_factory(args.model)
    for option, value in (("--face-size", args.face_size), ("--fps", args.fps)):
        if value is not None and user_model and is_factory(args.data):
            parser.error(
                f"{option}: sets a TalkNet --model and the synthetic or AVA --data, but both "
                f"are yours here ({args.model}, {args.data}); leave it out"
            )


def _synthetic(data_text: str) -> bool:
    return data_text == "synthetic" or data_text.startswith("synthetic:")


#: the evaluation setting each option of ``avrobust evaluate`` sets (as the library names it).
OPTION_OF = {
    "Grid.rules": "--rules",
    "Grid.eps": "--eps",
    "Grid.modalities": "--modalities",
    "Grid.steps": "--steps",
    "Grid.objective": "--objective",
    "Selection.clips": "--select",
    "Selection.per_class": "--per-class",
    "Selection.balance": "--no-balance",
}


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Any, Any]:
    """The grid and the selection the options ask for, checked by the library before any work:
    a setting it refuses exits 2 with its reason, naming the option."""
    from ..evaluation import Grid, Selection

    try:
        grid = Grid(
            rules=tuple(args.rules),
            eps=tuple(args.eps),
            modalities=tuple(args.modalities),
            steps=args.steps,
            objective=args.objective,
        )
        selection = Selection(
            clips=args.select, balance=not args.no_balance, per_class=args.per_class
        )
    except (ValueError, TypeError) as exc:
        parser.error(library_error(exc, OPTION_OF))
        raise  # parser.error exits
    return grid, selection


def run_evaluate(
    args: argparse.Namespace, parser: argparse.ArgumentParser, say: Callable[[str], None]
) -> int:
    """Run ``avrobust evaluate`` with parsed ``args``; ``say`` prints progress messages."""
    from ..evaluation import SPEAKING_CLASSES, Measures, Store, evaluate

    _check_paths(args, parser)
    grid, selection = _settings(args, parser)
    model, surrogate, label = build_models(args, parser)
    if is_factory(args.data):
        data, ava = _user_data(args, parser), None
    else:
        face_size, fps = _clip_setting(model, args, parser)
        try:
            data, ava = _load_data(args, face_size, fps, say)
        except (FileNotFoundError, ValueError) as exc:  # no AVA tree, a bad CSV, a face size
            message = library_error(exc, {"face_size": "--face-size", "root": "--data"})
            parser.error(message if message.startswith("--") else f"--data: {message}")
    os.makedirs(args.out, exist_ok=True)
    results_file = os.path.join(args.out, "results.jsonl")
    start = time.perf_counter()
    weights = f"{os.path.basename(args.checkpoint)} ({label})" if args.checkpoint else label
    # synthetic and AVA data are speaker detection; a user's data may be any binary task
    words = None if is_factory(args.data) else SPEAKING_CLASSES
    report = evaluate(
        model,
        data,
        grid,
        selection=selection,
        measures=Measures(class_names=words),
        store=Store(path=results_file, resume=not args.no_resume),
        surrogate=surrogate,
        seed=args.seed,
        progress=not args.quiet,
        name=f"{weights} on {args.data}",  # the titles of the table and the plots
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


def _clip_setting(
    model: Any, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[int, float]:
    """``(face crop side in pixels, frames per second)`` of the synthetic or AVA clips: the
    flags, else the model's configuration (TalkNet's), else (a model of yours) exit 2 asking for
    ``--face-size``; 25 fps by default."""
    config = getattr(model, "config", None)
    face_size = args.face_size or getattr(config, "face_size", None)
    if not isinstance(face_size, int):
        parser.error(
            f"--face-size: --data {args.data} makes face crops for the model; give their side in "
            f"pixels for --model {args.model} (e.g. --face-size 112)"
        )
    fps = args.fps or getattr(config, "fps", None)
    return face_size, float(fps) if isinstance(fps, (int, float)) else 25.0


def _user_data(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """``FACTORY()`` of ``--data`` (seeded with ``--seed``), checked as evaluate checks its
    data, and cut to ``--max-clips``; what evaluate cannot take exits 2 naming ``--data``."""
    from torch.utils.data import Subset

    from ..evaluation.sources import Source

    try:
        data = call_factory(args.data, seed=args.seed)
        source = Source(data, batch_size=1)
    except FactoryError as exc:
        parser.error(f"--data: {exc}")
    except (TypeError, ValueError) as exc:
        reason = " ".join(str(exc).split()).removeprefix("data: ")
        parser.error(f"--data: {args.data}() returned data evaluate cannot take: {reason}")
    if source.size() == 0:
        parser.error(f"--data: {args.data}() returned no clips")
    if args.max_clips is not None:
        if source.dataset is None:
            parser.error(
                f"--max-clips: cuts a Dataset with len(), but {args.data}() returned "
                f"{type(data).__name__}; leave it out"
            )
        data = Subset(data, range(min(args.max_clips, len(data))))
    return data


def _load_data(
    args: argparse.Namespace, face_size: int, fps: float, say: Callable[[str], None]
) -> tuple[Any, Any]:
    """The evaluated clips as ``(data for evaluate, the AVA dataset or None)``."""
    data_text = args.data
    if _synthetic(data_text):
        from ..data.synthetic import SyntheticActiveSpeaker

        count = int(data_text.split(":", 1)[1]) if ":" in data_text else 128  # checked: >= 1
        if args.max_clips is not None:
            count = min(count, args.max_clips)
        say(f"data: {count} synthetic clips, {face_size}x{face_size} faces")
        # clips are made on access, as the evaluation reads them: no memory grows with N
        return SyntheticActiveSpeaker(count, face_size=face_size, seed=args.seed + 2), None
    from torch.utils.data import DataLoader

    from ..data.ava import AVAActiveSpeaker, collate_clips, length_batches

    everything = AVAActiveSpeaker(data_text, args.split, face_size=face_size)
    ava = AVAActiveSpeaker(data_text, args.split, face_size=face_size, fps=fps, sort_by_length=True)
    skipped = len(everything) - len(ava)
    if args.max_clips is not None:
        chosen = [e.entity_id for e in ava.entries[: args.max_clips]]
        ava = AVAActiveSpeaker(data_text, args.split, face_size=face_size, entities=chosen)
    note = f" ({skipped} tracks at other frame rates skipped; see --fps)" if skipped else ""
    say(f"data: {len(ava)} AVA {args.split} tracks at {fps:g} fps{note}")
    batches = length_batches(ava.lengths, args.batch_frames)
    return DataLoader(ava, batch_sampler=batches, collate_fn=collate_clips), ava


def _write_ava_predictions(model: Any, ava: Any, args: argparse.Namespace) -> list[str]:
    """Clean predictions of the evaluated tracks as AVA CSV, with the ground truth of those tracks."""
    from ..data.ava import predict_entities, write_predictions
    from ..metrics import AVARows, evaluate_ava_csv, read_ava_ground_truth, write_ava_ground_truth

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
