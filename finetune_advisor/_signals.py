"""Hold Ctrl-C back across a few lines that must not be cut in half.

A worker claims a trial (Optuna's ``ask``, first heartbeat, claim mark) and later finishes it
(``tell``) in short sequences of storage writes; a KeyboardInterrupt between two of them would
leave the trial RUNNING with nobody working on it. Inside :func:`deferred_interrupt` a SIGINT is
recorded, and raised as KeyboardInterrupt once the block is done, so the caller's own handler
sees a consistent state.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["deferred_interrupt"]


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Run the block with SIGINT deferred to its end (main thread only; elsewhere a no-op).

    >>> with deferred_interrupt():
    ...     x = 1
    >>> x
    1
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN:    # nohup, `cmd &`: Ctrl-C is to stay ignored
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
