"""Render a :class:`~finetune_advisor.report.model.Report` as ONE self-contained HTML page:
the CSS (``style.css``) inline, every image a base64 ``data:`` URI, no JavaScript and no
external URL of any kind, so it opens offline and can be mailed around."""
from __future__ import annotations

import html
import re
from importlib import resources
from typing import Any

from ..study import SIMILARITY_THRESHOLD
from .model import Figure, Report, Section, Table

_URL_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(?=//)")
_CODE_SPAN = re.compile(r"`([^`]+)`")
_FOOTER = ("Similarity: Cui et al. (CVPR 2018) EMD to Tiny-ImageNet class means, as in the Fellowship.AI "
           "fastai hyper-parameter study (threshold {threshold}). Learning-rate rules: the study and "
           "Overture's guide.")


def stylesheet() -> str:
    """The report's CSS (``report/style.css``, shipped as package data)."""
    return resources.files(__package__).joinpath("style.css").read_text(encoding="utf-8")


def _esc(text: Any) -> str:
    """HTML-escaped text in which ``scheme://`` cannot form a URL (the colon becomes ``&#58;``).

    >>> _esc("see https://example.org <now>")
    'see https&#58;//example.org &lt;now&gt;'
    """
    return _URL_SCHEME.sub(r"\1&#58;", html.escape(str(text), quote=True))


def _esc_rich(text: Any) -> str:
    """Like :func:`_esc`, with `backtick` spans as <code>."""
    return _CODE_SPAN.sub(r"<code>\1</code>", _esc(text))


def _html_table(t: Table) -> str:
    cls = f' class="{_esc(t.css_class)}"' if t.css_class else ""
    out = [f"<table{cls}>"]
    if t.caption:
        out.append(f"<caption>{_esc(t.caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{_esc(c)}</th>" for c in t.columns) + "</tr></thead><tbody>")
    hi = set(t.highlight)
    for i, row in enumerate(t.rows):
        attr = ' class="hi"' if i in hi else ""
        out.append(f"<tr{attr}>" + "".join(f"<td>{_esc(v)}</td>" for v in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _html_figure(f: Figure) -> str:
    cap = f"<figcaption>{_esc(f.caption)}</figcaption>" if f.caption else ""
    return f'<figure><img src="{f.data_uri()}" alt="{_esc(f.alt or f.caption or f.name)}">{cap}</figure>'


def _html_section(s: Section) -> str:
    cls = "" if s.available else ' class="unavailable"'
    out = [f'<section id="{_esc(s.id)}"{cls}>', f"<h2>{_esc(s.title)}</h2>"]
    if s.facts:
        out.append('<dl class="facts">' + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>"
                                                   for k, v in s.facts.items()) + "</dl>")
    for n in s.notes:
        out.append(f'<p class="note">{_esc_rich(n)}</p>')
    if len(s.figures) > 1 and s.id == "profile":  # bar chart and resolution scatter side by side
        out.append('<div class="figrow">' + "".join(_html_figure(f) for f in s.figures) + "</div>")
    else:
        out.extend(_html_figure(f) for f in s.figures)
    if s.galleries:
        out.append('<div class="gallery">')
        for g in s.galleries:
            imgs = "".join(f'<img src="{im.data_uri()}" alt="{_esc(im.alt)}" title="{_esc(im.alt)}">'
                           for im in g.images)
            note = f" <small>{_esc(g.note)}</small>" if g.note else ""
            out.append(f'<div><div class="cls">{_esc(g.label)}{note}</div><div class="thumbs">{imgs}</div></div>')
        out.append("</div>")
    for t in s.tables:
        out.append(_html_table(t))
    for heading, items in s.lists.items():
        out.append(f"<h3>{_esc(heading)}</h3>")
        out.append('<ul class="advice">' + "".join(f"<li>{_esc_rich(b)}</li>" for b in items) + "</ul>")
    out.append("</section>")
    return "\n".join(out)


def render_html(report: Report) -> str:
    """One self-contained HTML page: inline CSS, images as ``data:`` URIs, no script, no external URL.

    Parameters
    ----------
    report : Report

    Returns
    -------
    str
    """
    cards = "".join(f'<div class="card"><div class="k">{_esc(k)}</div><div class="v">{_esc(v)}</div></div>'
                    for k, v in report.summary.items())
    toc = "".join(f'<a href="#{_esc(s.id)}">{_esc(s.title)}</a>' for s in report.sections)
    body = "\n".join(_html_section(s) for s in report.sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_esc(report.title)}</title>\n<style>\n{stylesheet()}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{_esc(report.title)}</h1>"
        f"<p class=\"meta\">{_esc(report.dataset)} · generated {_esc(report.created)} by finetune-advisor "
        f"{_esc(report.version)}</p>"
        f"<div class=\"cards\">{cards}</div><nav class=\"toc\">{toc}</nav></header>\n"
        f"{body}\n"
        f"<footer>{_FOOTER.format(threshold=SIMILARITY_THRESHOLD)}</footer>\n</main>\n</body>\n</html>\n")
