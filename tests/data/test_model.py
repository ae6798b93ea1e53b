"""Dataset and DatasetProfile helpers."""
from __future__ import annotations

import math

import pytest

from finetune_advisor.data import DatasetProfile, read_dataset
from finetune_advisor.testing import make_folder_dataset


def test_subset_is_stratified_and_deterministic(tmp_path):
    ds = read_dataset(make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 6}, size=8))
    sub = ds.subset(max_per_class=3, seed=0)
    assert sub.class_counts() == {"a": 2, "b": 3}
    assert sub == ds.subset(max_per_class=3, seed=0)
    assert [str(it.path) for it in sub.items] == sorted(str(it.path) for it in sub.items)


def test_profile_properties_on_empty_counts():
    prof = DatasetProfile("r", "folders", 0, 0, {}, 0.0, False, {})
    assert prof.min_images_per_class == 0 and prof.median_images_per_class == 0.0
    assert all(math.isnan(v) for v in prof.mean_resolution)


def test_subset_fraction_and_by_split(tmp_path):
    ds = read_dataset(make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 6}, size=8))
    assert ds.subset(fraction=0.5, seed=0).class_counts() == {"a": 1, "b": 3}
    assert ds.subset(fraction=1.0).items == ds.items
    split = read_dataset(make_folder_dataset(tmp_path / "s", counts={"a": 10, "b": 10}, size=8, split=True))
    sub = split.subset(max_per_class=3, seed=1, by_split=True)
    assert sub.class_counts() == {"a": 3, "b": 3}
    assert all(sum(it.split == "valid" and it.labels == (c,) for it in sub.items) >= 1 for c in ("a", "b"))
    with pytest.raises(ValueError, match="exactly one"):
        ds.subset()
    with pytest.raises(ValueError, match="max_per_class"):
        ds.subset(max_per_class=0)
