"""``finetune-advisor``'s entry point: parse, run one command, turn every failure into an exit
code and (at most) one line on stderr."""
from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Sequence

from .._io import write_error
from .._signals import deferred_interrupt
from ..exceptions import FinetuneAdvisorError
from ..storage_url import masked_url
from .output import one_line, print_error
from .parser import build_parser

log = logging.getLogger(__name__)

# torch commands that only read stored results: torch for its thread count, fastai never used
RESULTS_ONLY_COMMANDS = ("bench outputs", "reference show")


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
    for handler in logging.getLogger().handlers:     # no log line shows a storage URL's password
        handler.addFilter(_mask_passwords)
    _quiet_third_party(args.debug)
    runs_torch = args.command not in ("profile", "bench status", "calibrate") or \
        bool(getattr(args, "validate", None) or getattr(args, "measure", False))   # calibrate trains or measures
    with deferred_interrupt():   # Ctrl-C while the libraries load: raised once they are in, never lost
        # Deferred on purpose, the one such import in the CLI: the commands load pandas, the report,
        # bench and train (most of a second).
        from .commands import COMMANDS
        from .options import early_checks
    try:
        early_checks(args)        # a bad argument answers now, not after torch's start-up
        if runs_torch:
            with deferred_interrupt():
                _import_torch_and_fastai(with_fastai=args.command not in RESULTS_ONLY_COMMANDS)
            from .._threads import pick_torch_threads
            pick_torch_threads()
        return COMMANDS[args.command](args) or 0
    except FinetuneAdvisorError as exc:
        if args.debug:
            return _print_traceback()
        print_error(str(exc))
        return 1
    except BrokenPipeError:  # stdout closed early (`... | head`): nothing left to tell anyone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except Exception as exc:  # a bug here or in a library: still one line, never a traceback
        if args.debug:
            return _print_traceback()
        user_error = _user_error(exc, args)
        if user_error is not None:       # a library's error about an input the user gave: not our bug
            print_error(user_error)
            return 1
        print_error(f"unexpected {type(exc).__name__}: {one_line(str(exc))[:300]} (rerun with --debug "
                    f"for the traceback, and please report it)")
        return 1


def _mask_passwords(record: logging.LogRecord) -> bool:
    """A logging filter: the record's message with any URL's password masked."""
    message = record.getMessage()
    masked = masked_url(message)
    if masked != message:
        record.msg, record.args = masked, ()
    return True


def _print_traceback() -> int:
    """``--debug``: the traceback on stderr, with any URL's password masked; exit code 1."""
    import traceback

    print(masked_url(traceback.format_exc()), end="", file=sys.stderr)
    return 1


def _import_torch_and_fastai(with_fastai: bool = True) -> None:
    """Load torch and (``with_fastai``) torchvision and the fastai modules the commands that advise or
    train use (seconds; the commands in :data:`RESULTS_ONLY_COMMANDS` load torch alone).

    Called with SIGINT held back: a Ctrl-C that lands inside a library's import can be lost
    there. Seen here: fastai imports matplotlib, whose ``projections`` wraps the 3-D toolkit's
    import in ``except Exception``; the interrupt surfaced in it as another exception, matplotlib
    warned "Unable to import Axes3D" and the run went on as if no key had been pressed.
    """
    log.debug("importing torch and fastai..." if with_fastai else "importing torch...")
    import torch  # noqa: F401
    if with_fastai:
        import fastai.vision.learner  # noqa: F401  (torchvision, matplotlib, fastai's core)


def _quiet_third_party(debug: bool = False) -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    # --debug is for our own logs: PIL logs every chunk of every image it opens (thousands of lines)
    for name in ("PIL", "matplotlib", "fsspec", "urllib3", "filelock", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).level))


def _user_error(exc: Exception, args) -> str | None:
    """The one line for an error a library raised about an input the user gave (a storage URL or
    file that cannot be opened, a bad regular expression, a full disk or read-only folder where a
    file goes); None for anything else (a bug: the caller reports it as one)."""
    import re

    written = write_error(exc)          # ENOSPC, EROFS, EACCES, ... on a named path: not our bug
    if written is not None:
        return written
    if isinstance(exc, re.error):
        pattern = exc.pattern if isinstance(exc.pattern, str) else getattr(args, "filename_regex", None)
        return (f"{pattern!r} is not a valid regular expression: {exc.msg} (fix the pattern, e.g. "
                f"--filename-regex '^(.+)_\\d+$')")
    db_error = _storage_error(exc)
    if db_error is not None:
        storage = masked_url(getattr(args, "storage", None) or _default_storage(args))
        fix = ("check that the file is a bench database, in a folder you can write" if storage.startswith("sqlite")
               else "check the URL, and that the database server runs and accepts connections")
        return f"cannot use the storage {storage}: {db_error} ({fix}; --storage sets it)"
    return None


def _storage_error(exc: BaseException) -> str | None:
    """The database's own reason when ``exc`` is an SQLAlchemy error the storage's user caused: the
    server refused or dropped the connection, the file cannot be opened or is not a database, the
    URL does not parse. Programming errors (bad SQL, integrity) stay bugs."""
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is None:       # never imported: not a storage error
        return None
    if isinstance(exc, sqlalchemy_exc.ArgumentError) and "URL" in str(exc):
        return one_line(str(exc))
    user_caused = (sqlalchemy_exc.OperationalError, sqlalchemy_exc.InterfaceError)
    if isinstance(exc, user_caused) or type(exc) is sqlalchemy_exc.DatabaseError:
        reason = getattr(exc, "orig", None) or exc
        return one_line(str(reason)).strip()[:300]
    return None


def _default_storage(args) -> str:
    """The storage a bench or tune command uses without --storage (as the commands compute it)."""
    from pathlib import Path

    if getattr(args, "command", "") == "tune":
        return f"sqlite:///{Path(args.out).resolve() / 'tune.db'}"
    study = getattr(args, "study", None)
    study = study[0] if isinstance(study, list) else study or "bench"
    out = getattr(args, "out", None) if getattr(args, "command", "") in ("bench run", "bench outputs") else None
    return f"sqlite:///{(Path(out) if out else Path('bench') / study).resolve() / 'bench.db'}"
