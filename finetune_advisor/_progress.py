"""Progress that never pollutes results: bars on stderr, and quiet periodic lines when stderr is
not a terminal (a log file or CI would otherwise fill with redraws)."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
LINE_EVERY_S = 5.0      # off a terminal: one line at most this often
REDRAW_EVERY_S = 0.25   # on a terminal: one redraw at most this often


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
             every_s: float | None = None) -> Iterator[T]:
    """Iterate ``items`` with a fastprogress bar on a terminal, else a plain line on stderr at
    most every ``every_s`` seconds (default :data:`LINE_EVERY_S`; and one at the end).

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
    with Ticker(total, desc or "progress", every_s=every_s) as ticker:   # off a terminal: quiet lines
        for item in items:
            yield item
            ticker.update()


class Ticker:
    """Progress of work counted by hand (``update()``), for loops that are not one iterable: a
    line redrawn in place on a terminal, else a plain line on stderr at most every ``every_s``
    seconds (and one at the end when it took that long), never a flood of redraws.

    >>> with Ticker(3, "steps", enabled=False) as t:
    ...     t.update(3)
    >>> t.done
    3
    """

    def __init__(self, total: int | None, desc: str, *, enabled: bool = True, every_s: float | None = None,
                 stream=None):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.stream = stream
        self.terminal = is_terminal(self._out)
        self.every_s = every_s if every_s is not None else (REDRAW_EVERY_S if self.terminal else LINE_EVERY_S)
        self.done, self.note = 0, ""
        self.start = self.last = time.monotonic()
        self._drawn = 0

    @property
    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def _text(self) -> str:
        of = f"/{self.total}" if self.total else ""
        note = f", {self.note}" if self.note else ""
        return f"{self.desc}: {self.done}{of}{note} ({time.monotonic() - self.start:.0f} s)"

    def update(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._write(self._text())

    def line(self, text: str) -> None:
        """A line of its own (an epoch's numbers), kept on screen."""
        if self.enabled:
            self._clear()
            print(text, file=self._out, flush=True)

    def _write(self, text: str) -> None:
        if self.terminal:
            pad = " " * max(0, self._drawn - len(text))
            print(f"\r{text}{pad}", end="", file=self._out, flush=True)
            self._drawn = len(text)
        else:
            print(text, file=self._out, flush=True)

    def _clear(self) -> None:
        if self.terminal and self._drawn:
            print("\r" + " " * self._drawn + "\r", end="", file=self._out, flush=True)
            self._drawn = 0

    def close(self) -> None:
        if not self.enabled:
            return
        self._clear()
        if time.monotonic() - self.start >= (LINE_EVERY_S if self.terminal else self.every_s):
            print(f"{self.desc}: {self.done} done ({time.monotonic() - self.start:.0f} s)", file=self._out,
                  flush=True)

    def __enter__(self) -> "Ticker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fastai_ticker(desc: str, *, epochs: bool = True, enabled: bool = True, total: int | None = None):
    """A fastai Callback showing a fit's progress through a :class:`Ticker` (one per fit): for
    use instead of fastai's bars (``learn.no_bar()``) where those would flood a log. With
    ``epochs``, each epoch's losses and metrics are printed as one line. ``total``: the
    batches expected (default: epochs x training batches)."""
    from fastai.callback.core import Callback

    class _TickerCallback(Callback):
        order = 60    # after the Recorder (order 50), so an epoch's numbers are in

        def before_fit(self):
            expected = total if total is not None else getattr(self, "n_epoch", 1) * len(self.dls.train)
            self.ticker = Ticker(expected, desc, enabled=enabled)

        def after_batch(self):
            if not self.training:
                return
            self.ticker.update(1, note=f"epoch {self.epoch + 1}/{self.n_epoch}" if epochs else None)

        def after_epoch(self):
            if not epochs:
                return
            rec = self.learn.recorder
            cells = ", ".join(f"{n} {_number(v)}" for n, v in zip(list(rec.metric_names)[1:], list(rec.log)[1:]))
            self.ticker.line(f"{desc}: epoch {self.epoch + 1}/{self.n_epoch}: {cells}")

        def after_fit(self):
            self.ticker.close()

    return _TickerCallback()


def _number(v) -> str:
    try:
        return f"{float(v):.4g}"
    except (TypeError, ValueError):
        return str(v)

