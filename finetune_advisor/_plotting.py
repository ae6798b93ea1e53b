"""One way to make a figure: an object-oriented matplotlib ``Figure`` (no pyplot state, so it is
thread-safe and needs no display), saved as PNG bytes or to a file.

>>> fig, ax = new_figure(3, 2)
>>> _ = ax.plot([0, 1], [1, 0])
>>> png_bytes(fig)[:4]
b'\\x89PNG'
"""
from __future__ import annotations

import io
import os
from pathlib import Path

DPI = 100


def new_figure(width: float, height: float, *, nrows: int = 1, ncols: int = 1, **subplot_kw):
    """A constrained-layout figure of ``width`` x ``height`` inches and its axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, **subplot_kw)
    return fig, axes


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})   # no tool stamp: same figure, same bytes
    return buf.getvalue()


def save_png(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG atomically (a killed run leaves the old file, never half of one)."""
    from ._io import write_bytes_atomic

    return write_bytes_atomic(path, png_bytes(fig))
