"""Reading and profiling image-classification datasets (interface; implementation pending)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class Item:
    """One image and its labels. ``split`` is "train"/"valid" when the layout fixes it."""

    path: Path
    labels: tuple[str, ...]
    split: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A labelled list of image files, as read from one of the supported layouts."""

    root: Path
    layout: str                      # "folders" | "csv" | "filename"
    items: tuple[Item, ...]
    classes: tuple[str, ...]         # sorted
    multi_label: bool
    skipped: Mapping[str, int] = field(default_factory=dict)              # reason -> count
    skipped_examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # reason -> a few paths


@dataclass(frozen=True)
class DatasetProfile:
    """What the heuristics need to know about a dataset (no pixels decoded)."""

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
