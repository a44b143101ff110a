"""``avrobust demo``: the options turned into a :class:`~avrobust.demo.DemoConfig`, the run, and
what is printed (called by :func:`avrobust.cli.main`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..demo import PRESETS, DemoConfig, DemoResult, FolderConflict

__all__ = ["OPTION_OF", "conflict_line", "library_error", "run_demo_command"]

#: the ``DemoConfig`` field each option of ``avrobust demo`` sets.
OPTION_OF = {
    "seed": "--seed",
    "seeds": "--seeds",
    "train_steps": "--train-steps",
    "avil_single": "--avil-single",
    "avil_pair": "--avil-pair",
    "eps_grid": "--eps",
    "table_eps": "--table-eps",
    "surrogate": "--surrogate",
    "worst_case_steps": "--worst-case-steps",
    "worst_case_queries": "--worst-case-queries",
}


def library_error(exc: Exception, options: Mapping[str, str]) -> str:
    """The library's message for a bad setting, in one line, naming the option instead of the
    argument (``"table_eps: ..."`` -> ``"--table-eps: ..."``)."""
    message = " ".join(str(exc).split())
    for name, option in options.items():
        if message.startswith((f"{name}:", f"{name}[")):
            return option + message[len(name) :]
    return message


def conflict_line(exc: FolderConflict, out: str) -> str:
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
    parts = [f"{OPTION_OF[n]} ({said([n])})" for n in differs if n in OPTION_OF]
    preset = [n for n in differs if n not in OPTION_OF]
    if preset:
        more = f" and {len(preset) - 2} more" if len(preset) > 2 else ""
        parts.append(f"the preset, --preset/--quick ({said(preset[:2])}{more})")
    return (
        f"{out} holds a demo run with other settings: {'; '.join(parts)}; add --fresh to start "
        "afresh there (deletes only the files the demo wrote), or choose another --out"
    )


def demo_config(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[str, DemoConfig]:
    """The preset's name and the :class:`~avrobust.demo.DemoConfig` the options ask for; a
    setting the config refuses exits 2 with its message, naming the option."""
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
    for name in ("avil_single", "avil_pair"):
        if getattr(args, name) is not None:
            changes[name] = tuple(getattr(args, name))
    names = ("train_steps", "seed", "seeds", "surrogate", "worst_case_steps", "worst_case_queries")
    for name in names:
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    try:
        return preset, config.replace(**changes) if changes else config
    except (ValueError, TypeError) as exc:
        parser.error(library_error(exc, OPTION_OF))
        raise  # parser.error exits


def print_result(result: DemoResult, out: str) -> None:
    """The table, the verdicts (from ``result.findings``) and the files written."""
    print()
    print(f"Table 1 (demo): audio-visual attacks at eps_av = {result.config.table_eps:g}")
    print(result.table)
    print()
    print("Push-Pull findings on this run:")
    for finding in result.findings:
        print("  " + finding.line())
    print()
    print(f"wrote {len(result.files)} files to {os.path.abspath(out)}:")
    for line in _listing(result.files, out):
        print(f"  {line}")
    print(f"total {result.seconds['total']:.0f} s")


def _listing(files: list[str], out: str) -> list[str]:
    """The files relative to ``out``; those of the XAB folder as one line with their count."""
    lines: list[str] = []
    xab = [f for f in files if os.path.relpath(f, out).split(os.sep)[0] == "xab_test"]
    for path in files:
        if path not in xab:
            lines.append(os.path.relpath(path, out))
        elif path == xab[0]:
            lines.append(f"xab_test/ ({len(xab)} files: the XAB test in xab_test/xab, its answer "
                         "key xab_test/xab_key.csv, the pairs, manifest.csv)")  # fmt: skip
    return lines


def run_demo_command(
    args: argparse.Namespace, parser: argparse.ArgumentParser, say: Callable[[str], None]
) -> int:
    """Run ``avrobust demo`` with parsed ``args``; ``say`` prints progress messages."""
    import torch

    from ..demo import run_demo

    preset, config = demo_config(args, parser)
    workers = torch.get_num_threads()  # --threads, or the choice for this machine's load
    say(f"avrobust demo ({preset}) -> {os.path.abspath(args.out)}")
    result = run_demo(
        args.out,
        config,
        progress=not args.quiet,
        plots=not args.no_plots,
        retrain=args.fresh,
        report=say,
        workers=workers,
    )
    print_result(result, args.out)
    return 0
