"""Reading a dataset: check the path, settle the layout (or detect it), run its reader, and
turn "nothing usable" into an error that says what was found."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..exceptions import DatasetError
from .images import IMAGE_EXTENSIONS
from .layouts import NO_MATCH, PETS_REGEX, compile_regex, find_csvs, pick_csv, read_csv, read_filename, read_folders
from .model import Dataset, Item, format_skips
from .layouts.csv_labels import OUTSIDE
from .scan import UNREADABLE_CLASS, Skips, display_dir

log = logging.getLogger(__name__)

__all__ = ["LAYOUTS", "read_dataset"]

LAYOUTS = ("auto", "folders", "csv", "filename")
_ACCEPTED = ("accepted layouts: class sub-folders (<root>/<class>/x.jpg, optionally under "
             "train/ and valid/), a labels.csv of image,labels rows (<root>/images/x.jpg), or "
             "Pets-style file names (<root>/images/<class>_<n>.jpg)")

Scanned = tuple[list[Item], Skips]  # items (and their skips) that layout detection already read


def read_dataset(path: str | os.PathLike, *, layout: str = "auto", csv_path: str | os.PathLike | None = None,
                 label_sep: str | None = None, image_col: str | None = None, label_col: str | None = None,
                 filename_regex: str | re.Pattern = PETS_REGEX, follow_symlinks: bool = True,
                 allow_outside_paths: bool = False) -> Dataset:
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
    allow_outside_paths : bool, default=False
        Read CSV image names that leave the dataset's folders (absolute paths, ``../``);
        without it they are skipped and counted ("path outside the dataset folder").

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
        ``layout`` is unknown, or ``filename_regex`` is invalid or has no group (an
        :class:`~finetune_advisor.exceptions.InvalidOptionError`, also a ConfigError).

    Examples
    --------
    >>> import tempfile
    >>> from finetune_advisor.testing import make_csv_dataset, make_folder_dataset
    >>> ds = read_dataset(make_folder_dataset(tempfile.mkdtemp(), counts={"cat": 2, "dog": 4}))
    >>> ds.layout, ds.classes, len(ds)
    ('folders', ('cat', 'dog'), 6)
    >>> root = make_csv_dataset(tempfile.mkdtemp(), labels=[["cat"], ["dog", "cat"], ["dog"]])
    >>> ds = read_dataset(root)
    >>> ds.layout, ds.classes, ds.multi_label, ds.items[1].labels
    ('csv', ('cat', 'dog'), True, ('cat', 'dog'))
    """
    layout = "auto" if layout is None else str(layout).lower()
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not one of {LAYOUTS}")
    pattern = compile_regex(PETS_REGEX if filename_regex is None else filename_regex)
    path_str = os.fspath(path)
    layout, csv_str, scanned = _resolve_layout(path_str, layout, csv_path, pattern, follow_symlinks)
    return _read_layout(path_str, layout, csv_str, pattern, scanned, label_sep=label_sep,
                        image_col=image_col, label_col=label_col, follow_symlinks=follow_symlinks,
                        allow_outside_paths=allow_outside_paths)


def _resolve_layout(path: str, layout: str, csv_path: str | os.PathLike | None, pattern: re.Pattern,
                    follow_symlinks: bool) -> tuple[str, str | None, Scanned | None]:
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
        csvs = find_csvs(path)
        csv_str = pick_csv(csvs)
        if csv_str is None:
            raise DatasetError(f"Dataset folder '{display_dir(path)}' has no labels.csv "
                               f"(found {len(csvs)} CSV files)", path=path,
                               hint="pass the labels CSV as csv_path= (CLI --csv)")
    return layout, csv_str, None


def _read_layout(path: str, layout: str, csv_str: str | None, pattern: re.Pattern,
                 scanned: Scanned | None, *, label_sep, image_col, label_col,
                 follow_symlinks: bool, allow_outside_paths: bool = False) -> Dataset:
    skips = Skips()
    sep = None
    if scanned is not None:  # auto-detection already read it
        (items, skips), root, where = scanned, path, path
    elif layout == "csv":
        csv_dir = os.path.dirname(os.path.abspath(csv_str))
        dirs = [csv_dir, os.path.join(csv_dir, "images")]
        if os.path.isdir(path) and os.path.abspath(path) != csv_dir:
            dirs += [os.path.abspath(path), os.path.join(os.path.abspath(path), "images")]
        items, sep = read_csv(csv_str, dirs, skips, label_sep=label_sep, image_col=image_col,
                              label_col=label_col, follow_symlinks=follow_symlinks,
                              allow_outside=allow_outside_paths)
        root, where = (path if os.path.isdir(path) else csv_dir), csv_str
    else:
        root = where = path
        if layout == "folders":
            items = read_folders(os.path.abspath(path), skips, follow_symlinks)
        else:
            items = read_filename(os.path.abspath(path), pattern, skips, follow_symlinks)
    lost = [os.path.basename(p) for p in skips.examples.get(UNREADABLE_CLASS, ())]
    if not items:
        raise _no_images(where, skips, csv_layout=layout == "csv")
    items.sort(key=lambda it: str(it.path))
    classes = _classes_of(items)
    multi = any(len(it.labels) > 1 for it in items)
    if not multi and len(classes) < 2:
        if lost:
            raise DatasetError(f"only {len(classes)} class left in '{display_dir(where)}': the class folder(s) "
                               f"{', '.join(lost)} cannot be read (permission denied)", path=where,
                               hint="fix their permissions (chmod -R u+rX FOLDER)")
        if skips.counts.get(OUTSIDE):
            raise DatasetError(f"only {len(classes)} class left in '{where}': {skips.counts[OUTSIDE]} row(s) name "
                               f"images outside the dataset folder (e.g. {skips.examples[OUTSIDE][0]})", path=where,
                               hint="pass --allow-outside-paths (allow_outside_paths=True) if you trust the CSV")
        raise _too_few_classes(layout, where, classes, items, pattern)
    _warn_about_what_was_left_out(items, skips, where, lost)
    counts, examples = skips.frozen()
    return Dataset(root=Path(os.path.abspath(root)), layout=layout, items=tuple(items), classes=classes,
                   multi_label=multi, skipped=counts, skipped_examples=examples,
                   csv_path=Path(os.path.abspath(csv_str)) if csv_str else None, label_sep=sep)


def _warn_about_what_was_left_out(items: list[Item], skips: Skips, where: str, lost: list[str]) -> None:
    """Say by name what would otherwise vanish into a skip count: whole classes that cannot be
    read, CSV rows pointing outside the dataset, and the same image file in two classes (a
    symlinked folder, ``Motorbikes/cross -> ../Leopards``)."""
    if lost:    # the summary's wording (format_skips), then the names
        log.warning("%s (permission denied): %s",
                    format_skips({UNREADABLE_CLASS: skips.counts[UNREADABLE_CLASS]}, display_dir(where)),
                    ", ".join(lost))
    if skips.counts.get(OUTSIDE):
        log.warning("%s (e.g. %s); pass --allow-outside-paths (allow_outside_paths=True) to read them",
                    format_skips({OUTSIDE: skips.counts[OUTSIDE]}, where), skips.examples[OUTSIDE][0])
    if not skips.links:          # no symlink followed: every file has one path (and no realpath per file)
        return
    owners: dict[str, set[str]] = {}
    for it in items:
        owners.setdefault(os.path.realpath(it.path), set()).update(it.labels[:1] if len(it.labels) == 1 else ())
    shared = {real: labels for real, labels in owners.items() if len(labels) > 1}
    if shared:
        real, labels = next(iter(shared.items()))
        log.warning("%d image file(s) of %s are labelled with two classes through symlinked files or folders "
                    "(e.g. %s in %s): the classes overlap; remove the links or make them one class",
                    len(shared), display_dir(where), os.path.basename(real), " and ".join(sorted(labels)))


def _auto_layout(root: str, pattern: re.Pattern, follow_symlinks: bool) -> tuple[str, str | None, Scanned | None]:
    """``(layout, csv_path, (items, skips) already read or None)`` for a folder.

    Raises a DatasetError that says what was found when no layout fits.
    """
    csvs = find_csvs(root)
    chosen = pick_csv(csvs)
    if chosen is not None and os.path.basename(chosen).lower() == "labels.csv":
        return "csv", chosen, None
    folder_skips = Skips()
    items = read_folders(os.path.abspath(root), folder_skips, follow_symlinks)
    classes = _classes_of(items)
    # Class folders beat a lone CSV not called labels.csv (often metadata or results).
    if len(classes) >= 2:
        return "folders", None, (items, folder_skips)
    if chosen is not None:
        return "csv", chosen, None
    name_skips = Skips()
    named = read_filename(os.path.abspath(root), pattern, name_skips, follow_symlinks)
    unmatched = name_skips.counts.get(NO_MATCH, 0)
    # At least half the names must match: a few stray "x_1.jpg" do not make a filename dataset.
    if named and len(named) >= unmatched:
        return "filename", None, (named, name_skips)
    if len(csvs) > 1:
        raise DatasetError(f"Dataset folder '{display_dir(root)}' holds {len(csvs)} CSV files "
                           f"({', '.join(os.path.basename(c) for c in csvs)}) and no labels.csv",
                           path=root, hint="pass the labels CSV as csv_path= (CLI --csv)")
    if len(classes) == 1 and not (classes == ("images",) and unmatched):
        raise _too_few_classes("folders", root, classes, items, None)
    if unmatched:
        raise DatasetError(
            f"Dataset folder '{display_dir(root)}' has {len(named) + unmatched} images but no class "
            f"sub-folders, no labels.csv, and {unmatched} of the file names do not match "
            f"filename_regex {pattern.pattern!r}", path=root,
            hint=f"{_ACCEPTED}; or pass filename_regex= (CLI --filename-regex)")
    raise _no_images(root, folder_skips)


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
            raise DatasetError(f"Dataset folder '{display_dir(path)}' cannot be read (permission denied)",
                               path=path, hint="check the folder's permissions") from None
        if empty:
            raise DatasetError(f"Dataset folder '{display_dir(path)}' is empty", path=path,
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
        d = display_dir(path)
        return DatasetError(
            f"Dataset folder '{d}' has {_plural(n, 'class sub-folder')}{named} but needs at least 2; "
            f"put each class's images in its own sub-folder ({d}<class>/x.jpg)", path=path)
    if layout == "csv":
        return DatasetError(f"CSV '{path}' has {_plural(n, 'class')}{named} but needs at least 2",
                            path=path, hint="check label_col and label_sep (CLI --label-sep)")
    return DatasetError(
        f"File names in '{display_dir(path)}' give {_plural(n, 'class')}{named} with "
        f"filename_regex {pattern.pattern!r} but need at least 2", path=path,
        hint="pass a filename_regex whose group captures the label (CLI --filename-regex)")


def _no_images(path: str, skips: Skips, csv_layout: bool = False) -> DatasetError:
    found = ", ".join(f"{n} {reason}" for reason, n in sorted(skips.counts.items())) or "nothing usable"
    if csv_layout:
        return DatasetError(f"CSV '{path}' has no usable rows (skipped: {found})", path=path,
                            hint="image names are looked up next to the CSV and in its images/ folder")
    loose = skips.counts.get("image outside a class folder", 0)
    if loose:  # layout="folders" on a flat folder of images
        d = display_dir(path)
        return DatasetError(f"Dataset folder '{d}' has {_plural(loose, 'image')} but no class sub-folders; "
                            f"put each class's images in its own sub-folder ({d}<class>/x.jpg)", path=path)
    exts = " ".join(sorted(IMAGE_EXTENSIONS))
    return DatasetError(f"Dataset folder '{display_dir(path)}' has no images (found: {found}); "
                        f"image files must end in {exts}", path=path, hint=_ACCEPTED)
