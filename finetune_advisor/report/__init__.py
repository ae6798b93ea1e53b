"""One self-contained report of a recommendation: config, dataset, similarity, LR finder,
training run, benchmark, tuning, warnings.

:func:`build_report` turns a :class:`~finetune_advisor.recommend.Recommendation` (plus,
optionally, a ``finetune-advisor train`` output folder, a benchmark folder and a
``finetune-advisor tune`` folder) into a
:class:`Report`: a list of :class:`Section` s holding plain data -- facts, tables, figures
(PNG/JPEG bytes), thumbnail galleries and bullet lists. Renderers turn it into text:

* :func:`render_html` -- ONE HTML file: inline CSS, every image a base64 ``data:`` URI, no
  JavaScript and no external URL of any kind, so it opens offline and can be mailed around;
* :func:`render_markdown` -- the same sections as Markdown. Images are ``data:`` URIs by
  default (one self-contained string); pass ``assets={}`` to get relative links instead, the
  dict then receives ``{relative_path: bytes}`` to write beside the file. :func:`write_report`
  with ``format="md"`` does the latter: ``report.md`` plus a ``report_files/`` folder;
* :meth:`Report.to_dict` -- JSON-friendly data (image bytes left out unless asked for).

Modules: ``model`` (the data model), ``build`` (assembly), ``sections`` / ``dataset`` /
``outputs`` (one function per section), ``figures`` (plot data, then drawing), ``html``
(+ ``style.css``), ``markdown``, ``write``.

Section ids (stable: used as HTML ids, Markdown anchors and JSON keys): ``config``,
``profile``, ``similarity``, ``lr-finder``, ``training``, ``benchmark``, ``tune``, ``warnings``. Every
section is always present; a section without its input says what is missing and how to
provide it.

>>> from finetune_advisor.report import SECTION_IDS
>>> SECTION_IDS
('config', 'profile', 'similarity', 'lr-finder', 'training', 'benchmark', 'tune', 'warnings')
"""
from .build import build_report, load_recommendation
from .dataset import MAX_GALLERY_CLASSES, THUMBS_PER_CLASS  # noqa: F401  (tests and callers size galleries by them)
from .html import render_html
from .markdown import render_markdown
from .model import FORMATS, SECTION_IDS, Figure, Gallery, Report, ReportInputError, Section, Table
from .write import write_report

__all__ = [
    "build_report", "load_recommendation", "render_html", "render_markdown", "write_report",
    "Report", "Section", "Figure", "Table", "Gallery", "ReportInputError", "SECTION_IDS", "FORMATS",
]
