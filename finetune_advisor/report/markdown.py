"""Render a :class:`~finetune_advisor.report.model.Report` as Markdown, with the same sections
(``<a id="...">`` anchors, ``##`` headings); images embedded as ``data:`` URIs or linked files."""
from __future__ import annotations

from typing import Any

from .model import Figure, Report, Table


def _md_cell(v: Any) -> str:
    r"""
    >>> _md_cell("a|b\nc")
    'a\\|b c'
    """
    return str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


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

    lines = [f"# {report.title}", "", f"{report.dataset} · generated {report.created} by finetune-advisor "
                                      f"{report.version}", ""]
    lines += [f"- **{k}**: {v}" for k, v in report.summary.items()]
    lines += ["", " · ".join(f"[{s.title}](#{s.id})" for s in report.sections), ""]
    for s in report.sections:
        lines += [f'<a id="{s.id}"></a>', "", f"## {s.title}", ""]
        if s.facts:
            lines += [f"- **{k}**: {_md_cell(v)}" for k, v in s.facts.items()] + [""]
        for n in s.notes:
            lines += [n, ""]
        for f in s.figures:
            lines += [f"![{f.alt or f.caption}]({src(f)})", ""]
            if f.caption:
                lines += [f"*{f.caption}*", ""]
        if s.galleries:
            lines += ["| class | samples |", "|---|---|"]
            for g in s.galleries:
                imgs = " ".join(f"![{_md_cell(im.alt)}]({src(im)})" for im in g.images)
                lines.append(f"| {_md_cell(g.label)}{' — ' + _md_cell(g.note) if g.note else ''} | {imgs} |")
            lines.append("")
        for t in s.tables:
            lines += [_md_table(t), ""]
        for heading, items in s.lists.items():
            lines += [f"### {heading}", ""] + [f"- {b}" for b in items] + [""]
    return "\n".join(lines).rstrip() + "\n"
