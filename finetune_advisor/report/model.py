"""The report's data model: a :class:`Report` is a list of :class:`Section` s holding plain data
(facts, :class:`Table` s, :class:`Figure` s as encoded bytes, thumbnail :class:`Gallery` s, bullet
lists), which the renderers turn into HTML or Markdown and :meth:`Report.to_dict` into JSON."""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from .._io import to_jsonable
from ..exceptions import FinetuneAdvisorError

__all__ = ["SECTION_IDS", "FORMATS", "ReportInputError", "Figure", "Table", "Gallery", "Section", "Report"]

# Stable: used as HTML ids, Markdown anchors and JSON keys.
SECTION_IDS = ("config", "profile", "similarity", "lr-finder", "training", "benchmark", "tune", "warnings")
FORMATS = ("html", "md")


class ReportInputError(FinetuneAdvisorError):
    """An input of the report (``--run``, ``--bench`` folder) is missing or unusable."""


@dataclass
class Figure:
    """An encoded image. ``name`` is a file name (unique within a report)."""

    name: str
    data: bytes
    mime: str = "image/png"
    caption: str = ""
    alt: str = ""

    def data_uri(self) -> str:
        return f"data:{self.mime};base64," + base64.b64encode(self.data).decode("ascii")

    def to_dict(self, include_images: bool = False) -> dict[str, Any]:
        d = {"name": self.name, "mime": self.mime, "caption": self.caption, "bytes": len(self.data)}
        if include_images:
            d["data_uri"] = self.data_uri()
        return d


@dataclass
class Table:
    """Rows of display values (strings or numbers). ``highlight``: row indices to emphasise."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    highlight: list[int] = field(default_factory=list)
    css_class: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"caption": self.caption, "columns": list(self.columns), "rows": [list(r) for r in self.rows],
                "highlight": list(self.highlight)}


@dataclass
class Gallery:
    """Thumbnails of one class (or group)."""

    label: str
    images: list[Figure]
    note: str = ""

    def to_dict(self, include_images: bool = False) -> dict[str, Any]:
        return {"label": self.label, "note": self.note,
                "images": [im.to_dict(include_images) for im in self.images]}


@dataclass
class Section:
    """One part of the report. Everything is optional except ``id`` and ``title``.

    ``facts`` are label -> display string; ``data`` is the raw, JSON-friendly data behind the
    section (what ``--json`` prints); ``notes`` are paragraphs (plain text); ``lists`` are
    titled bullet lists (title -> items). ``available=False``: the section's input was not
    given, and its notes say how to provide it.
    """

    id: str
    title: str
    notes: list[str] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    galleries: list[Gallery] = field(default_factory=list)
    lists: dict[str, list[str]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    available: bool = True

    def to_dict(self, include_images: bool = False) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "available": self.available, "notes": list(self.notes),
                "facts": dict(self.facts), "tables": [t.to_dict() for t in self.tables],
                "figures": [f.to_dict(include_images) for f in self.figures],
                "galleries": [g.to_dict(include_images) for g in self.galleries],
                "lists": {k: list(v) for k, v in self.lists.items()}, "data": to_jsonable(self.data)}


@dataclass
class Report:
    """A built report: a title, a few summary items and the sections in :data:`SECTION_IDS` order."""

    title: str
    dataset: str
    created: str
    version: str
    summary: dict[str, str]
    sections: list[Section]

    def section(self, section_id: str) -> Section:
        """The section with ``section_id`` (KeyError when absent)."""
        for s in self.sections:
            if s.id == section_id:
                return s
        raise KeyError(section_id)

    def figures(self) -> list[Figure]:
        """Every image in the report, galleries included."""
        out = []
        for s in self.sections:
            out += s.figures
            for g in s.galleries:
                out += g.images
        return out

    def to_dict(self, include_images: bool = False) -> dict[str, Any]:
        """JSON-friendly. Image bytes are left out (name, caption, size only) unless
        ``include_images``, which adds each image as a ``data_uri``."""
        return {"title": self.title, "dataset": self.dataset, "created": self.created, "version": self.version,
                "summary": dict(self.summary),
                "sections": {s.id: s.to_dict(include_images) for s in self.sections}}

    def to_json(self, include_images: bool = False, **kwargs: Any) -> str:
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(include_images), allow_nan=False, **kwargs)
