"""Image files: load_image (every mode and format to RGB, EXIF rotation, draft decoding, failures), headers."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from finetune_advisor.data import IMAGE_EXTENSIONS, TOO_LARGE_IMAGE, UNREADABLE_IMAGE, load_image
from finetune_advisor.data.images import header_size, is_image_name, read_header
from finetune_advisor.exceptions import DatasetError
from finetune_advisor.testing import make_bomb_png, make_image


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


def test_header_size_and_read_header(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: displayed 20 wide, 30 high
    path = tmp_path / "r.jpg"
    Image.new("RGB", (30, 20)).save(path, exif=exif)
    assert header_size(path) == (20, 30) and read_header(path) == ((20, 30), None)
    garbage = tmp_path / "g.png"
    garbage.write_bytes(b"not an image")
    assert read_header(garbage) == (None, UNREADABLE_IMAGE)
    with pytest.raises(Exception):
        header_size(garbage)
    assert read_header(make_bomb_png(tmp_path / "bomb.png")) == (None, TOO_LARGE_IMAGE)


def test_is_image_name():
    assert is_image_name("a.JPEG") and is_image_name("x.tiff")
    assert not is_image_name(".png") and not is_image_name("a.ppm") and not is_image_name("png")
    assert is_image_name("a.ppm", IMAGE_EXTENSIONS | {".ppm"})
