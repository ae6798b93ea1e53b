"""Image files: which names count as images, their size from the header alone, and decoding to RGB."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..exceptions import DatasetError

__all__ = ["IMAGE_EXTENSIONS", "UNREADABLE_IMAGE", "TOO_LARGE_IMAGE", "UNDECODABLE_IMAGE",
           "is_image_name", "header_size", "read_header", "load_image"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# Reasons for images that are listed but cannot be used (keys of ``DatasetProfile.skipped``).
UNREADABLE_IMAGE = "unreadable image"                                      # header unreadable
MAX_PIXELS = 40_000_000      # 40 megapixels: far above any training resolution; a 10000x10000 PNG would take 2.6 GB
TOO_LARGE_IMAGE = "image over 40 megapixels (refused)"                     # refused before decoding
UNDECODABLE_IMAGE = "corrupt image (failed to decode)"                     # header fine, pixels not

_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # 90/270-degree rotations: width and height trade places
_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def is_image_name(name: str, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> bool:
    """True when ``name`` ends in one of ``extensions`` (any case) after a non-empty stem.

    >>> is_image_name("a.JPG"), is_image_name(".png"), is_image_name("notes.txt")
    (True, False, False)
    """
    dot = name.rfind(".")  # cheaper than os.path.splitext, which matters at 100k files
    return dot > 0 and name[dot:].lower() in extensions


def header_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` as displayed (EXIF rotation applied), from the header only.

    ``Image.open`` is lazy, so no pixel is decoded. Raises whatever Pillow raises.

    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> Image.new("RGB", (5, 3)).save(p)
    >>> header_size(p)
    (5, 3)
    """
    with Image.open(path) as img:
        w, h = img.size
        # getexif() on PNG would decode the image, so only formats whose EXIF is in the header.
        if img.format in ("JPEG", "MPO", "WEBP", "TIFF"):
            if img.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
                w, h = h, w
    return int(w), int(h)


def read_header(path: str | os.PathLike) -> tuple[tuple[int, int] | None, str | None]:
    """``(size, None)`` when the header reads, else ``(None, reason)`` (never raises).

    ``reason`` is :data:`TOO_LARGE_IMAGE` for an image past Pillow's decompression-bomb
    limit and :data:`UNREADABLE_IMAGE` for anything else.

    >>> read_header("no/such/file.png")
    (None, 'unreadable image')
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt-EXIF and big-image warnings: one per file is noise
        try:
            size = header_size(path)
            return (None, TOO_LARGE_IMAGE) if size[0] * size[1] > MAX_PIXELS else (size, None)
        except Image.DecompressionBombError:
            return None, TOO_LARGE_IMAGE
        except Exception:  # noqa: BLE001 -- any decoder failure means "unreadable", never a crash
            return None, UNREADABLE_IMAGE


def load_image(path: str | Path, size: int | None = None) -> Image.Image:
    """Decode ``path`` to an RGB PIL image, cheaply when only ``size`` pixels are needed.

    JPEGs are decoded at reduced scale with Pillow's ``draft`` (DCT scaling) when ``size``
    is given; EXIF orientation is applied; palette, alpha, 16-bit and CMYK images become RGB
    (transparent pixels over white). A truncated file raises instead of returning a partial
    image (unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` was set by someone else).
    Raises :class:`~finetune_advisor.exceptions.DatasetError` naming the file on any failure.

    Examples
    --------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> Image.new("LA", (3, 2)).save(p)
    >>> img = load_image(p)
    >>> img.mode, img.size
    ('RGB', (3, 2))
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)    # refused below instead
            img = Image.open(path)
        with img:
            if img.size[0] * img.size[1] > MAX_PIXELS:     # from the header: nothing decoded yet
                raise DatasetError(f"image is {img.size[0]}x{img.size[1]} px, over {MAX_PIXELS // 1_000_000} "
                                   f"megapixels; refused", path=path, hint="downscale it")
            if size is not None and img.format == "JPEG":
                img.draft("RGB", (size, size))  # decodes at 1/2, 1/4 or 1/8 scale, never below size
            img.load()  # decode here, inside the try: a truncated file raises OSError now
            img = ImageOps.exif_transpose(img)
            if img.mode in _HIGH_BIT_MODES:
                arr = np.asarray(img, dtype=np.float32)
                hi = float(arr.max()) or 1.0
                img = Image.fromarray(np.clip(arr * (255.0 / hi), 0, 255).astype("uint8"), "L")
            if img.mode in ("P", "LA", "PA", "La", "RGBa") or (img.mode == "RGBA"):
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)
            return img.convert("RGB")
    except DatasetError:
        raise
    except Image.DecompressionBombError:
        raise DatasetError("image is larger than Pillow's decompression-bomb limit; refused", path=path,
                           hint="downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file") from None
    except FileNotFoundError:
        raise DatasetError(f"image '{path}' does not exist", path=path) from None
    except PermissionError:
        raise DatasetError(f"image '{path}' cannot be read (permission denied)", path=path) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise DatasetError(f"cannot decode image: {exc}", path=path) from None
