"""The csv layout: columns, label separators, splits, skipped rows."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from finetune_advisor.data import Dataset, read_dataset
from finetune_advisor.exceptions import DatasetError
from finetune_advisor.testing import make_csv_dataset, make_image


def labels_of(ds: Dataset) -> dict[str, tuple[str, ...]]:
    return {it.path.name: it.labels for it in ds.items}


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
    assert not read_dataset(root).multi_label  # a space inside one name is not a separator...
    ds = read_dataset(root, label_sep="")  # ...and "" says so explicitly
    assert not ds.multi_label and ds.classes == ("golden retriever", "pug") and ds.label_sep is None
    assert read_dataset(root, label_sep=" ").multi_label  # ...while " " forces the split


@pytest.mark.parametrize("extra", [[], [["sea otter"], ["sea otter"]]])
def test_csv_class_name_with_space_stays_single_label(tmp_path, caplog, extra):
    labels = [["cat"], ["dog"], ["sea lion"], ["cat"], ["sea lion"], ["dog"]] + extra
    root = make_csv_dataset(tmp_path / "d", labels=labels, size=8)
    with caplog.at_level("INFO", logger="finetune_advisor.data.layouts.csv_labels"):
        ds = read_dataset(root)
    assert not ds.multi_label and ds.label_sep is None
    assert "sea lion" in ds.classes and "sea" not in ds.classes and "lion" not in ds.classes
    assert "single-label (label separator none: each cell is one label, detected)" in caplog.text


def test_csv_space_separated_multi_label_still_detected(tmp_path, caplog):
    tags = [["haze", "primary"], ["clear", "primary"], ["clear", "primary", "water"], ["cloudy"],
            ["haze", "primary", "water"], ["clear", "road", "primary"], ["haze", "road"], ["clear", "water"]]
    root = make_csv_dataset(tmp_path / "d", labels=tags, sep=" ", size=8)
    with caplog.at_level("INFO", logger="finetune_advisor.data.layouts.csv_labels"):
        ds = read_dataset(root)
    assert ds.multi_label and ds.label_sep == " "
    assert ds.classes == ("clear", "cloudy", "haze", "primary", "road", "water")
    assert "multi-label (label separator space, detected)" in caplog.text


def test_csv_space_in_name_and_space_separated_labels_is_ambiguous(tmp_path, read_error):
    labels = [["cat"], ["dog"], ["bird"], ["cat", "dog"], ["dog", "bird"], ["cat", "bird"], ["sea lion"], ["sea lion"]]
    root = make_csv_dataset(tmp_path / "d", labels=[[" ".join(x)] for x in labels], size=8)
    msg = str(read_error(root))
    assert "ambiguous" in msg and "'sea lion'" in msg and "--label-sep ' '" in msg and "--label-sep ''" in msg
    assert read_dataset(root, label_sep="").classes == ("bird", "cat", "cat bird", "cat dog", "dog", "dog bird",
                                                        "sea lion")


def test_csv_separator_named_in_profile_text(tmp_path):
    from finetune_advisor.cli.output import format_profile
    from finetune_advisor.data import profile_dataset
    one = make_csv_dataset(tmp_path / "a", labels=[["sea lion"], ["cat"], ["sea lion"], ["cat"]], size=8)
    many = make_csv_dataset(tmp_path / "b", labels=[["Mass", "Nodule"], ["No Finding"], ["Mass"]], size=8)
    assert "(csv, single-label, label separator none: each cell is one label)" in format_profile(
        profile_dataset(read_dataset(one)))
    prof = profile_dataset(read_dataset(many))
    assert prof.label_sep == "|" and "(csv, multi-label, label separator '|')" in format_profile(prof)


def test_label_sep_documented_in_help():
    from finetune_advisor.cli.parser import build_parser
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["recommend"].format_help().split())
    assert "--label-sep SEP" in text and "sea lion" in text and "'' keeps each cell as one label" in text


def test_csv_column_detection_extensions_and_whitespace(tmp_path, write_csv):
    make_image(tmp_path / "images" / "00000001_000.png", 8)
    make_image(tmp_path / "00000002_000.png", 8)  # next to the CSV, not in images/
    write_csv(tmp_path / "Data_Entry.csv", "Patient Age,Image Index,Finding Labels\n"
              "58,00000001_000,Cardiomegaly|Emphysema  \n"
              "81,00000002_000.png,  No Finding \n")
    ds = read_dataset(tmp_path)
    assert labels_of(ds) == {"00000001_000.png": ("Cardiomegaly", "Emphysema"),
                             "00000002_000.png": ("No Finding",)}


def test_csv_unknown_columns_fall_back_to_first_two(tmp_path, write_csv):
    root = make_csv_dataset(tmp_path / "d", labels=[["a"], ["b"]], size=8)
    text = (root / "labels.csv").read_text().replace("image,labels", "pic,kind")
    write_csv(root / "labels.csv", text)
    assert read_dataset(root).classes == ("a", "b")


def test_csv_explicit_columns_and_csv_path(tmp_path, write_csv):
    make_image(tmp_path / "imgs" / "a.png", 8)
    make_image(tmp_path / "imgs" / "b.png", 8)
    csv_path = write_csv(tmp_path / "meta" / "train.csv", "lesion,dx,file\nL1,mel,a.png\nL2,nv,b.png\n")
    ds = read_dataset(tmp_path / "imgs", csv_path=csv_path, image_col="file", label_col="dx")
    assert ds.classes == ("mel", "nv") and len(ds) == 2
    with pytest.raises(DatasetError, match=r"no label column 'diagnosis' \(found columns: \['lesion', 'dx', 'file'\]"):
        read_dataset(tmp_path / "imgs", csv_path=csv_path, label_col="diagnosis")


def test_csv_image_column_with_unknown_others_asks_for_label_col(tmp_path, write_csv, read_error):
    make_image(tmp_path / "images" / "ISIC_1.jpg", 8)
    make_image(tmp_path / "images" / "ISIC_2.jpg", 8)
    write_csv(tmp_path / "HAM10000_metadata.csv", "lesion_id,image_id,dx,age\nL1,ISIC_1,mel,50\nL2,ISIC_2,nv,40\n")
    err = read_error(tmp_path / "HAM10000_metadata.csv")
    assert "found columns: ['lesion_id', 'image_id', 'dx', 'age']" in str(err) and "label_col" in str(err)
    assert read_dataset(tmp_path, label_col="dx").class_counts() == {"mel": 1, "nv": 1}


def test_csv_names_with_folders_and_absolute_paths(tmp_path, write_csv):
    a = make_image(tmp_path / "data" / "train" / "a.png", 8)
    b = make_image(tmp_path / "elsewhere" / "b.png", 8)
    csv_path = write_csv(tmp_path / "data" / "labels.csv", f"image,labels\ntrain/a.png,x\n{b},y\n")
    ds = read_dataset(csv_path, csv_path=csv_path, allow_outside_paths=True)  # the CLI passes the CSV both ways
    assert [it.path for it in ds.items] == sorted([a, b], key=str)
    with pytest.raises(DatasetError, match="only 1 class left .* outside the dataset folder"):        # without the flag, elsewhere/b.png is not read
        read_dataset(csv_path, csv_path=csv_path)


def test_csv_is_valid_column_sets_split(tmp_path, write_csv):
    root = make_csv_dataset(tmp_path / "d", labels=[["a"], ["b"], ["a"]], size=8)
    write_csv(root / "labels.csv", "image,labels,is_valid\nimg_000.png,a,False\nimg_001.png,b,True\n"
              "img_002.png,a,0\n")
    assert [it.split for it in read_dataset(root).items] == ["train", "valid", "train"]


def test_csv_skips_are_counted(tmp_path, write_csv):
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
