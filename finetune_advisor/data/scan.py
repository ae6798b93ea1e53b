"""Listing dataset folders: image files and sub-folders, with every file left out counted by reason.

Also the one ImageFolder scanner, :func:`scan_class_folders` (``root/<class>/**/x.jpg``).
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .images import IMAGE_EXTENSIONS, is_image_name

__all__ = ["Skips", "MAX_EXAMPLES", "list_dir", "walk_images", "dir_id", "display_dir",
           "oserror_reason", "class_folders", "scan_class_folders"]

MAX_EXAMPLES = 5  # paths kept per skip reason, to show the user which files they were

DirId = tuple  # (st_dev, st_ino) of a folder


class Skips:
    """Counts skipped things by reason and keeps the first few paths of each."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}
        self.links = 0        # symlinks followed: only then can one file be listed under two paths

    def add(self, reason: str, path: str | os.PathLike, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        examples = self.examples.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(str(path))

    def frozen(self) -> tuple[dict[str, int], dict[str, tuple[str, ...]]]:
        """``(counts, examples)`` sorted by reason, ready for a frozen ``Dataset``."""
        keys = sorted(self.counts)
        return ({k: self.counts[k] for k in keys}, {k: tuple(self.examples[k]) for k in keys})


def oserror_reason(exc: OSError) -> str:
    """The skip reason for an ``OSError`` met while looking at a file."""
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "broken symlink"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return "unreadable file"


def display_dir(path: str | os.PathLike) -> str:
    """``'pets/'``-style name for messages (the user's spelling, with a trailing slash)."""
    return os.path.join(str(path), "")


def dir_id(path: str) -> DirId:
    """``(st_dev, st_ino)`` of a folder, to notice a symlink back up the tree."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _stat_entry(entry: os.DirEntry, skips: Skips, follow_symlinks: bool) -> os.stat_result | None:
    """``stat`` of an entry (through symlinks), or None after counting why it is skipped."""
    try:
        if entry.is_symlink():
            if not follow_symlinks:
                skips.add("symlink not followed", entry.path)
                return None
            skips.links += 1
        return entry.stat()  # follows symlinks (one syscall; the DirEntry caches it)
    except OSError as exc:
        skips.add(oserror_reason(exc), entry.path)
        return None


UNREADABLE_CLASS = "unreadable class folder"


def list_dir(path: str, skips: Skips, follow_symlinks: bool, ancestors: frozenset = frozenset(),
             extensions: frozenset[str] = IMAGE_EXTENSIONS) -> tuple[list[str], list[tuple[str, str, DirId]]]:
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
        skips.add(oserror_reason(exc), path)
        return [], []
    images, subdirs = [], []
    for entry in entries:
        name = entry.name
        if name.startswith("."):  # .DS_Store, ._x.jpg (macOS resource forks), .git, .ipynb_checkpoints
            skips.add("hidden file", entry.path)
            continue
        is_image = is_image_name(name, extensions)
        # Regular files: d_type says what they are, so only images (and links) cost a stat call.
        if not is_image and not entry.is_symlink() and not entry.is_dir(follow_symlinks=False):
            skips.add("not an image", entry.path)
            continue
        st = _stat_entry(entry, skips, follow_symlinks)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            sub_id = (st.st_dev, st.st_ino)
            if sub_id in ancestors:
                skips.add("symlink loop", entry.path)
            else:
                subdirs.append((name, entry.path, sub_id))
        elif not is_image:
            skips.add("not an image", entry.path)
        elif not stat.S_ISREG(st.st_mode):
            skips.add("not a regular file", entry.path)
        elif st.st_size == 0:
            skips.add("empty file", entry.path)
        else:
            images.append(name)
    return images, subdirs


def walk_images(path: str, path_id: DirId, skips: Skips, follow_symlinks: bool,
                ancestors: frozenset = frozenset(), extensions: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """All image files under ``path``, recursively (iterative, so deep trees cannot overflow)."""
    found: list[Path] = []
    stack = [(path, ancestors | {path_id})]
    while stack:
        folder, above = stack.pop()
        images, subdirs = list_dir(folder, skips, follow_symlinks, above, extensions)
        base = Path(folder)
        found.extend(base / name for name in images)  # ~2x cheaper than Path(full_path)
        stack.extend((sub, above | {sub_id}) for _, sub, sub_id in subdirs)
    return found


def class_folders(base: str, base_id: DirId, skips: Skips, follow_symlinks: bool,
                  ancestors: frozenset = frozenset(), extensions: frozenset[str] = IMAGE_EXTENSIONS
                  ) -> list[tuple[str, list[Path]]]:
    """``(class, image files)`` for each sub-folder of ``base`` (``base/<class>/**/x.jpg``).

    In listing order, empty classes included (and counted as "empty class folder" when
    readable; unreadable ones are counted already). Images directly in ``base`` are counted
    as "image outside a class folder".
    """
    above = ancestors | {base_id}
    images, subdirs = list_dir(base, skips, follow_symlinks, above, extensions)
    for name in images:
        skips.add("image outside a class folder", os.path.join(base, name))
    found = []
    for name, path, sub_id in subdirs:
        try:
            with os.scandir(path):
                pass
        except PermissionError:                    # the whole class is lost: said by name (read_dataset)
            skips.add(UNREADABLE_CLASS, path)
            continue
        files = walk_images(path, sub_id, skips, follow_symlinks, above, extensions)
        if not files:
            skips.add("empty class folder", path)
        found.append((name, files))
    return found


def scan_class_folders(root: str | os.PathLike, *, extensions: frozenset[str] = IMAGE_EXTENSIONS,
                       follow_symlinks: bool = True, skips: Skips | None = None) -> dict[str, list[Path]]:
    """ImageFolder: class -> sorted image files anywhere under ``root/<class>/``.

    The same scan as ``read_dataset``'s folders layout. Classes are sorted by name and
    those without images left out. Hidden files and folders, non-images, empty files,
    broken links and symlink loops are not listed; pass ``skips`` to have them counted.

    Examples
    --------
    >>> import tempfile
    >>> from finetune_advisor.testing import make_folder_dataset
    >>> root = make_folder_dataset(tempfile.mkdtemp(), counts={"dog": 2, "cat": 1})
    >>> {c: [p.name for p in files] for c, files in scan_class_folders(root).items()}
    {'cat': ['cat_000.png'], 'dog': ['dog_000.png', 'dog_001.png']}
    """
    base = os.fspath(root)
    found = class_folders(base, dir_id(base), Skips() if skips is None else skips, follow_symlinks,
                          extensions=extensions)
    return {name: sorted(files) for name, files in sorted(found, key=lambda c: c[0]) if files}
