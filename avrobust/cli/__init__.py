"""The ``avrobust`` command: ``avrobust demo`` and ``avrobust evaluate``.

Run ``avrobust --help``, ``avrobust demo --help`` or ``avrobust evaluate --help``.

The package: :mod:`.parser` (the options; the names they accept come from the library's
registries, :mod:`.argtypes`), :mod:`.demo` (``avrobust demo``) and :mod:`.evaluate`
(``avrobust evaluate``; its models: :mod:`.evaluate_models`; a researcher's own model and data
given as ``MODULE:FACTORY``: :mod:`.factories`). Exit status: 0 on success, 2 for a bad option
(the option named, in one line, before any work), 1 for an error while running, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .argtypes import out_folder_problem
from .parser import build_parser

__all__ = ["build_parser", "main"]


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
    problem = out_folder_problem(args.out)
    if problem is not None:
        print(f"avrobust {args.command}: error: --out: {problem}", file=sys.stderr)
        return 2
    _set_threads(args)
    from ..demo import FolderConflict

    try:
        if args.command == "demo":
            from .demo import run_demo_command

            return run_demo_command(args, parser, _say(args.quiet))
        from .evaluate import run_evaluate

        return run_evaluate(args, parser, _say(args.quiet))
    except FolderConflict as exc:
        from .demo import conflict_line

        print(f"avrobust demo: error: {conflict_line(exc, args.out)}", file=sys.stderr)
        return 2
    except (OSError, ValueError, TypeError, ImportError, RuntimeError) as exc:
        print(f"avrobust {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"avrobust {args.command}: interrupted; finished cells are saved, rerun the same "
            "command to resume",
            file=sys.stderr,
        )
        return 130


def _set_threads(args: argparse.Namespace) -> None:
    """Set torch's thread count: ``--threads`` or the choice for this machine's load
    (:mod:`.threads`); one line on stderr says which, unless ``--quiet``."""
    import torch

    from . import threads

    machine = threads.read_machine(with_load=args.threads is None)
    choice = threads.choose_threads(args.threads, machine)
    torch.set_num_threads(choice.threads)
    if not args.quiet:
        print(f"avrobust {args.command}: {choice.line()}", file=sys.stderr, flush=True)


def _say(quiet: bool) -> Callable[[str], None]:
    def say(message: str) -> None:
        if not quiet:
            print(message, flush=True)

    return say
