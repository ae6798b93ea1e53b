"""The filename layout: labels from file names (Pets-style or a custom regex)."""
from __future__ import annotations

import pytest

from finetune_advisor.data import PETS_REGEX, read_dataset
from finetune_advisor.testing import make_filename_dataset, make_image


def test_filename_layout(tmp_path):
    root = make_filename_dataset(tmp_path / "pets", counts={"Abyssinian": 3, "american_bulldog": 2}, size=8)
    make_image(root / "images" / "README.png", 8)  # no _<n>: does not match
    ds = read_dataset(root)
    assert ds.layout == "filename"
    assert ds.class_counts() == {"Abyssinian": 3, "american_bulldog": 2}
    assert ds.skipped == {"name does not match filename_regex": 1}


@pytest.mark.parametrize("stem, label", [("Abyssinian_100", "Abyssinian"), ("american_bulldog_12", "american_bulldog"),
                                         ("great_pyrenees_1", "great_pyrenees")])
def test_pets_regex(stem, label):
    import re
    assert re.search(PETS_REGEX, stem).group(1) == label
    assert re.search(PETS_REGEX, "photo") is None


def test_filename_layout_images_in_root_and_custom_regex(tmp_path):
    for i in range(2):
        make_image(tmp_path / f"cat.{i}.jpg", 8)
        make_image(tmp_path / f"dog.{i}.jpg", 8)
    ds = read_dataset(tmp_path, layout="filename", filename_regex=r"^(?P<label>[a-z]+)\.\d+$")
    assert ds.class_counts() == {"cat": 2, "dog": 2}
    assert read_dataset(tmp_path, filename_regex=r"^([a-z]+)\.").layout == "filename"
