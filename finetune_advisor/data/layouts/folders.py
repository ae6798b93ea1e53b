"""The ``"folders"`` layout: ImageFolder ``root/<class>/x.jpg``, optionally split as
``root/train/<class>/`` and ``root/valid/<class>/`` (``val``/``validation`` too)."""
from __future__ import annotations

import os

from ..model import Item
from ..scan import DirId, Skips, class_folders, dir_id, list_dir
from ..splits import split_role

__all__ = ["read_folders"]


def read_folders(root: str, skips: Skips, follow_symlinks: bool) -> list[Item]:
    """Items of the class folders under ``root`` (or under its train/valid folders)."""
    root_id = dir_id(root)
    splits = _split_folders(root, follow_symlinks)
    if splits is None:
        return _read_class_folders(root, root_id, None, skips, follow_symlinks)
    items: list[Item] = []
    split_paths = set()
    for role in ("train", "valid"):
        for path, path_id in splits.get(role, []):
            split_paths.add(path)
            items += _read_class_folders(path, path_id, role, skips, follow_symlinks, frozenset({root_id}))
    items = _drop_valid_only_classes(items, skips)
    # Everything else at the top level is reported, not read (test/ has no labels we use).
    images, subdirs = list_dir(root, skips, follow_symlinks)
    for name in images:
        skips.add("image outside a class folder", os.path.join(root, name))
    for name, path, _ in subdirs:
        if path not in split_paths:
            reason = "test split (not used)" if split_role(name) == "test" else "folder outside train/valid"
            skips.add(reason, path)
    return items


def _read_class_folders(base: str, base_id: DirId, split: str | None, skips: Skips,
                        follow_symlinks: bool, ancestors: frozenset = frozenset()) -> list[Item]:
    """``base/<class>/**/x.jpg`` -> items labelled with the top-level folder name."""
    items: list[Item] = []
    for name, files in class_folders(base, base_id, skips, follow_symlinks, ancestors):
        labels = (name,)
        items.extend(Item(f, labels, split) for f in files)
    return items


def _split_folders(root: str, follow_symlinks: bool) -> dict[str, list[tuple[str, DirId]]] | None:
    """Top-level ``train``/``valid``/``test`` folders, or None when ``root`` is not split.

    A folder named ``train`` only counts as a split when it holds sub-folders, so a class
    that happens to be called "train" (vehicles!) is still read as a class.
    """
    found: dict[str, list[tuple[str, DirId]]] = {}
    scratch = Skips()  # the real scan counts skips; this one only looks
    _, subdirs = list_dir(root, scratch, follow_symlinks)
    for name, path, path_id in subdirs:
        role = split_role(name)
        if role:
            found.setdefault(role, []).append((path, path_id))
    if "train" not in found:
        return None
    train_path = found["train"][0][0]
    if not list_dir(train_path, Skips(), follow_symlinks)[1]:
        return None
    return found


def _drop_valid_only_classes(items: list[Item], skips: Skips) -> list[Item]:
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
