"""The folders layout: class sub-folders, train/valid splits, nested folders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from finetune_advisor.data import profile_dataset, read_dataset
from finetune_advisor.testing import DATASET_LAYOUTS, make_folder_dataset, make_image


def test_folders_layout(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"dog": 5, "cat": 3}, size=8)
    ds = read_dataset(root)
    assert ds.layout == "folders" and not ds.multi_label
    assert ds.classes == ("cat", "dog")
    assert len(ds) == 8 and ds.class_counts() == {"cat": 3, "dog": 5}
    assert [str(it.path) for it in ds.items] == sorted(str(it.path) for it in ds.items)
    assert all(it.path.is_absolute() and it.split is None for it in ds.items)
    assert ds.skipped == {} and ds.root == Path(os.path.abspath(root))


@pytest.mark.parametrize("valid_name", ["valid", "val", "validation", "Val"])
def test_folders_with_split(tmp_path, valid_name):
    root = make_folder_dataset(tmp_path / "d", counts={"cat": 6, "dog": 6}, size=8, split=True)
    if valid_name != "valid":
        (root / "valid").rename(root / valid_name)
    ds = read_dataset(root)
    assert ds.layout == "folders" and ds.has_split
    assert ds.classes == ("cat", "dog")
    splits = [(it.split, it.labels[0]) for it in ds.items]
    assert splits.count(("train", "cat")) == 4 and splits.count(("valid", "cat")) == 2
    assert profile_dataset(ds).n_valid == 4


def test_split_extras_are_counted_not_read(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"cat": 3, "dog": 3}, size=8, split=True)
    make_folder_dataset(root / "test", counts={"cat": 2}, size=8)
    make_image(root / "valid" / "bird" / "b.png", 8)  # a class with no training images
    (root / "wnids.txt").write_text("cat\ndog\n")
    ds = read_dataset(root)
    assert ds.classes == ("cat", "dog") and len(ds) == 6
    assert ds.skipped == {"test split (not used)": 1, "valid class missing from train": 1, "not an image": 1}


def test_class_called_train_is_not_a_split(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"train": 2, "bus": 3}, size=8)
    ds = read_dataset(root)
    assert ds.classes == ("bus", "train") and not ds.has_split


def test_nested_class_folders_and_one_image_class(tmp_path):
    root = DATASET_LAYOUTS["nested"](tmp_path / "d")
    make_image(root / "owl" / "only.png", 8)
    ds = read_dataset(root, layout="folders")
    assert ds.class_counts() == {"cat": 4, "dog": 4, "owl": 1}
