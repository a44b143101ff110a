"""``avrobust evaluate``: attack a checkpoint over a grid and report (called by :mod:`avrobust.cli`)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["run_evaluate"]


def run_evaluate(
    args: argparse.Namespace, parser: argparse.ArgumentParser, say: Callable[[str], None]
) -> int:
    """Run ``avrobust evaluate`` with parsed ``args``; ``say`` prints progress messages."""
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint: file not found: {args.checkpoint}")
    if args.surrogate is not None and not os.path.isfile(args.surrogate):
        parser.error(f"--surrogate: file not found: {args.surrogate}")
    rules = [r.lower() for r in args.rules]
    bad = [r for r in rules if r not in ("fgsm", "bim", "mim", "pgd")]
    if bad:
        parser.error(f"--rules: expected names among fgsm,bim,mim,pgd, got {bad}")
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

    from .evaluation import evaluate
    from .models import TalkNet

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
    data, ava = _load_data(args, model.config.face_size, model.config.fps, say)
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
    report.name = f"{os.path.basename(args.checkpoint)} ({args.model}) on {args.data}"  # titles
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


def _load_data(
    args: argparse.Namespace, face_size: int, fps: float, say: Callable[[str], None]
) -> tuple[Any, Any]:
    """The evaluated clips as ``(data for evaluate, the AVA dataset or None)``."""
    data_text = args.data
    if data_text == "synthetic" or data_text.startswith("synthetic:"):
        from .data.synthetic import SyntheticActiveSpeaker

        count = int(data_text.split(":", 1)[1]) if ":" in data_text else 128  # checked: >= 1
        if args.max_clips is not None:
            count = min(count, args.max_clips)
        say(f"data: {count} synthetic clips, {face_size}x{face_size} faces")
        # clips are made on access, as the evaluation reads them: no memory grows with N
        return SyntheticActiveSpeaker(count, face_size=face_size, seed=args.seed + 2), None
    from torch.utils.data import DataLoader

    from .data.ava import AVAActiveSpeaker, collate_clips, length_batches

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
