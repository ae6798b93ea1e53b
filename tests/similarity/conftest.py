"""Helpers shared by the similarity tests (as fixtures: test files do not import each other).

Most tests use a transparent "backbone" whose features are an image's mean RGB (identity body,
mean 0 / std 1), so class means, cosines and EMDs can be written down by hand.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finetune_advisor.backbones import Backbone, create_backbone
from finetune_advisor.data import Dataset, Item
from finetune_advisor.similarity import Reference


def _rgb_backbone(name: str = "rgbmean") -> Backbone:
    """Features = mean RGB in [0, 1] (a colour's feature vector is the colour itself)."""
    import torch
    return Backbone(name=name, body=torch.nn.Identity(), n_features=3, mean=(0.0, 0.0, 0.0),
                    std=(1.0, 1.0, 1.0), pretrained=True, source="test")


def _solid(path: Path, color, size: int = 16) -> Path:
    from PIL import Image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), tuple(int(c) for c in color)).save(path)
    return path


def _noisy(path: Path, seed: int, size: int = 24, tint=(0, 0, 0)) -> Path:
    from PIL import Image
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.integers(0, 256, (size, size, 3)) * 0.6 + np.asarray(tint) * 0.4, 0, 255).astype("uint8")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _folder_dataset(root: Path, spec: dict[str, list], multi: dict[str, tuple[str, ...]] | None = None) -> Dataset:
    """``spec``: class -> list of colours (or existing paths). ``multi``: extra file -> labels."""
    items = []
    for cls, entries in spec.items():
        for i, e in enumerate(entries):
            p = e if isinstance(e, Path) else _solid(root / cls / f"{i}.png", e)
            items.append(Item(p, (cls,)))
    for name, labels in (multi or {}).items():
        items.append(Item(root / name, labels))
    classes = tuple(sorted({label for it in items for label in it.labels}))
    return Dataset(root=root, layout="folders", items=tuple(items), classes=classes, multi_label=bool(multi))


def _make_reference(means, counts, ids=None, names=None, key="rgbmean", size=16, k=2) -> Reference:
    ids = ids or [f"r{i}" for i in range(len(means))]
    return Reference(backbone_key=key, image_size=size, images_per_class=k, class_ids=tuple(ids),
                     class_names=tuple(names or [""] * len(ids)), class_means=np.asarray(means, np.float32),
                     class_counts=np.asarray(counts), source="test", created="now")


@pytest.fixture
def rgb_backbone():
    """``rgb_backbone(name="rgbmean") -> Backbone`` whose features are the mean RGB."""
    return _rgb_backbone


@pytest.fixture
def solid():
    """``solid(path, color, size=16) -> path``: a one-colour PNG."""
    return _solid


@pytest.fixture
def noisy():
    """``noisy(path, seed, size=24, tint=(0, 0, 0)) -> path``: a seeded noise PNG."""
    return _noisy


@pytest.fixture
def folder_dataset():
    """``folder_dataset(root, {class: [colour or path, ...]}, multi=None) -> Dataset``."""
    return _folder_dataset


@pytest.fixture
def make_reference():
    """``make_reference(means, counts, ids=None, names=None, key="rgbmean", size=16, k=2) -> Reference``."""
    return _make_reference


@pytest.fixture(scope="session")
def resnet18():
    return create_backbone("resnet18", pretrained=False)
