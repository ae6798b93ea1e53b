"""One self-contained report of a recommendation: config, dataset, similarity, LR finder,
training run, benchmark, warnings.

:func:`build_report` turns a :class:`~finetune_advisor.recommend.Recommendation` (plus,
optionally, a ``finetune-advisor train`` output folder and a benchmark folder) into a
:class:`Report`: a list of :class:`Section` s holding plain data -- facts, tables, figures
(PNG/JPEG bytes), thumbnail galleries and bullet lists. Renderers turn it into text:

* :func:`render_html` -- ONE HTML file: inline CSS, every image a base64 ``data:`` URI, no
  JavaScript and no external URL of any kind, so it opens offline and can be mailed around;
* :func:`render_markdown` -- the same sections as Markdown. Images are ``data:`` URIs by
  default (one self-contained string); pass ``assets={}`` to get relative links instead, the
  dict then receives ``{relative_path: bytes}`` to write beside the file. :func:`write_report`
  with ``format="md"`` does the latter: ``report.md`` plus a ``report_files/`` folder;
* :meth:`Report.to_dict` -- JSON-friendly data (image bytes left out unless asked for).

Section ids (stable: used as HTML ids, Markdown anchors and JSON keys): ``config``,
``profile``, ``similarity``, ``lr-finder``, ``training``, ``benchmark``, ``warnings``. Every
section is always present; a section without its input says what is missing and how to
provide it.

>>> from finetune_advisor.report import SECTION_IDS
>>> SECTION_IDS
('config', 'profile', 'similarity', 'lr-finder', 'training', 'benchmark', 'warnings')
"""
from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from ._io import atomic_open
from .config import DECISION_FIELDS, Config
from .exceptions import ConfigError, FinetuneAdvisorError

log = logging.getLogger(__name__)

__all__ = [
    "SECTION_IDS", "REFERENCE_DATASETS", "FORMATS", "ReportInputError", "Figure", "Table", "Gallery",
    "Section", "Report", "build_report", "load_recommendation", "render_html", "render_markdown",
    "write_report",
]

SECTION_IDS = ("config", "profile", "similarity", "lr-finder", "training", "benchmark", "warnings")
FORMATS = ("html", "md")

#: The study's seven datasets and their published similarity to ImageNet (ResNet-34 features).
REFERENCE_DATASETS: Mapping[str, float] = {
    "Amazon": 0.817, "Cancer": 0.604, "DOTA": 0.829, "Draw": 0.581,
    "Pets": 0.702, "Protein": 0.819, "X-Ray": 0.813,
}

MAX_HEADER_READS = 500          # image headers read for the resolution plot
MAX_GALLERY_CLASSES = 12        # sample-image grid: classes shown ...
THUMBS_PER_CLASS = 4            # ... and thumbnails per class
THUMB_SIZE = 64                 # px, longest side
THUMB_QUALITY = 80              # JPEG quality
MAX_MATCH_ROWS = 60             # nearest-reference-class table
MAX_TABLE_ROWS = 40             # history / regret tables
_FEW_PER_CLASS = 35             # Overture: 20 train + 15 valid images per label
_DPI = 100


class ReportInputError(FinetuneAdvisorError):
    """An input of the report (``--run``, ``--bench`` folder) is missing or unusable."""


# --- data model ---------------------------------------------------------------------------

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
    titled bullet lists (title -> items).
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
                "lists": {k: list(v) for k, v in self.lists.items()}, "data": _jsonable(self.data)}


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


# --- building -----------------------------------------------------------------------------

def build_report(rec: Any, *, run_dir: str | os.PathLike | None = None,
                 bench: str | os.PathLike | None = None, title: str | None = None,
                 seed: int = 0) -> Report:
    """Gather everything a report shows, from a recommendation and optional run/bench folders.

    Parameters
    ----------
    rec : Recommendation
        From :func:`finetune_advisor.recommend.advise` or :func:`load_recommendation`. Only
        ``rec.config`` and ``rec.profile`` are required; ``dataset`` (sample images, skipped
        files), ``similarity`` and ``lr_finder`` are used when present, else the numbers in
        ``config.measurements``.
    run_dir : path, optional
        A ``finetune-advisor train --out`` folder (``curves.png`` or ``history.csv``,
        ``result.json``).
    bench : path, optional
        A benchmark output folder holding ``heatmap.png`` and ``regret.csv`` (or ``regret.json``).
    title : str, optional
        Default: "Fine-tuning report: <dataset folder name>".
    seed : int, default=0
        Which images are sampled for thumbnails and headers.

    Returns
    -------
    Report

    Raises
    ------
    ReportInputError
        ``run_dir`` or ``bench`` is not a folder, or ``run_dir`` holds no training output.

    Examples
    --------
    >>> rec = advise("pets/", similarity=False)                  # doctest: +SKIP
    >>> html_text = render_html(build_report(rec))               # doctest: +SKIP
    """
    from . import __version__

    run_path = _check_folder(run_dir, "--run", "training run folder (from `finetune-advisor train --out DIR`)")
    bench_path = _check_folder(bench, "--bench", "benchmark folder (holding heatmap.png and regret.csv)")
    config: Config = rec.config
    profile = rec.profile
    similarity = _similarity_of(rec)
    lr_info = _lr_of(rec)
    run = _read_run(run_path) if run_path is not None else None

    sections = [
        _config_section(config),
        _profile_section(rec, config, seed),
        _similarity_section(similarity, config, _dataset_name(profile)),
        _lr_section(lr_info, config, similarity),
        _training_section(run, config),
        _bench_section(bench_path),
    ]
    sections.append(_warnings_section(rec, config, similarity, lr_info, run))
    return Report(title=title or f"Fine-tuning report: {_dataset_name(profile)}",
                  dataset=str(getattr(profile, "root", "") or ""),
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"), version=__version__,
                  summary=_summary(config, similarity, lr_info, profile), sections=sections)


def load_recommendation(config_path: str | os.PathLike, dataset_path: str | os.PathLike, **read_kwargs: Any):
    """A :class:`~finetune_advisor.recommend.Recommendation` from a saved Config JSON plus the dataset.

    The dataset is read and profiled again (headers only) for the profile and the sample
    images; the similarity and LR-finder numbers come from ``config.measurements``.

    Raises
    ------
    ConfigError
        The file is missing, unreadable or not a valid Config.
    DatasetError
        The dataset cannot be read.
    """
    from . import data
    from .recommend import Recommendation

    path = Path(config_path)
    if not path.is_file():
        raise ConfigError("config file not found", path=path,
                          hint="write one with `finetune-advisor recommend DATASET --out config.json`")
    try:
        config = Config.from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", path=path) from None
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path, hint=exc.hint) from None
    dataset = data.read_dataset(dataset_path, **{k: v for k, v in read_kwargs.items() if v is not None})
    profile = data.profile_dataset(dataset)
    return Recommendation(config=config, profile=profile, dataset=dataset,
                          similarity=_similarity_from_measurements(config), lr_finder=None)


def _check_folder(path: str | os.PathLike | None, flag: str, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_dir():
        found = "a file" if p.exists() else "nothing"
        raise ReportInputError(f"{flag}: expected a {what}, found {found}", path=p,
                               hint=f"pass an existing folder to {flag}, or leave {flag} out")
    return p


# --- measurements: live objects or config.measurements ------------------------------------

def _similarity_from_measurements(config: Config) -> Any:
    m = config.measurements.get("similarity")
    if isinstance(m, Mapping):
        try:
            from .similarity import SimilarityResult
            return SimilarityResult.from_dict(m)
        except Exception:  # noqa: BLE001 -- an older/newer layout: keep the numbers we know
            return _SimpleNamespace(m)
    return None


class _SimpleNamespace:
    """Attribute access over a measurements dict, with None for what is missing."""

    def __init__(self, d: Mapping[str, Any]):
        self.__dict__.update(d)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _similarity_of(rec: Any) -> Any:
    """The SimilarityResult-like object, or a namespace with just the score, or None."""
    if getattr(rec, "similarity", None) is not None:
        return rec.similarity
    sim = _similarity_from_measurements(rec.config)
    if sim is not None:
        return sim
    score = rec.config.measurements.get("similarity")
    if isinstance(score, (int, float)):
        thr = rec.config.measurements.get("similarity_threshold", 0.72)
        return _SimpleNamespace({"similarity": float(score), "threshold": float(thr),
                                 "far": rec.config.measurements.get("far", score < thr)})
    return None


@dataclass
class _LRInfo:
    result: Any = None                      # LRFinderResult (has the curve) or None
    numbers: dict[str, Any] = field(default_factory=dict)

    @property
    def lr(self) -> float | None:
        if self.result is not None:
            return float(self.result.lr)
        v = self.numbers.get("lr", None)
        return None if v is None else float(v)


def _lr_of(rec: Any) -> _LRInfo:
    if getattr(rec, "lr_finder", None) is not None:
        r = rec.lr_finder
        return _LRInfo(result=r, numbers={k: v for k, v in r.to_dict().items()
                                          if k not in ("lrs", "losses_raw", "losses_smooth")})
    m = rec.config.measurements.get("lr_finder")
    if isinstance(m, Mapping):
        if {"lrs", "losses_raw", "losses_smooth"} <= set(m):
            try:
                from .lr_finder import LRFinderResult
                r = LRFinderResult.from_dict(m)
                return _LRInfo(result=r, numbers={k: v for k, v in m.items()
                                                  if k not in ("lrs", "losses_raw", "losses_smooth")})
            except Exception:  # noqa: BLE001
                pass
        return _LRInfo(numbers=dict(m))
    if rec.config.measurements.get("lr_find") is not None:
        return _LRInfo(numbers={"lr": float(rec.config.measurements["lr_find"])})
    return _LRInfo()


def _is_far(similarity: Any, config: Config) -> bool | None:
    """Far from ImageNet? From the result, else the config's measurements; None: not measured."""
    if similarity is not None and getattr(similarity, "far", None) is not None:
        return bool(similarity.far)
    far = config.measurements.get("far")
    if far is not None:
        return bool(far)
    score = getattr(similarity, "similarity", None) if similarity is not None else None
    if score is None:
        return None
    thr = getattr(similarity, "threshold", None) or config.measurements.get("similarity_threshold", 0.72)
    return float(score) < float(thr)


# --- section 1: config --------------------------------------------------------------------

def _fmt_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 0.01 or abs(value) >= 1e5:
            return f"{value:.2e}"
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt_value(v) for v in value) + ")"
    if dataclasses.is_dataclass(value):
        return ", ".join(f"{k}={_fmt_value(v)}" for k, v in dataclasses.asdict(value).items())
    return str(value)


def _config_section(config: Config) -> Section:
    defaults = Config.study_defaults()
    rows, highlight = [], []
    for i, name in enumerate(DECISION_FIELDS):
        value, default = getattr(config, name), getattr(defaults, name)
        if dataclasses.is_dataclass(value):
            dv, vv = dataclasses.asdict(default), dataclasses.asdict(value)
            differs = dv != vv
            default_text = ", ".join(f"{k}={_fmt_value(dv[k])}" for k in dv if dv[k] != vv[k]) if differs else ""
        else:
            differs = value != default
            default_text = _fmt_value(default) if differs else ""
        if differs:
            highlight.append(i)
        rows.append([name, _fmt_value(value), config.reasons.get(name, ""), default_text])
    n_diff = len(highlight)
    table = Table(["field", "value", "reason", "study default (where different)"], rows,
                  caption=f"{len(DECISION_FIELDS)} decisions; {n_diff} differ from the study's defaults "
                          f"(Table 1: ResNet-34, 224 px, bs 64, wd 0.1, beta2 0.99, 5 + 15 epochs)",
                  highlight=highlight, css_class="config")
    notes = ["Each decision with the rule that made it. Highlighted rows differ from the study's "
             "defaults; the default is shown beside them (for augmentation: only the settings that differ)."]
    return Section("config", "Recommended configuration", notes=notes, tables=[table],
                   data={"config": config.to_dict(), "study_defaults_differ": [DECISION_FIELDS[i] for i in highlight]})


# --- section 2: dataset profile ------------------------------------------------------------

def _profile_section(rec: Any, config: Config, seed: int) -> Section:
    prof = rec.profile
    dataset = rec.dataset if getattr(rec, "dataset", None) is not None else _reread(prof)
    counts = {str(k): int(v) for k, v in dict(prof.images_per_class).items()}
    res = dict(prof.resolution or {})
    kind = "multi-label" if prof.multi_label else "single-label"
    facts = {
        "folder": str(prof.root),
        "layout": f"{prof.layout}, {kind}",
        "images": f"{prof.n_images:,}" + (f" ({prof.n_valid:,} in a fixed validation split)" if prof.n_valid else ""),
        "classes": f"{prof.n_classes:,}",
        "images per class": f"median {_fmt_num(prof.median_images_per_class)}, min {prof.min_images_per_class:,}, "
                            f"max {prof.max_images_per_class:,}",
        "imbalance SD": f"{prof.imbalance_sd:.1f} images per class (population SD, the study's Table 2 measure)",
    }
    if prof.multi_label:
        facts["labels per image"] = f"{prof.mean_labels_per_image:.2f} on average"
    if _finite(res.get("mean_w")):
        facts["resolution"] = (f"mean {res['mean_w']:.0f}×{res['mean_h']:.0f}, median {res['median_w']:.0f}×"
                               f"{res['median_h']:.0f}, min {res['min_w']:.0f}×{res['min_h']:.0f}, "
                               f"max {res['max_w']:.0f}×{res['max_h']:.0f} px "
                               f"({prof.n_headers_read:,} headers read)")
    facts["unreadable images"] = f"{prof.n_corrupt:,}"
    figures = []
    if counts:
        figures.append(_class_count_figure(counts, prof.imbalance_sd))
    sizes: list[tuple[int, int]] = []
    header_failures = 0
    if dataset is not None and len(dataset):
        sizes, header_failures = _sample_sizes(dataset, seed)
        if sizes:
            figures.append(_resolution_figure(sizes, config.image_size, len(dataset)))
    galleries, gallery_note = ([], "") if dataset is None else _galleries(dataset, seed)
    notes = []
    if dataset is None:
        notes.append("The dataset could not be re-read, so there is no resolution plot and no sample images.")
    if gallery_note:
        notes.append(gallery_note)
    skipped = dict(prof.skipped or {})
    examples = dict(getattr(dataset, "skipped_examples", {}) or {}) if dataset is not None else {}
    if prof.n_corrupt and "unreadable image" in skipped:
        examples.setdefault("unreadable image", tuple(prof.corrupt_examples))
    tables = []
    if any(skipped.values()):
        rows = [[reason, n, ", ".join(examples.get(reason, ())[:3])] for reason, n in sorted(skipped.items()) if n]
        tables.append(Table(["reason", "files", "examples"], rows, caption="Files skipped or unreadable, by reason",
                            css_class="skipped"))
    else:
        notes.append("No files were skipped and every image header could be read.")
    data = {"profile": _profile_dict(prof), "resolution_sample": [list(s) for s in sizes],
            "resolution_sample_failures": header_failures, "skipped": skipped,
            "skipped_examples": {k: list(v) for k, v in examples.items()},
            "gallery": {g.label: [im.name for im in g.images] for g in galleries}}
    return Section("profile", "Dataset profile", notes=notes, facts=facts, tables=tables, figures=figures,
                   galleries=galleries, data=data)


def _reread(prof: Any) -> Any:
    """The dataset behind a profile (only when the Recommendation came without one)."""
    try:
        from .data import read_dataset
        return read_dataset(prof.root, layout=prof.layout)
    except Exception as exc:  # noqa: BLE001 -- the report still works without it
        log.warning("cannot re-read %s for sample images: %s", prof.root, exc)
        return None


def _profile_dict(prof: Any) -> dict[str, Any]:
    d = dataclasses.asdict(prof) if dataclasses.is_dataclass(prof) else dict(vars(prof))
    return _jsonable(d)


def _sample_items(items: Sequence[Any], k: int, seed: int) -> list[Any]:
    import numpy as np

    if len(items) <= k:
        return list(items)
    idx = np.sort(np.random.default_rng(seed).choice(len(items), k, replace=False))
    return [items[i] for i in idx]


def _header_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as img:  # lazy: reads the header only
        w, h = img.size
        if img.format in ("JPEG", "MPO", "WEBP", "TIFF") and img.getexif().get(0x0112) in (5, 6, 7, 8):
            w, h = h, w
    return int(w), int(h)


def _sample_sizes(dataset: Any, seed: int) -> tuple[list[tuple[int, int]], int]:
    import warnings

    sizes, failures = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for item in _sample_items(dataset.items, MAX_HEADER_READS, seed):
            try:
                sizes.append(_header_size(item.path))
            except Exception:  # noqa: BLE001 -- counted, shown in the profile already
                failures += 1
    return sizes, failures


def _galleries(dataset: Any, seed: int) -> tuple[list[Gallery], str]:
    """A few thumbnails per class, for at most MAX_GALLERY_CLASSES classes spread over the sizes."""
    import numpy as np

    from .data import load_image

    counts = dataset.class_counts()
    order = sorted(counts, key=lambda c: (-counts[c], c))  # largest first
    if len(order) > MAX_GALLERY_CLASSES:
        picks = np.unique(np.linspace(0, len(order) - 1, MAX_GALLERY_CLASSES).round().astype(int))
        shown = [order[i] for i in picks]
        note = (f"Sample images for {len(shown)} of {len(order)} classes, spread from the largest class to the "
                f"smallest; {THUMBS_PER_CLASS} random images each.")
    else:
        shown = order
        note = ""
    by_class: dict[str, list[Any]] = {c: [] for c in shown}
    for item in dataset.items:
        for label in item.labels:
            if label in by_class:
                by_class[label].append(item)
    rng = np.random.default_rng(seed)
    galleries = []
    for ci, cls in enumerate(shown):
        items = by_class[cls]
        images, failed = [], 0
        for i in rng.permutation(len(items)):
            if len(images) == THUMBS_PER_CLASS or failed >= 2 * THUMBS_PER_CLASS:
                break
            try:
                img = load_image(items[i].path, size=THUMB_SIZE)
            except Exception:  # noqa: BLE001 -- unreadable: try the next one
                failed += 1
                continue
            img.thumbnail((THUMB_SIZE, THUMB_SIZE))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=THUMB_QUALITY, optimize=True)
            images.append(Figure(f"thumb_{ci:02d}_{len(images)}.jpg", buf.getvalue(), "image/jpeg",
                                 alt=f"{cls}: {Path(items[i].path).name}"))
        label = f"{cls} ({counts[cls]:,})"
        galleries.append(Gallery(label, images, note=f"{failed} unreadable" if failed else ""))
    return galleries, note


# --- figures ------------------------------------------------------------------------------

def _new_figure(w: float, h: float):
    from matplotlib.figure import Figure as MplFigure

    return MplFigure(figsize=(w, h), dpi=_DPI, layout="constrained")


def _png(fig, name: str, caption: str, alt: str = "") -> Figure:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return Figure(name, buf.getvalue(), "image/png", caption=caption, alt=alt or caption)


def _class_count_figure(counts: Mapping[str, int], sd: float) -> Figure:
    names = list(counts)
    values = [counts[c] for c in names]
    many = len(names) > 40
    if many:  # sorted, unlabelled bars read better than 200 unreadable names
        pairs = sorted(zip(values, names), reverse=True)
        values, names = [v for v, _ in pairs], [n for _, n in pairs]
    fig = _new_figure(6, 4)
    ax = fig.subplots()
    colors = ["#e8853d" if v < _FEW_PER_CLASS else "#4c72b0" for v in values]
    bars = ax.bar(range(len(values)), values, color=colors, width=0.7 if not many else 1.0)
    if len(values) <= 20:
        ax.bar_label(bars, [f"{v:,}" for v in values], fontsize=7, padding=2)
    ax.set_ylim(0, max(values) * 1.3 if max(values) else 1)
    mean = sum(values) / len(values)
    ax.axhline(mean, color="0.25", lw=1, ls="--", label=f"mean {mean:.0f}")
    ax.axhspan(max(mean - sd, 0), mean + sd, color="0.5", alpha=0.12, label=f"±1 SD ({sd:.1f})")
    if many:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(values)} classes, largest to smallest")
    else:
        ax.set_xticks(range(len(names)))
        tilt = len(names) > 6 or max(map(len, names)) > 8
        ax.set_xticklabels(names, rotation=45 if tilt else 0, ha="right" if tilt else "center",
                           rotation_mode="anchor", fontsize=8)
    ax.set_ylabel("images")
    ax.set_title(f"Images per class — imbalance SD {sd:.1f}", fontsize=10)
    if any(v < _FEW_PER_CLASS for v in values):
        from matplotlib.patches import Patch
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Patch(color="#e8853d"))
        labels.append(f"< {_FEW_PER_CLASS} images (Overture's minimum)")
        ax.legend(handles, labels, fontsize=7, loc="upper right")
    else:
        ax.legend(fontsize=7, loc="upper right")
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig, "images_per_class.png", f"Images per class; imbalance SD {sd:.1f}.",
                alt="bar chart of images per class")


def _resolution_figure(sizes: list[tuple[int, int]], train_size: int, n_total: int) -> Figure:
    from collections import Counter

    tally = Counter(sizes)
    ws = [w for w, _ in tally]
    hs = [h for _, h in tally]
    n = [tally[k] for k in tally]
    fig = _new_figure(5.2, 4)
    ax = fig.subplots()
    biggest = max(n)
    ax.scatter(ws, hs, s=[20 + 280 * (k / biggest) ** 0.5 for k in n], alpha=0.5, color="#4c72b0",
               edgecolor="white", linewidth=0.5, label="image size (area ∝ count)")
    ax.scatter([train_size], [train_size], marker="s", s=60, facecolor="none", edgecolor="#c44e52", linewidth=1.5,
               label=f"training size {train_size} px")
    lo = min(min(ws), min(hs), train_size)
    hi = max(max(ws), max(hs), train_size)
    pad = 0.08 * (hi - lo) if hi > lo else max(hi * 0.2, 4)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.7", lw=0.8, ls=":", zorder=0)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    if len(tally) <= 3:
        mid = (lo + hi) / 2
        for (w, h), k in tally.most_common(3):
            right = w > mid  # write the label towards the middle so it stays inside the axes
            ax.annotate(f"{w}×{h}: {k}", (w, h), textcoords="offset points", xytext=(-12 if right else 12, -14),
                        ha="right" if right else "left", fontsize=8)
    sample = f"{len(sizes):,} of {n_total:,} headers" if len(sizes) < n_total else f"all {n_total:,} headers"
    ax.set_title(f"Image resolution ({sample})", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", markerscale=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig, "resolution.png", f"Width × height of {sample}, with the recommended training size.",
                alt="scatter plot of image widths and heights")


def _spread_labels(xs: list[float], gap: float, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    """Label positions near ``xs`` (sorted ascending) at least ``gap`` apart, inside [lo, hi]."""
    out: list[float] = []
    for x in xs:
        out.append(max(x, out[-1] + gap) if out else x)
    # pull clusters back so they centre on their points, then re-enforce the gap
    groups, start = [], 0
    for i in range(1, len(out) + 1):
        if i == len(out) or out[i] - out[i - 1] > gap + 1e-9:
            groups.append((start, i))
            start = i
    for a, b in groups:
        shift = (sum(out[a:b]) - sum(xs[a:b])) / (b - a)
        for i in range(a, b):
            out[i] -= shift
    for i in range(len(out)):
        out[i] = max(out[i], lo, out[i - 1] + gap if i else lo)
    for i in range(len(out) - 1, -1, -1):
        out[i] = min(out[i], hi if i == len(out) - 1 else out[i + 1] - gap)
    return out


def _similarity_figure(score: float, threshold: float, ci: tuple[float, float] | None,
                       name: str) -> Figure:
    fig = _new_figure(9, 2.5)
    ax = fig.subplots()
    ax.axvspan(0, threshold, ymin=0.42, ymax=0.58, color="#f2c4c4")
    ax.axvspan(threshold, 1, ymin=0.42, ymax=0.58, color="#c9e6c9")
    ax.axvline(threshold, ymin=0.3, ymax=0.7, color="0.2", lw=1.5)
    ax.text(threshold, 0.74, f"threshold {threshold:.2f}", ha="center", va="bottom", fontsize=8, color="0.2")
    ax.text(0.01, 0.5, "far from ImageNet", ha="left", va="center", fontsize=8, color="#8b2e2e")
    ax.text(0.99, 0.5, "near", ha="right", va="center", fontsize=8, color="#2e6b2e")
    refs = sorted(REFERENCE_DATASETS.items(), key=lambda kv: kv[1])
    xs = [v for _, v in refs]
    label_x = _spread_labels(xs, gap=0.062, lo=0.03, hi=0.97)
    for (ref, v), lx in zip(refs, label_x):
        ax.plot([v, v], [0.42, 0.58], color="0.35", lw=1)
        ax.plot([v, lx], [0.42, 0.28], color="0.55", lw=0.7)
        ax.text(lx, 0.26, f"{ref}\n{v:.3f}", ha="center", va="top", fontsize=7, color="0.25")
    if ci is not None and all(_finite(c) for c in ci):
        ax.errorbar([score], [0.5], xerr=[[max(score - ci[0], 0)], [max(ci[1] - score, 0)]], fmt="none",
                    ecolor="#1f3d7a", elinewidth=2, capsize=5, zorder=4)
    ax.plot([score], [0.5], marker="D", markersize=9, color="#1f3d7a", zorder=5)
    ax.annotate(f"{name}: {score:.3f}", (score, 0.58), xytext=(0, 26), textcoords="offset points", ha="center",
                fontsize=9, fontweight="bold", color="#1f3d7a",
                arrowprops={"arrowstyle": "-", "color": "#1f3d7a", "lw": 0.8})
    ax.set_xlim(0, 1)
    ax.set_ylim(0.02, 0.95)
    ax.set_yticks([])
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.tick_params(axis="x", labelsize=8)
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.set_xlabel("similarity to ImageNet (1 − (EMD − class-count floor), Tiny-ImageNet class means)", fontsize=8)
    return _png(fig, "similarity.png",
                "Similarity on a 0–1 strip: the threshold, the study's seven datasets at their published values "
                "and this dataset (diamond) with its 95% bootstrap interval.",
                alt=f"similarity strip: {score:.3f} against threshold {threshold:.2f}")


# --- section 3: similarity -----------------------------------------------------------------

def _dataset_name(profile: Any) -> str:
    root = str(getattr(profile, "root", "") or "")
    return Path(root).name or root or "this dataset"


def _similarity_section(sim: Any, config: Config, name: str = "this dataset") -> Section:
    refs_text = ", ".join(f"{k} {v:.3f}" for k, v in sorted(REFERENCE_DATASETS.items(), key=lambda kv: kv[1]))
    if sim is None or getattr(sim, "similarity", None) is None:
        return Section("similarity", "Similarity to ImageNet", available=False, notes=[
            "Similarity was not measured for this recommendation, so the rules used the study's defaults "
            "for a near dataset. Measure it by running `finetune-advisor report` (or `recommend`) without "
            "--no-similarity; a reference for the backbone is built with `finetune-advisor reference build`.",
            f"The study's datasets for comparison: {refs_text} (threshold 0.72)."],
            data={"reference_datasets": dict(REFERENCE_DATASETS)})
    score = float(sim.similarity)
    threshold = sim.threshold if sim.threshold is not None else config.measurements.get("similarity_threshold", 0.72)
    threshold = float(threshold)
    far = _is_far(sim, config)
    far = score < threshold if far is None else far
    ci = (float(sim.ci_low), float(sim.ci_high)) if sim.ci_low is not None and sim.ci_high is not None else None
    facts = {"similarity": f"{score:.3f}",
             "verdict": ("FAR from ImageNet" if far else "near ImageNet") + f" (threshold {threshold:.2f})"}
    if ci is not None:
        facts["95% interval"] = f"{ci[0]:.3f} – {ci[1]:.3f}" + (
            f" (bootstrap SD {float(sim.std):.3f}, {int(sim.bootstrap_rounds)} rounds)"
            if sim.std is not None and sim.bootstrap_rounds else "")
    if sim.emd is not None:
        facts["raw EMD"] = f"{float(sim.emd):.4f}"
    if getattr(sim, "emd_floor", None):
        facts["class-count floor"] = (f"{float(sim.emd_floor):.4f} (the EMD ImageNet's own classes pay with "
                                      f"{int(sim.n_classes_used or 0)} classes; similarity = 1 − (EMD − floor))")
    if sim.backbone_key:
        facts["features"] = (f"{sim.backbone_key} at {sim.image_size} px, {sim.images_per_class} images per class "
                             f"averaged")
    if sim.n_images_embedded is not None:
        facts["images embedded"] = (f"{int(sim.n_images_embedded):,} from {int(sim.n_classes_used or 0):,} classes"
                                    + (" (a random subset of the classes)" if sim.class_subsampled else "")
                                    + (f"; {int(sim.n_failed)} failed to decode" if sim.n_failed else ""))
    if sim.reference_source:
        facts["reference"] = str(sim.reference_source)
    notes = []
    if ci is not None and ci[0] < threshold <= ci[1]:
        notes.append(f"The interval {ci[0]:.3f}–{ci[1]:.3f} contains the threshold {threshold:.2f}: the near/far "
                     "verdict is uncertain; consider trying both plans.")
    notes.append("Reference values are the study's (ResNet-34 features, full Tiny-ImageNet reference); scores from "
                 "another backbone, image size or images-per-class are only roughly comparable with them.")
    short = dict(getattr(sim, "short_classes", None) or {})
    if short:
        notes.append(f"{len(short)} class(es) had fewer images than the reference's {sim.images_per_class} per class "
                     f"and were averaged over fewer: " + ", ".join(f"{c} ({n})" for c, n in list(short.items())[:8])
                     + (" ..." if len(short) > 8 else ""))
    tables = []
    matches = dict(getattr(sim, "matches", None) or {})
    if matches:
        rows = []
        for cls, ms in list(matches.items())[:MAX_MATCH_ROWS]:
            cells = [f"{(rname or rid)} ({rid}) {float(cos):.3f}" if rname else f"{rid} {float(cos):.3f}"
                     for rid, rname, cos in ms]
            rows.append([cls] + cells + [""] * (3 - len(cells)))
        caption = "Nearest Tiny-ImageNet classes per dataset class (the classes it sends transport mass to; cosine)"
        if len(matches) > MAX_MATCH_ROWS:
            caption += f"; first {MAX_MATCH_ROWS} of {len(matches)} classes"
        tables.append(Table(["dataset class", "1st", "2nd", "3rd"], rows, caption=caption, css_class="matches"))
    data = {"similarity": sim.to_dict() if hasattr(sim, "to_dict") else {"similarity": score},
            "reference_datasets": dict(REFERENCE_DATASETS)}
    fig = _similarity_figure(score, threshold, ci, name)
    return Section("similarity", "Similarity to ImageNet", notes=notes, facts=facts, figures=[fig], tables=tables,
                   data=data)


# --- section 4: LR finder ------------------------------------------------------------------

def _lr_section(info: _LRInfo, config: Config, sim: Any) -> Section:
    far = _is_far(sim, config)
    if info.result is None and not info.numbers:
        return Section("lr-finder", "Learning-rate range test", available=False, notes=[
            "The LR range test was not run, so the head learning rate is Overture's default "
            f"{_fmt_value(config.lr)}. Run without --no-lr-finder to measure it."])
    facts = {}
    lr = info.lr
    if lr is not None:
        facts["steepest descent (smoothed)"] = f"{lr:.2e}"
    for key, label in (("fastai_valley", "fastai valley"), ("fastai_steep", "fastai steep")):
        v = info.numbers.get(key)
        facts[label] = "n/a" if v is None else f"{float(v):.2e}"
    facts["recommended head LR"] = f"{config.lr:.2e}" + (
        " (÷10: far from ImageNet, the study's rule)" if far and lr and not math.isclose(config.lr, lr, rel_tol=0.05)
        else "")
    facts["fine-tune LR"] = f"{config.lr_finetune:.2e} (body {config.lr_finetune / config.lr_divisor:.2e})"
    if info.numbers.get("loss_kind"):
        facts["loss recorded"] = f"{info.numbers['loss_kind']} loss, {info.numbers.get('n_steps', '?')} steps" + (
            ", stopped early (diverged)" if info.numbers.get("diverged") else "")
    figures, notes = [], []
    if info.result is not None:
        from .lr_finder import plot_lr_finder

        divided = config.lr if (far and lr and not math.isclose(config.lr, lr, rel_tol=0.05)) else None
        fig = _new_figure(7, 4)
        ax = fig.subplots()
        plot_lr_finder(info.result, ax=ax, divided_lr=divided)
        ax.set_title("LR range test (frozen body)", fontsize=10)
        caption = ("Loss against learning rate: raw and smoothed, the steepest-descent pick, fastai's valley/steep "
                   "suggestions" + (" and the recommended LR (÷10, far dataset)." if divided else "."))
        figures.append(_png(fig, "lr_finder.png", caption, alt="learning-rate range test curve"))
    else:
        notes.append("The loss curve is not stored in a saved config; run the report without --config to plot it.")
    return Section("lr-finder", "Learning-rate range test", notes=notes, facts=facts, figures=figures,
                   data={"lr_finder": info.result.to_dict() if info.result is not None else info.numbers})


# --- section 5: training run and benchmark ----------------------------------------------------

def _read_run(path: Path) -> dict[str, Any]:
    files = {name: path / name for name in ("config.json", "history.csv", "curves.png", "result.json")}
    present = {k: p for k, p in files.items() if p.is_file()}
    if not ({"history.csv", "curves.png", "result.json"} & set(present)):
        raise ReportInputError("--run: no training output here (expected history.csv, curves.png or result.json)",
                               path=path, hint="pass the folder given to `finetune-advisor train --out DIR`")
    run: dict[str, Any] = {"path": str(path), "files": sorted(present)}
    if "result.json" in present:
        try:
            run["result"] = json.loads(present["result.json"].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            run["problems"] = [f"result.json unreadable: {exc}"]
    if "history.csv" in present:
        try:
            import pandas as pd
            run["history"] = pd.read_csv(present["history.csv"])
        except Exception as exc:  # noqa: BLE001
            run.setdefault("problems", []).append(f"history.csv unreadable: {exc}")
    if "config.json" in present:
        try:
            run["config"] = Config.from_json(present["config.json"].read_text(encoding="utf-8"))
        except (OSError, FinetuneAdvisorError) as exc:
            run.setdefault("problems", []).append(f"config.json unreadable: {exc}")
    if "curves.png" in present:
        run["curves"] = present["curves.png"].read_bytes()
    return run


def _training_section(run: dict[str, Any] | None, config: Config) -> Section:
    if run is None:
        return Section("training", "Training run", available=False, notes=[
            "No training run given. Train with `finetune-advisor train DATASET --config config.json --out runs/x`, "
            "then add `--run runs/x` to the report command to show its curves and final metrics here."])
    notes = [f"From {run['path']} ({', '.join(run['files'])})."] + list(run.get("problems", []))
    facts: dict[str, str] = {}
    result = run.get("result") or {}
    history = run.get("history")
    final = dict(result.get("final_metrics") or {})
    if not final and history is not None and len(history):
        last = history.iloc[-1]
        final = {k: float(last[k]) for k in history.columns
                 if k not in ("epoch", "phase", "phase_epoch", "lr_body", "lr_head", "seconds", "train_loss")
                 and _is_number(last[k])}
    for k, v in final.items():
        facts[f"final {k.replace('_', ' ')}"] = f"{float(v):.4f}"
    baseline = result.get("baseline") or {}
    if baseline:
        value = float(baseline.get("value", float("nan")))
        facts["majority baseline"] = f"{baseline.get('metric', '')} {value:.4f}" + (
            f" (always '{baseline['prediction']}')" if isinstance(baseline.get("prediction"), str) else "")
    if "beats_baseline" in result:
        facts["beats baseline"] = "yes" if result["beats_baseline"] else "NO"
    for key, label in (("backbone", "backbone"), ("n_train", "training images"), ("n_valid", "validation images")):
        if key in result:
            facts[label] = str(result[key])
    if "wall_time_s" in result:
        facts["wall time"] = f"{float(result['wall_time_s']):.0f} s"
    figures = []
    if run.get("curves"):
        figures.append(Figure("curves.png", run["curves"], "image/png", caption="Loss and metric per epoch (curves.png "
                              "from the run); the dashed line marks the unfreeze.", alt="training curves"))
    elif history is not None and len(history):
        try:
            from .train import plot_history
            fig = plot_history(history, baseline=result.get("baseline") or None)
            figures.append(_png(fig, "curves.png", "Loss and metric per epoch, re-plotted from history.csv.",
                                alt="training curves"))
        except Exception as exc:  # noqa: BLE001 -- the table below still shows the numbers
            notes.append(f"could not plot history.csv: {exc}")
    tables = []
    if history is not None and len(history):
        cols = [c for c in history.columns if c not in ("lr_body", "lr_head")]
        rows = [[_fmt_cell(row[c]) for c in cols] for _, row in history.head(MAX_TABLE_ROWS).iterrows()]
        tables.append(Table(cols, rows, caption="history.csv" + (
            f" (first {MAX_TABLE_ROWS} of {len(history)} epochs)" if len(history) > MAX_TABLE_ROWS else ""),
            css_class="history"))
    run_cfg = run.get("config")
    if isinstance(run_cfg, Config):
        diff = [f for f in DECISION_FIELDS if getattr(run_cfg, f) != getattr(config, f)]
        if diff:
            notes.append("The run's config differs from the recommendation above in: " + ", ".join(
                f"{f} ({_fmt_value(getattr(run_cfg, f))})" for f in diff) + ".")
        else:
            notes.append("The run used exactly the recommended configuration.")
    for n in result.get("notes", []) or []:
        notes.append(f"run note: {n}")
    data = {"path": run["path"], "files": run["files"], "final_metrics": final, "baseline": baseline,
            "beats_baseline": result.get("beats_baseline"),
            "history": json.loads(history.to_json(orient="records")) if history is not None else []}
    return Section("training", "Training run", notes=notes, facts=facts, figures=figures, tables=tables, data=data)


def _bench_section(path: Path | None) -> Section:
    title = "Benchmark"
    if path is None:
        return Section("benchmark", title, available=False, notes=[
            "No benchmark given. Pass `--bench DIR` with a benchmark output folder (heatmap.png and regret.csv) "
            "to show how the recommended config ranks against the others tried."])
    notes, figures, tables = [f"From {path}."], [], []
    data: dict[str, Any] = {"path": str(path)}
    heat = path / "heatmap.png"
    if heat.is_file():
        figures.append(Figure("bench_heatmap.png", heat.read_bytes(), "image/png",
                              caption="Benchmark heatmap (heatmap.png).", alt="benchmark heatmap"))
    else:
        notes.append(f"No heatmap.png in {path}.")
    regret_csv, regret_json = path / "regret.csv", path / "regret.json"
    rows: list[list[Any]] = []
    columns: list[str] = []
    if regret_csv.is_file():
        with open(regret_csv, newline="", encoding="utf-8", errors="replace") as fh:
            reader = list(csv.reader(fh))
        if reader:
            columns, rows = reader[0], reader[1:]
    elif regret_json.is_file():
        try:
            obj = json.loads(regret_json.read_text(encoding="utf-8"))
        except ValueError as exc:
            notes.append(f"regret.json unreadable: {exc}")
            obj = None
        if isinstance(obj, Mapping):
            obj = [{"key": k, **(v if isinstance(v, Mapping) else {"value": v})} for k, v in obj.items()]
        if isinstance(obj, list) and obj and all(isinstance(r, Mapping) for r in obj):
            columns = list(dict.fromkeys(k for r in obj for k in r))
            rows = [[r.get(c, "") for c in columns] for r in obj]
    if columns:
        data["regret"] = [dict(zip(columns, r)) for r in rows]
        columns, cells = _compact_regret(columns, rows)
        tables.append(Table(columns, cells[:MAX_TABLE_ROWS],
                            caption="Regret" + (f" (first {MAX_TABLE_ROWS} of {len(rows)} rows)"
                                                if len(rows) > MAX_TABLE_ROWS else ""), css_class="regret"))
    else:
        notes.append(f"No regret.csv (or regret.json) in {path}.")
    return Section("benchmark", title, notes=notes, figures=figures, tables=tables, data=data,
                   available=bool(figures or tables))


def _compact_regret(columns: list[str], rows: list[list[Any]]) -> tuple[list[str], list[list[str]]]:
    """``bench.regret_summary``'s wide table as "mean ± std" cells (metric points, 3 decimals), one
    margin column per anchor; any other table is shown as it is."""
    if not {"baseline_mean", "baseline_std", "best_cell", "regret"} <= set(columns):
        return columns, [[_fmt_cell(v) for v in r] for r in rows]

    def pm(mean: Any, std: Any) -> str:
        if not _finite(mean):
            return "–"
        return f"{float(mean):.3f}" + (f" ± {float(std):.3f}" if _finite(std) else "")

    anchors = [c[len("margin_over_"):] for c in columns if c.startswith("margin_over_")]
    head = ["dataset", "fraction", "metric", "baseline (mean ± std)", "seeds", "best cell", "regret",
            *[f"margin over {a}" for a in anchors]]
    out = []
    for r in rows:
        d = dict(zip(columns, r))
        frac = d.get("fraction")
        out.append([str(d.get("dataset", "")), _fmt_cell(float(frac)) if _finite(frac) else str(frac or ""),
                    str(d.get("metric_name", "")),
                    pm(d["baseline_mean"], d["baseline_std"]), str(d.get("n_seeds", "")), str(d["best_cell"]),
                    pm(d["regret"], None),
                    *[pm(d.get(f"margin_over_{a}"), d.get(f"margin_std_over_{a}")) for a in anchors]])
    return head, out


# --- section 6: warnings and next steps -----------------------------------------------------

def _warnings_section(rec: Any, config: Config, sim: Any, lr: _LRInfo, run: dict[str, Any] | None) -> Section:
    prof = rec.profile
    steps: list[str] = []
    far = _is_far(sim, config)
    score = getattr(sim, "similarity", None) if sim is not None else None
    if far:
        steps.append(f"Far dataset (similarity {score:.3f}): fine-tune deeper ({config.fine_tune!r} is recommended) "
                     "with the lower learning rate; ImageNet features transfer less well." if score is not None else
                     "Far dataset: fine-tune deeper with the lower learning rate.")
    elif far is False:
        steps.append("Near ImageNet: the pretrained features fit; the head (and the last block) carry most of "
                     "the gain.")
    else:
        steps.append("Similarity not measured: the plan assumes a near dataset. Measure it to check.")
    ci_low, ci_high = (getattr(sim, "ci_low", None), getattr(sim, "ci_high", None)) if sim is not None else (None, None)
    thr = getattr(sim, "threshold", None) if sim is not None else None
    if ci_low is not None and ci_high is not None and thr is not None and ci_low < thr <= ci_high:
        steps.append("The similarity interval straddles the threshold: try both the near and the far plan.")
    median = prof.median_images_per_class
    if median < _FEW_PER_CLASS:
        steps.append(f"Few images per class (median {_fmt_num(median)}): collect more; validation accuracy on so few "
                     "images is noisy.")
    if lr.result is not None and lr.numbers.get("diverged") is False and lr.numbers.get("n_steps", 100) < 20:
        steps.append("The LR range test was short; re-run it with more data for a steadier curve.")
    if lr.result is None and not lr.numbers:
        steps.append("Run the LR range test (leave out --no-lr-finder) to replace the default learning rate.")
    bb = getattr(rec, "backbone", None)
    if bb is not None and getattr(bb, "pretrained", True) is False:
        steps.append("The backbone has random weights: the similarity and LR numbers only exercise the pipeline.")
    if bb is not None and getattr(bb, "fallback_from", None):
        steps.append(f"{bb.fallback_from} weights were unavailable; {bb.name} was used. Pass --weights or go online "
                     f"for {bb.fallback_from}.")
    if run is None:
        steps.append("Train it: `finetune-advisor train DATASET --config config.json --out runs/x`, then re-run the "
                     "report with `--run runs/x`.")
    else:
        res = run.get("result") or {}
        if res.get("beats_baseline") is False:
            steps.append("The trained model does not beat the majority-class baseline: check the labels, train longer "
                         "or on more images (profile 'paper').")
    warnings = list(config.warnings) or ["None about the data."]
    return Section("warnings", "Warnings and next steps", lists={"Warnings": warnings, "Next steps": steps},
                   data={"warnings": list(config.warnings), "next_steps": steps})


def _summary(config: Config, sim: Any, lr: _LRInfo, prof: Any) -> dict[str, str]:
    backbone = config.backbone.rsplit(":", 1)[-1] if ":" in config.backbone else config.backbone  # file.py:func
    out = {"dataset": f"{prof.n_images:,} images, {prof.n_classes:,} classes", "backbone": backbone}
    if sim is not None and getattr(sim, "similarity", None) is not None:
        far = _is_far(sim, config)
        out["similarity"] = f"{float(sim.similarity):.3f} — " + ("far" if far else "near")
    else:
        out["similarity"] = "not measured"
    out["head LR"] = f"{config.lr:.1e}" + ("" if lr.lr is not None else " (default)")
    plan = {"none": "head only", "last": "head, then last block", "all": "head, then all layers"}[config.fine_tune]
    epochs = f"{config.head_epochs}" + (f" + {config.unfrozen_epochs}" if config.fine_tune != "none" else "")
    out["plan"] = f"{plan}, {epochs} epochs at {config.image_size} px"
    return out


# --- helpers --------------------------------------------------------------------------------

def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, (int, float)) or (hasattr(v, "dtype") and _finite(v))


def _fmt_num(v: float) -> str:
    return f"{v:g}"


def _fmt_cell(v: Any) -> str:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return _fmt_value(v)
    return str(v)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


# --- HTML ---------------------------------------------------------------------------------

_CSS = """
:root { --fg:#1d232b; --muted:#5b6573; --line:#d9dee5; --accent:#1f3d7a; --hi:#fff6db; --bg:#ffffff; --panel:#f5f7fa; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 26px; margin: 0 0 4px; }
header .meta { color: var(--muted); font-size: 13px; margin: 0 0 14px; word-break: break-all; }
.cards { display:grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap:10px; margin: 0 0 14px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:8px 12px; }
.card .k { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); }
.card .v { font-size:15px; font-weight:600; overflow-wrap:anywhere; }
nav.toc { font-size:14px; margin: 0 0 8px; padding: 8px 0; border-bottom:1px solid var(--line); }
nav.toc a { color: var(--accent); text-decoration:none; margin-right:16px; white-space:nowrap; }
section { margin-top: 28px; }
section h2 { font-size: 20px; margin: 0 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--accent); }
section.unavailable h2 { border-bottom-color: var(--line); color: var(--muted); }
p { margin: 6px 0; }
section h3 { font-size: 16px; margin: 12px 0 4px; }
p.note { color: var(--muted); font-size: 14px; }
dl.facts { display:grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0 12px; font-size:14px; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-word; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 14px; font-size: 13.5px; }
caption { text-align:left; color: var(--muted); font-size: 13px; padding-bottom: 4px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
tr.hi td { background: var(--hi); }
.mono, table.config td:first-child, table.config td:nth-child(2), table.config td:nth-child(4),
table.history td, table.regret td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12.5px; }
table.config td:first-child { white-space: nowrap; }
table.config td:nth-child(2) { white-space: normal; max-width: 260px; overflow-wrap: anywhere; }
table.config td:nth-child(4) { max-width: 200px; overflow-wrap: anywhere; }
td { overflow-wrap: anywhere; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.figrow { display:flex; flex-wrap:wrap; gap: 16px; align-items:flex-start; }
.figrow figure { flex: 1 1 400px; max-width: 640px; }
.gallery { display:grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 10px 18px; margin: 8px 0; }
.gallery .cls { font-size: 13px; font-weight: 600; margin-bottom: 3px; word-break: break-word; }
.gallery .cls small { color: var(--muted); font-weight: 400; }
.thumbs { display:flex; gap: 4px; }
.thumbs img { width: 64px; height: 64px; object-fit: contain; background: var(--panel); border: 1px solid var(--line); }
ul.advice li { margin: 4px 0; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.92em; background: var(--panel);
  padding: 0 3px; border-radius: 3px; }
@media print { nav.toc { display:none; } section { break-inside: avoid-page; } }
"""

_URL_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*):(?=//)")
_CODE_SPAN = re.compile(r"`([^`]+)`")


def _esc(text: Any) -> str:
    """HTML-escaped text in which ``scheme://`` cannot form a URL (the colon becomes ``&#58;``)."""
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
        f"<title>{_esc(report.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{_esc(report.title)}</h1>"
        f"<p class=\"meta\">{_esc(report.dataset)} · generated {_esc(report.created)} by finetune-advisor "
        f"{_esc(report.version)}</p>"
        f"<div class=\"cards\">{cards}</div><nav class=\"toc\">{toc}</nav></header>\n"
        f"{body}\n"
        "<footer>Similarity: Cui et al. (CVPR 2018) EMD to Tiny-ImageNet class means, as in the Fellowship.AI "
        "fastai hyper-parameter study (threshold 0.72). Learning-rate rules: the study and Overture's guide."
        "</footer>\n</main>\n</body>\n</html>\n")


# --- Markdown -------------------------------------------------------------------------------

def _md_cell(v: Any) -> str:
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
        caller to write beside the Markdown file (:func:`write_report` does).
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


# --- writing --------------------------------------------------------------------------------

def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)

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
        _atomic_write_bytes(path, render_html(report).encode("utf-8"))
        return path
    asset_dir = f"{path.stem}_files"
    assets: dict[str, bytes] = {}
    text = render_markdown(report, assets=assets, asset_dir=asset_dir)
    for rel, data in assets.items():
        _atomic_write_bytes(path.parent / rel, data)
    _atomic_write_bytes(path, text.encode("utf-8"))
    return path
