"""The ``"filename"`` layout: the label is part of the file name, ``root/images/<label>_<n>.jpg``."""
from __future__ import annotations

import os
import re
from pathlib import Path

from ...exceptions import InvalidOptionError
from ..model import Item
from ..scan import Skips, dir_id, list_dir

__all__ = ["PETS_REGEX", "NO_MATCH", "compile_regex", "read_filename"]

PETS_REGEX = r"^(.+)_\d+$"  # Oxford-IIIT Pet: "american_bulldog_12" -> "american_bulldog"
NO_MATCH = "name does not match filename_regex"  # the skip reason auto-detection weighs
_REGEX_HINT = f"pass a --filename-regex (filename_regex=) with one group that captures the label, e.g. '{PETS_REGEX}'"


def compile_regex(filename_regex: str | re.Pattern) -> re.Pattern:
    """The compiled pattern; an InvalidOptionError (a ConfigError, and a ValueError) naming the
    pattern when it is invalid or captures no label.

    >>> compile_regex(PETS_REGEX).search("american_bulldog_12").group(1)
    'american_bulldog'
    """
    try:
        pattern = re.compile(filename_regex)
    except re.error as exc:
        raise InvalidOptionError(f"filename_regex {filename_regex!r} is not a valid regular expression: {exc}",
                                 hint=_REGEX_HINT) from None
    if pattern.groups < 1:
        raise InvalidOptionError(f"filename_regex {pattern.pattern!r} has no group to capture the label",
                                 hint=_REGEX_HINT)
    return pattern


def read_filename(root: str, pattern: re.Pattern, skips: Skips, follow_symlinks: bool) -> list[Item]:
    """Items of the images in ``root`` and ``root/images`` whose stem ``pattern`` labels."""
    items = []
    for folder, name in _filename_candidates(root, skips, follow_symlinks):
        label = _label_from_name(pattern, name)
        if label is None:
            skips.add(NO_MATCH, os.path.join(folder, name))
        else:
            items.append(Item(Path(folder, name), (label,)))
    return items


def _label_from_name(pattern: re.Pattern, name: str) -> str | None:
    stem = os.path.splitext(name)[0]
    match = pattern.search(stem)
    if match is None:
        return None
    label = match.group("label") if "label" in pattern.groupindex else match.group(1)
    return label.strip() if label and label.strip() else None  # an optional group may match nothing


def _filename_candidates(root: str, skips: Skips, follow_symlinks: bool) -> list[tuple[str, str]]:
    """``(folder, name)`` of the images directly in ``root`` and in ``root/images`` (not deeper)."""
    root_id = dir_id(root)
    names, subdirs = list_dir(root, skips, follow_symlinks, frozenset({root_id}))
    images = [(root, name) for name in names]
    for name, path, path_id in subdirs:
        if name.lower() == "images":
            more, deeper = list_dir(path, skips, follow_symlinks, frozenset({root_id, path_id}))
            images += [(path, n) for n in more]
            for _, sub, _ in deeper:
                skips.add("folder not read (filename layout)", sub)
        else:
            skips.add("folder not read (filename layout)", path)
    return images
