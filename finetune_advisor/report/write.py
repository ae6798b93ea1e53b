"""Write a rendered report to disk, atomically: one HTML file, or Markdown plus its images."""
from __future__ import annotations

import os
from pathlib import Path

from .._io import write_bytes_atomic
from .html import render_html
from .markdown import render_markdown
from .model import FORMATS, Report, ReportInputError


def write_report(report: Report, path: str | os.PathLike, format: str = "html") -> Path:
    """Write ``report`` to ``path`` atomically (temp file in the same folder, then ``os.replace``).

    Parameters
    ----------
    report : Report
    path : path
        The output file; its folder is created.
    format : {"html", "md"}, default="html"
        ``"md"`` also writes the images into ``<stem>_files/`` beside the file and links them.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ReportInputError
        Unknown format.
    """
    if format not in FORMATS:
        raise ReportInputError(f"unknown report format {format!r}; choose one of {list(FORMATS)}", path=path)
    path = Path(path)
    if format == "html":
        write_bytes_atomic(path, render_html(report).encode("utf-8"))
        return path
    asset_dir = f"{path.stem}_files"
    assets: dict[str, bytes] = {}
    text = render_markdown(report, assets=assets, asset_dir=asset_dir)
    for rel, data in assets.items():
        write_bytes_atomic(path.parent / rel, data)
    write_bytes_atomic(path, text.encode("utf-8"))
    return path
