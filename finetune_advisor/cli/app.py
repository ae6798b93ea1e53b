"""``finetune-advisor``'s entry point: parse, run one command, turn every failure into an exit
code and (at most) one line on stderr."""
from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Sequence

from ..exceptions import FinetuneAdvisorError
from .output import one_line, print_error
from .parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``finetune-advisor``; returns the exit code.

    0 success; 1 an error, printed as one ``error: ...`` line on stderr (the traceback only
    with ``--debug``); 2 a usage error; 130 Ctrl-C, at any point (``interrupted`` on stderr).
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while parsing or importing torch, before a command runs
        # on a line of its own: a progress bar may have been half drawn (no newline yet)
        print("\ninterrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):   # no command, or a group (bench, reference) without its action
        getattr(args, "help_parser", parser).print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    _quiet_third_party()
    # Deferred on purpose, the one such import in the CLI: the commands load pandas, the report,
    # bench and train (most of a second); Ctrl-C while they load must still exit 130 cleanly.
    from .commands import COMMANDS
    try:
        return COMMANDS[args.command](args) or 0
    except FinetuneAdvisorError as exc:
        if args.debug:
            raise
        print_error(str(exc))
        return 1
    except BrokenPipeError:  # stdout closed early (`... | head`): nothing left to tell anyone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except Exception as exc:  # a bug here or in a library: still one line, never a traceback
        if args.debug:
            raise
        print_error(f"unexpected {type(exc).__name__}: {one_line(str(exc))[:300]} (rerun with --debug "
                    f"for the traceback, and please report it)")
        return 1


def _quiet_third_party() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
