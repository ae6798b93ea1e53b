"""Embed once: the frozen body's pooled features of the images training would use.

With the body frozen, its output for an image does not depend on the learning rate, so the
LR range test and the transferability estimates need one forward pass per image, not one per
step. :func:`cache_features` takes the items training would load (the profile's per-class cap
and the same train/valid split, :func:`~finetune_advisor.learner.dataloaders.prepare_items`),
squashes them to the training image size without augmentation, and keeps what fastai's head
takes as input: the body's output max- and average-pooled (``AdaptiveConcatPool2d``).
"""
from __future__ import annotations

import time

from dataclasses import dataclass

import numpy as np

from ..backbones import Backbone
from ..data import Dataset
from ..exceptions import DatasetError
from ..similarity.embed import embed_images
from .dataloaders import prepare_items
from .model import label_priors
from .spec import LearnerSpec

__all__ = ["FeatureCache", "cache_features"]

FEATURE_BATCH_SIZE = 32


@dataclass(frozen=True)
class FeatureCache:
    """Pooled body features (``2 * n_features`` wide) of a training and a validation sample.

    ``train_y`` / ``valid_y`` are class indices into ``classes`` (single-label) or 0/1 rows
    (multi-label). ``n_embedded`` counts the images that went through the body.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    valid_x: np.ndarray
    valid_y: np.ndarray
    classes: tuple[str, ...]
    multi_label: bool
    priors: tuple[float, ...]
    image_size: int
    backbone_key: str
    n_embedded: int
    failed_paths: tuple[str, ...] = ()
    embed_seconds: float | None = None       # wall time of the forward pass (decoding included)

    @property
    def images_per_s(self) -> float | None:
        """The forward pass's throughput on this machine, decoding and resizing included."""
        return self.n_embedded / self.embed_seconds if self.embed_seconds else None

    @property
    def width(self) -> int:
        return int(self.train_x.shape[1])

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation features together (for the transferability estimates)."""
        return np.concatenate([self.train_x, self.valid_x]), np.concatenate([self.train_y, self.valid_y])


def _targets(labels: list[tuple[str, ...]], classes: list[str], multi_label: bool) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    if multi_label:
        y = np.zeros((len(labels), len(classes)), dtype=np.float32)
        for r, labs in enumerate(labels):
            y[r, [index[c] for c in labs if c in index]] = 1.0
        return y
    return np.asarray([index[labs[0]] for labs in labels], dtype=np.int64)


def cache_features(dataset: Dataset, backbone: Backbone, spec: LearnerSpec, *, seed: int = 0,
                   batch_size: int = FEATURE_BATCH_SIZE, progress: bool = True) -> FeatureCache:
    """One forward pass of the frozen body over the items training would use (see the module).

    Raises
    ------
    DatasetError
        From the item selection (no images, one class, no validation images), or when no
        training or no validation image could be decoded.
    """
    multi = bool(dataset.multi_label or spec.multi_label)
    items, valid_idx, _ = prepare_items(dataset, spec, seed=seed, cap=spec.max_images_per_class,
                                        multi_label=multi, verify=False)
    clock = time.perf_counter()
    emb, failed = embed_images(backbone, [it.path for it in items], image_size=spec.image_size,
                               batch_size=batch_size, progress=progress, pool="concat")
    embed_seconds = time.perf_counter() - clock
    ok = np.setdiff1d(np.arange(len(items)), np.asarray(failed, dtype=np.int64))
    is_valid = np.isin(ok, np.asarray(valid_idx, dtype=np.int64))
    kept = [items[i] for i in ok]
    classes = sorted({c for it in kept for c in (it.labels if multi else it.labels[:1])})
    y = _targets([tuple(it.labels) for it in kept], classes, multi)
    if is_valid.all() or not is_valid.any():
        raise DatasetError(f"{len(failed)} of {len(items)} images gave no finite features (undecodable, or the "
                           f"network outputs NaN/inf): {int((~is_valid).sum())} training and {int(is_valid.sum())} "
                           f"validation images left for the LR range test", path=dataset.root,
                           hint="fix or replace the unreadable images, or check the backbone")
    train_items = [it for it, v in zip(kept, is_valid) if not v]
    return FeatureCache(
        train_x=emb[~is_valid], train_y=y[~is_valid], valid_x=emb[is_valid], valid_y=y[is_valid],
        classes=tuple(classes), multi_label=multi,
        priors=tuple(label_priors(train_items, classes, multi_label=multi)),
        image_size=int(spec.image_size), backbone_key=backbone.key, n_embedded=len(items),
        failed_paths=tuple(str(items[i].path) for i in failed), embed_seconds=embed_seconds)
