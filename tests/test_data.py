"""Tests of finetune_advisor.data: layouts, counts, header-only profiling, skips, errors, decoding."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from finetune_advisor.data import PETS_REGEX, Dataset, DatasetProfile, load_image, profile_dataset, read_dataset
from finetune_advisor.exceptions import DatasetError
from finetune_advisor.testing import (DATASET_LAYOUTS, INVALID_LAYOUTS, make_csv_dataset, make_filename_dataset,
                                      make_folder_dataset, make_image)


def write_csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def labels_of(ds: Dataset) -> dict[str, tuple[str, ...]]:
    return {it.path.name: it.labels for it in ds.items}


# --- folders layout --------------------------------------------------------------------

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


# --- CSV layout ---------------------------------------------------------------------------

def test_csv_single_label(tmp_path):
    root = make_csv_dataset(tmp_path / "d", labels=[["cat"], ["dog"], ["cat"]], size=8)
    ds = read_dataset(root)
    assert ds.layout == "csv" and not ds.multi_label
    assert ds.classes == ("cat", "dog") and ds.class_counts() == {"cat": 2, "dog": 1}
    assert ds.csv_path == Path(os.path.abspath(root / "labels.csv"))


@pytest.mark.parametrize("sep", ["|", ";", " "])
def test_csv_multi_label_separators(tmp_path, sep):
    root = make_csv_dataset(tmp_path / "d", labels=[["cat"], ["dog", "cat"], ["bird", "dog"], ["dog"]],
                            sep=sep, size=8)
    ds = read_dataset(root / "labels.csv")
    assert ds.multi_label and ds.label_sep == sep
    assert ds.classes == ("bird", "cat", "dog")
    assert labels_of(ds) == {"img_000.png": ("cat",), "img_001.png": ("cat", "dog"),
                             "img_002.png": ("bird", "dog"), "img_003.png": ("dog",)}
    assert ds.class_counts() == {"bird": 1, "cat": 2, "dog": 3}


def test_csv_pipe_wins_over_spaces_in_names(tmp_path):
    root = make_csv_dataset(tmp_path / "d", labels=[["No Finding"], ["Mass", "Pleural Thickening"]], size=8)
    ds = read_dataset(root)
    assert ds.label_sep == "|"
    assert ds.classes == ("Mass", "No Finding", "Pleural Thickening")


def test_csv_empty_label_sep_keeps_names_with_spaces(tmp_path):
    root = make_csv_dataset(tmp_path / "d", labels=[["golden retriever"], ["pug"]], size=8)
    assert read_dataset(root).multi_label  # auto-detection splits on the space...
    ds = read_dataset(root, label_sep="")  # ...unless told not to split
    assert not ds.multi_label and ds.classes == ("golden retriever", "pug")


def test_csv_column_detection_extensions_and_whitespace(tmp_path):
    make_image(tmp_path / "images" / "00000001_000.png", 8)
    make_image(tmp_path / "00000002_000.png", 8)  # next to the CSV, not in images/
    write_csv(tmp_path / "Data_Entry.csv", "Patient Age,Image Index,Finding Labels\n"
              "58,00000001_000,Cardiomegaly|Emphysema  \n"
              "81,00000002_000.png,  No Finding \n")
    ds = read_dataset(tmp_path)
    assert labels_of(ds) == {"00000001_000.png": ("Cardiomegaly", "Emphysema"),
                             "00000002_000.png": ("No Finding",)}


def test_csv_unknown_columns_fall_back_to_first_two(tmp_path):
    root = make_csv_dataset(tmp_path / "d", labels=[["a"], ["b"]], size=8)
    text = (root / "labels.csv").read_text().replace("image,labels", "pic,kind")
    write_csv(root / "labels.csv", text)
    assert read_dataset(root).classes == ("a", "b")


def test_csv_explicit_columns_and_csv_path(tmp_path):
    make_image(tmp_path / "imgs" / "a.png", 8)
    make_image(tmp_path / "imgs" / "b.png", 8)
    csv_path = write_csv(tmp_path / "meta" / "train.csv", "lesion,dx,file\nL1,mel,a.png\nL2,nv,b.png\n")
    ds = read_dataset(tmp_path / "imgs", csv_path=csv_path, image_col="file", label_col="dx")
    assert ds.classes == ("mel", "nv") and len(ds) == 2
    with pytest.raises(DatasetError, match=r"no label column 'diagnosis' \(found columns: \['lesion', 'dx', 'file'\]"):
        read_dataset(tmp_path / "imgs", csv_path=csv_path, label_col="diagnosis")


def test_csv_image_column_with_unknown_others_asks_for_label_col(tmp_path):
    make_image(tmp_path / "images" / "ISIC_1.jpg", 8)
    make_image(tmp_path / "images" / "ISIC_2.jpg", 8)
    write_csv(tmp_path / "HAM10000_metadata.csv", "lesion_id,image_id,dx,age\nL1,ISIC_1,mel,50\nL2,ISIC_2,nv,40\n")
    err = _error(tmp_path / "HAM10000_metadata.csv")
    assert "found columns: ['lesion_id', 'image_id', 'dx', 'age']" in str(err) and "label_col" in str(err)
    assert read_dataset(tmp_path, label_col="dx").class_counts() == {"mel": 1, "nv": 1}


def test_csv_names_with_folders_and_absolute_paths(tmp_path):
    a = make_image(tmp_path / "data" / "train" / "a.png", 8)
    b = make_image(tmp_path / "elsewhere" / "b.png", 8)
    csv_path = write_csv(tmp_path / "data" / "labels.csv", f"image,labels\ntrain/a.png,x\n{b},y\n")
    ds = read_dataset(csv_path, csv_path=csv_path)  # the CLI passes the CSV both ways
    assert [it.path for it in ds.items] == sorted([a, b], key=str)


def test_class_folders_beat_a_lone_metadata_csv(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 2}, size=8)
    write_csv(root / "metadata.csv", "id,age\n1,2\n")
    ds = read_dataset(root)
    assert ds.layout == "folders" and ds.skipped == {"not an image": 1}
    assert read_dataset(make_csv_dataset(tmp_path / "c", size=8)).layout == "csv"  # labels.csv wins


def test_layout_mismatches(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 2}, size=8)
    assert "no labels.csv" in str(_error(root, layout="csv"))
    csv_path = make_csv_dataset(tmp_path / "c", size=8) / "labels.csv"
    assert "is a CSV file" in str(_error(csv_path, layout="folders"))


def test_csv_is_valid_column_sets_split(tmp_path):
    root = make_csv_dataset(tmp_path / "d", labels=[["a"], ["b"], ["a"]], size=8)
    write_csv(root / "labels.csv", "image,labels,is_valid\nimg_000.png,a,False\nimg_001.png,b,True\n"
              "img_002.png,a,0\n")
    assert [it.split for it in read_dataset(root).items] == ["train", "valid", "train"]


def test_csv_skips_are_counted(tmp_path):
    root = make_csv_dataset(tmp_path / "d", labels=[["a"], ["b"], ["a"], ["b"]], size=8)
    (root / "images" / "img_003.png").write_bytes(b"")
    write_csv(root / "labels.csv", "image,labels\n"
              "img_000.png,a\n"
              "img_000.png,a\n"          # duplicate row
              "images/img_000.png,b\n"   # same file, other label: first kept
              "img_001.png,b\n"
              "img_002.png,\n"           # empty label
              "img_002.png, | \n"        # only separators: empty too
              "missing.png,a\n"          # missing file
              "img_003.png,b\n"          # zero-byte file
              "notes.txt,a\n")           # missing (and not an image)
    ds = read_dataset(root)
    assert labels_of(ds) == {"img_000.png": ("a",), "img_001.png": ("b",)}
    assert ds.skipped == {"conflicting duplicate row (first kept)": 1, "duplicate row": 1, "empty file": 1,
                          "empty label": 2, "missing file": 2}
    assert any("missing.png" in p for p in ds.skipped_examples["missing file"])


# --- filename layout -------------------------------------------------------------------------

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


# --- counts, imbalance, resolution ----------------------------------------------------------------

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


def test_read_dataset_opens_no_image(tmp_path, monkeypatch):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 2}, size=8)
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("read_dataset opened an image"))
    assert len(read_dataset(root)) == 4


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


def test_profile_properties_on_empty_counts():
    prof = DatasetProfile("r", "folders", 0, 0, {}, 0.0, False, {})
    assert prof.min_images_per_class == 0 and prof.median_images_per_class == 0.0
    assert all(math.isnan(v) for v in prof.mean_resolution)


# --- skipped and corrupt files ------------------------------------------------------------------------

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


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
def test_symlinks_followed_loops_and_broken_links_counted(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 2}, size=8)
    os.symlink(root, root / "a" / "up")                     # folder loop
    os.symlink("self.jpg", root / "a" / "self.jpg")        # file loop
    os.symlink("gone.png", root / "b" / "broken.png")      # broken link
    os.symlink(root / "a" / "a_000.png", root / "b" / "linked.png")  # followed
    ds = read_dataset(root)
    assert ds.class_counts() == {"a": 2, "b": 3}
    assert ds.skipped == {"broken symlink": 1, "symlink loop": 2}
    no_follow = read_dataset(root, follow_symlinks=False)
    assert no_follow.class_counts() == {"a": 2, "b": 2}
    assert no_follow.skipped == {"symlink not followed": 4}


def _permissions_enforced(folder: Path) -> bool:
    """False for root (unless run without CAP_DAC_OVERRIDE, e.g. under ``setpriv``)."""
    folder.chmod(0)
    try:
        os.listdir(folder)
        return False
    except PermissionError:
        return True
    finally:
        folder.chmod(0o755)


def test_unreadable_folder_and_file_are_counted(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 2, "c": 1}, size=8)
    if not _permissions_enforced(root / "c"):
        pytest.skip("permissions are not enforced for this user (root)")
    (root / "c").chmod(0)
    (root / "a" / "a_000.png").chmod(0)
    try:
        ds = read_dataset(root)
        prof = profile_dataset(ds)
        with pytest.raises(DatasetError, match="permission denied"):
            load_image(root / "a" / "a_000.png")
    finally:
        (root / "c").chmod(0o755)
        (root / "a" / "a_000.png").chmod(0o644)
    assert ds.classes == ("a", "b") and ds.skipped == {"permission denied": 1}
    assert prof.n_corrupt == 1 and prof.skipped["unreadable image"] == 1


# --- errors --------------------------------------------------------------------------------------

def _error(path, **kwargs) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        read_dataset(path, **kwargs)
    assert str(path) in str(info.value), str(info.value)  # every message names the path
    assert info.value.path is not None
    return info.value


def test_error_missing_path(tmp_path):
    assert "does not exist" in str(_error(tmp_path / "nope"))


def test_error_file_not_csv(tmp_path):
    path = make_image(tmp_path / "x.png", 8)
    assert "not a .csv" in str(_error(path))


def test_error_empty_folder(tmp_path):
    assert "is empty" in str(_error(DATASET_LAYOUTS["empty"](tmp_path / "d")))


def test_error_no_images(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("x")
    (tmp_path / "readme.md").write_text("x")
    err = _error(tmp_path)
    assert "no images" in str(err) and "2 not an image" in str(err)


def test_error_one_class_folder(tmp_path):
    root = DATASET_LAYOUTS["single_class"](tmp_path / "pets")
    err = _error(root)
    assert f"Dataset folder '{root}/' has 1 class sub-folder ('cat', 4 images) but needs at least 2" in str(err)
    assert f"({root}/<class>/x.jpg)" in str(err)
    _error(root, layout="folders")
    flat = make_filename_dataset(tmp_path / "flat", size=8) / "images"
    assert "has 10 images but no class sub-folders" in str(_error(flat, layout="folders"))


def test_error_one_class_filename_and_csv(tmp_path):
    root = make_filename_dataset(tmp_path / "p", counts={"pug": 3}, size=8)
    assert "1 class ('pug', 3 images)" in str(_error(root))
    root = make_csv_dataset(tmp_path / "c", labels=[["a"], ["a"]], size=8)
    assert "1 class ('a', 2 images)" in str(_error(root))


def test_error_names_do_not_match_regex(tmp_path):
    make_image(tmp_path / "images" / "photo.jpg", 8)
    make_image(tmp_path / "images" / "other.jpg", 8)
    err = _error(tmp_path)
    assert "do not match filename_regex" in str(err) and "accepted layouts" in str(err)


def test_error_csv_without_usable_columns(tmp_path):
    path = write_csv(tmp_path / "labels.csv", "image\na.png\n")
    assert "found columns: ['image']" in str(_error(path))


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x81binary", b""])
def test_error_csv_unreadable_or_empty(tmp_path, content):
    path = tmp_path / "labels.csv"
    path.write_bytes(content)
    assert "CSV" in str(_error(path))


def test_error_csv_rows_all_missing(tmp_path):
    path = write_csv(tmp_path / "labels.csv", "image,labels\na.png,x\nb.png,y\n")
    assert "2 missing file" in str(_error(path))


def test_error_several_csvs(tmp_path):
    write_csv(tmp_path / "a.csv", "image,labels\n")
    write_csv(tmp_path / "b.csv", "image,labels\n")
    assert "csv_path" in str(_error(tmp_path))


def test_invalid_arguments_raise_value_error(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 1, "b": 1}, size=8)
    with pytest.raises(ValueError, match="layout"):
        read_dataset(root, layout="imagenet")
    with pytest.raises(ValueError, match="group"):
        read_dataset(root, filename_regex=r"^\w+$")


@pytest.mark.parametrize("case", sorted(DATASET_LAYOUTS))
def test_contract_every_case_reads_or_names_the_path(tmp_path, case):
    root = DATASET_LAYOUTS[case](tmp_path / case)
    if case in INVALID_LAYOUTS:
        _error(root)
    else:
        ds = read_dataset(root)
        assert len(ds) > 0 and len(ds.classes) >= 2
        assert profile_dataset(ds).n_images == len(ds)


# --- Dataset helpers ------------------------------------------------------------------------------------

def test_subset_is_stratified_and_deterministic(tmp_path):
    ds = read_dataset(make_folder_dataset(tmp_path / "d", counts={"a": 2, "b": 6}, size=8))
    sub = ds.subset(max_per_class=3, seed=0)
    assert sub.class_counts() == {"a": 2, "b": 3}
    assert sub == ds.subset(max_per_class=3, seed=0)
    assert [str(it.path) for it in sub.items] == sorted(str(it.path) for it in sub.items)


# --- load_image ----------------------------------------------------------------------------------------

def test_load_image_png_with_alpha_goes_over_white(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGBA", (4, 3), (255, 0, 0, 0)).save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (4, 3) and img.getpixel((0, 0)) == (255, 255, 255)


def test_load_image_palette_png(tmp_path):
    path = make_image(tmp_path / "p.png", (5, 4), mode="P")
    assert load_image(path).mode == "RGB"


def test_load_image_16_bit_greyscale(tmp_path):
    arr = np.linspace(0, 4095, 6 * 5).reshape(5, 6).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(arr).save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (6, 5)
    assert img.getpixel((5, 4)) == (255, 255, 255) and img.getpixel((0, 0)) == (0, 0, 0)


def test_load_image_cmyk_jpeg(tmp_path):
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (6, 4), (0, 255, 255, 0)).save(path)
    img = load_image(path)
    assert img.mode == "RGB" and img.getpixel((2, 2))[0] > 200


def test_load_image_applies_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "r.jpg"
    Image.new("RGB", (30, 20)).save(path, exif=exif)
    assert load_image(path).size == (20, 30)


@pytest.mark.parametrize("name", ["w.webp", "b.bmp", "g.gif", "t.tif", "one.png"])
def test_load_image_formats(tmp_path, name):
    size = (1, 1) if name.startswith("one") else (7, 5)
    img = load_image(make_image(tmp_path / name, size))
    assert img.mode == "RGB" and img.size == size


def test_load_image_jpeg_draft_decodes_smaller(tmp_path):
    path = make_image(tmp_path / "big.jpg", (256, 128))
    assert load_image(path, size=64).size == (128, 64)  # 1/2 scale keeps both sides >= 64


def test_load_image_truncated_jpeg_raises(tmp_path):
    path = make_image(tmp_path / "t.jpg", (64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="t.jpg"):
        load_image(path)


@pytest.mark.parametrize("content", [None, b"", b"not an image"])
def test_load_image_missing_or_garbage_raises(tmp_path, content):
    path = tmp_path / "x.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError, match="x.jpg"):
        load_image(path)


# --- generators -----------------------------------------------------------------------------------------

def test_generators_are_deterministic_and_learnable(tmp_path):
    a = make_folder_dataset(tmp_path / "a", counts={"x": 2, "y": 2}, size=8)
    b = make_folder_dataset(tmp_path / "b", counts={"x": 2, "y": 2}, size=8)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    means = {c: np.mean([np.asarray(Image.open(p), float).mean((0, 1)) for p in (a / c).iterdir()], 0)
             for c in ("x", "y")}
    assert np.abs(means["x"] - means["y"]).max() > 100  # class colours are far apart


# --- real sample datasets ---------------------------------------------------------------------------------

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
