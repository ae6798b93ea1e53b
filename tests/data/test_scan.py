"""Folder scanning: symlinks, unreadable folders and files, the ImageFolder scanner."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from finetune_advisor.data import IMAGE_EXTENSIONS, load_image, profile_dataset, read_dataset, scan_class_folders
from finetune_advisor.data.scan import Skips
from finetune_advisor.exceptions import DatasetError
from finetune_advisor.testing import make_folder_dataset, make_image


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
    assert ds.classes == ("a", "b") and ds.skipped == {"unreadable class folder": 1}
    assert prof.n_corrupt == 1 and prof.skipped["unreadable image"] == 1


def test_scan_class_folders_is_the_folders_layout_scan(tmp_path):
    root = make_folder_dataset(tmp_path / "d", counts={"dog": 3, "cat": 2}, size=8)
    (root / "cat" / "deep").mkdir()
    make_image(root / "cat" / "deep" / "x.png", 8)
    (root / "empty").mkdir()
    (root / ".hidden").mkdir()
    make_image(root / ".hidden" / "h.png", 8)
    make_image(root / "loose.png", 8)
    (root / "dog" / "notes.txt").write_text("x")
    skips = Skips()
    classes = scan_class_folders(root, skips=skips)
    assert list(classes) == ["cat", "dog"]
    assert [p.name for p in classes["cat"]] == ["cat_000.png", "cat_001.png", "x.png"]
    assert classes["cat"] == sorted(classes["cat"]) and len(classes["dog"]) == 3
    assert skips.counts == {"empty class folder": 1, "hidden file": 1, "image outside a class folder": 1,
                            "not an image": 1}
    ds = read_dataset(root)
    assert {c: sorted(it.path for it in ds.items if it.labels == (c,)) for c in ds.classes} == classes


def test_scan_class_folders_extensions(tmp_path):
    for label in ("a", "b"):
        make_image(tmp_path / label / "x.png", 8)
    (tmp_path / "b" / "y.ppm").write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    assert [p.name for p in scan_class_folders(tmp_path)["b"]] == ["x.png"]
    wider = scan_class_folders(tmp_path, extensions=IMAGE_EXTENSIONS | {".ppm"})
    assert [p.name for p in wider["b"]] == ["x.png", "y.ppm"]


def test_a_symlinked_folder_that_puts_images_in_two_classes_is_warned_about(tmp_path, caplog):
    root = make_folder_dataset(tmp_path / "d", counts={"Leopards": 3, "Motorbikes": 3}, size=8)
    (root / "Motorbikes" / "cross").symlink_to(root / "Leopards", target_is_directory=True)
    ds = read_dataset(root)
    assert ds.class_counts() == {"Leopards": 3, "Motorbikes": 6}
    assert "3 image file(s)" in caplog.text and "Leopards and Motorbikes" in caplog.text


def test_csv_paths_outside_the_dataset_need_a_flag(tmp_path, caplog):
    from finetune_advisor.testing import make_image
    make_image(tmp_path / "elsewhere" / "secret.png")
    outside = make_image(tmp_path / "elsewhere" / "other.png")
    root = tmp_path / "d"
    for i in range(4):
        make_image(root / "images" / f"{i}.png")
    rows = [f"{i}.png,{'ab'[i % 2]}" for i in range(4)] + ["../elsewhere/secret.png,a", f"{outside},b"]
    (root / "labels.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    ds = read_dataset(root)
    assert len(ds) == 4 and ds.skipped == {"path outside the dataset folder": 2}
    assert "skipped 2 in" in caplog.text and "--allow-outside-paths" in caplog.text     # format_skips' wording
    assert len(read_dataset(root, allow_outside_paths=True)) == 6
