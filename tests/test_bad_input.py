"""Bad input, end to end through ``cli.main``: every case ends either in a result, with what was
skipped counted in the summary (exit 0), or in exactly one ``error: ...`` line that names the
path (exit 1) -- never a traceback, never a silently wrong recommendation.

Data-level details (exact skip bookkeeping, every reader branch) are tested in test_data.py;
this file checks what a user of ``finetune-advisor recommend`` sees for each case of the issue.
Backbones are random-init ResNet-18s on 16-24 px images, so each run takes about a second.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from finetune_advisor.cli import main
from finetune_advisor.testing import (MESSY_SKIPS, class_color, make_bomb_png, make_csv_dataset,
                                      make_folder_dataset, make_image, make_messy_dataset)

torch = pytest.importorskip("torch")

LR = ["--backbone", "resnet18", "--random-init", "--no-similarity", "--lr-steps", "30", "-q"]
QUICK = [*LR, "--no-lr-finder"]  # read, profile and the rules only: no image is decoded
# The LR range test decodes and trains on every image; on a few random-init images its curve is
# noise, so the tests that run it use 3 classes x 10 images (every seed tried gives a curve).
BASE_COUNTS = {"a": 10, "b": 10, "c": 10}
MAIN = "import sys; from finetune_advisor.cli import main; sys.exit(main())"




# --- helpers ------------------------------------------------------------------------------------

def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return rc, out, err


def error_line(rc: int, err: str, *needles) -> str:
    """The one ``error:`` line, after checking exit code 1 and that it contains ``needles``."""
    assert rc == 1, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert str(needle) in lines[0], lines[0]
    return lines[0]


def summary(rc: int, out: str, err: str = "") -> tuple[int, dict[str, int]]:
    """``(images counted, {skip reason: count})`` from a successful run's dataset summary."""
    assert rc == 0, err
    n_images = int(re.search(r"^  (\d+) images", out, re.M).group(1))
    line = re.search(r"^  skipped (\d+): (.*)$", out, re.M)
    if line is None:
        return n_images, {}
    counts = {}
    for part in line.group(2).split(", "):
        n, reason = part.split(" ", 1)
        counts[reason] = int(n)
    assert sum(counts.values()) == int(line.group(1))
    return n_images, counts


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory) -> Path:
    """A 3-class reference for random-init ResNet-18 at 32 px with k=16: every image of a class
    of up to 16 images is embedded, so the similarity step decodes all of them."""
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.similarity import build_reference
    base = tmp_path_factory.mktemp("ref")
    src = make_folder_dataset(base / "src", counts={"x": 2, "y": 2, "z": 2}, size=16, seed=5)
    ref = build_reference(src, create_backbone("resnet18", pretrained=False), image_size=32,
                          images_per_class=16, progress=False)
    return ref.save(base / "ref.npz")


@pytest.fixture
def decode(tiny_reference) -> list[str]:
    """CLI options under which every image is decoded (by the similarity step), without the LR
    range test, whose curve on 8 random-init images is noise that may end in an LRFinderError."""
    return ["--backbone", "resnet18", "--random-init", "--reference", str(tiny_reference), "--no-lr-finder", "-q"]


def two_classes(root: Path, n: int = 4, size: int = 16) -> Path:
    return make_folder_dataset(root, counts={"a": n, "b": n}, size=size)


# --- the path and the folder structure ----------------------------------------------------------

def test_path_does_not_exist(tmp_path, capsys):
    rc, _, err = cli(capsys, "recommend", tmp_path / "nope", *QUICK)
    error_line(rc, err, tmp_path / "nope", "does not exist")


def test_path_is_a_file(tmp_path, capsys):
    path = make_image(tmp_path / "x.png", 8)
    rc, _, err = cli(capsys, "recommend", path, *QUICK)
    error_line(rc, err, path, "is a file but not a .csv")


def test_empty_directory(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, _, err = cli(capsys, "recommend", tmp_path / "empty", *QUICK)
    error_line(rc, err, tmp_path / "empty", "is empty")


@pytest.mark.parametrize("names, needle", [
    (("beach.png", "dog.png", "tree.png"), "no class sub-folders"),
    (("img_1.png", "img_2.png", "img_3.png"), "give 1 class ('img', 3 images)"),  # Pets-style names, one label
])
def test_images_without_class_structure(tmp_path, capsys, names, needle):
    for name in names:
        make_image(tmp_path / "flat" / name, 8)
    rc, _, err = cli(capsys, "recommend", tmp_path / "flat", *QUICK)
    error_line(rc, err, tmp_path / "flat", needle)


def test_only_one_class(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", counts={"cat": 4}, size=8)
    rc, _, err = cli(capsys, "recommend", root, *QUICK)
    error_line(rc, err, root, "1 class sub-folder", "needs at least 2")


def test_every_image_unreadable(tmp_path, capsys):
    for name in ("a/1.jpg", "a/2.jpg", "b/1.png"):
        (tmp_path / "d" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "d" / name).write_text("not an image")
    rc, _, err = cli(capsys, "recommend", tmp_path / "d", *QUICK)
    error_line(rc, err, tmp_path / "d", "none of the 3 images", "can be read")


def _small_config(path: Path, **changes) -> Path:
    from finetune_advisor.config import Config
    cfg = Config(backbone="efficientnet_lite0", profile="cpu", image_size=32, batch_size=64, head_epochs=1,
                 fine_tune="none", unfrozen_epochs=0)
    path.write_text(dataclasses.replace(cfg, **changes).to_json())
    return path


def test_a_class_with_one_image(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 5, "b": 5, "solo": 1}, size=16)
    rc, out, err = cli(capsys, "recommend", root, *QUICK)
    assert summary(rc, out, err) == (11, {})
    assert "have at most one image" in out and "solo" in out
    rc, out, err = cli(capsys, "train", root, "--config", _small_config(tmp_path / "c.json"),
                       "--out", tmp_path / "run", "-q", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["n_train"] + result["n_valid"] == 11  # the single image trains, it cannot also validate


def test_fewer_images_than_the_batch_size(tmp_path, capsys):
    root = two_classes(tmp_path / "d", n=3)
    rc, out, err = cli(capsys, "recommend", root, *QUICK)
    assert summary(rc, out, err) == (6, {})
    batch = int(re.search(r"^  batch_size\s+(\d+)", out, re.M).group(1))
    assert 2 <= batch <= 4  # at most the training images
    # a Config that asks for far more than there is: train shrinks the batch instead of failing
    rc, out, err = cli(capsys, "train", root, "--config", _small_config(tmp_path / "c.json", batch_size=64),
                       "--out", tmp_path / "run", "-q", "--json")
    assert rc == 0, err
    result = json.loads(out)
    assert (result["n_train"], result["n_valid"]) == (5, 1) and result["config"]["batch_size"] == 64


def test_too_few_images_to_validate(tmp_path, capsys):
    root = two_classes(tmp_path / "d", n=1)
    rc, _, err = cli(capsys, "recommend", root, *LR)
    error_line(rc, err, root, "no validation images")


# --- broken and unwanted files --------------------------------------------------------------------

def test_zero_byte_image(tmp_path, capsys, decode):
    root = two_classes(tmp_path / "d")
    (root / "a" / "zero.jpg").write_bytes(b"")
    assert summary(*cli(capsys, "recommend", root, *decode)) == (8, {"empty file": 1})


def _truncated_jpeg(path: Path) -> Path:
    make_image(path, 64)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # header intact, pixels cut
    return path


@pytest.mark.parametrize("found_by", ["similarity", "lr_finder"])
def test_truncated_jpeg_found_while_decoding(tmp_path, capsys, decode, found_by):
    root = make_folder_dataset(tmp_path / "d", counts=BASE_COUNTS, size=16) if found_by == "lr_finder" \
        else two_classes(tmp_path / "d")
    _truncated_jpeg(root / "a" / "cut.jpg")
    rc, out, err = cli(capsys, "recommend", root, *(decode if found_by == "similarity" else LR))
    n, skipped = summary(rc, out, err)
    assert skipped == {"corrupt image (failed to decode)": 1} and n == (31 if found_by == "lr_finder" else 9)
    assert f"{n} images ({n - 1} usable)" in out


def test_text_file_named_jpg(tmp_path, capsys, decode):
    root = two_classes(tmp_path / "d")
    (root / "b" / "notes.jpg").write_text("shopping list\n")
    rc, out, err = cli(capsys, "recommend", root, *decode)
    assert summary(rc, out, err) == (9, {"unreadable image": 1})
    assert "9 images (8 usable)" in out


def test_non_image_files_mixed_in(tmp_path, capsys):
    root = two_classes(tmp_path / "d")
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "a" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "b" / "labels.txt").write_text("b\n")
    assert summary(*cli(capsys, "recommend", root, *QUICK)) == (8, {"hidden file": 1, "not an image": 2})


def _permissions_enforced(path: Path) -> bool:
    path.chmod(0)
    try:
        path.read_bytes()
        return False
    except PermissionError:
        return True
    finally:
        path.chmod(0o644)


def test_unreadable_file_and_folder(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", counts={"a": 4, "b": 4, "c": 2}, size=16)
    locked_file, locked_dir = root / "a" / "a_000.png", root / "c"
    args = ["recommend", str(root), *QUICK]
    if _permissions_enforced(locked_file):
        run = lambda: cli(capsys, *args)  # noqa: E731
    elif os.geteuid() == 0 and shutil.which("setpriv"):  # root reads anything: drop that power
        def run():
            proc = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable,
                                   "-c", MAIN, *args], capture_output=True, text=True, timeout=120,
                                  cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
            assert "Traceback" not in proc.stderr
            return proc.returncode, proc.stdout, proc.stderr
    else:
        pytest.skip("permissions are not enforced for this user and setpriv is unavailable")
    locked_file.chmod(0)
    locked_dir.chmod(0)
    try:
        rc, out, err = run()
    finally:
        locked_file.chmod(0o644)
        locked_dir.chmod(0o755)
    assert summary(rc, out, err) == (8, {"unreadable class folder": 1, "unreadable image": 1})
    assert f"skipped 1 in {root}/: 1 unreadable class folder (permission denied): c" in err
    assert re.search(r"^  8 images \(7 usable\), 2 classes", out, re.M)


# --- formats: all decode, none is skipped ---------------------------------------------------------

def _grey16(path: Path, size=(16, 12)) -> Path:
    w, h = size
    Image.fromarray(np.linspace(0, 65535, w * h).reshape(h, w).astype(np.uint16)).save(path)
    return path


def _exif_rotated(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (24, 12), class_color(0, 2)).save(path, exif=exif)
    return path


FORMATS = {
    "png_alpha.png": lambda p: make_image(p, 16, class_color(0, 2), mode="RGBA"),
    "palette.png": lambda p: make_image(p, 16, class_color(0, 2), mode="P"),
    "grey16.png": _grey16,
    "grey16.tif": _grey16,
    "cmyk.jpg": lambda p: make_image(p, 16, class_color(0, 2), mode="CMYK"),
    "exif_rotated.jpg": _exif_rotated,
    "w.webp": lambda p: make_image(p, 16, class_color(0, 2)),
    "b.bmp": lambda p: make_image(p, 16, class_color(0, 2)),
    "g.gif": lambda p: make_image(p, 16, class_color(0, 2)),
    "one_pixel.png": lambda p: make_image(p, 1, class_color(0, 2)),
    "wide.png": lambda p: make_image(p, (300, 2), class_color(0, 2)),
    "tall.jpg": lambda p: make_image(p, (3, 300), class_color(0, 2)),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_format_is_read_and_embedded(tmp_path, capsys, decode, name):
    root = two_classes(tmp_path / "d")
    FORMATS[name](root / "a" / name)
    rc, out, err = cli(capsys, "recommend", root, *decode, "--json")
    assert rc == 0, err
    meas = json.loads(out)["measurements"]
    assert meas["n_images"] == 9 and meas["similarity"]["n_images_embedded"] == 9  # decoded, not skipped


def test_every_format_goes_through_the_lr_range_test(tmp_path, capsys):
    root = make_folder_dataset(tmp_path / "d", counts=BASE_COUNTS, size=16)
    for name, write in FORMATS.items():
        write(root / "a" / name)
    rc, out, err = cli(capsys, "recommend", root, *LR)
    assert summary(rc, out, err) == (30 + len(FORMATS), {})  # the training loaders decoded all of them


def test_decompression_bomb_is_refused_and_counted(tmp_path, capsys, decode):
    root = two_classes(tmp_path / "d")
    make_bomb_png(root / "a" / "huge.png")  # 30000 x 30000 in its header
    rc, out, err = cli(capsys, "recommend", root, *decode)
    assert summary(rc, out, err) == (9, {"image over 40 megapixels (refused)": 1})


# --- names -------------------------------------------------------------------------------------------

def test_spaces_and_unicode_in_names(tmp_path, capsys, decode):
    root = tmp_path / "my data ✓"
    for k, cls in enumerate(("sea lion", "café_猫")):
        for i, name in enumerate(("my photo.png", "фото 2.jpg", "写真.png", "x y z.webp")):
            make_image(root / cls / name, 16, class_color(k, 2), seed=i, stripe=k)
    rc, out, err = cli(capsys, "recommend", root, *decode)
    assert summary(rc, out, err) == (8, {})
    assert "2 classes" in out and str(root) in out


def test_leading_dots_are_hidden_files(tmp_path, capsys):
    root = two_classes(tmp_path / "d")
    make_image(root / "a" / ".secret.png", 16)
    make_image(root / "b" / "._b_000.png", 16)  # macOS resource fork
    make_image(root / ".thumbnails" / "t.png", 16)
    assert summary(*cli(capsys, "recommend", root, *QUICK)) == (8, {"hidden file": 3})


def test_duplicate_names_across_classes(tmp_path, capsys, decode):
    root = tmp_path / "d"
    for k, cls in enumerate(("a", "b")):
        for i in range(4):
            make_image(root / cls / f"img_{i}.png", 16, class_color(k, 2), seed=k * 10 + i, stripe=k)
    rc, out, err = cli(capsys, "recommend", root, *decode)
    assert summary(rc, out, err) == (8, {})
    assert "2 classes, imbalance SD 0.0" in out


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
def test_symlinks_followed_loops_and_broken_links_counted(tmp_path, capsys, decode):
    root = two_classes(tmp_path / "d")
    os.symlink(root / "a" / "a_000.png", root / "b" / "link_to_a.png")  # followed
    os.symlink("..", root / "a" / "loop")                                 # back up the tree
    os.symlink("self.png", root / "b" / "self.png")                      # links to itself
    os.symlink("gone.png", root / "a" / "broken.png")
    rc, out, err = cli(capsys, "recommend", root, *decode)
    assert summary(rc, out, err) == (9, {"symlink loop": 2, "broken symlink": 1})


# --- CSV ---------------------------------------------------------------------------------------------

def _csv(root: Path, text: str) -> Path:
    make_csv_dataset(root, labels=[["cat"], ["dog"]] * 3)  # images/img_000.png .. img_005.png
    (root / "labels.csv").write_text(text, encoding="utf-8")
    return root


GOOD_ROWS = "".join(f"img_{i:03d}.png,{'cat' if i % 2 == 0 else 'dog'}\n" for i in range(6))


def test_csv_missing_file_references(tmp_path, capsys):
    root = _csv(tmp_path / "d", "image,label\n" + GOOD_ROWS + "gone.png,cat\nalso_gone.jpg,dog\n")
    assert summary(*cli(capsys, "recommend", root, *QUICK)) == (6, {"missing file": 2})


def test_the_summary_and_the_warning_give_skip_counts_in_one_wording(tmp_path, capsys, caplog):
    from finetune_advisor.data import format_skips
    root = _csv(tmp_path / "d", "image,label\n" + GOOD_ROWS + "../x.png,cat\n/etc/passwd,dog\n")
    rc, out, err = cli(capsys, "recommend", root, *QUICK)
    counts = {"path outside the dataset folder": 2}
    warned = next(line for line in (caplog.text + err).splitlines() if "outside the dataset folder" in line)
    assert format_skips(counts, str(root / "labels.csv")) in warned        # "skipped 2 in ...: 2 path outside ..."
    assert summary(rc, out, err) == (6, counts)
    assert f"  {format_skips(counts)}\n" in out                            # "skipped 2: 2 path outside ..."


@pytest.mark.parametrize("header, needle", [
    ("file,weight,age\n", "no usable image and label columns"),   # an image column, no label column
    ("image\n", "no usable image and label columns"),             # one column only
])
def test_csv_wrong_or_missing_columns(tmp_path, capsys, header, needle):
    rows = GOOD_ROWS.replace(",cat", ",1,2").replace(",dog", ",3,4") if "weight" in header else \
        "".join(f"img_{i:03d}.png\n" for i in range(6))
    root = _csv(tmp_path / "d", header + rows)
    rc, _, err = cli(capsys, "recommend", root, *QUICK)
    error_line(rc, err, root / "labels.csv", needle, "found columns")


def test_csv_empty_label(tmp_path, capsys):
    root = _csv(tmp_path / "d", "image,label\n" + GOOD_ROWS.replace("img_005.png,dog", "img_005.png,  "))
    assert summary(*cli(capsys, "recommend", root, *QUICK)) == (5, {"empty label": 1})


def test_csv_unknown_separator(tmp_path, capsys):
    root = _csv(tmp_path / "d", "image|label\n" + GOOD_ROWS.replace(",", "|"))
    rc, _, err = cli(capsys, "recommend", root, *QUICK)
    error_line(rc, err, root / "labels.csv", "found columns: ['image|label']")


def test_csv_duplicate_rows(tmp_path, capsys):
    root = _csv(tmp_path / "d", "image,label\n" + GOOD_ROWS + "img_000.png,cat\nimg_001.png,cat\n")
    n, skipped = summary(*cli(capsys, "recommend", root, *QUICK))
    assert (n, skipped) == (6, {"duplicate row": 1, "conflicting duplicate row (first kept)": 1})


def test_csv_labels_with_trailing_spaces(tmp_path, capsys):
    rows = GOOD_ROWS.replace(",cat", ",cat  ").replace(",dog", ", dog")
    root = _csv(tmp_path / "d", "image , label \n" + rows)
    rc, out, err = cli(capsys, "recommend", root, *QUICK)
    assert summary(rc, out, err) == (6, {}) and "2 classes" in out
    rc, out, err = cli(capsys, "profile", root, "--json")
    assert rc == 0 and json.loads(out)["images_per_class"] == {"cat": 3, "dog": 3}


# --- the LR finder ----------------------------------------------------------------------------------

NAN_NET = '''
import torch.nn as nn

class NaNs(nn.Module):
    def forward(self, x):
        return x * float("nan")

def nan_net(pretrained=False):
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), NaNs(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
'''


def test_lr_finder_loss_nan_from_the_first_step(tmp_path, capsys):
    (tmp_path / "nan_net.py").write_text(NAN_NET)
    root = two_classes(tmp_path / "d")
    rc, _, err = cli(capsys, "recommend", root, "--backbone", f"{tmp_path}/nan_net.py:nan_net", "--no-similarity",
                     "--lr-steps", "30", "--lr-finder", "full", "-q")
    error_line(rc, err, root, "LR range test", "not finite from the first step", "--no-lr-finder")
    # the cached range test meets the NaN in the features, and says so
    rc, _, err = cli(capsys, "recommend", root, "--backbone", f"{tmp_path}/nan_net.py:nan_net", "--no-similarity",
                     "-q")
    error_line(rc, err, root, "no finite features", "LR range test")


def _fake_losses(monkeypatch, curve):
    """Record ``curve(step)`` instead of the real loss (the sweep itself runs as usual)."""
    from finetune_advisor.lr_finder import recorder
    real = recorder.RawLossRecorder

    class Fake(real):
        def after_batch(self):
            super().after_batch()
            self.rec_losses[-1] = float(curve(len(self.rec_losses) - 1))
            self.rec_train_losses[-1] = self.rec_losses[-1]   # the fallback curve too

    monkeypatch.setattr(recorder, "RawLossRecorder", Fake)


@pytest.mark.parametrize("case, curve, needle", [
    ("never_decreases", lambda i: 2.0 + 0.01 * i, "never decreases"),
    ("diverges_immediately", lambda i: 10.0 ** i, "usable points"),
])
def test_lr_finder_curve_without_a_suggestion(tmp_path, capsys, monkeypatch, case, curve, needle):
    _fake_losses(monkeypatch, curve)
    root = make_folder_dataset(tmp_path / "d", counts=BASE_COUNTS, size=16)
    rc, _, err = cli(capsys, "recommend", root, *LR, "--lr-finder", "full")
    error_line(rc, err, root, "LR range test", needle, "--no-lr-finder")


def test_too_few_lr_steps_fail_before_any_work(tmp_path, capsys):
    root = two_classes(tmp_path / "d")
    rc, _, err = cli(capsys, "recommend", root, *LR, "--lr-steps", "3")
    error_line(rc, err, "lr_steps=3", "--lr-steps")


# --- similarity ---------------------------------------------------------------------------------------

def test_constant_images_give_a_finite_similarity(tmp_path, capsys, caplog, tiny_reference):
    root = tmp_path / "d"
    for cls in ("a", "b"):
        for i in range(4):
            (root / cls).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (128, 128, 128)).save(root / cls / f"{i}.png")
    rc, out, err = cli(capsys, "recommend", root, "--backbone", "resnet18", "--random-init", "--reference",
                       tiny_reference, "--no-lr-finder", "-q", "--json")
    assert rc == 0, err
    sim = json.loads(out)["measurements"]["similarity"]
    assert 0.0 <= sim["similarity"] <= 1.0 and sim["n_failed"] == 0
    assert all(np.isfinite([sim["std"], sim["ci_low"], sim["ci_high"]]))
    assert any("have the same features" in r.getMessage() for r in caplog.records)


def test_constant_images_lr_finder_has_nothing_to_learn(tmp_path, capsys):
    root = tmp_path / "d"
    for cls in ("a", "b"):
        for i in range(4):
            (root / cls).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), (128, 128, 128)).save(root / cls / f"{i}.png")
    rc, out, err = cli(capsys, "recommend", root, *LR)
    # Either an LR is found (the head still fits the class prior) or the sweep says why not.
    assert rc == 0 or "LR range test" in error_line(rc, err, root)


# --- reference and weights missing offline ----------------------------------------------------------

def test_reference_missing_offline_says_how_to_provide_one(tmp_path, capsys):
    root = two_classes(tmp_path / "d")
    rc, _, err = cli(capsys, "recommend", root, "--backbone", "resnet18", "--random-init", "--no-lr-finder", "-q")
    error_line(rc, err, "no similarity reference", "finetune-advisor reference build PATH", "--reference PATH")


def test_reference_download_without_network_says_how_to_provide_one(tmp_path, capsys, monkeypatch):
    import socket
    import urllib.error
    import urllib.request

    def no_network(*args, **kwargs):
        raise urllib.error.URLError(socket.timeout("timed out"))

    monkeypatch.delenv("FINETUNE_ADVISOR_OFFLINE")
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    root = two_classes(tmp_path / "d")
    rc, _, err = cli(capsys, "recommend", root, "--backbone", "resnet18", "--random-init", "--no-lr-finder", "-q")
    error_line(rc, err, "cannot download Tiny-ImageNet", "finetune-advisor reference build PATH", "--reference PATH")


@pytest.mark.parametrize("what", ["reference", "weights"])
def test_missing_local_file_is_named(tmp_path, capsys, what):
    root = two_classes(tmp_path / "d")
    missing = tmp_path / f"no_such_{what}.npz"
    extra = ["--reference", missing] if what == "reference" else ["--weights", missing, "--no-similarity"]
    rc, _, err = cli(capsys, "recommend", root, "--backbone", "resnet18", "--no-lr-finder", "-q", *extra)
    error_line(rc, err, missing, "not found")


def test_weights_missing_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    root = two_classes(tmp_path / "d")
    args = ["recommend", root, "--backbone", "resnet34", "--no-similarity", "--no-lr-finder", "-q"]
    rc, _, err = cli(capsys, *args, "--no-fallback")
    error_line(rc, err, "resnet34 weights are not cached", "--weights PATH")
    rc, out, err = cli(capsys, *args)  # with the fallback: a result that says what happened
    assert rc == 0, err
    assert re.search(r"^  backbone\s+efficientnet_lite0$", out, re.M)
    assert "resnet34 weights are unavailable here" in out and "--weights" in out


def test_weights_download_without_network_is_one_line(tmp_path, capsys, monkeypatch):
    import socket
    import urllib.error

    import torchvision.models._api as tv_api

    def no_network(*args, **kwargs):
        raise urllib.error.URLError(socket.timeout("timed out"))

    monkeypatch.delenv("FINETUNE_ADVISOR_OFFLINE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    monkeypatch.setattr(tv_api, "load_state_dict_from_url", no_network)
    monkeypatch.setattr("finetune_advisor.backbones.loaders._name_lookup_failure", lambda url: None)  # DNS works
    root = two_classes(tmp_path / "d")
    rc, _, err = cli(capsys, "recommend", root, "--backbone", "resnet34", "--no-similarity", "--no-lr-finder",
                     "--no-fallback", "-q")
    error_line(rc, err, "cannot download resnet34 weights", "timed out", "--weights PATH")


def test_no_similarity_reference_for_the_backbone_names_the_ways_on(tmp_path, capsys):
    # offline (the suite's default), random-init ResNet-18: nothing cached, shipped or downloadable
    rc, _, err = cli(capsys, "recommend", two_classes(tmp_path / "d"), "--backbone", "resnet18", "--random-init",
                     "--no-lr-finder")
    error_line(rc, err, "reference build PATH", "--reference PATH", "or skip it with --no-similarity")


def test_without_a_network_the_fallback_is_one_quiet_line_and_remembered(tmp_path, capsys, monkeypatch, caplog):
    from finetune_advisor.backbones import loaders

    monkeypatch.delenv("FINETUNE_ADVISOR_OFFLINE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(loaders, "_name_lookup_failure", lambda url: "Name or service not known")
    root = two_classes(tmp_path / "d")
    args = ["recommend", root, "--backbone", "resnet34", "--no-similarity", "--no-lr-finder", "--json"]
    rc, out, err = cli(capsys, *args)
    assert rc == 0, err
    logged = caplog.text + err
    assert "Downloading" not in out + logged and "http" not in logged      # not torch.hub's line, no URL
    assert [r.getMessage() for r in caplog.records if "resnet34" in r.getMessage()] == [
        "cannot download resnet34 weights: no network (Name or service not known): using the shipped ImageNet "
        "efficientnet_lite0 instead"]
    caplog.clear()
    monkeypatch.setattr(loaders, "_name_lookup_failure", lambda url: pytest.fail("looked up again"))
    rc, out, err = cli(capsys, *args)                  # the next run remembers: no second try
    assert rc == 0 and "no network when last tried, under a minute ago" in caplog.text


# --- the CLI's own guarantees -----------------------------------------------------------------------

def test_unexpected_exception_is_one_line_and_debug_shows_it(tmp_path, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("something deep in torch\nwith a second line")

    monkeypatch.setattr("finetune_advisor.cli.commands.advise", boom)   # what the recommend command calls
    root = two_classes(tmp_path / "d")
    rc, _, err = cli(capsys, "recommend", root, *QUICK)
    error_line(rc, err, "unexpected RuntimeError: something deep in torch with a second line", "--debug")
    assert main(["recommend", str(root), *QUICK, "--debug"]) == 1           # the traceback, on stderr
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: something deep in torch" in err


def test_no_output_shows_a_storage_password(tmp_path, capsys, monkeypatch):
    """The password of a storage URL is masked in the error line, the --debug traceback and logs."""
    def boom(*args, **kwargs):
        raise RuntimeError("could not connect to postgresql+psycopg2://alice:hunter2@db.example/bench")

    monkeypatch.setattr("finetune_advisor.cli.commands.advise", boom)
    root = two_classes(tmp_path / "d")
    for extra in ([], ["--debug"]):
        assert main(["recommend", str(root), *QUICK, *extra]) == 1
        err = capsys.readouterr().err
        assert "alice:***@db.example" in err and "hunter2" not in err
    for command in (["bench", "status", "--study", "nope"],
                    ["bench", "run", "--worker", "--study", "nope", "--out", str(tmp_path / "o")]):
        assert main([*command, "--storage", "postgres://alice:hunter2@127.0.0.1:1/bench"]) == 1
        err = capsys.readouterr().err
        assert "hunter2" not in err and "alice:***@" in err, err


def test_image_size_too_small_for_the_backbone_names_the_config(tmp_path, capsys):
    from finetune_advisor.config import Config
    root = two_classes(tmp_path / "d")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(Config(backbone="efficientnet_lite0", profile="cpu", image_size=16, batch_size=4, head_epochs=1,
                          fine_tune="none", unfrozen_epochs=0).to_json())
    rc, _, err = cli(capsys, "train", root, "--config", cfg, "--out", tmp_path / "run", "-q")
    error_line(rc, err, cfg, "image_size=16 is too small for backbone efficientnet_lite0")


def test_json_on_stdout_stays_valid_with_progress_bars(tmp_path, capsys, tiny_reference):
    root = two_classes(tmp_path / "d")
    rc, out, err = cli(capsys, "recommend", root, "--backbone", "resnet18", "--random-init", "--reference",
                       tiny_reference, "--no-lr-finder", "--json")  # not -q: the embedding draws a bar
    assert rc == 0, err
    assert json.loads(out)["measurements"]["similarity"]["n_images_embedded"] == 8


def test_reference_built_with_random_init_matches_recommend(tmp_path, capsys):
    src = make_folder_dataset(tmp_path / "src", counts={"x": 2, "y": 2}, size=16, seed=5)
    rc, out, err = cli(capsys, "reference", "build", src, "--backbone", "resnet18", "--random-init",
                       "--image-size", "32", "--images-per-class", "4", "--out", tmp_path / "ref.npz", "-q", "--json")
    assert rc == 0, err
    assert json.loads(out)["backbone"] == "resnet18-random"  # not silently the pretrained (or fallback) net
    rc, out, err = cli(capsys, "recommend", src, "--backbone", "resnet18", "--random-init", "--reference",
                       tmp_path / "ref.npz", "--no-lr-finder", "-q", "--json")
    assert rc == 0, err
    # the same random weights on both sides: the reference's own images are as near as it gets
    assert json.loads(out)["measurements"]["similarity"]["similarity"] == pytest.approx(1.0, abs=1e-6)


# --- everything at once ------------------------------------------------------------------------------

def test_messy_folder_recommend_prints_a_result_and_what_was_skipped(tmp_path, capsys):
    root = make_messy_dataset(tmp_path / "messy")
    rc, out, err = cli(capsys, "recommend", root, *LR)
    n_images, skipped = summary(rc, out, err)
    expected = dict(MESSY_SKIPS)
    if not hasattr(os, "symlink"):
        for reason in ("symlink loop", "broken symlink"):
            expected.pop(reason)
    assert skipped == expected
    assert n_images == 42  # 39 good ones (one through a symlink) + text.jpg, bomb.png and truncated.jpg
    assert "5 classes" in out and "recommended config:" in out
    assert re.search(r"^  lr\s+\d", out, re.M)
    assert "could not be read and were skipped" in out  # the Config's own warning about them


def test_messy_folder_with_similarity_counts_each_bad_image_once(tmp_path, capsys, tiny_reference):
    root = make_messy_dataset(tmp_path / "messy")
    rc, out, err = cli(capsys, "recommend", root, "--backbone", "resnet18", "--random-init", "--reference",
                       tiny_reference, "--lr-steps", "30", "-q")
    _, skipped = summary(rc, out, err)
    assert skipped["corrupt image (failed to decode)"] == 1  # whichever step found it, counted once
    assert "similarity to ImageNet:" in out


def test_an_image_over_40_megapixels_is_refused_without_decoding_or_pil_warnings(tmp_path, capsys, recwarn):
    from PIL import Image

    from finetune_advisor.data import TOO_LARGE_IMAGE, load_image
    from finetune_advisor.data.images import read_header
    from finetune_advisor.exceptions import DatasetError
    big = tmp_path / "big.png"
    make_bomb_png(big, side=10_000)          # 100 megapixels in its header, below Pillow's own refusal
    assert 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    assert read_header(big) == (None, TOO_LARGE_IMAGE)
    with pytest.raises(DatasetError, match="10000x10000 px, over 40 megapixels"):
        load_image(big)
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]
