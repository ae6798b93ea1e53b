"""The report's dataset-profile section: counts and imbalance, a resolution sample from image
headers, thumbnails of a few classes, and the files that were skipped."""
from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._io import to_jsonable
from ..data import Dataset, DatasetProfile, load_image, read_dataset
from ..data.images import header_size
from ._format import finite, fmt_num
from .figures import class_count_info, draw_class_counts, draw_resolution, resolution_info
from .model import Figure, Gallery, Section, Table

log = logging.getLogger(__name__)

MAX_HEADER_READS = 500          # image headers read for the resolution plot
MAX_GALLERY_CLASSES = 12        # sample-image grid: classes shown ...
THUMBS_PER_CLASS = 4            # ... and thumbnails per class
THUMB_SIZE = 64                 # px, longest side
THUMB_QUALITY = 80              # JPEG quality


def profile_section(prof: DatasetProfile, dataset: Dataset | None, image_size: int, seed: int) -> Section:
    """``dataset`` None: read again from ``prof.root`` (for the resolution sample and thumbnails)."""
    if dataset is None:
        dataset = _reread(prof)
    counts = {str(k): int(v) for k, v in dict(prof.images_per_class).items()}
    res = dict(prof.resolution or {})
    kind = "multi-label" if prof.multi_label else "single-label"
    facts = {
        "folder": str(prof.root),
        "layout": f"{prof.layout}, {kind}",
        "images": f"{prof.n_images:,}" + (f" ({prof.n_valid:,} in a fixed validation split)" if prof.n_valid else ""),
        "classes": f"{prof.n_classes:,}",
        "images per class": f"median {fmt_num(prof.median_images_per_class)}, min {prof.min_images_per_class:,}, "
                            f"max {prof.max_images_per_class:,}",
        "imbalance SD": f"{prof.imbalance_sd:.1f} images per class (population SD, the study's Table 2 measure)",
    }
    if prof.multi_label:
        facts["labels per image"] = f"{prof.mean_labels_per_image:.2f} on average"
    if finite(res.get("mean_w")):
        facts["resolution"] = (f"mean {res['mean_w']:.0f}×{res['mean_h']:.0f}, median {res['median_w']:.0f}×"
                               f"{res['median_h']:.0f}, min {res['min_w']:.0f}×{res['min_h']:.0f}, "
                               f"max {res['max_w']:.0f}×{res['max_h']:.0f} px "
                               f"({prof.n_headers_read:,} headers read)")
    facts["unreadable images"] = f"{prof.n_corrupt:,}"
    figures = []
    if counts:
        figures.append(draw_class_counts(class_count_info(counts, prof.imbalance_sd)))
    sizes: list[tuple[int, int]] = []
    header_failures = 0
    if dataset is not None and len(dataset):
        sizes, header_failures = _sample_sizes(dataset, seed)
        if sizes:
            figures.append(draw_resolution(resolution_info(sizes, image_size, len(dataset))))
    galleries, gallery_note = ([], "") if dataset is None else galleries_of(dataset, seed)
    notes = []
    if dataset is None:
        notes.append("The dataset could not be re-read, so there is no resolution plot and no sample images.")
    if gallery_note:
        notes.append(gallery_note)
    skipped = dict(prof.skipped or {})
    examples = dict(dataset.skipped_examples or {}) if dataset is not None else {}
    if prof.n_corrupt and "unreadable image" in skipped:
        examples.setdefault("unreadable image", tuple(prof.corrupt_examples))
    tables = []
    if any(skipped.values()):
        rows = [[reason, n, ", ".join(examples.get(reason, ())[:3])] for reason, n in sorted(skipped.items()) if n]
        tables.append(Table(["reason", "files", "examples"], rows, caption="Files skipped or unreadable, by reason",
                            css_class="skipped"))
    else:
        notes.append("No files were skipped and every image header could be read.")
    data = {"profile": to_jsonable(dataclasses.asdict(prof)), "resolution_sample": [list(s) for s in sizes],
            "resolution_sample_failures": header_failures, "skipped": skipped,
            "skipped_examples": {k: list(v) for k, v in examples.items()},
            "gallery": {g.label: [im.name for im in g.images] for g in galleries}}
    return Section("profile", "Dataset profile", notes=notes, facts=facts, tables=tables, figures=figures,
                   galleries=galleries, data=data)


def _reread(prof: DatasetProfile) -> Dataset | None:
    """The dataset behind a profile (only when the Recommendation came without one)."""
    try:
        return read_dataset(prof.root, layout=prof.layout)
    except Exception as exc:  # noqa: BLE001 -- the report still works without it
        log.warning("cannot re-read %s for sample images: %s", prof.root, exc)
        return None


def _sample_items(items: Sequence[Any], k: int, seed: int) -> list[Any]:
    if len(items) <= k:
        return list(items)
    idx = np.sort(np.random.default_rng(seed).choice(len(items), k, replace=False))
    return [items[i] for i in idx]


def _sample_sizes(dataset: Dataset, seed: int) -> tuple[list[tuple[int, int]], int]:
    sizes, failures = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for item in _sample_items(dataset.items, MAX_HEADER_READS, seed):
            try:
                sizes.append(header_size(item.path))
            except Exception:  # noqa: BLE001 -- counted, shown in the profile already
                failures += 1
    return sizes, failures


def galleries_of(dataset: Dataset, seed: int) -> tuple[list[Gallery], str]:
    """A few thumbnails per class, for at most MAX_GALLERY_CLASSES classes spread over the sizes."""
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
