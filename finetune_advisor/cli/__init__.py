"""Command-line interface: one subcommand per library function.

Results go to stdout (``--json`` for one machine-readable document); logs, progress bars and
errors go to stderr. A user error prints ``error: <message>`` on one line and exits 1
(``--debug`` shows the traceback); usage errors exit 2; Ctrl-C exits 130.

Modules: ``parser`` (the argparse tree), ``options`` (arguments -> AdviseOptions, once),
``commands`` (one function per command), ``output`` (what is printed), ``app`` (:func:`main`).
"""
from .app import main
from .options import options_from_args
from .output import format_bench_status, format_profile, format_recommendation
from .parser import build_parser

__all__ = ["main", "build_parser", "options_from_args", "format_recommendation", "format_profile",
           "format_bench_status"]
