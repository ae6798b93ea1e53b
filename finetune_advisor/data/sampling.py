"""Seeded samples of a dataset's items: the one class-stratified sampler, and a plain uniform one.

Every "at most k images per class" or "a fraction of each class" draw in the package goes
through :func:`stratified_indices`, so the same seed picks the same images everywhere.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence

import numpy as np

__all__ = ["stratified_indices", "sample_indices"]


def stratified_indices(labels: Sequence[Sequence[str]], *, max_per_class: int | None = None,
                       fraction: float | None = None, seed: int = 0,
                       strata: Sequence[str] | None = None) -> list[int]:
    """Sorted indices of a seeded, class-stratified sample of items.

    The items are visited once, in a seeded random order, and an item is kept while its
    class still has room; so each class keeps a uniform random draw of its items.

    * Single-label data (every item carries exactly one label): each class keeps
      ``min(count, max_per_class)`` items, or ``ceil(fraction * count)`` (at least 1).
      With ``strata`` (e.g. ``"train"``/``"valid"`` per item) a class's draw is split
      across its strata in proportion to their sizes (largest remainders), with at least
      one item from each non-empty stratum when the class's draw is large enough.
    * Multi-label data: an item is kept while *any* of its labels still has room (room =
      ``max_per_class``, or ``ceil(fraction * count)`` per label), and a kept item uses up
      room in all its labels; a label may exceed its room through items kept for another
      label. ``strata`` are not used.

    Parameters
    ----------
    labels : sequence of sequences of str
        The labels of each item (``Item.labels``). A bare string is one label; an empty
        sequence counts as the label ``""``; a label listed twice counts once.
    max_per_class : int, optional
        Cap per class (>= 1).
    fraction : float, optional
        Share of each class to keep, in (0, 1]. Exactly one of ``max_per_class`` and
        ``fraction`` must be given.
    seed : int, default=0
        Seed of the visiting order (``numpy.random.default_rng(seed).permutation``).
    strata : sequence of str, optional
        One stratum name per item (None counts as ``""``), for single-label data.

    Returns
    -------
    list of int
        Indices into ``labels``, ascending.

    Raises
    ------
    ValueError
        Both or neither of ``max_per_class``/``fraction``, a cap below 1, a fraction
        outside (0, 1], or ``strata`` of another length than ``labels``.

    Examples
    --------
    >>> labels = [("cat",)] * 4 + [("dog",)] * 2
    >>> stratified_indices(labels, max_per_class=1, seed=0)
    [3, 5]
    >>> stratified_indices(labels, fraction=0.5, seed=0)
    [2, 3, 5]

    With strata, a class's draw is split between them in proportion (at least one each):

    >>> labels, strata = [("cat",)] * 10, ["train"] * 8 + ["valid"] * 2
    >>> picked = stratified_indices(labels, max_per_class=3, strata=strata, seed=1)
    >>> [strata[i] for i in picked]
    ['train', 'train', 'valid']

    Multi-label: an item is kept while any of its labels has room (here item 2 came first,
    then item 0 still had room in "a"; "b" ends with two):

    >>> stratified_indices([("a", "b"), ("a",), ("b",), ("a",)], max_per_class=1, seed=0)
    [0, 2]
    """
    if (max_per_class is None) == (fraction is None):
        raise ValueError("pass exactly one of max_per_class and fraction, got "
                         f"max_per_class={max_per_class!r}, fraction={fraction!r}")
    if max_per_class is not None and int(max_per_class) < 1:
        raise ValueError(f"max_per_class must be >= 1, got {max_per_class!r}")
    if fraction is not None and not 0 < fraction <= 1:  # also rejects NaN
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    if strata is not None and len(strata) != len(labels):
        raise ValueError(f"strata has {len(strata)} entries for {len(labels)} items")
    keys = [_label_set(item_labels) for item_labels in labels]
    counts = Counter(label for item_labels in keys for label in item_labels)

    def room_for(count: int) -> int:
        if max_per_class is not None:
            return min(count, int(max_per_class))
        # ceil of the float product, as bench has always drawn (0.1 * 30 -> 4 images)
        return max(1, math.ceil(fraction * count))

    order = np.random.default_rng(seed).permutation(len(keys))
    kept: list[int] = []
    if all(len(item_labels) == 1 for item_labels in keys):
        cells = [(item_labels[0], "" if strata is None or strata[i] is None else str(strata[i]))
                 for i, item_labels in enumerate(keys)]
        room = _cell_room(cells, counts, room_for)
        for i in order:
            if room[cells[i]] > 0:
                room[cells[i]] -= 1
                kept.append(int(i))
    else:
        room = {label: room_for(n) for label, n in counts.items()}
        for i in order:
            if any(room[label] > 0 for label in keys[i]):
                for label in keys[i]:
                    room[label] -= 1
                kept.append(int(i))
    return sorted(kept)


def _label_set(item_labels: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(item_labels, str):
        return (item_labels,)
    return tuple(dict.fromkeys(item_labels)) or ("",)


def _cell_room(cells: list[tuple[str, str]], counts: Counter, room_for) -> dict[tuple[str, str], int]:
    """Room per (class, stratum): each class's draw split over its strata."""
    sizes: dict[str, Counter] = {}
    for label, stratum in cells:
        sizes.setdefault(label, Counter())[stratum] += 1
    room = {}
    for label, by_stratum in sizes.items():
        for stratum, n in _allocate(room_for(counts[label]), by_stratum).items():
            room[(label, stratum)] = n
    return room


def _allocate(total: int, sizes: dict[Hashable, int]) -> dict[Hashable, int]:
    """Split ``total`` over strata of ``sizes`` in proportion (largest remainders), with at
    least one per stratum when ``total`` allows, never more than a stratum holds.

    >>> _allocate(3, {"train": 6, "valid": 1})
    {'train': 2, 'valid': 1}
    >>> _allocate(5, {"train": 10, "valid": 10})
    {'train': 2, 'valid': 3}
    """
    whole = sum(sizes.values())
    if total >= whole:
        return dict(sizes)
    quota = {s: total * n / whole for s, n in sizes.items()}
    least = 1 if total >= len(sizes) else 0
    take = {s: min(sizes[s], max(least, math.floor(q))) for s, q in quota.items()}
    # Ties go to the stratum whose name sorts last, so the split never depends on item order.
    while sum(take.values()) > total:  # the minimum of one pushed the sum up: give back where most over
        s = max((s for s in take if take[s] > least), key=lambda s: (take[s] - quota[s], str(s)))
        take[s] -= 1
    while sum(take.values()) < total:
        s = max((s for s in take if take[s] < sizes[s]), key=lambda s: (quota[s] - take[s], str(s)))
        take[s] += 1
    return take


def sample_indices(n: int, k: int | None, seed: int = 0) -> list[int]:
    """All of ``range(n)``, or ``k`` of them drawn without replacement (seeded), ascending.

    >>> sample_indices(5, None), sample_indices(3, 10)
    ([0, 1, 2, 3, 4], [0, 1, 2])
    >>> len(sample_indices(100, 7, seed=1)), sample_indices(100, 7, seed=1) == sample_indices(100, 7, seed=1)
    (7, True)
    """
    if k is None or n <= k:
        return list(range(n))
    return [int(i) for i in np.sort(np.random.default_rng(seed).choice(n, int(k), replace=False))]
