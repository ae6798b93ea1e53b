"""The ``"csv"`` layout: a CSV of ``image,labels`` rows (multi-label when a row names several labels)."""
from __future__ import annotations

import csv
import logging
import os
import stat
from pathlib import Path
from typing import Iterable

from ...exceptions import DatasetError
from ..images import IMAGE_EXTENSIONS, is_image_name
from ..model import Item
from ..scan import Skips, oserror_reason
from ..splits import split_role

__all__ = ["IMAGE_COLUMNS", "LABEL_COLUMNS", "read_csv", "find_csvs", "pick_csv", "describe_label_sep"]

log = logging.getLogger(__name__)

# CSV column names recognised automatically (compared lower-case, in order of preference).
IMAGE_COLUMNS = ("image", "image_id", "id", "file", "filename", "path", "image index",
                 "image_name", "file_name", "fname", "filepath")
LABEL_COLUMNS = ("labels", "label", "tags", "target", "class", "finding labels",
                 "classes", "category", "y")
# Tried in this order. "|" and ";" win as soon as they occur (class names rarely hold them);
# a space separates labels only when the split is consistent across the file (_space_separates).
_AUTO_LABEL_SEPS = ("|", ";", " ")


OUTSIDE = "path outside the dataset folder"      # a skip reason: ../../x.jpg, /etc/passwd


def read_csv(csv_path: str, image_dirs: list[str], skips: Skips, *, label_sep: str | None,
             image_col: str | None, label_col: str | None, follow_symlinks: bool,
             allow_outside: bool = False) -> tuple[list[Item], str | None]:
    """``(items, label separator used)`` of a labels CSV; image names are looked up in ``image_dirs``.

    A name that leaves those folders (absolute, or climbing out with ``..``) is skipped and
    counted as :data:`OUTSIDE` unless ``allow_outside``: a CSV from elsewhere must not read
    arbitrary files silently."""
    header, rows = _read_csv_rows(csv_path)
    img_i, lab_i = _csv_columns(header, image_col, label_col, csv_path)
    split_i = _split_column(header)
    cell = lambda row, i: row[i].strip() if i is not None and i < len(row) else ""  # noqa: E731
    if label_sep is None:
        sep = _detect_label_sep([cell(r, lab_i) for r in rows], csv_path)
        how = "detected"
    else:
        sep, how = label_sep or None, "given"
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
        if not allow_outside and _leaves(name):
            skips.add(OUTSIDE, f"{where} ({name})")
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
    items = list(seen.values())
    skips.links += int(index.through_links)
    kind = "multi-label" if any(len(it.labels) > 1 for it in items) else "single-label"
    log.info("labels CSV %s: %s (label separator %s, %s)", csv_path, kind, describe_label_sep(sep), how)
    return items, sep


def describe_label_sep(sep: str | None) -> str:
    """How a label separator reads in a message.

    >>> describe_label_sep("|"), describe_label_sep(" "), describe_label_sep(None)
    ("'|'", 'space', 'none: each cell is one label')
    """
    if sep is None:
        return "none: each cell is one label"
    return "space" if sep == " " else repr(sep)


def find_csvs(root: str) -> list[str]:
    """The (non-hidden) CSV files directly in ``root``, sorted."""
    try:
        with os.scandir(root) as it:
            return sorted(e.path for e in it if e.name.lower().endswith(".csv") and not e.name.startswith(".")
                          and e.is_file())
    except OSError:
        return []


def pick_csv(csvs: list[str]) -> str | None:
    """The labels CSV among a folder's CSVs: ``labels.csv``, else the only CSV; None when ambiguous.

    >>> pick_csv(["d/a.csv", "d/Labels.csv"]), pick_csv(["d/a.csv"]), pick_csv(["d/a.csv", "d/b.csv"])
    ('d/Labels.csv', 'd/a.csv', None)
    """
    for path in csvs:
        if os.path.basename(path).lower() == "labels.csv":
            return path
    return csvs[0] if len(csvs) == 1 else None


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


def _detect_label_sep(values: list[str], csv_path: str = "") -> str | None:
    """The label separator of a CSV's label cells: ``|`` or ``;`` when one occurs, else a space
    when splitting on it is consistent (:func:`_space_separates`), else None (one label per cell).

    >>> _detect_label_sep(["cat", "dog", "sea lion", "sea lion"]) is None
    True
    >>> _detect_label_sep(["cat", "dog cat", "bird dog", "dog"])
    ' '
    >>> _detect_label_sep(["No Finding", "Mass|Pleural Thickening"])
    '|'
    """
    values = [v.strip() for v in values if v.strip()]
    for sep in _AUTO_LABEL_SEPS[:-1]:
        if any(sep in v for v in values):
            return sep
    return " " if _space_separates(values, csv_path) else None


def _space_separates(values: list[str], csv_path: str) -> bool:
    """True when a space separates labels in these label cells, consistently across the file.

    Splitting must explain the cells with fewer names than it creates (``cat dog``, ``bird dog``,
    ``cat`` -> 3 labels for 3 cells is no gain; Planet's 17 tags for ~450 combinations is), and no
    spaced cell may be a name of its own: one whose words never occur in any other cell (``sea
    lion`` among ``cat`` and ``dog``). A file with both kinds is ambiguous: a DatasetError asks
    for ``--label-sep``.
    """
    distinct = set(values)
    spaced = sorted(v for v in distinct if " " in v)
    if not spaced:
        return False
    cells_of: dict[str, set[str]] = {}
    for v in distinct:
        for word in v.split():
            cells_of.setdefault(word, set()).add(v)
    whole = [v for v in spaced if all(cells_of[w] == {v} for w in v.split())]    # "sea lion"
    split = [v for v in spaced if all(len(cells_of[w]) > 1 for w in v.split())]  # "cat dog"
    if whole and split:
        raise DatasetError(
            f"Labels in CSV '{csv_path}' are ambiguous: {whole[0]!r} looks like one class name with a space, "
            f"but {split[0]!r} looks like two labels separated by a space", path=csv_path,
            hint="pass --label-sep ' ' (label_sep=' ') for space-separated labels, or --label-sep '' "
                 "(label_sep='') to keep every cell as one label")
    return not whole and len(cells_of) < len(distinct)


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
    return split_role(v)


def _leaves(name: str) -> bool:
    """Whether a CSV image name points outside the folders it is looked up in.

    >>> _leaves("images/a.jpg"), _leaves("../../etc/passwd"), _leaves("/etc/passwd"), _leaves("a/../b.jpg")
    (False, True, True, False)
    """
    if os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):      # /x, C:\\x
        return True
    return os.path.normpath(name).split(os.sep)[0] == os.pardir


class _FileIndex:
    """Resolves CSV image names against a few folders, listing each folder once.

    A 100k-row CSV must not cost 100k failed ``stat`` calls, so names are looked up in cached
    ``scandir`` listings (also for names with a folder part, ``train/x.jpg``).
    """

    def __init__(self, folders: list[str]):
        self.folders = folders
        self.through_links = False
        self._listings: dict[str, tuple[dict[str, os.DirEntry], dict[str, str]]] = {}
        self._folders_of: dict[str, list[str]] = {}  # folder part of a name -> folders to look in

    def _listing(self, folder: str) -> tuple[dict[str, os.DirEntry], dict[str, str]]:
        """``({name: entry}, {stem: name})`` of a folder; the stems serve names given without extension."""
        cached = self._listings.get(folder)
        if cached is None:
            # a folder reached through a symlink ("train/" -> elsewhere): its files may also be listed
            # under another path, which read_dataset then checks for
            self.through_links |= os.path.realpath(folder) != os.path.abspath(folder)
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
            if entry is None and base in stems and not is_image_name(base):  # "0001_000" -> "0001_000.png"
                entry = entries[stems[base]]
            if entry is not None:
                return entry.path, entry
        return None


def _check_file(path: str, entry: os.DirEntry, skips: Skips, follow_symlinks: bool) -> bool:
    """True when ``path`` is a non-empty regular image file; otherwise count why not."""
    try:
        if entry.is_symlink():
            if not follow_symlinks:
                skips.add("symlink not followed", path)
                return False
            skips.links += 1
        st = entry.stat()
    except OSError as exc:
        skips.add(oserror_reason(exc), path)
        return False
    if not is_image_name(path):
        skips.add("not an image", path)
    elif not stat.S_ISREG(st.st_mode):
        skips.add("not a regular file", path)
    elif st.st_size == 0:
        skips.add("empty file", path)
    else:
        return True
    return False
