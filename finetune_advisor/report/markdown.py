"""Render a :class:`~finetune_advisor.report.model.Report` as Markdown, with the same sections
(``<a id="...">`` anchors, ``##`` headings); images embedded as ``data:`` URIs or linked files."""
from __future__ import annotations

import html
import re
from typing import Any

from .html import _CODE_SPAN, _URL_SCHEME
from .model import Figure, Report, Table

# start code, emphasis, a link or a table cell; backslash-escaped after html.escape (no entity has one)
_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def _md_cell(v: Any) -> str:
    r"""Text (class names, paths, reasons) made inert in Markdown: no HTML, code span, emphasis, link,
    table cell or URL can start inside it, and it stays on one line.

    >>> _md_cell("a|b\nc")
    'a\\|b c'
    >>> _md_cell("<script>alert(1)</script> `x` [y](http://z)")
    '&lt;script&gt;alert(1)&lt;/script&gt; \\`x\\` \\[y\\](http&#58;//z)'
    """
    text = html.escape(str(v).replace("\r", " ").replace("\n", " "), quote=False)
    return _URL_SCHEME.sub(r"\1&#58;", _MD_SPECIAL.sub(r"\\\1", text))


def _md_rich(v: Any) -> str:
    """Like :func:`_md_cell`, keeping `backtick` spans as code (as the HTML report does); a code span
    shows its content literally, so it needs no escaping.

    >>> _md_rich("run `finetune-advisor train` on <b>")
    'run `finetune-advisor train` on &lt;b&gt;'
    """
    parts = _CODE_SPAN.split(str(v).replace("\r", " ").replace("\n", " "))
    return "".join(f"`{p}`" if i % 2 else _md_cell(p) for i, p in enumerate(parts))


def _md_table(t: Table) -> str:
    lines = []
    if t.caption:
        lines += [f"*{_md_cell(t.caption)}*", ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in t.columns) + " |")
    lines.append("|" + "|".join("---" for _ in t.columns) + "|")
    hi = set(t.highlight)
    for i, row in enumerate(t.rows):
        cells = [_md_cell(v) for v in row]
        if i in hi and cells:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(report: Report, assets: dict[str, bytes] | None = None, asset_dir: str = "report_files") -> str:
    """The report as Markdown, with the same sections (``<a id="...">`` anchors, ``##`` headings).

    Parameters
    ----------
    report : Report
    assets : dict, optional
        None (default): images are embedded as ``data:`` URIs (one self-contained string;
        some viewers, GitHub's among them, do not show those). A dict: images are linked as
        ``asset_dir/<name>`` and the dict receives ``{"asset_dir/<name>": bytes}`` for the
        caller to write beside the Markdown file (:func:`~finetune_advisor.report.write_report` does).
    asset_dir : str, default="report_files"
        Relative folder for the linked images.

    Returns
    -------
    str
    """
    def src(f: Figure) -> str:
        if assets is None:
            return f.data_uri()
        rel = f"{asset_dir}/{f.name}"
        assets[rel] = f.data
        return rel

    # every text below may come from the dataset (class names, paths): through _md_cell or _md_rich
    lines = [f"# {_md_cell(report.title)}", "", f"{_md_cell(report.dataset)} · generated {_md_cell(report.created)} "
                                                f"by finetune-advisor {_md_cell(report.version)}", ""]
    lines += [f"- **{_md_cell(k)}**: {_md_cell(v)}" for k, v in report.summary.items()]
    lines += ["", " · ".join(f"[{_md_cell(s.title)}](#{html.escape(s.id)})" for s in report.sections), ""]
    for s in report.sections:
        lines += [f'<a id="{html.escape(s.id)}"></a>', "", f"## {_md_cell(s.title)}", ""]
        if s.facts:
            lines += [f"- **{_md_cell(k)}**: {_md_cell(v)}" for k, v in s.facts.items()] + [""]
        for n in s.notes:
            lines += [_md_rich(n), ""]
        for f in s.figures:
            lines += [f"![{_md_cell(f.alt or f.caption)}]({src(f)})", ""]
            if f.caption:
                lines += [f"*{_md_cell(f.caption)}*", ""]
        if s.galleries:
            lines += ["| class | samples |", "|---|---|"]
            for g in s.galleries:
                imgs = " ".join(f"![{_md_cell(im.alt)}]({src(im)})" for im in g.images)
                lines.append(f"| {_md_cell(g.label)}{' — ' + _md_cell(g.note) if g.note else ''} | {imgs} |")
            lines.append("")
        for t in s.tables:
            lines += [_md_table(t), ""]
        for heading, items in s.lists.items():
            lines += [f"### {_md_cell(heading)}", ""] + [f"- {_md_rich(b)}" for b in items] + [""]
    return "\n".join(lines).rstrip() + "\n"
