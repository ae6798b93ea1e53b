"""Reading and profiling image-classification datasets.

Three layouts are read into one :class:`Dataset` (a sorted list of :class:`Item` s):

* ``"folders"``: ImageFolder, ``root/<class>/x.jpg``, optionally split as
  ``root/train/<class>/x.jpg`` and ``root/valid/<class>/x.jpg`` (``val``/``validation`` too);
* ``"csv"``: a CSV of ``image,labels`` rows (multi-label when a row names several labels);
* ``"filename"``: the label is part of the file name, ``root/images/<label>_<n>.jpg``.

:func:`profile_dataset` then summarises a dataset from image *headers* only (no pixels are
decoded), and :func:`load_image` decodes one image to RGB for training and embedding.

>>> import tempfile
>>> from finetune_advisor.testing import make_folder_dataset
>>> root = make_folder_dataset(tempfile.mkdtemp(), counts={"cat": 2, "dog": 4})
>>> ds = read_dataset(root)
>>> ds.layout, ds.classes, len(ds)
('folders', ('cat', 'dog'), 6)
>>> profile_dataset(ds).imbalance_sd
1.0
"""
from __future__ import annotations

import csv
import dataclasses
import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .exceptions import DatasetError

__all__ = [
    "IMAGE_EXTENSIONS", "LAYOUTS", "PETS_REGEX", "Item", "Dataset", "DatasetProfile",
    "read_dataset", "profile_dataset", "load_image", "add_decode_failures",
    "UNREADABLE_IMAGE", "TOO_LARGE_IMAGE", "UNDECODABLE_IMAGE",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
PETS_REGEX = r"^(.+)_\d+$"  # Oxford-IIIT Pet: "american_bulldog_12" -> "american_bulldog"
LAYOUTS = ("auto", "folders", "csv", "filename")

# Folder names that mark a split (compared lower-case). "test" folders are reported, not read.
_SPLIT_NAMES = {"train": "train", "training": "train",
                "valid": "valid", "val": "valid", "validation": "valid"}
_TEST_NAMES = {"test", "testing"}
# CSV column names recognised automatically (compared lower-case, in order of preference).
IMAGE_COLUMNS = ("image", "image_id", "id", "file", "filename", "path", "image index",
                 "image_name", "file_name", "fname", "filepath")
LABEL_COLUMNS = ("labels", "label", "tags", "target", "class", "finding labels",
                 "classes", "category", "y")
_AUTO_LABEL_SEPS = ("|", ";", " ")  # tried in this order; the first that occurs wins
_MAX_EXAMPLES = 5
# Reasons for images that are listed but cannot be used (keys of ``DatasetProfile.skipped``).
UNREADABLE_IMAGE = "unreadable image"                                      # header unreadable
TOO_LARGE_IMAGE = "image over the decompression-bomb limit (refused)"      # Pillow refuses it
UNDECODABLE_IMAGE = "corrupt image (failed to decode)"                     # header fine, pixels not
_ACCEPTED = ("accepted layouts: class sub-folders (<root>/<class>/x.jpg, optionally under "
             "train/ and valid/), a labels.csv of image,labels rows (<root>/images/x.jpg), or "
             "Pets-style file names (<root>/images/<class>_<n>.jpg)")


# --- data classes -------------------------------------------------------------------

@dataclass(frozen=True)
class Item:
    """One image and its labels. ``split`` is "train"/"valid" when the layout fixes it."""

    path: Path
    labels: tuple[str, ...]
    split: str | None = None


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

    def subset(self, max_per_class: int, seed: int = 0) -> "Dataset":
        """At most ``max_per_class`` images per class, chosen at random but reproducibly.

        Items are visited in a seeded random order and kept while one of their labels still
        has room, so every class keeps ``min(count, max_per_class)`` images when single-label
        (multi-label: a class may exceed the cap through images kept for another label).
        ``skipped`` is unchanged: it describes the folder, not the sample.
        """
        import numpy as np

        if int(max_per_class) < 1:
            raise ValueError(f"max_per_class must be >= 1, got {max_per_class!r}")
        order = np.random.default_rng(seed).permutation(len(self.items))
        room = dict.fromkeys(self.classes, int(max_per_class))
        kept = []
        for i in order:
            item = self.items[i]
            if any(room[label] > 0 for label in item.labels):
                kept.append(item)
                for label in item.labels:
                    room[label] -= 1
        kept.sort(key=lambda it: str(it.path))
        return dataclasses.replace(self, items=tuple(kept))


@dataclass(frozen=True)
class DatasetProfile:
    """What the heuristics need to know about a dataset (no pixels decoded).

    Counts are exact over all items; ``resolution`` (keys ``mean_w, mean_h, median_w,
    median_h, min_w, min_h, max_w, max_h``) comes from the headers read, which may be a
    sample (``n_headers_read``). ``n_corrupt`` counts the images that could not be read
    (headers; plus pixels that failed to decode later, see :func:`add_decode_failures`);
    those files are still counted in ``n_images``.

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
        import statistics

        counts = list(self.images_per_class.values())
        return float(statistics.median(counts)) if counts else 0.0

    @property
    def mean_resolution(self) -> tuple[float, float]:
        """Mean ``(width, height)`` in pixels (NaN when no header could be read)."""
        nan = float("nan")
        return (float(self.resolution.get("mean_w", nan)), float(self.resolution.get("mean_h", nan)))


# --- skip bookkeeping -----------------------------------------------------------------

class _Skips:
    """Counts skipped things by reason and keeps the first few paths of each."""

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, path: str | os.PathLike, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _MAX_EXAMPLES:
            examples.append(str(path))

    def frozen(self) -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
        keys = sorted(self.counts)
        return ({k: self.counts[k] for k in keys}, {k: tuple(self.examples[k]) for k in keys})


def _oserror_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "broken symlink"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return "unreadable file"


def _is_image_name(name: str) -> bool:
    dot = name.rfind(".")  # cheaper than os.path.splitext, which matters at 100k files
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


# --- directory scanning -----------------------------------------------------------------

def _stat_entry(entry: os.DirEntry, skips: _Skips, follow_symlinks: bool) -> os.stat_result | None:
    """``stat`` of an entry (through symlinks), or None after counting why it is skipped."""
    try:
        if entry.is_symlink() and not follow_symlinks:
            skips.add("symlink not followed", entry.path)
            return None
        return entry.stat()  # follows symlinks (one syscall; the DirEntry caches it)
    except OSError as exc:
        skips.add(_oserror_reason(exc), entry.path)
        return None


def _list_dir(path: str, skips: _Skips, follow_symlinks: bool, ancestors: frozenset = frozenset()
              ) -> tuple[list[str], list[tuple[str, str, tuple]]]:
    """Image files and sub-folders directly in ``path``; everything else is counted in ``skips``.

    Returns ``(image_names, [(name, path, dir_id), ...])``. ``ancestors`` holds the
    ``(st_dev, st_ino)`` of the folders above, so a symlink back up the tree is a counted
    "symlink loop" instead of endless recursion.
    """
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except PermissionError:
        skips.add("permission denied", path)
        return [], []
    except OSError as exc:
        skips.add(_oserror_reason(exc), path)
        return [], []
    images, subdirs = [], []
    for entry in entries:
        name = entry.name
        if name.startswith("."):  # .DS_Store, ._x.jpg (macOS resource forks), .git, .ipynb_checkpoints
            skips.add("hidden file", entry.path)
            continue
        is_image = _is_image_name(name)
        # Regular files: d_type says what they are, so only images (and links) cost a stat call.
        if not is_image and not entry.is_symlink() and not entry.is_dir(follow_symlinks=False):
            skips.add("not an image", entry.path)
            continue
        st = _stat_entry(entry, skips, follow_symlinks)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            dir_id = (st.st_dev, st.st_ino)
            if dir_id in ancestors:
                skips.add("symlink loop", entry.path)
            else:
                subdirs.append((name, entry.path, dir_id))
        elif not is_image:
            skips.add("not an image", entry.path)
        elif not stat.S_ISREG(st.st_mode):
            skips.add("not a regular file", entry.path)
        elif st.st_size == 0:
            skips.add("empty file", entry.path)
        else:
            images.append(name)
    return images, subdirs


def _dir_id(path: str) -> tuple:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _walk_images(path: str, dir_id: tuple, skips: _Skips, follow_symlinks: bool,
                 ancestors: frozenset = frozenset()) -> list[Path]:
    """All image files under ``path``, recursively (iterative, so deep trees cannot overflow)."""
    found: list[Path] = []
    stack = [(path, ancestors | {dir_id})]
    while stack:
        folder, above = stack.pop()
        images, subdirs = _list_dir(folder, skips, follow_symlinks, above)
        base = Path(folder)
        found.extend(base / name for name in images)  # ~2x cheaper than Path(full_path)
        stack.extend((sub, above | {sub_id}) for _, sub, sub_id in subdirs)
    return found


def _display_dir(path: str | os.PathLike) -> str:
    """``'pets/'``-style name for messages (the user's spelling, with a trailing slash)."""
    return os.path.join(str(path), "")


# --- layout readers ---------------------------------------------------------------------

def _read_class_folders(base: str, base_id: tuple, split: str | None, skips: _Skips,
                        follow_symlinks: bool, ancestors: frozenset = frozenset()) -> list[Item]:
    """``base/<class>/**/x.jpg`` -> items labelled with the top-level folder name."""
    images, subdirs = _list_dir(base, skips, follow_symlinks, ancestors | {base_id})
    for name in images:
        skips.add("image outside a class folder", os.path.join(base, name))
    items: list[Item] = []
    for name, path, dir_id in subdirs:
        files = _walk_images(path, dir_id, skips, follow_symlinks, ancestors | {base_id})
        if not files and os.access(path, os.R_OK | os.X_OK):  # unreadable ones are already counted
            skips.add("empty class folder", path)
        labels = (name,)
        items.extend(Item(f, labels, split) for f in files)
    return items


def _split_folders(root: str, follow_symlinks: bool) -> dict[str, list[tuple[str, tuple]]] | None:
    """Top-level ``train``/``valid``/``test`` folders, or None when ``root`` is not split.

    A folder named ``train`` only counts as a split when it holds sub-folders, so a class
    that happens to be called "train" (vehicles!) is still read as a class.
    """
    found: dict[str, list[tuple[str, tuple]]] = {}
    scratch = _Skips()  # the real scan counts skips; this one only looks
    _, subdirs = _list_dir(root, scratch, follow_symlinks)
    for name, path, dir_id in subdirs:
        key = name.lower()
        role = _SPLIT_NAMES.get(key) or ("test" if key in _TEST_NAMES else None)
        if role:
            found.setdefault(role, []).append((path, dir_id))
    if "train" not in found:
        return None
    train_path = found["train"][0][0]
    if not _list_dir(train_path, _Skips(), follow_symlinks)[1]:
        return None
    return found


def _read_folders(root: str, skips: _Skips, follow_symlinks: bool) -> list[Item]:
    root_id = _dir_id(root)
    splits = _split_folders(root, follow_symlinks)
    if splits is None:
        return _read_class_folders(root, root_id, None, skips, follow_symlinks)
    items: list[Item] = []
    split_paths = set()
    for role in ("train", "valid"):
        for path, dir_id in splits.get(role, []):
            split_paths.add(path)
            items += _read_class_folders(path, dir_id, role, skips, follow_symlinks, frozenset({root_id}))
    items = _drop_valid_only_classes(items, skips)
    # Everything else at the top level is reported, not read (test/ has no labels we use).
    images, subdirs = _list_dir(root, skips, follow_symlinks)
    for name in images:
        skips.add("image outside a class folder", os.path.join(root, name))
    for name, path, _ in subdirs:
        if path not in split_paths:
            reason = "test split (not used)" if name.lower() in _TEST_NAMES else "folder outside train/valid"
            skips.add(reason, path)
    return items


def _drop_valid_only_classes(items: list[Item], skips: _Skips) -> list[Item]:
    """Validation images of a class that has no training images cannot be learned; count them.

    This also catches the original Tiny-ImageNet ``val/images/`` + annotations-file layout,
    which would otherwise turn up as one validation class called "images".
    """
    train_classes = {it.labels[0] for it in items if it.split == "train"}
    kept = []
    for it in items:
        if it.split == "valid" and it.labels[0] not in train_classes:
            skips.add("valid class missing from train", it.path)
        else:
            kept.append(it)
    return kept


def _compile_regex(filename_regex: str | re.Pattern) -> re.Pattern:
    try:
        pattern = re.compile(filename_regex)
    except re.error as exc:
        raise ValueError(f"filename_regex {filename_regex!r} is not a valid regular expression: {exc}") from None
    if pattern.groups < 1:
        raise ValueError(f"filename_regex {pattern.pattern!r} needs one group that captures the label, "
                         f"e.g. {PETS_REGEX!r}")
    return pattern


def _label_from_name(pattern: re.Pattern, name: str) -> str | None:
    stem = os.path.splitext(name)[0]
    match = pattern.search(stem)
    if match is None:
        return None
    label = match.group("label") if "label" in pattern.groupindex else match.group(1)
    return label.strip() if label and label.strip() else None  # an optional group may match nothing


def _filename_candidates(root: str, skips: _Skips, follow_symlinks: bool) -> list[tuple[str, str]]:
    """``(folder, name)`` of the images directly in ``root`` and in ``root/images`` (not deeper)."""
    root_id = _dir_id(root)
    names, subdirs = _list_dir(root, skips, follow_symlinks, frozenset({root_id}))
    images = [(root, name) for name in names]
    for name, path, dir_id in subdirs:
        if name.lower() == "images":
            more, deeper = _list_dir(path, skips, follow_symlinks, frozenset({root_id, dir_id}))
            images += [(path, n) for n in more]
            for _, sub, _ in deeper:
                skips.add("folder not read (filename layout)", sub)
        else:
            skips.add("folder not read (filename layout)", path)
    return images


_NO_MATCH = "name does not match filename_regex"


def _read_filename(root: str, pattern: re.Pattern, skips: _Skips, follow_symlinks: bool) -> list[Item]:
    items = []
    for folder, name in _filename_candidates(root, skips, follow_symlinks):
        label = _label_from_name(pattern, name)
        if label is None:
            skips.add(_NO_MATCH, os.path.join(folder, name))
        else:
            items.append(Item(Path(folder, name), (label,)))
    return items


# --- CSV ------------------------------------------------------------------------------

def _read_csv_rows(csv_path: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV (comma, tab or semicolon delimited; UTF-8 with or without BOM)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror or str(exc)
        raise DatasetError(f"Cannot read CSV '{csv_path}': {reason}", path=csv_path,
                           hint="save it as a UTF-8 CSV with a header row, e.g. image,labels") from None
    first_line = text.split("\n", 1)[0]
    # The header decides the delimiter (the most frequent of , tab ;), so a ';' that separates
    # labels in the rows cannot be mistaken for it.
    delimiter = max((",", "\t", ";"), key=lambda d: (first_line.count(d), d == ","))
    try:
        rows = list(csv.reader(text.splitlines(), delimiter=delimiter))
    except csv.Error as exc:
        raise DatasetError(f"Cannot parse CSV '{csv_path}': {exc}", path=csv_path) from None
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise DatasetError(f"CSV '{csv_path}' is empty", path=csv_path,
                           hint="it needs a header row (e.g. image,labels) and one row per image")
    return [h.strip() for h in rows[0]], rows[1:]


def _pick_column(header: list[str], wanted: str | None, candidates: Iterable[str], skip: int | None,
                 what: str, csv_path: str) -> int | None:
    lowered = [h.lower() for h in header]
    if wanted is not None:
        if wanted in header:
            return header.index(wanted)
        if wanted.lower() in lowered:
            return lowered.index(wanted.lower())
        raise DatasetError(f"CSV '{csv_path}' has no {what} column {wanted!r} (found columns: {header})",
                           path=csv_path, hint=f"pass one of {header} as {what}_col")
    for name in candidates:
        if name in lowered and lowered.index(name) != skip:
            return lowered.index(name)
    return None


def _csv_columns(header: list[str], image_col: str | None, label_col: str | None,
                 csv_path: str) -> tuple[int, int]:
    img = _pick_column(header, image_col, IMAGE_COLUMNS, None, "image", csv_path)
    lab = _pick_column(header, label_col, LABEL_COLUMNS, img, "label", csv_path)
    if img is None and lab is None and len(header) >= 2:
        return 0, 1  # no known names: assume the "image,label" order
    if img is None and lab is not None:
        img = next((i for i in range(len(header)) if i != lab), None)
    elif lab is None and len(header) == 2:
        lab = 1 - img
    # An image column with several unknown others: guessing the label column would silently
    # give one class per lesion id or patient age, so ask instead.
    if img is None or lab is None or img == lab:
        raise DatasetError(
            f"CSV '{csv_path}' has no usable image and label columns (found columns: {header}); "
            f"expected an image column ({', '.join(IMAGE_COLUMNS[:6])}) and a labels column "
            f"({', '.join(LABEL_COLUMNS[:6])})",
            path=csv_path, hint="pass image_col= and label_col= (CLI: name the columns in the header)")
    return img, lab


def _detect_label_sep(values: Iterable[str]) -> str | None:
    values = [v.strip() for v in values]
    for sep in _AUTO_LABEL_SEPS:
        if any(sep in v for v in values):
            return sep
    return None


def _split_labels(raw: str, sep: str | None) -> tuple[str, ...]:
    parts = raw.split(sep) if sep else [raw]
    return tuple(sorted({p.strip() for p in parts if p.strip()}))


def _split_column(header: list[str]) -> int | None:
    lowered = [h.lower() for h in header]
    for name in ("is_valid", "split"):
        if name in lowered:
            return lowered.index(name)
    return None


def _row_split(value: str, column: str) -> str | None:
    """fastai's ``is_valid`` (True/False/1/0) or a ``split`` column (train/valid/val/test)."""
    v = value.strip().lower()
    if column == "is_valid":
        return "valid" if v in ("1", "true", "yes", "t", "y") else "train"
    if v in _TEST_NAMES:
        return "test"
    return _SPLIT_NAMES.get(v)


class _FileIndex:
    """Resolves CSV image names against a few folders, listing each folder once.

    A 100k-row CSV must not cost 100k failed ``stat`` calls, so names are looked up in cached
    ``scandir`` listings (also for names with a folder part, ``train/x.jpg``).
    """

    def __init__(self, folders: list[str]):
        self.folders = folders
        self._listings: dict[str, tuple[dict[str, os.DirEntry], dict[str, str]]] = {}
        self._folders_of: dict[str, list[str]] = {}  # folder part of a name -> folders to look in

    def _listing(self, folder: str) -> tuple[dict[str, os.DirEntry], dict[str, str]]:
        """``({name: entry}, {stem: name})`` of a folder; the stems serve names given without extension."""
        cached = self._listings.get(folder)
        if cached is None:
            try:
                with os.scandir(folder) as it:
                    entries = {e.name: e for e in it}
            except OSError:
                entries = {}
            stems: dict[str, str] = {}
            for name in sorted(entries):
                stem, ext = os.path.splitext(name)
                if ext.lower() in IMAGE_EXTENSIONS:
                    stems.setdefault(stem, name)
            cached = self._listings[folder] = (entries, stems)
        return cached

    def resolve(self, name: str) -> tuple[str, os.DirEntry] | None:
        """``(path, entry)`` from the first folder that holds ``name``, else None."""
        sub, base = os.path.split(name)
        wheres = self._folders_of.get(sub)
        if wheres is None:
            wheres = self._folders_of[sub] = [os.path.normpath(os.path.join(f, sub)) for f in self.folders]
        for where in wheres:
            entries, stems = self._listing(where)
            entry = entries.get(base)
            if entry is None and base in stems and not _is_image_name(base):  # "0001_000" -> "0001_000.png"
                entry = entries[stems[base]]
            if entry is not None:
                return entry.path, entry
        return None


def _check_file(path: str, entry: os.DirEntry, skips: _Skips, follow_symlinks: bool) -> bool:
    """True when ``path`` is a non-empty regular image file; otherwise count why not."""
    try:
        if entry.is_symlink() and not follow_symlinks:
            skips.add("symlink not followed", path)
            return False
        st = entry.stat()
    except OSError as exc:
        skips.add(_oserror_reason(exc), path)
        return False
    if not _is_image_name(path):
        skips.add("not an image", path)
    elif not stat.S_ISREG(st.st_mode):
        skips.add("not a regular file", path)
    elif st.st_size == 0:
        skips.add("empty file", path)
    else:
        return True
    return False


def _read_csv(csv_path: str, image_dirs: list[str], skips: _Skips, *, label_sep: str | None,
              image_col: str | None, label_col: str | None, follow_symlinks: bool
              ) -> tuple[list[Item], str | None]:
    header, rows = _read_csv_rows(csv_path)
    img_i, lab_i = _csv_columns(header, image_col, label_col, csv_path)
    split_i = _split_column(header)
    cell = lambda row, i: row[i].strip() if i is not None and i < len(row) else ""  # noqa: E731
    sep = _detect_label_sep(cell(r, lab_i) for r in rows) if label_sep is None else (label_sep or None)
    index = _FileIndex(image_dirs)
    seen: dict[str, Item] = {}
    for row_no, row in enumerate(rows, start=2):  # row 1 is the header
        name, raw = cell(row, img_i), cell(row, lab_i)
        where = f"{csv_path}:{row_no}"
        if not name:
            skips.add("empty image name", where)
            continue
        labels = _split_labels(raw, sep)
        if not labels:
            skips.add("empty label", f"{where} ({name})")
            continue
        split = _row_split(cell(row, split_i), header[split_i].lower()) if split_i is not None else None
        if split == "test":
            skips.add("test split (not used)", f"{where} ({name})")
            continue
        found = index.resolve(name)
        if found is None:
            skips.add("missing file", f"{where} ({name})")
            continue
        path, entry = found
        if path in seen:
            same = seen[path].labels == labels
            skips.add("duplicate row" if same else "conflicting duplicate row (first kept)", f"{where} ({name})")
            continue
        if not _check_file(path, entry, skips, follow_symlinks):
            continue
        seen[path] = Item(Path(path), labels, split)
    return list(seen.values()), sep


def _find_csvs(root: str) -> list[str]:
    try:
        with os.scandir(root) as it:
            return sorted(e.path for e in it if e.name.lower().endswith(".csv") and not e.name.startswith(".")
                          and e.is_file())
    except OSError:
        return []


def _pick_csv(root: str, csvs: list[str]) -> str | None:
    """The labels CSV of a folder: ``labels.csv``, else the only CSV; None when ambiguous."""
    for path in csvs:
        if os.path.basename(path).lower() == "labels.csv":
            return path
    return csvs[0] if len(csvs) == 1 else None


# --- read_dataset -----------------------------------------------------------------------

def _check_root(path: str) -> None:
    if not os.path.exists(path):
        hint = "check the spelling" if not os.path.lexists(path) else "it is a broken symlink"
        raise DatasetError(f"Dataset path '{path}' does not exist", path=path, hint=hint)
    if os.path.isfile(path) and not path.lower().endswith(".csv"):
        raise DatasetError(f"Dataset path '{path}' is a file but not a .csv", path=path,
                           hint="pass the dataset folder, or a CSV of image,labels rows")
    if os.path.isdir(path):
        try:
            with os.scandir(path) as it:
                empty = next(iter(it), None) is None
        except PermissionError:
            raise DatasetError(f"Dataset folder '{_display_dir(path)}' cannot be read (permission denied)",
                               path=path, hint="check the folder's permissions") from None
        if empty:
            raise DatasetError(f"Dataset folder '{_display_dir(path)}' is empty", path=path,
                               hint=_ACCEPTED)


def _classes_of(items: list[Item]) -> tuple[str, ...]:
    return tuple(sorted({label for it in items for label in it.labels}))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


def _too_few_classes(layout: str, path: str, classes: tuple[str, ...], items: list[Item],
                     pattern: re.Pattern | None) -> DatasetError:
    n = len(classes)
    named = f" ({classes[0]!r}, {_plural(len(items), 'image')})" if n == 1 else ""
    if layout == "folders":
        d = _display_dir(path)
        return DatasetError(
            f"Dataset folder '{d}' has {_plural(n, 'class sub-folder')}{named} but needs at least 2; "
            f"put each class's images in its own sub-folder ({d}<class>/x.jpg)", path=path)
    if layout == "csv":
        return DatasetError(f"CSV '{path}' has {_plural(n, 'class')}{named} but needs at least 2",
                            path=path, hint="check label_col and label_sep (CLI --label-sep)")
    return DatasetError(
        f"File names in '{_display_dir(path)}' give {_plural(n, 'class')}{named} with "
        f"filename_regex {pattern.pattern!r} but need at least 2", path=path,
        hint="pass a filename_regex whose group captures the label (CLI --filename-regex)")


def _no_images(path: str, skips: _Skips, csv_layout: bool = False) -> DatasetError:
    found = ", ".join(f"{n} {reason}" for reason, n in sorted(skips.counts.items())) or "nothing usable"
    if csv_layout:
        return DatasetError(f"CSV '{path}' has no usable rows (skipped: {found})", path=path,
                            hint="image names are looked up next to the CSV and in its images/ folder")
    loose = skips.counts.get("image outside a class folder", 0)
    if loose:  # layout="folders" on a flat folder of images
        d = _display_dir(path)
        return DatasetError(f"Dataset folder '{d}' has {_plural(loose, 'image')} but no class sub-folders; "
                            f"put each class's images in its own sub-folder ({d}<class>/x.jpg)", path=path)
    exts = " ".join(sorted(IMAGE_EXTENSIONS))
    return DatasetError(f"Dataset folder '{_display_dir(path)}' has no images (found: {found}); "
                        f"image files must end in {exts}", path=path, hint=_ACCEPTED)


def _auto_layout(root: str, pattern: re.Pattern, follow_symlinks: bool
                 ) -> tuple[str, str | None, tuple[list[Item], _Skips] | None]:
    """``(layout, csv_path, (items, skips) already read or None)`` for a folder.

    Raises a DatasetError that says what was found when no layout fits.
    """
    csvs = _find_csvs(root)
    chosen = _pick_csv(root, csvs)
    if chosen is not None and os.path.basename(chosen).lower() == "labels.csv":
        return "csv", chosen, None
    folder_skips = _Skips()
    items = _read_folders(os.path.abspath(root), folder_skips, follow_symlinks)
    classes = _classes_of(items)
    # Class folders beat a lone CSV not called labels.csv (often metadata or results).
    if len(classes) >= 2:
        return "folders", None, (items, folder_skips)
    if chosen is not None:
        return "csv", chosen, None
    name_skips = _Skips()
    named = _read_filename(os.path.abspath(root), pattern, name_skips, follow_symlinks)
    unmatched = name_skips.counts.get(_NO_MATCH, 0)
    # At least half the names must match: a few stray "x_1.jpg" do not make a filename dataset.
    if named and len(named) >= unmatched:
        return "filename", None, (named, name_skips)
    if len(csvs) > 1:
        raise DatasetError(f"Dataset folder '{_display_dir(root)}' holds {len(csvs)} CSV files "
                           f"({', '.join(os.path.basename(c) for c in csvs)}) and no labels.csv",
                           path=root, hint="pass the labels CSV as csv_path= (CLI --csv)")
    if len(classes) == 1 and not (classes == ("images",) and unmatched):
        raise _too_few_classes("folders", root, classes, items, None)
    if unmatched:
        raise DatasetError(
            f"Dataset folder '{_display_dir(root)}' has {len(named) + unmatched} images but no class "
            f"sub-folders, no labels.csv, and {unmatched} of the file names do not match "
            f"filename_regex {pattern.pattern!r}", path=root,
            hint=f"{_ACCEPTED}; or pass filename_regex= (CLI --filename-regex)")
    raise _no_images(root, folder_skips)


def read_dataset(path: str | os.PathLike, *, layout: str = "auto", csv_path: str | os.PathLike | None = None,
                 label_sep: str | None = None, image_col: str | None = None, label_col: str | None = None,
                 filename_regex: str | re.Pattern = PETS_REGEX, follow_symlinks: bool = True) -> Dataset:
    """Read an image-classification dataset (file names and labels; no image is decoded).

    Parameters
    ----------
    path : str or path-like
        A dataset folder, or a CSV file of ``image,labels`` rows.
    layout : {"auto", "folders", "csv", "filename"}, default="auto"
        ``"auto"`` picks: a ``.csv`` path, or a folder holding ``labels.csv`` -> ``"csv"``;
        at least 2 class sub-folders with images (optionally under ``train/`` and ``valid/``,
        ``val/`` or ``validation/``) -> ``"folders"``; else a folder holding exactly one CSV
        -> ``"csv"``; images in the folder or its ``images/`` sub-folder whose names mostly
        match ``filename_regex`` -> ``"filename"``.
    csv_path : str or path-like, default=None
        The CSV to read (implies ``layout="csv"``); image names are looked up relative to the
        CSV's folder, its ``images/`` sub-folder, then ``path`` and ``path/images``.
    label_sep : str, default=None
        Separator between labels in one CSV cell. None auto-detects ``|``, ``;`` or a space
        (the first that occurs in the column). ``""`` never splits (single-label names with
        spaces, e.g. "golden retriever").
    image_col, label_col : str, default=None
        CSV column names; None recognises common names (``image``, ``image_id``, ``file`` ...
        and ``labels``, ``label``, ``tags``, ``target`` ...); with no recognised name the first
        two columns are used, and a recognised image column among several unknown ones asks
        for ``label_col`` rather than guess.
    filename_regex : str or re.Pattern, default=PETS_REGEX
        Applied to each file stem (``re.search``); group 1 (or the group named ``label``)
        is the label. The default reads Oxford-IIIT Pet names: ``american_bulldog_12``.
    follow_symlinks : bool, default=True
        Follow symlinked files and folders (loops and broken links are counted, not fatal).

    Returns
    -------
    Dataset
        Items sorted by path, classes sorted; files left out are counted in ``skipped``
        (hidden files, non-images, empty files, missing CSV references, empty labels,
        duplicate rows, broken links, symlink loops, unreadable folders ...).

    Raises
    ------
    DatasetError
        The path does not exist, is a non-CSV file, an empty folder or holds no images; a
        single-label dataset has fewer than 2 classes; the CSV is unreadable or has no usable
        columns; or no layout fits. The message names the path and says what was found.
    ValueError
        ``layout`` is unknown or ``filename_regex`` is invalid or has no group.

    Examples
    --------
    >>> import tempfile
    >>> from finetune_advisor.testing import make_csv_dataset
    >>> root = make_csv_dataset(tempfile.mkdtemp(), labels=[["cat"], ["dog", "cat"], ["dog"]])
    >>> ds = read_dataset(root)
    >>> ds.layout, ds.classes, ds.multi_label, ds.items[1].labels
    ('csv', ('cat', 'dog'), True, ('cat', 'dog'))
    """
    layout = "auto" if layout is None else str(layout).lower()
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not one of {LAYOUTS}")
    pattern = _compile_regex(PETS_REGEX if filename_regex is None else filename_regex)
    path_str = os.fspath(path)
    layout, csv_str, scanned = _resolve_layout(path_str, layout, csv_path, pattern, follow_symlinks)
    return _read_layout(path_str, layout, csv_str, pattern, scanned, label_sep=label_sep,
                        image_col=image_col, label_col=label_col, follow_symlinks=follow_symlinks)


def _resolve_layout(path: str, layout: str, csv_path: str | os.PathLike | None, pattern: re.Pattern,
                    follow_symlinks: bool) -> tuple[str, str | None, tuple[list[Item], _Skips] | None]:
    """Check the paths and settle ``(layout, csv_path, items already scanned or None)``."""
    csv_str = None
    if csv_path is not None:
        if layout not in ("auto", "csv"):
            raise ValueError(f"csv_path= implies layout='csv', got layout={layout!r}")
        layout, csv_str = "csv", os.fspath(csv_path)
        _check_root(csv_str)
        if not os.path.isfile(csv_str):
            raise DatasetError(f"csv_path '{csv_str}' is not a file", path=csv_str,
                               hint="pass the CSV of image,labels rows")
    _check_root(path)
    if os.path.isfile(path):  # a CSV (anything else was rejected by _check_root)
        if layout not in ("auto", "csv"):
            raise DatasetError(f"layout={layout!r} needs a folder, but '{path}' is a CSV file",
                               path=path, hint="use layout='csv' or pass the folder")
        return "csv", csv_str or path, None
    if layout == "auto":
        return _auto_layout(path, pattern, follow_symlinks)
    if layout == "csv" and csv_str is None:
        csvs = _find_csvs(path)
        csv_str = _pick_csv(path, csvs)
        if csv_str is None:
            raise DatasetError(f"Dataset folder '{_display_dir(path)}' has no labels.csv "
                               f"(found {len(csvs)} CSV files)", path=path,
                               hint="pass the labels CSV as csv_path= (CLI --csv)")
    return layout, csv_str, None


def _read_layout(path: str, layout: str, csv_str: str | None, pattern: re.Pattern,
                 scanned: tuple[list[Item], _Skips] | None, *, label_sep, image_col, label_col,
                 follow_symlinks: bool) -> Dataset:
    skips = _Skips()
    sep = None
    if scanned is not None:  # auto-detection already read it
        (items, skips), root, where = scanned, path, path
    elif layout == "csv":
        csv_dir = os.path.dirname(os.path.abspath(csv_str))
        dirs = [csv_dir, os.path.join(csv_dir, "images")]
        if os.path.isdir(path) and os.path.abspath(path) != csv_dir:
            dirs += [os.path.abspath(path), os.path.join(os.path.abspath(path), "images")]
        items, sep = _read_csv(csv_str, dirs, skips, label_sep=label_sep, image_col=image_col,
                               label_col=label_col, follow_symlinks=follow_symlinks)
        root, where = (path if os.path.isdir(path) else csv_dir), csv_str
    else:
        root = where = path
        if layout == "folders":
            items = _read_folders(os.path.abspath(path), skips, follow_symlinks)
        else:
            items = _read_filename(os.path.abspath(path), pattern, skips, follow_symlinks)
    if not items:
        raise _no_images(where, skips, csv_layout=layout == "csv")
    items.sort(key=lambda it: str(it.path))
    classes = _classes_of(items)
    multi = any(len(it.labels) > 1 for it in items)
    if not multi and len(classes) < 2:
        raise _too_few_classes(layout, where, classes, items, pattern)
    counts, examples = skips.frozen()
    return Dataset(root=Path(os.path.abspath(root)), layout=layout, items=tuple(items), classes=classes,
                   multi_label=multi, skipped=counts, skipped_examples=examples,
                   csv_path=Path(os.path.abspath(csv_str)) if csv_str else None, label_sep=sep)


# --- profile_dataset ----------------------------------------------------------------------

_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # 90/270-degree rotations: width and height trade places


def _header_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` as displayed, from the header only (``Image.open`` is lazy)."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
        # getexif() on PNG would decode the image, so only formats whose EXIF is in the header.
        if img.format in ("JPEG", "MPO", "WEBP", "TIFF"):
            if img.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
                w, h = h, w
    return w, h


def _resolution_stats(sizes: list[tuple[int, int]]) -> dict[str, float]:
    import numpy as np

    keys = ("mean_w", "mean_h", "median_w", "median_h", "min_w", "min_h", "max_w", "max_h")
    if not sizes:
        return dict.fromkeys(keys, float("nan"))
    arr = np.asarray(sizes, dtype=np.float64)
    w, h = arr[:, 0], arr[:, 1]
    values = (w.mean(), h.mean(), np.median(w), np.median(h), w.min(), h.min(), w.max(), h.max())
    return {k: float(v) for k, v in zip(keys, values)}


def profile_dataset(dataset: Dataset, *, max_header_reads: int | None = None, seed: int = 0) -> DatasetProfile:
    """Summarise a dataset for the heuristics, reading image headers only.

    Parameters
    ----------
    dataset : Dataset
        As returned by :func:`read_dataset`.
    max_header_reads : int, default=None
        Read the headers of at most this many images (a seeded random sample) for the
        resolution statistics; counts stay exact. None reads every header.
    seed : int, default=0
        Seed of that sample.

    Returns
    -------
    DatasetProfile
        ``images_per_class`` (multi-label: images carrying the label), ``imbalance_sd``
        (population SD, ``ddof=0``, of images per class), resolution statistics of the
        headers read (EXIF rotation applied), ``n_corrupt`` headers that could not be read
        (also in ``skipped["unreadable image"]``, or ``skipped[TOO_LARGE_IMAGE]`` for an image
        beyond Pillow's decompression-bomb limit, which is refused rather than decoded; they
        stay in the counts).

    Examples
    --------
    >>> import tempfile
    >>> from finetune_advisor.testing import make_folder_dataset
    >>> root = make_folder_dataset(tempfile.mkdtemp(), counts={"a": 2, "b": 4, "c": 6}, size=(16, 8))
    >>> prof = profile_dataset(read_dataset(root))
    >>> prof.n_images, prof.images_per_class, round(prof.imbalance_sd, 4)
    (12, {'a': 2, 'b': 4, 'c': 6}, 1.633)
    >>> prof.mean_resolution
    (16.0, 8.0)
    """
    import numpy as np

    if max_header_reads is not None and int(max_header_reads) < 1:
        raise ValueError(f"max_header_reads must be >= 1 or None, got {max_header_reads!r}")
    items = dataset.items
    to_read = _sample(items, max_header_reads, seed)
    sizes, bad = _read_headers(to_read)
    unreadable = [path for path, _ in bad]
    counts = dataset.class_counts()
    skipped = dict(dataset.skipped)
    for _, reason in bad:
        skipped[reason] = skipped.get(reason, 0) + 1
    return DatasetProfile(
        root=str(dataset.root), layout=dataset.layout, n_images=len(items), n_classes=len(dataset.classes),
        images_per_class=counts,
        imbalance_sd=float(np.std(list(counts.values()))) if counts else 0.0,  # population SD (ddof=0)
        multi_label=dataset.multi_label, resolution=_resolution_stats(sizes),
        n_corrupt=len(unreadable), skipped=dict(sorted(skipped.items())), n_headers_read=len(to_read),
        mean_labels_per_image=sum(len(it.labels) for it in items) / len(items) if items else 0.0,
        n_valid=sum(1 for it in items if it.split == "valid"),
        corrupt_examples=tuple(str(p) for p in unreadable[:_MAX_EXAMPLES]))


def _sample(items: tuple[Item, ...], k: int | None, seed: int) -> list[Item]:
    """All items, or ``k`` of them drawn without replacement (seeded), in their original order."""
    import numpy as np

    if k is None or len(items) <= k:
        return list(items)
    picked = np.sort(np.random.default_rng(seed).choice(len(items), int(k), replace=False))
    return [items[i] for i in picked]


def _header_problem(path: str | os.PathLike) -> tuple[tuple[int, int] | None, str | None]:
    """``(size, None)`` when the header reads, else ``(None, reason)``."""
    import warnings

    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt-EXIF and big-image warnings: one per file is noise
        try:
            return _header_size(path), None
        except Image.DecompressionBombError:
            return None, TOO_LARGE_IMAGE
        except Exception:  # noqa: BLE001 -- any decoder failure means "unreadable", never a crash
            return None, UNREADABLE_IMAGE


def _read_headers(items: list[Item]) -> tuple[list[tuple[int, int]], list[tuple[Path, str]]]:
    """``(sizes of the readable headers, [(path, reason), ...] of the unreadable ones)``."""
    sizes, bad = [], []
    for item in items:
        size, reason = _header_problem(item.path)
        if reason is None:
            sizes.append(size)
        else:
            bad.append((item.path, reason))
    return sizes, bad


def add_decode_failures(profile: DatasetProfile, paths: Iterable[str | os.PathLike]) -> DatasetProfile:
    """``profile`` with the images among ``paths`` whose header reads but whose pixels do not
    decode (a truncated JPEG) counted under :data:`UNDECODABLE_IMAGE` and in ``n_corrupt``.

    :func:`profile_dataset` reads headers only, so such files are found later, by whoever
    decodes them (the similarity embedding, the training loaders): pass the paths they
    failed on. Paths whose header is unreadable were counted by :func:`profile_dataset`
    already (when it read every header) and paths that do decode (e.g. skipped for
    non-finite features) are not counted here.

    Examples
    --------
    >>> import tempfile
    >>> from finetune_advisor.testing import make_folder_dataset, make_image
    >>> root = make_folder_dataset(tempfile.mkdtemp(), counts={"a": 2, "b": 2}, size=8)
    >>> bad = make_image(root / "a" / "cut.jpg", 64)
    >>> _ = bad.write_bytes(bad.read_bytes()[:-200])
    >>> prof = profile_dataset(read_dataset(root))
    >>> prof.n_corrupt
    0
    >>> after = add_decode_failures(prof, [bad, root / "b" / "b_000.png"])
    >>> after.n_corrupt, after.skipped
    (1, {'corrupt image (failed to decode)': 1})
    """
    new = []
    for path in sorted({os.fspath(p) for p in paths}):
        if _header_problem(path)[1] is not None:
            continue
        try:
            load_image(path)
        except DatasetError:
            new.append(path)
    if not new:
        return profile
    skipped = dict(profile.skipped)
    skipped[UNDECODABLE_IMAGE] = skipped.get(UNDECODABLE_IMAGE, 0) + len(new)
    return dataclasses.replace(profile, skipped=dict(sorted(skipped.items())), n_corrupt=profile.n_corrupt + len(new),
                               corrupt_examples=(tuple(profile.corrupt_examples) + tuple(new))[:_MAX_EXAMPLES])


# --- load_image ---------------------------------------------------------------------------

_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def load_image(path: str | Path, size: int | None = None):
    """Decode ``path`` to an RGB PIL image, cheaply when only ``size`` pixels are needed.

    JPEGs are decoded at reduced scale with Pillow's ``draft`` (DCT scaling) when ``size``
    is given; EXIF orientation is applied; palette, alpha, 16-bit and CMYK images become RGB
    (transparent pixels over white). A truncated file raises instead of returning a partial
    image (unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` was set by someone else).
    Raises :class:`~finetune_advisor.exceptions.DatasetError` naming the file on any failure.

    Examples
    --------
    >>> import tempfile, os
    >>> from PIL import Image
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> Image.new("LA", (3, 2)).save(p)
    >>> img = load_image(p)
    >>> img.mode, img.size
    ('RGB', (3, 2))
    """
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            if size is not None and img.format == "JPEG":
                img.draft("RGB", (size, size))  # decodes at 1/2, 1/4 or 1/8 scale, never below size
            img.load()  # decode here, inside the try: a truncated file raises OSError now
            img = ImageOps.exif_transpose(img)
            if img.mode in _HIGH_BIT_MODES:
                import numpy as np
                arr = np.asarray(img, dtype=np.float32)
                hi = float(arr.max()) or 1.0
                img = Image.fromarray(np.clip(arr * (255.0 / hi), 0, 255).astype("uint8"), "L")
            if img.mode in ("P", "LA", "PA", "La", "RGBa") or (img.mode == "RGBA"):
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)
            return img.convert("RGB")
    except DatasetError:
        raise
    except Image.DecompressionBombError:
        raise DatasetError("image is larger than Pillow's decompression-bomb limit; refused", path=path,
                           hint="downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file") from None
    except FileNotFoundError:
        raise DatasetError(f"image '{path}' does not exist", path=path) from None
    except PermissionError:
        raise DatasetError(f"image '{path}' cannot be read (permission denied)", path=path) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DatasetError(f"cannot decode image: {exc}", path=path) from None
