"""What a dataset is once read: :class:`Item`, :class:`Dataset`, and its summary :class:`DatasetProfile`."""
from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .sampling import stratified_indices

__all__ = ["Item", "Dataset", "DatasetProfile", "format_skips"]


@dataclass(frozen=True)
class Item:
    """One image and its labels. ``split`` is "train"/"valid" when the layout fixes it."""

    path: Path
    labels: tuple[str, ...]
    split: str | None = None


def format_skips(counts: Mapping[str, int], where: str | None = None) -> str:
    """The one wording of skip counts, for every message that gives one (the dataset summary,
    the reader's warnings, train's): the total, then each reason by count, largest first; ``""``
    when nothing was skipped.

    >>> format_skips({"hidden file": 1, "not an image": 2})
    'skipped 3: 2 not an image, 1 hidden file'
    >>> format_skips({"unreadable class folder": 1}, where="pets/")
    'skipped 1 in pets/: 1 unreadable class folder'
    """
    counts = {str(k): int(v) for k, v in counts.items() if v}
    if not counts:
        return ""
    parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"skipped {sum(counts.values())}{f' in {where}' if where else ''}: {parts}"


@dataclass(frozen=True)
class Dataset:
    """A labelled list of image files, as read from one of the supported layouts.

    ``items`` are sorted by path and ``classes`` by name. ``skipped`` counts the files (or
    CSV rows, or folders) left out, by reason; ``skipped_examples`` holds the first few
    paths for each reason, so a message can show the user which files they were.

    Examples
    --------
    >>> ds = Dataset(Path("d"), "folders", (Item(Path("d/a/1.png"), ("a",)),
    ...              Item(Path("d/b/2.png"), ("b",)), Item(Path("d/b/3.png"), ("b",))),
    ...              ("a", "b"), multi_label=False)
    >>> len(ds), ds.class_counts()
    (3, {'a': 1, 'b': 2})
    >>> [it.path.name for it in ds.subset(max_per_class=1).items]
    ['1.png', '3.png']
    >>> ds.subset(fraction=0.5).class_counts()
    {'a': 1, 'b': 1}
    """

    root: Path
    layout: str                      # "folders" | "csv" | "filename"
    items: tuple[Item, ...]
    classes: tuple[str, ...]         # sorted
    multi_label: bool
    skipped: Mapping[str, int] = field(default_factory=dict)              # reason -> count
    skipped_examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # reason -> a few paths
    csv_path: Path | None = None     # the CSV read (csv layout only)
    label_sep: str | None = None     # the label separator used (csv layout only; None = not split)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_skipped(self) -> int:
        """Total of ``skipped`` over all reasons."""
        return sum(self.skipped.values())

    @property
    def has_split(self) -> bool:
        """True when the layout fixes which items are for validation."""
        return any(it.split == "valid" for it in self.items)

    def class_counts(self) -> dict[str, int]:
        """Images per class, in ``classes`` order (multi-label: images carrying the label)."""
        counts = dict.fromkeys(self.classes, 0)
        for it in self.items:
            for label in it.labels:
                counts[label] += 1
        return counts

    def subset(self, max_per_class: int | None = None, seed: int = 0, *, fraction: float | None = None,
               by_split: bool = False) -> "Dataset":
        """At most ``max_per_class`` images per class (or ``fraction`` of each class), chosen at
        random but reproducibly, by :func:`~finetune_advisor.data.sampling.stratified_indices`.

        Single-label: every class keeps ``min(count, max_per_class)`` images (or
        ``ceil(fraction * count)``, at least 1); with ``by_split`` a class's draw is split
        between its validation and other images in proportion. Multi-label: items are
        visited in a seeded random order and kept while one of their labels still has room,
        so a class may exceed the cap through images kept for another label. Items stay
        sorted by path; ``skipped`` is unchanged: it describes the folder, not the sample.
        """
        strata = [("valid" if it.split == "valid" else "train") for it in self.items] if by_split else None
        kept = stratified_indices([it.labels for it in self.items], max_per_class=max_per_class,
                                  fraction=fraction, seed=seed, strata=strata)
        return dataclasses.replace(self, items=tuple(self.items[i] for i in kept))


@dataclass(frozen=True)
class DatasetProfile:
    """What the heuristics need to know about a dataset (no pixels decoded).

    Counts are exact over all items; ``resolution`` (keys ``mean_w, mean_h, median_w,
    median_h, min_w, min_h, max_w, max_h``) comes from the headers read, which may be a
    sample (``n_headers_read``). ``n_corrupt`` counts the images that could not be read
    (headers; plus pixels that failed to decode later, see
    :func:`~finetune_advisor.data.add_decode_failures`); those files are still counted in
    ``n_images``.

    Examples
    --------
    >>> p = DatasetProfile("d", "folders", 6, 3, {"a": 2, "b": 1, "c": 3}, 0.8165, False,
    ...                    {"mean_w": 64.0, "mean_h": 48.0})
    >>> p.min_images_per_class, p.median_images_per_class, p.mean_resolution
    (1, 2.0, (64.0, 48.0))
    """

    root: str
    layout: str
    n_images: int
    n_classes: int
    images_per_class: Mapping[str, int]
    imbalance_sd: float              # population SD of images per class (study's Table 2)
    multi_label: bool
    resolution: Mapping[str, float]  # mean_w, mean_h, median_w, median_h, min_w, min_h, max_w, max_h
    n_corrupt: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    n_headers_read: int = 0          # headers attempted (all items unless max_header_reads)
    mean_labels_per_image: float = 1.0
    n_valid: int = 0                 # items the layout puts in the validation split
    corrupt_examples: tuple[str, ...] = ()  # the first few unreadable files
    label_sep: str | None = None     # csv layout: the label separator used (None = one label per cell)

    @property
    def min_images_per_class(self) -> int:
        """Images in the smallest class (0 when there are no classes)."""
        return min(self.images_per_class.values(), default=0)

    @property
    def max_images_per_class(self) -> int:
        """Images in the largest class (0 when there are no classes)."""
        return max(self.images_per_class.values(), default=0)

    @property
    def median_images_per_class(self) -> float:
        """Median of the per-class image counts (0.0 when there are no classes)."""
        counts = list(self.images_per_class.values())
        return float(statistics.median(counts)) if counts else 0.0

    @property
    def mean_resolution(self) -> tuple[float, float]:
        """Mean ``(width, height)`` in pixels (NaN when no header could be read)."""
        nan = float("nan")
        return (float(self.resolution.get("mean_w", nan)), float(self.resolution.get("mean_h", nan)))
