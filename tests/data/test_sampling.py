"""The one stratified sampler: counts per class, seeds, strata proportions, the multi-label room rule."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from finetune_advisor.data.sampling import sample_indices, stratified_indices


def _single(counts: dict[str, int]) -> list[tuple[str, ...]]:
    """Single-label items, classes interleaved so a class's items are not contiguous."""
    labels = [(c,) for c, n in counts.items() for _ in range(n)]
    return [labels[i] for i in np.random.default_rng(123).permutation(len(labels))]


def _per_class(labels, picked) -> dict[str, int]:
    return dict(sorted(Counter(label for i in picked for label in labels[i]).items()))


def _room_rule(labels, cap, seed):
    """The sampler Dataset.subset has always used, written out independently."""
    order = np.random.default_rng(seed).permutation(len(labels))
    room = {label: cap for item in labels for label in item}
    kept = []
    for i in order:
        if any(room[label] > 0 for label in labels[i]):
            kept.append(int(i))
            for label in labels[i]:
                room[label] -= 1
    return sorted(kept)


def test_max_per_class_counts_and_sorted_unique_indices():
    labels = _single({"a": 2, "b": 6, "c": 10})
    picked = stratified_indices(labels, max_per_class=3, seed=0)
    assert _per_class(labels, picked) == {"a": 2, "b": 3, "c": 3}
    assert picked == sorted(set(picked)) and all(isinstance(i, int) for i in picked)
    assert stratified_indices(labels, max_per_class=100) == list(range(len(labels)))


def test_fraction_counts_round_up_and_keep_one_per_class():
    labels = _single({"a": 2, "b": 6, "c": 10, "d": 1})
    picked = stratified_indices(labels, fraction=0.25, seed=0)
    assert _per_class(labels, picked) == {"a": 1, "b": 2, "c": 3, "d": 1}
    assert _per_class(labels, stratified_indices(labels, fraction=0.001)) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert stratified_indices(labels, fraction=1.0) == list(range(len(labels)))


def test_deterministic_by_seed():
    labels = _single({"a": 40, "b": 60})
    first = stratified_indices(labels, max_per_class=10, seed=3)
    assert first == stratified_indices(labels, max_per_class=10, seed=3)
    assert first != stratified_indices(labels, max_per_class=10, seed=4)
    assert stratified_indices(labels, fraction=0.2, seed=3) == stratified_indices(labels, fraction=0.2, seed=3)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_same_picks_as_the_room_rule_dataset_subset_always_used(seed):
    single = _single({"a": 3, "b": 9, "c": 14})
    assert stratified_indices(single, max_per_class=4, seed=seed) == _room_rule(single, 4, seed)
    rng = np.random.default_rng(seed)
    multi = [tuple(sorted(set(rng.choice(list("abcde"), size=rng.integers(1, 4))))) for _ in range(60)]
    assert stratified_indices(multi, max_per_class=5, seed=seed) == _room_rule(multi, 5, seed)


def test_strata_split_each_class_in_proportion():
    labels = [("a",)] * 100 + [("b",)] * 20
    strata = ["train"] * 80 + ["valid"] * 20 + ["train"] * 18 + ["valid"] * 2
    picked = stratified_indices(labels, max_per_class=10, strata=strata, seed=0)
    cells = Counter((labels[i][0], strata[i]) for i in picked)
    assert cells == {("a", "train"): 8, ("a", "valid"): 2, ("b", "train"): 9, ("b", "valid"): 1}
    # a small draw still takes one from each non-empty stratum...
    picked = stratified_indices(labels, max_per_class=3, strata=strata, seed=0)
    cells = Counter((labels[i][0], strata[i]) for i in picked)
    assert cells == {("a", "train"): 2, ("a", "valid"): 1, ("b", "train"): 2, ("b", "valid"): 1}
    # ...unless the cap is smaller than the number of strata
    picked = stratified_indices(labels, max_per_class=1, strata=strata, seed=0)
    assert _per_class(labels, picked) == {"a": 1, "b": 1}


def test_strata_with_fraction_and_uneven_strata():
    labels = [("a",)] * 30
    strata = ["train"] * 27 + ["valid"] * 3
    picked = stratified_indices(labels, fraction=0.5, strata=strata, seed=2)
    split = Counter(strata[i] for i in picked)
    assert sum(split.values()) == 15 and split["valid"] in (1, 2) and split["train"] >= 13
    # a class whose items all sit in one stratum is drawn from it alone; None is a stratum too
    picked = stratified_indices([("a",)] * 5 + [("b",)] * 5, max_per_class=2, strata=[None] * 5 + ["valid"] * 5)
    assert _per_class([("a",)] * 5 + [("b",)] * 5, picked) == {"a": 2, "b": 2}


def test_strata_never_take_more_than_a_stratum_holds():
    labels = [("a",)] * 12
    strata = ["train"] * 10 + ["valid", "test"]
    for cap in range(1, 13):
        picked = stratified_indices(labels, max_per_class=cap, strata=strata, seed=cap)
        split = Counter(strata[i] for i in picked)
        assert sum(split.values()) == cap and split["valid"] <= 1 and split["test"] <= 1
        if cap >= 3:
            assert split["valid"] == split["test"] == 1


def test_multi_label_room_rule():
    labels = [("a", "b")] * 6 + [("a",)] * 4 + [("c",)] * 3
    picked = stratified_indices(labels, max_per_class=2, seed=0)
    counts = _per_class(labels, picked)
    assert counts["c"] == 2 and counts["b"] == 2 and counts["a"] >= 2  # "a" may exceed through "b"
    # every kept item had a label with room when it was visited
    order = np.random.default_rng(0).permutation(len(labels))
    seen: Counter = Counter()
    for i in order:
        if i in picked:
            assert any(seen[label] < 2 for label in labels[i])
            seen.update(labels[i])
    # fraction: room is ceil(fraction * count) per label
    picked = stratified_indices(labels, fraction=0.3, seed=0)
    counts = _per_class(labels, picked)
    assert counts["b"] == math.ceil(0.3 * 6) and counts["c"] == 1 and counts["a"] >= math.ceil(0.3 * 10)


def test_multi_label_ignores_strata_and_repeated_labels_count_once():
    labels = [("a", "b"), ("a", "a"), ("b",), ("a", "b")]
    assert stratified_indices(labels, max_per_class=1, seed=0, strata=["x", "y", "x", "y"]) == \
        stratified_indices(labels, max_per_class=1, seed=0)
    assert stratified_indices([("a", "a"), ("a",), ("b",)], max_per_class=5) == [0, 1, 2]


def test_bare_strings_and_empty_label_lists():
    assert stratified_indices(["a", "a", "b"], max_per_class=1, seed=0) == \
        stratified_indices([("a",), ("a",), ("b",)], max_per_class=1, seed=0)
    picked = stratified_indices([(), (), ("a",)], max_per_class=1, seed=0)  # () is the class ""
    assert len(picked) == 2 and 2 in picked
    assert stratified_indices([], max_per_class=3) == []


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one"), ({"max_per_class": 2, "fraction": 0.5}, "exactly one"),
    ({"max_per_class": 0}, "max_per_class must be >= 1"), ({"fraction": 0.0}, r"fraction must be in \(0, 1\]"),
    ({"fraction": 1.5}, "fraction"), ({"fraction": float("nan")}, "fraction"),
    ({"max_per_class": 2, "strata": ["train"]}, "strata has 1 entries for 2 items"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stratified_indices([("a",), ("b",)], **kwargs)


def test_sample_indices():
    assert sample_indices(4, None) == [0, 1, 2, 3] and sample_indices(4, 4) == [0, 1, 2, 3]
    picked = sample_indices(50, 10, seed=5)
    assert len(set(picked)) == 10 and picked == sorted(picked) and picked == sample_indices(50, 10, seed=5)
    # the draw profile_dataset has always made for max_header_reads
    assert picked == np.sort(np.random.default_rng(5).choice(50, 10, replace=False)).tolist()
