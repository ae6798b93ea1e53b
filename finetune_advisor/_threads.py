"""How many CPU threads torch uses, chosen on purpose (the CLI calls :func:`pick_torch_threads`).

torch's default is every core; on a busy or small machine that oversubscribes it (measured on a
busy 2-core machine: the first ``recommend --sample`` 6-7 min with the default, 41 s with one
thread), while more than a few threads buy little for the small batches the advice runs. The
cached LR range test runs on one thread whatever this says (``lr_finder.cached``), so the advice
does not depend on the count (same seed, same LR within 1%: ``tests/test_recommend.py``).
"""
from __future__ import annotations

import logging
import os

__all__ = ["MAX_DEFAULT_THREADS", "default_thread_count", "pick_torch_threads"]

log = logging.getLogger(__name__)

MAX_DEFAULT_THREADS = 4
_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_thread_count(cpu_count: int | None = None) -> int:
    """``min(cores, 4)``: the cores this process may use (its CPU affinity), at most 4.

    >>> default_thread_count(2), default_thread_count(64), default_thread_count(None) >= 1
    (2, 4, True)
    """
    if cpu_count is None:
        try:
            cpu_count = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpu_count = os.cpu_count() or 1
    return max(1, min(int(cpu_count), MAX_DEFAULT_THREADS))


def pick_torch_threads() -> int:
    """Set torch's intra-op thread count to :func:`default_thread_count` unless
    ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``) says otherwise, and log the choice at DEBUG;
    returns the count in use."""
    import torch

    for var in _ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            n = torch.get_num_threads()
            log.debug("torch threads: %d (%s=%s is set)", n, var, value)
            return n
    n = default_thread_count()
    torch.set_num_threads(n)
    log.debug("torch threads: %d (min(cores available, %d); set OMP_NUM_THREADS to choose)", n,
              MAX_DEFAULT_THREADS)
    return n
