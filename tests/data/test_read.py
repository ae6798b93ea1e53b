"""read_dataset: layout detection, path checks, error messages, the contract over every layout case."""
from __future__ import annotations

import pytest
from PIL import Image

from finetune_advisor.data import profile_dataset, read_dataset
from finetune_advisor.testing import (DATASET_LAYOUTS, INVALID_LAYOUTS, make_csv_dataset, make_filename_dataset,
                                      make_folder_dataset, make_image)


def test_class_folders_beat_a_lone_metadata_csv(tmp_path, write_csv):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 2}, size=8)
    write_csv(root / "metadata.csv", "id,age\n1,2\n")
    ds = read_dataset(root)
    assert ds.layout == "folders" and ds.skipped == {"not an image": 1}
    assert read_dataset(make_csv_dataset(tmp_path / "c", size=8)).layout == "csv"  # labels.csv wins


def test_layout_mismatches(tmp_path, read_error):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 2}, size=8)
    assert "no labels.csv" in str(read_error(root, layout="csv"))
    csv_path = make_csv_dataset(tmp_path / "c", size=8) / "labels.csv"
    assert "is a CSV file" in str(read_error(csv_path, layout="folders"))


def test_read_dataset_opens_no_image(tmp_path, monkeypatch):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 2}, size=8)
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("read_dataset opened an image"))
    assert len(read_dataset(root)) == 4


def test_error_missing_path(tmp_path, read_error):
    assert "does not exist" in str(read_error(tmp_path / "nope"))


def test_error_file_not_csv(tmp_path, read_error):
    path = make_image(tmp_path / "x.png", 8)
    assert "not a .csv" in str(read_error(path))


def test_error_empty_folder(tmp_path, read_error):
    assert "is empty" in str(read_error(DATASET_LAYOUTS["empty"](tmp_path / "d")))


def test_error_no_images(tmp_path, read_error):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "readme.md").write_text("x")
    err = read_error(tmp_path)
    assert "no images" in str(err) and "2 not an image" in str(err)


def test_error_one_class_folder(tmp_path, read_error):
    root = DATASET_LAYOUTS["single_class"](tmp_path / "pets")
    err = read_error(root)
    assert f"Dataset folder '{root}/' has 1 class sub-folder ('cat', 4 images) but needs at least 2" in str(err)
    assert f"({root}/<class>/x.jpg)" in str(err)
    read_error(root, layout="folders")
    flat = make_filename_dataset(tmp_path / "flat", size=8) / "images"
    assert "has 10 images but no class sub-folders" in str(read_error(flat, layout="folders"))


def test_error_one_class_filename_and_csv(tmp_path, read_error):
    root = make_filename_dataset(tmp_path / "p", counts={"pug": 3}, size=8)
    assert "1 class ('pug', 3 images)" in str(read_error(root))
    root = make_csv_dataset(tmp_path / "c", labels=[["a"], ["a"]], size=8)
    assert "1 class ('a', 2 images)" in str(read_error(root))


def test_error_names_do_not_match_regex(tmp_path, read_error):
    make_image(tmp_path / "images" / "photo.jpg", 8)
    make_image(tmp_path / "images" / "other.jpg", 8)
    err = read_error(tmp_path)
    assert "do not match filename_regex" in str(err) and "accepted layouts" in str(err)


def test_error_csv_without_usable_columns(tmp_path, write_csv, read_error):
    path = write_csv(tmp_path / "labels.csv", "image\na.png\n")
    assert "found columns: ['image']" in str(read_error(path))


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x81binary", b""])
def test_error_csv_unreadable_or_empty(tmp_path, content, read_error):
    path = tmp_path / "labels.csv"
    path.write_bytes(content)
    assert "CSV" in str(read_error(path))


def test_error_csv_rows_all_missing(tmp_path, write_csv, read_error):
    path = write_csv(tmp_path / "labels.csv", "image,labels\na.png,x\nb.png,y\n")
    assert "2 missing file" in str(read_error(path))


def test_error_several_csvs(tmp_path, write_csv, read_error):
    write_csv(tmp_path / "a.csv", "image,labels\n")
    write_csv(tmp_path / "b.csv", "image,labels\n")
    assert "csv_path" in str(read_error(tmp_path))


def test_invalid_arguments_raise_value_error(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 1, "b": 1}, size=8)
    with pytest.raises(ValueError, match="layout"):
        read_dataset(root, layout="imagenet")
    with pytest.raises(ValueError, match="group"):
        read_dataset(root, filename_regex=r"^\w+$")


@pytest.mark.parametrize("case", sorted(DATASET_LAYOUTS))
def test_contract_every_case_reads_or_names_the_path(tmp_path, case, read_error):
    root = DATASET_LAYOUTS[case](tmp_path / case)
    if case in INVALID_LAYOUTS:
        read_error(root)
    else:
        ds = read_dataset(root)
        assert len(ds) > 0 and len(ds.classes) >= 2
        assert profile_dataset(ds).n_images == len(ds)


SHARED = {  # name -> (layout, images, classes, multi_label, some exact per-class counts, (w, h) or None)
    "tiny-imagenet-200": ("folders", 22000, 200, False, {"n01443537": 110}, (64, 64)),
    "cancer-ham10000": ("folders", 2100, 7, False, {"akiec": 80, "bcc": 102, "bkl": 219, "df": 60, "mel": 222,
                                                    "nv": 1337, "vasc": 80}, (224, 224)),
    "xray-nih": ("csv", 1000, 15, True, {"No Finding": 499, "Effusion": 170, "Infiltration": 162, "Hernia": 9},
                 (64, 64)),
    "draw-quickdraw": ("folders", 2400, 6, False, {c: 400 for c in ("apple", "bicycle", "cat", "diamond",
                                                                   "eye", "fish")}, (28, 28)),
    "protein-hpa": ("csv", 200, 22, True, {}, (512, 512)),
    "pets-oxford": ("filename", 600, 3, False, {"Abyssinian": 200, "Bengal": 200, "american_bulldog": 200},
                    None),
    "dota-crops": ("folders", 599, 4, False, {"harbor": 5, "large-vehicle": 50, "ship": 531, "small-vehicle": 13},
                   None),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_sample_datasets(shared_data, name):
    layout, n_images, n_classes, multi, some_counts, size = SHARED[name]
    if not (shared_data / name).is_dir():
        pytest.skip(f"{shared_data / name} not present")
    ds = read_dataset(shared_data / name)
    prof = profile_dataset(ds, max_header_reads=300)
    assert (ds.layout, prof.n_images, prof.n_classes, prof.multi_label) == (layout, n_images, n_classes, multi)
    assert {c: prof.images_per_class[c] for c in some_counts} == some_counts
    assert prof.n_corrupt == 0
    if size is not None:
        assert (prof.resolution["min_w"], prof.resolution["max_h"]) == size
    if name == "tiny-imagenet-200":
        assert prof.n_valid == 2000 and ds.skipped == {"not an image": 2}  # wnids.txt, words.txt
    else:
        assert ds.skipped == {}
