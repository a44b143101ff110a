"""``avrobust demo``: the options turned into a :class:`~avrobust.demo.DemoConfig`, the run, and
what is printed (called by :mod:`avrobust.cli`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

__all__ = ["conflict_line", "run_demo_command"]

_OPTION_OF = {
    "seed": "--seed",
    "train_steps": "--train-steps",
    "avil_single": "--avil-single",
    "avil_pair": "--avil-pair",
}


def conflict_line(exc: Any, out: str) -> str:
    """One line for a demo folder that cannot be used as asked, naming the command's options."""
    if not exc.differences:
        return (
            str(exc)
            .replace("out_dir:", "--out:", 1)
            .replace("choose another folder", "choose another --out")
        )
    differs = dict(exc.differences)
    if any(k in differs for k in ("avil_single", "avil_pair")):
        differs.pop("models", None)  # the model list follows the AVIL terms
    said = lambda names: ", ".join(  # noqa: E731
        f"{n} {differs[n][0]!r} there, {differs[n][1]!r} here" for n in names
    )
    parts = [f"{_OPTION_OF[n]} ({said([n])})" for n in differs if n in _OPTION_OF]
    preset = [n for n in differs if n not in _OPTION_OF]
    if preset:
        more = f" and {len(preset) - 2} more" if len(preset) > 2 else ""
        parts.append(f"the preset, --preset/--quick ({said(preset[:2])}{more})")
    return (
        f"{out} holds a demo run with other settings: {'; '.join(parts)}; add --fresh to start "
        "afresh there (deletes only the files the demo wrote), or choose another --out"
    )


def run_demo_command(
    args: argparse.Namespace, parser: argparse.ArgumentParser, say: Callable[[str], None]
) -> int:
    """Run ``avrobust demo`` with parsed ``args``; ``say`` prints progress messages."""
    from .demo import PRESETS

    preset = args.preset or ("quick" if args.quick else "default")
    if args.quick and args.preset and args.preset != "quick":
        parser.error(f"--quick contradicts --preset {args.preset}")
    config = PRESETS[preset]
    changes: dict[str, Any] = {}
    if args.eps is not None:
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
        changes["seed"] = args.seed
    if changes:
        config = config.replace(**changes)
    from .demo import run_demo

    say(f"avrobust demo ({preset}) -> {os.path.abspath(args.out)}")
    result = run_demo(
        args.out,
        config,
        progress=not args.quiet,
        plots=not args.no_plots,
        retrain=args.fresh,
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
