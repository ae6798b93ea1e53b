"""Tiny synthetic datasets for the tests of every module (deterministic, no network).

Each class gets its own colour (hues spread round the colour wheel) and a class-specific
stripe direction, plus seeded noise, so a tiny CNN separates the classes in a few steps
while no two images are identical.

>>> import tempfile
>>> from finetune_advisor.data import read_dataset
>>> root = make_folder_dataset(tempfile.mkdtemp(), counts={"cat": 3, "dog": 3}, split=True)
>>> sorted({(it.split, it.labels[0]) for it in read_dataset(root).items})
[('train', 'cat'), ('train', 'dog'), ('valid', 'cat'), ('valid', 'dog')]

``DATASET_LAYOUTS`` names one builder per case for contract tests (sklearn's
``parametrize_with_checks`` idea): every public entry point must either succeed on a case or
raise a :class:`~finetune_advisor.exceptions.FinetuneAdvisorError`; the cases in
``INVALID_LAYOUTS`` must raise.
"""
from __future__ import annotations

import colorsys
import os
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

__all__ = [
    "make_folder_dataset", "make_csv_dataset", "make_filename_dataset", "make_image",
    "class_color", "make_messy_dataset", "make_bomb_png", "MESSY_SKIPS", "DATASET_LAYOUTS", "INVALID_LAYOUTS",
]

DEFAULT_COUNTS: Mapping[str, int] = MappingProxyType({"cat": 6, "dog": 6})
DEFAULT_PET_COUNTS: Mapping[str, int] = MappingProxyType({"Abyssinian": 5, "beagle": 5})
DEFAULT_CSV_LABELS: tuple[tuple[str, ...], ...] = (
    ("cat",), ("dog",), ("cat", "dog"), ("bird",), ("bird", "cat"), ("dog",), ("bird", "dog"), ("cat",),
)
_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "gif": "GIF",
            "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF"}


def _size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    w, h = size
    return (int(w), int(h))


def class_color(index: int, n_classes: int) -> tuple[int, int, int]:
    """A saturated RGB colour for class ``index`` of ``n_classes`` (hues evenly spaced).

    >>> class_color(0, 2), class_color(1, 2)
    ((230, 23, 23), (23, 230, 230))
    """
    r, g, b = colorsys.hsv_to_rgb((index / max(n_classes, 1)) % 1.0, 0.9, 0.9)
    return (round(r * 255), round(g * 255), round(b * 255))


def _pixels(colors: Sequence[tuple[int, int, int]], stripe: int, size: tuple[int, int], seed: int):
    """uint8 HxWx3 array: the mean of ``colors``, stripes in direction ``stripe % 3``, noise."""
    import numpy as np

    w, h = size
    rng = np.random.default_rng(seed)
    base = np.mean(np.asarray(colors, dtype=np.float32), axis=0)
    yy, xx = np.mgrid[0:h, 0:w]
    pattern = ((xx, yy, xx + yy)[stripe % 3] // 2) % 2  # vertical, horizontal or diagonal stripes
    img = base[None, None, :] * (0.75 + 0.25 * pattern[..., None])
    img = img + rng.normal(0.0, 12.0, size=(h, w, 3))
    return np.clip(img, 0, 255).astype("uint8")


def make_image(path: str | os.PathLike, size: int | Sequence[int] = (32, 32),
               color: tuple[int, int, int] = (128, 128, 128), *, seed: int = 0, stripe: int = 0,
               mode: str = "RGB", fmt: str | None = None) -> Path:
    """Write one small noisy image to ``path`` (format from the suffix unless ``fmt``) and return it.

    Parameters
    ----------
    path : str or path-like
        Destination; parent folders are created.
    size : int or (width, height), default=(32, 32)
    color : (r, g, b), default=(128, 128, 128)
        Mean colour.
    seed, stripe : int, default=0
        Noise seed and stripe direction (0 vertical, 1 horizontal, 2 diagonal).
    mode : str, default="RGB"
        PIL mode to convert to before saving (``"L"``, ``"RGBA"``, ``"P"``, ...).
    fmt : str, default=None
        PIL format name; None infers it from the suffix.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> p = make_image(os.path.join(tempfile.mkdtemp(), "x.jpg"), size=(12, 8), mode="L")
    >>> Image.open(p).size, Image.open(p).mode
    ((12, 8), 'L')
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(_pixels([color], stripe, _size(size), seed), "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    fmt = fmt or _FORMATS.get(path.suffix.lower().lstrip("."))
    img.save(path, format=fmt)
    return path


def _format(fmt: str) -> tuple[str, str]:
    key = fmt.lower().lstrip(".")
    if key not in _FORMATS:
        raise ValueError(f"fmt={fmt!r} is not one of {sorted(_FORMATS)}")
    return key, _FORMATS[key]


def make_folder_dataset(root: str | os.PathLike, counts: Mapping[str, int] = DEFAULT_COUNTS,
                        size: int | Sequence[int] = (32, 32), fmt: str = "png", split: bool = False,
                        *, seed: int = 0) -> Path:
    """Write an ImageFolder dataset, ``root/<class>/<class>_<i>.<fmt>``, and return ``root``.

    Parameters
    ----------
    root : str or path-like
        Folder to write into (created if needed).
    counts : mapping of class name to image count, default={"cat": 6, "dog": 6}
        With ``split=True`` these are totals: ``n // 3`` images of each class go to
        ``valid/`` and the rest to ``train/``.
    size : int or (width, height), default=(32, 32)
    fmt : {"png", "jpg", "bmp", "gif", "webp", "tif"}, default="png"
    split : bool, default=False
        Write ``root/train/<class>`` and ``root/valid/<class>`` instead.
    seed : int, default=0
        Noise seed (the dataset is identical for the same arguments).

    Examples
    --------
    >>> import tempfile
    >>> root = make_folder_dataset(tempfile.mkdtemp(), counts={"a": 1, "b": 2})
    >>> sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    ['a/a_000.png', 'b/b_000.png', 'b/b_001.png']
    """
    from PIL import Image

    root = Path(root)
    ext, pil_format = _format(fmt)
    names = list(counts)
    for k, name in enumerate(names):
        n = int(counts[name])
        n_valid = n // 3 if split else 0
        for i in range(n):
            folder = root / ("valid" if i >= n - n_valid else "train") / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            arr = _pixels([class_color(k, len(names))], k, _size(size), seed * 1_000_003 + k * 10_007 + i)
            Image.fromarray(arr, "RGB").save(folder / f"{name}_{i:03d}.{ext}", format=pil_format)
    return root


def make_csv_dataset(root: str | os.PathLike, labels: list[list[str]] | None = None, sep: str = "|",
                     size: int | Sequence[int] = (32, 32), *, seed: int = 0) -> Path:
    """Write ``root/images/img_<i>.png`` and ``root/labels.csv`` (``image,labels``); return ``root``.

    Parameters
    ----------
    root : str or path-like
        Folder to write into (created if needed).
    labels : list of list of str, default=None
        One list of labels per image; None writes a small multi-label set of 8 images over
        ``bird``, ``cat`` and ``dog``. Each image's colour is the mean of its labels' colours.
    sep : str, default="|"
        Written between the labels of one row.
    size : int or (width, height), default=(32, 32)
    seed : int, default=0

    Examples
    --------
    >>> import tempfile
    >>> root = make_csv_dataset(tempfile.mkdtemp(), labels=[["a"], ["a", "b"]], sep=";")
    >>> print((root / "labels.csv").read_text().strip())
    image,labels
    img_000.png,a
    img_001.png,a;b
    """
    import csv

    from PIL import Image

    root = Path(root)
    rows = [list(r) for r in (DEFAULT_CSV_LABELS if labels is None else labels)]
    classes = sorted({label for r in rows for label in r})
    (root / "images").mkdir(parents=True, exist_ok=True)
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["image", "labels"])
        for i, row in enumerate(rows):
            name = f"img_{i:03d}.png"
            colors = [class_color(classes.index(label), len(classes)) for label in row] or [(128, 128, 128)]
            stripe = classes.index(row[0]) if row else 0
            arr = _pixels(colors, stripe, _size(size), seed * 1_000_003 + i)
            Image.fromarray(arr, "RGB").save(root / "images" / name, format="PNG")
            writer.writerow([name, sep.join(row)])
    return root


def make_filename_dataset(root: str | os.PathLike, counts: Mapping[str, int] = DEFAULT_PET_COUNTS,
                          size: int | Sequence[int] = (32, 32), *, seed: int = 0) -> Path:
    """Write Oxford-IIIT Pet style ``root/images/<Breed>_<n>.jpg`` (n from 1) and return ``root``.

    Parameters
    ----------
    root : str or path-like
        Folder to write into (created if needed).
    counts : mapping of label to image count, default={"Abyssinian": 5, "beagle": 5}
        Labels may contain underscores (``american_bulldog``), as in the real dataset.
    size : int or (width, height), default=(32, 32)
    seed : int, default=0

    Examples
    --------
    >>> import tempfile
    >>> root = make_filename_dataset(tempfile.mkdtemp(), counts={"Bengal": 2, "pug": 1})
    >>> sorted(p.name for p in (root / "images").iterdir())
    ['Bengal_1.jpg', 'Bengal_2.jpg', 'pug_1.jpg']
    """
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    names = list(counts)
    for k, name in enumerate(names):
        for i in range(int(counts[name])):
            arr = _pixels([class_color(k, len(names))], k, _size(size), seed * 1_000_003 + k * 10_007 + i)
            Image.fromarray(arr, "RGB").save(root / "images" / f"{name}_{i + 1}.jpg", format="JPEG", quality=90)
    return root


# --- contract-test cases ------------------------------------------------------------------

def _nested(root: Path) -> Path:
    """Class folders with images one level further down (``root/<class>/<sub>/x.png``)."""
    for k, name in enumerate(("cat", "dog")):
        for i in range(4):
            make_image(root / name / f"part{i % 2}" / f"{name}_{i}.png", 24,
                       class_color(k, 2), seed=k * 100 + i, stripe=k)
    return root


def _grayscale_mixed(root: Path) -> Path:
    """Greyscale and RGB images of different sizes and formats in two classes."""
    sizes = [(16, 16), (32, 24), (20, 28), (8, 12)]
    for k, name in enumerate(("ant", "bee")):
        for i, size in enumerate(sizes):
            ext, mode = ("png", "L") if i % 2 else ("jpg", "RGB")
            make_image(root / name / f"{name}_{i}.{ext}", size, class_color(k, 2), seed=k * 100 + i,
                       stripe=k, mode=mode)
    return root


def _single_class(root: Path) -> Path:
    return make_folder_dataset(root, counts={"cat": 4})


def _empty(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    return root


def _corrupt_file(root: Path) -> Path:
    """A valid two-class folder plus a zero-byte, a text-as-jpg file and a ``.DS_Store``."""
    make_folder_dataset(root, counts={"cat": 4, "dog": 4})
    (root / "cat" / "empty.jpg").write_bytes(b"")
    (root / "dog" / "notes.jpg").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return root


def make_bomb_png(path: str | os.PathLike, side: int = 30_000) -> Path:
    """Write a tiny PNG whose header claims ``side`` x ``side`` pixels (beyond Pillow's
    decompression-bomb limit, 2 x ``Image.MAX_IMAGE_PIXELS``), without the pixels.

    >>> import tempfile, os
    >>> from PIL import Image
    >>> p = make_bomb_png(os.path.join(tempfile.mkdtemp(), "bomb.png"))
    >>> p.stat().st_size < 100
    True
    >>> Image.open(p)
    Traceback (most recent call last):
    ...
    PIL.Image.DecompressionBombError: Image size (900000000 pixels) exceeds limit ...
    """
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


MESSY_SKIPS: Mapping[str, int] = MappingProxyType({
    "empty file": 1,                       # cat/empty.jpg (zero bytes)
    "hidden file": 2,                      # .DS_Store, cat/.hidden.png
    "not an image": 3,                     # cat/Thumbs.db, dog/readme.txt, notes.txt
    "image outside a class folder": 1,     # loose.png
    "symlink loop": 1,                     # dog/loop -> ..
    "broken symlink": 1,                   # dog/broken.png -> missing
    "unreadable image": 1,                 # dog/text.jpg (a text file named .jpg)
    "image over 40 megapixels (refused)": 1,  # cat/bomb.png
    "corrupt image (failed to decode)": 1,  # dog/truncated.jpg: its header reads, its pixels do not
})
"""Reasons and counts :func:`make_messy_dataset` should produce in a ``recommend`` summary
(the last one is only found when the image is decoded, by the similarity or LR-finder step)."""


def make_messy_dataset(root: str | os.PathLike, *, size: int = 24, seed: int = 0) -> Path:
    """An ImageFolder with most of the ways real folders go wrong, all of them recoverable.

    Four classes with enough good images to train on (``cat``, ``dog``, ``sea lion`` -- a
    space -- and ``café_猫`` -- unicode), one single-image class (``owl``), every supported
    format and mode (RGBA/palette/16-bit PNG, 16-bit TIFF, CMYK and EXIF-rotated JPEG, WebP,
    BMP, GIF, a 1x1 and a 200x3 image), duplicate file names across classes, names with
    spaces, unicode and a followed symlink; plus the files :data:`MESSY_SKIPS` lists as
    skipped: a zero-byte, a truncated and a text-as-``.jpg`` image, a decompression bomb,
    ``.DS_Store``/``Thumbs.db``/``.txt`` files, a hidden image, a loose image at the top, a
    symlink loop and a broken symlink.

    Examples
    --------
    >>> import tempfile
    >>> from finetune_advisor.data import read_dataset
    >>> ds = read_dataset(make_messy_dataset(tempfile.mkdtemp()))
    >>> ds.classes
    ('café_猫', 'cat', 'dog', 'owl', 'sea lion')
    """
    import numpy as np
    from PIL import Image

    root = Path(root)
    classes = ("cat", "dog", "sea lion", "café_猫")
    for k, name in enumerate(classes):
        color = class_color(k, len(classes))
        for i in range(6):  # the same names in every class: img_000.png ...
            make_image(root / name / f"img_{i:03d}.png", size, color, seed=seed * 1_000_003 + k * 101 + i, stripe=k)
    # odd names
    make_image(root / "cat" / "my photo 1.png", size, class_color(0, 4), seed=seed + 1, stripe=0)
    make_image(root / "dog" / "фото_собаки.png", size, class_color(1, 4), seed=seed + 2, stripe=1)
    make_image(root / "owl" / "only_one.png", size, (90, 90, 90), seed=seed + 3)
    # every format and mode, each in a class of its colour
    c = {name: class_color(k, len(classes)) for k, name in enumerate(classes)}
    make_image(root / "cat" / "alpha.png", size, c["cat"], seed=seed + 4, mode="RGBA")
    make_image(root / "cat" / "palette.png", size, c["cat"], seed=seed + 5, mode="P")
    grey16 = (np.linspace(0, 65535, size * size).reshape(size, size)).astype(np.uint16)
    Image.fromarray(grey16).save(root / "dog" / "grey16.png")
    Image.fromarray(grey16).save(root / "dog" / "grey16.tif")
    Image.fromarray(np.full((size, size, 3), c["dog"], np.uint8)).convert("CMYK").save(root / "dog" / "cmyk.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: displayed portrait
    Image.fromarray(np.full((size, 2 * size, 3), c["cat"], np.uint8)).save(root / "cat" / "exif_rotated.jpg",
                                                                          exif=exif)
    make_image(root / "sea lion" / "w.webp", size, c["sea lion"], seed=seed + 6, stripe=2)
    make_image(root / "sea lion" / "b.bmp", size, c["sea lion"], seed=seed + 7, stripe=2)
    make_image(root / "sea lion" / "g.gif", size, c["sea lion"], seed=seed + 8, stripe=2)
    make_image(root / "café_猫" / "one_pixel.png", 1, c["café_猫"], seed=seed + 9)
    make_image(root / "café_猫" / "elongated.png", (200, 3), c["café_猫"], seed=seed + 10, stripe=3)
    # broken and unwanted files
    (root / "cat" / "empty.jpg").write_bytes(b"")
    truncated = make_image(root / "dog" / "truncated.jpg", 64, c["dog"], seed=seed + 11)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # the header survives, the scan does not
    (root / "dog" / "text.jpg").write_text("this is not a JPEG\n")
    make_bomb_png(root / "cat" / "bomb.png")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "cat" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "dog" / "readme.txt").write_text("labels by hand\n")
    (root / "notes.txt").write_text("todo\n")
    make_image(root / "cat" / ".hidden.png", size, c["cat"], seed=seed + 12)
    make_image(root / "loose.png", size, (0, 0, 0), seed=seed + 13)
    if hasattr(os, "symlink"):
        os.symlink("..", root / "dog" / "loop")
        os.symlink("missing.png", root / "dog" / "broken.png")
        os.symlink(os.path.join("..", "cat", "img_000.png"), root / "sea lion" / "linked.png")
    return root


DATASET_LAYOUTS: Mapping[str, Callable[[Path], Path]] = MappingProxyType({
    "folders": lambda root: make_folder_dataset(root),
    "split": lambda root: make_folder_dataset(root, split=True),
    "nested": _nested,
    "grayscale_mixed_sizes": _grayscale_mixed,
    "csv_multilabel": lambda root: make_csv_dataset(root),
    "filename": lambda root: make_filename_dataset(root),
    "corrupt_file": _corrupt_file,
    "single_class": _single_class,
    "empty": _empty,
})
"""Case name -> ``builder(root) -> root``; each builder writes a few tiny images into ``root``."""

INVALID_LAYOUTS: frozenset[str] = frozenset({"single_class", "empty"})
"""Cases on which reading must raise a ``DatasetError`` that names the folder."""
