"""Summarising a dataset for the heuristics from image headers only (:func:`profile_dataset`),
and counting the images that later fail to decode (:func:`add_decode_failures`)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from ..exceptions import DatasetError
from .images import UNDECODABLE_IMAGE, load_image, read_header
from .model import Dataset, DatasetProfile, Item
from .sampling import sample_indices
from .scan import MAX_EXAMPLES

__all__ = ["profile_dataset", "add_decode_failures"]

_RESOLUTION_KEYS = ("mean_w", "mean_h", "median_w", "median_h", "min_w", "min_h", "max_w", "max_h")


def profile_dataset(dataset: Dataset, *, max_header_reads: int | None = None, seed: int = 0) -> DatasetProfile:
    """Summarise a dataset for the heuristics, reading image headers only.

    Parameters
    ----------
    dataset : Dataset
        As returned by :func:`~finetune_advisor.data.read_dataset`.
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
        over 40 megapixels, which is refused rather than decoded; they stay in the counts).

    Examples
    --------
    >>> import tempfile
    >>> from finetune_advisor.data import read_dataset
    >>> from finetune_advisor.testing import make_folder_dataset
    >>> root = make_folder_dataset(tempfile.mkdtemp(), counts={"a": 2, "b": 4, "c": 6}, size=(16, 8))
    >>> prof = profile_dataset(read_dataset(root))
    >>> prof.n_images, prof.images_per_class, round(prof.imbalance_sd, 4)
    (12, {'a': 2, 'b': 4, 'c': 6}, 1.633)
    >>> prof.mean_resolution
    (16.0, 8.0)
    """
    if max_header_reads is not None and int(max_header_reads) < 1:
        raise ValueError(f"max_header_reads must be >= 1 or None, got {max_header_reads!r}")
    items = dataset.items
    to_read = [items[i] for i in sample_indices(len(items), max_header_reads, seed)]
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
        corrupt_examples=tuple(str(p) for p in unreadable[:MAX_EXAMPLES]), label_sep=dataset.label_sep)


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
    >>> from finetune_advisor.data import read_dataset
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
        if read_header(path)[1] is not None:
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
                               corrupt_examples=(tuple(profile.corrupt_examples) + tuple(new))[:MAX_EXAMPLES])


def _resolution_stats(sizes: list[tuple[int, int]]) -> dict[str, float]:
    if not sizes:
        return dict.fromkeys(_RESOLUTION_KEYS, float("nan"))
    arr = np.asarray(sizes, dtype=np.float64)
    w, h = arr[:, 0], arr[:, 1]
    values = (w.mean(), h.mean(), np.median(w), np.median(h), w.min(), h.min(), w.max(), h.max())
    return {k: float(v) for k, v in zip(_RESOLUTION_KEYS, values)}


def _read_headers(items: list[Item]) -> tuple[list[tuple[int, int]], list[tuple[Path, str]]]:
    """``(sizes of the readable headers, [(path, reason), ...] of the unreadable ones)``."""
    sizes, bad = [], []
    for item in items:
        size, reason = read_header(item.path)
        if reason is None:
            sizes.append(size)
        else:
            bad.append((item.path, reason))
    return sizes, bad
