"""Progress that never pollutes results: bars on stderr, and quiet periodic lines when stderr is
not a terminal (a log file or CI would otherwise fill with redraws)."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
LINE_EVERY_S = 5.0      # off a terminal: one line at most this often


@contextlib.contextmanager
def progress_to_stderr(enabled: bool = True) -> Iterator[None]:
    """Send what progress bars print on stdout (fastprogress, torchvision downloads) to stderr,
    so that stdout holds only results (``--json`` stays parseable)."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def is_terminal(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True,
             every_s: float = LINE_EVERY_S) -> Iterator[T]:
    """Iterate ``items`` with a fastprogress bar on a terminal, else a plain line on stderr at
    most every ``every_s`` seconds (and one at the end).

    >>> list(progress(range(3), enabled=False))
    [0, 1, 2]
    """
    if not enabled:
        yield from items
        return
    if total is None:
        total = len(items) if hasattr(items, "__len__") else None
    if is_terminal():
        from fastprogress.fastprogress import progress_bar

        with progress_to_stderr():
            bar = progress_bar(items, total=total, leave=False)
            if desc:
                bar.comment = desc
            yield from bar
        return
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            of = f"/{total}" if total else ""
            print(f"{desc or 'progress'}: {done}{of} ({now - start:.0f} s)", file=sys.stderr, flush=True)
    if done and time.monotonic() - start >= every_s:
        print(f"{desc or 'progress'}: {done} done ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
