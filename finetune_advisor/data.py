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


def load_image(path: str | Path, size: int | None = None):
    """Decode ``path`` to an RGB PIL image, cheaply when only ``size`` pixels are needed.

    JPEGs are decoded at reduced scale with Pillow's ``draft`` (DCT scaling) when ``size``
    is given; EXIF orientation is applied; palette, alpha, 16-bit and CMYK images become RGB.
    Raises :class:`~finetune_advisor.exceptions.DatasetError` naming the file on any failure.
    """
    from PIL import Image, ImageOps

    from .exceptions import DatasetError
    try:
        with Image.open(path) as img:
            if size is not None and img.format == "JPEG":
                img.draft("RGB", (size, size))  # decodes at 1/2, 1/4 or 1/8 scale, never below size
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                import numpy as np
                arr = np.asarray(img, dtype=np.float32)
                hi = float(arr.max()) or 1.0
                img = Image.fromarray((arr * (255.0 / hi)).astype("uint8"), "L")
            if img.mode in ("P", "LA", "PA") or (img.mode == "RGBA"):
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)
            return img.convert("RGB")
    except DatasetError:
        raise
    except Image.DecompressionBombError:
        raise DatasetError("image is larger than Pillow's decompression-bomb limit; refused", path=path,
                           hint="downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"cannot decode image: {exc}", path=path) from None
