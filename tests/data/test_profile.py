"""profile_dataset: exact counts, imbalance, resolution from headers only, corrupt files."""
from __future__ import annotations

import math

import pytest
from PIL import Image, ImageFile

from finetune_advisor.data import profile_dataset, read_dataset
from finetune_advisor.testing import DATASET_LAYOUTS, make_csv_dataset, make_folder_dataset, make_image


def test_counts_and_imbalance_sd(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 4, "c": 6}, size=8)
    prof = profile_dataset(read_dataset(root))
    assert prof.n_images == 12 and prof.n_classes == 3
    assert prof.images_per_class == {"a": 2, "b": 4, "c": 6}
    assert prof.imbalance_sd == pytest.approx(math.sqrt(8 / 3))
    assert prof.min_images_per_class == 2 and prof.median_images_per_class == 4.0
    assert prof.n_corrupt == 0 and prof.n_headers_read == 12


def test_multi_label_counts(tmp_path):
    root = make_csv_dataset(tmp_path / "d", size=8)  # default: 8 images over bird/cat/dog
    prof = profile_dataset(read_dataset(root))
    assert prof.multi_label and prof.images_per_class == {"bird": 3, "cat": 4, "dog": 4}
    assert prof.mean_labels_per_image == pytest.approx(11 / 8)


def test_resolution_stats_mixed_sizes(tmp_path):
    sizes = {"a": [(10, 20), (30, 40)], "b": [(50, 10), (70, 30), (90, 50)]}
    for label, dims in sizes.items():
        for i, size in enumerate(dims):
            make_image(tmp_path / label / f"{i}.{'png' if i % 2 else 'jpg'}", size)
    res = profile_dataset(read_dataset(tmp_path)).resolution
    assert res == {"mean_w": 50.0, "mean_h": 30.0, "median_w": 50.0, "median_h": 30.0,
                   "min_w": 10.0, "min_h": 10.0, "max_w": 90.0, "max_h": 50.0}


def test_profile_reads_headers_only(tmp_path, monkeypatch):
    root = DATASET_LAYOUTS["grayscale_mixed_sizes"](tmp_path / "d")

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("profile_dataset decoded pixels")
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    prof = profile_dataset(read_dataset(root))
    assert prof.n_corrupt == 0 and prof.n_images == 8
    assert prof.resolution["max_w"] == 32.0


def test_profile_applies_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: displayed 20 wide, 30 high
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        Image.new("RGB", (30, 20)).save(tmp_path / label / "x.jpg", exif=exif)
    assert profile_dataset(read_dataset(tmp_path)).mean_resolution == (20.0, 30.0)


def test_max_header_reads_samples_but_counts_stay_exact(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 5, "b": 7}, size=8)
    ds = read_dataset(root)
    prof = profile_dataset(ds, max_header_reads=4, seed=1)
    assert prof.n_headers_read == 4 and prof.n_images == 12
    assert prof.images_per_class == {"a": 5, "b": 7}
    assert prof == profile_dataset(ds, max_header_reads=4, seed=1)
    with pytest.raises(ValueError, match="max_header_reads"):
        profile_dataset(ds, max_header_reads=0)


def test_skipped_and_corrupt_files_are_counted(tmp_path):
    root = DATASET_LAYOUTS["corrupt_file"](tmp_path / "d")  # empty.jpg, notes.jpg (text), .DS_Store
    (root / "cat" / "Thumbs.db").write_bytes(b"x")
    (root / "dog" / "readme.txt").write_text("hi")
    (root / "dog" / ".hidden.png").write_bytes(b"x")
    ds = read_dataset(root)
    assert ds.skipped == {"empty file": 1, "hidden file": 2, "not an image": 2}
    assert len(ds) == 9  # the text file named .jpg is only found when its header is read
    prof = profile_dataset(ds)
    assert prof.n_corrupt == 1 and prof.n_images == 9
    assert prof.skipped["unreadable image"] == 1 and prof.skipped["empty file"] == 1
