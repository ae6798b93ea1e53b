"""Repository-wide test hooks (they apply to tests/ and to the package's doctests)."""
from __future__ import annotations

import gc
import signal

import pytest


def pytest_configure(config):
    """Ctrl-C as from a terminal, for the suite and every process it starts.

    A suite started in the background (``cmd &`` in a script, ``nohup``) inherits SIGINT as
    ignored, and so would every CLI child a test starts and then interrupts: those tests would
    hang to their caps. With Python's own handler here, the children start with the default
    disposition (a handler, unlike "ignored", is reset by exec)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before a doctest, collect the garbage that earlier tests left.

    Every doctest starts a pdb, whose ``Bdb.reset`` runs ``linecache.checkcache()``: it lists
    the cache's keys, then reads each one. SQLAlchemy registers the ``__init__`` it generates for
    a mapped class in ``linecache`` and removes the entry in a ``weakref.finalize`` when the class
    dies. Each new Optuna SQLite storage runs its Alembic migrations, whose scripts map classes
    (``v1_3_0_a_py.TrialModel``, ...) that end up as cyclic garbage. A collection that happened to
    run inside ``checkcache``'s loop (any allocation there, or another thread, can start one: more
    likely on a busy machine) removed an entry between the listing and the read:
    ``KeyError: '<sqlalchemy generated __init__ for class v1_3_0_a_py.TrialModel>'``. Collecting
    first runs those finalizers here, before the listing (tests/test_doctest_linecache.py).
    """
    if type(item).__name__ == "DoctestItem":
        gc.collect()
