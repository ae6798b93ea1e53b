"""The fastai Transforms that an exported ``model.pkl`` holds. This module imports fastai, so it is
imported only inside the functions that build DataLoaders; the classes are defined here at
module level, so pickle finds them by name and ``load_learner`` needs only this package."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fastai.data.core import Transform   # fasttransform's Transform in fastai >= 2.8
from fastai.torch_core import TensorImage
from fastai.vision.core import PILImage
from PIL import Image

from ..data import Item, load_image

__all__ = ["LoadRGB", "Preloaded", "GaussianNoise"]


class LoadRGB(Transform):
    """Type transform: an :class:`Item`, a path or an image -> an RGB ``PILImage``.

    Files are decoded with :func:`finetune_advisor.data.load_image` (EXIF orientation,
    grayscale/palette/RGBA/16-bit/CMYK -> RGB, JPEG draft decoding near ``size``).
    ``input_types`` tells fastai's ``test_dl``/``predict`` which inputs start here, so
    an exported learner predicts from a path, a str, a PIL image, an array or a tensor.
    """

    input_types = (Item, str, Path, Image.Image, np.ndarray, torch.Tensor, bytes)

    def __init__(self, size: int | None = None):
        super().__init__()
        self.size = size

    def encodes(self, o):
        if isinstance(o, Item):
            o = o.path
        if isinstance(o, (str, Path)):
            return PILImage(load_image(o, self.size))
        if isinstance(o, Image.Image):   # possibly lazy (Image.open): convert() loads a copy
            return PILImage(o.convert("RGB"))
        img = PILImage.create(o)         # arrays, tensors, bytes
        return img if img.mode == "RGB" else PILImage(img.convert("RGB"))


class Preloaded(Transform):
    """Type transform: an :class:`Item` -> its image, decoded and resized once ahead of training
    and kept as a ``uint8`` CHW tensor (on the GPU: no per-image decoding in the loop). Not for
    an exported learner: it would pickle every tensor."""

    def __init__(self, tensors):
        super().__init__()
        self.tensors = tensors           # Item path -> uint8 tensor (3, H, W)

    def encodes(self, o: Item):
        return TensorImage(self.tensors[o.path])


class GaussianNoise(Transform):
    """Batch transform (training only): add N(0, std) noise to [0, 1] pixels, then clip."""

    split_idx = 0     # training set only
    order = 95        # after the aug_transforms, before Normalize (99)

    def __init__(self, std: float = 0.05):
        super().__init__()
        self.std = float(std)

    def encodes(self, x):
        if not isinstance(x, TensorImage) or self.std <= 0:
            return x
        return (x + torch.randn_like(x) * self.std).clamp(0.0, 1.0)
