"""fastai DataLoaders for a :class:`~finetune_advisor.data.Dataset`: the items kept (labels checked,
a seeded per-class cap, unreadable images dropped), the validation split, the transforms and
the normalisation. The LR range test and training both load data through here."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..backbones import FALLBACK_BACKBONE, IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD, Backbone
from ..config import Config
from ..data import UNDECODABLE_IMAGE, Dataset, Item, format_skips, load_image
from ..data.sampling import stratified_indices
from ..data.splits import split_role
from ..exceptions import ConfigError, DatasetError
from .spec import LearnerSpec, as_spec

if TYPE_CHECKING:  # pragma: no cover
    from fastai.data.core import DataLoaders

log = logging.getLogger(__name__)

__all__ = ["build_dataloaders", "ensure_normalize", "first_label", "all_labels", "items_of"]


# --- item functions (module level: they are pickled into model.pkl) -------------------------

def first_label(item: Item) -> str:
    """``get_y`` for single-label datasets: the item's (only) label."""
    return item.labels[0]


def all_labels(item: Item) -> list:  # plain `list`: fastai casts results to the annotation
    """``get_y`` for multi-label datasets: all of the item's labels."""
    return list(item.labels)


def items_of(source: Sequence[Item]) -> list:
    """``get_items`` for the DataBlock: the (filtered, subsampled) items, as a list."""
    return list(source)


# --- which items, and the split ---------------------------------------------------------------

def _role(item: Item) -> str | None:
    """"train", "valid", "test" or None, from the item's split name (any of data's spellings)."""
    return split_role(item.split)


def _is_valid(item: Item) -> bool:
    return _role(item) == "valid"


def _has_fixed_split(items: Sequence[Item]) -> bool:
    flags = [_is_valid(it) for it in items]
    return any(flags) and not all(flags)


def _cap_per_class(items: list[Item], cap: int | None, multi_label: bool, seed: int) -> list[Item]:
    """At most ``cap`` images per class (original order kept); a fixed train/valid split is kept
    in proportion within each class."""
    if not cap or cap <= 0:
        return items
    labels = [it.labels if multi_label else it.labels[:1] for it in items]
    keep = stratified_indices(labels, max_per_class=cap, seed=seed,
                              strata=["valid" if _is_valid(it) else "train" for it in items])
    return [items[i] for i in keep]


def _split_indices(items: list[Item], valid_pct: float, multi_label: bool, seed: int) -> list[int]:
    """Validation indices: the layout's own split when it fixes one, else a seeded split.

    Single-label datasets are split stratified by class (each class contributes
    ``valid_pct`` of its images, largest-remainder rounding, every class keeps at least one
    training image); multi-label datasets are split at random (``round(valid_pct * n)``).
    """
    if _has_fixed_split(items):
        return [i for i, it in enumerate(items) if _is_valid(it)]
    rng = np.random.default_rng(seed)
    n = len(items)
    target = round(valid_pct * n)
    if multi_label:
        return sorted(int(i) for i in rng.permutation(n)[:target])
    by_class: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_class.setdefault(it.labels[0], []).append(i)
    classes = sorted(by_class)
    exact = {c: valid_pct * len(by_class[c]) for c in classes}
    take = {c: min(math.floor(exact[c]), len(by_class[c]) - 1) for c in classes}
    spare = sorted((c for c in classes if take[c] < len(by_class[c]) - 1),
                   key=lambda c: (-(exact[c] - take[c]), c))
    for c in spare[:max(0, target - sum(take.values()))]:
        take[c] += 1
    valid: list[int] = []
    for c in classes:
        idx = by_class[c]
        valid.extend(int(idx[j]) for j in rng.permutation(len(idx))[:take[c]])
    return sorted(valid)


def _readable(items: list[Item], size: int | None) -> tuple[list[Item], list[str]]:
    """Decode every image once (JPEG draft at ``size``); return the readable items and the bad paths."""
    ok, bad = [], []
    for it in items:
        try:
            load_image(it.path, size)
        except DatasetError:
            bad.append(str(it.path))
        else:
            ok.append(it)
    return ok, bad


def _default_stats(spec: LearnerSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if spec.backbone == FALLBACK_BACKBONE:
        return LITE_MEAN, LITE_STD
    return IMAGENET_MEAN, IMAGENET_STD


def prepare_items(dataset: Dataset, spec: LearnerSpec, *, seed: int, cap: int | None,
                   multi_label: bool, verify: bool) -> tuple[list[Item], list[int], list[str]]:
    """The items to load, the validation indices among them, and the unreadable paths: the
    per-class cap and the train/valid split training uses (the feature cache uses them too)."""
    if not dataset.items:
        raise DatasetError("the dataset has no images", path=dataset.root,
                           hint="check the folder layout (root/<class>/image.jpg)")
    items = [it for it in dataset.items if _role(it) != "test"]   # held out: never trained or validated on
    if not items:
        raise DatasetError("the dataset has only test images", path=dataset.root)
    if not multi_label:
        unlabelled = [it for it in items if not it.labels]
        if unlabelled:
            raise DatasetError(f"{len(unlabelled)} image(s) have no label, e.g. {unlabelled[0].path}",
                               path=dataset.root)
        if len({it.labels[0] for it in items}) < 2:
            raise DatasetError("single-label training needs at least 2 classes with images",
                               path=dataset.root, hint="add a second class folder")
    items = _cap_per_class(items, cap, multi_label, seed)
    bad: list[str] = []
    if verify:
        items, bad = _readable(items, spec.image_size)
        if bad:
            log.warning("%s, e.g. %s", format_skips({UNDECODABLE_IMAGE: len(bad)}), bad[0])
        if not items:
            raise DatasetError(f"none of the {len(bad)} selected images could be decoded, e.g. {bad[0]}",
                               path=dataset.root, hint="check the image files (corrupt or unsupported format)")
        if not multi_label and len({it.labels[0] for it in items}) < 2:
            raise DatasetError(f"after skipping {len(bad)} unreadable image(s) only one class has images "
                               f"({items[0].labels[0]!r}); single-label training needs at least 2",
                               path=dataset.root, hint="fix or replace the unreadable images")
    valid_idx = _split_indices(items, spec.valid_pct, multi_label, seed)
    n_valid, n_train = len(valid_idx), len(items) - len(valid_idx)
    if n_valid == 0:
        raise DatasetError(f"no validation images: {len(items)} usable image(s) with valid_pct="
                           f"{spec.valid_pct}", path=dataset.root,
                           hint="add images: a class needs at least 2 so that one can validate "
                                "(or raise the Config's valid_pct)")
    if n_train < 2:
        raise DatasetError(f"only {n_train} training image(s); at least 2 are needed",
                           path=dataset.root, hint="add images or lower valid_pct")
    return items, valid_idx, bad


# --- public API -----------------------------------------------------------------------------

def build_dataloaders(dataset: Dataset, spec: LearnerSpec | Config, *, seed: int = 0, num_workers: int = 0,
                      max_images_per_class: int | None = None, backbone: Backbone | None = None,
                      stats: tuple[Sequence[float], Sequence[float]] | None = None,
                      verify: bool = True, preloaded: Mapping[Path, Any] | None = None,
                      device: Any = None) -> "DataLoaders":
    """Build fastai ``DataLoaders`` for ``dataset`` as ``spec`` says.

    Parameters
    ----------
    dataset : Dataset
        Images and labels (``dataset.multi_label`` or ``spec.multi_label`` selects
        ``MultiCategoryBlock`` with ``vocab=dataset.classes``; otherwise ``CategoryBlock``).
    spec : LearnerSpec or Config
        Uses ``image_size`` (``Resize``, squish), ``batch_size``, ``valid_pct``,
        ``max_images_per_class`` (a Config: its profile's) and ``augmentation`` (fastai
        ``aug_transforms`` plus optional Gaussian noise).
    seed : int, default=0
        Seeds the validation split and the per-class subset.
    num_workers : int, default=0
        DataLoader worker processes (0 is fastest on 2 CPU cores).
    max_images_per_class : int, optional
        Keep a seeded, class-stratified subset of at most this many images per class
        (train + valid). ``None`` uses the spec's (for a Config,
        ``PROFILES[config.profile]["max_images_per_class"]``: 200 for ``cpu``, no cap for
        ``paper``); ``0`` disables the cap.
    backbone : Backbone, optional
        Its ``mean``/``std`` are used for ``Normalize``.
    stats : (mean, std), optional
        Normalisation stats when no backbone is given. Without either, ImageNet stats
        (EfficientNet-Lite stats when ``spec.backbone == "efficientnet_lite0"``).
    verify : bool, default=True
        Decode every selected image once first and drop unreadable ones (their paths are in
        ``dls.unreadable``), so a corrupt file cannot stop training mid-epoch.
    preloaded : mapping, optional
        Item path -> its image already decoded and resized to ``image_size`` (a ``uint8``
        CHW tensor, e.g. on the GPU; :class:`~finetune_advisor.learner.transforms.Preloaded`):
        no file is read while training, and ``verify`` is skipped.
    device : torch device, optional
        Where the loaders put batches (fastai's default: the GPU when there is one).

    Returns
    -------
    fastai.data.core.DataLoaders
        ``dls.train`` / ``dls.valid``; extra attributes ``unreadable`` (tuple of paths),
        ``fixed_split`` (bool) and ``max_images_per_class`` (the cap applied).

    Raises
    ------
    DatasetError
        No images, a single class (single-label), no validation image or fewer than two
        training images after filtering.
    ConfigError
        ``batch_size < 2`` (the head's BatchNorm needs two images per batch).

    Notes
    -----
    Split: when the layout fixes one (some items ``split == "valid"``, others not) it is
    used; otherwise a seeded split of ``valid_pct`` -- stratified by class for single-label
    data (every class keeps at least one training image), uniformly random for multi-label.
    Batch size is ``min(batch_size, n_train)`` and the training loader drops its last
    partial batch (which always leaves at least one batch). ``Normalize`` is always the last
    batch transform.

    Examples
    --------
    >>> dls = build_dataloaders(ds, Config(image_size=32), backbone=bb)  # doctest: +SKIP
    >>> dls.train.bs, len(dls.valid_ds)                                  # doctest: +SKIP
    (16, 4)
    """
    from fastai.data.block import CategoryBlock, DataBlock, MultiCategoryBlock, TransformBlock
    from fastai.data.transforms import IndexSplitter, IntToFloatTensor, Normalize
    from fastai.vision.augment import Resize, ResizeMethod, aug_transforms

    from .transforms import GaussianNoise, LoadRGB, Preloaded

    spec = as_spec(spec)
    if spec.batch_size < 2:
        raise ConfigError(f"batch_size={spec.batch_size} is too small; the head's BatchNorm "
                          f"needs at least 2 images per batch", hint="use batch_size >= 2")
    multi = bool(dataset.multi_label or spec.multi_label)
    cap = spec.max_images_per_class if max_images_per_class is None else max_images_per_class
    items, valid_idx, bad = prepare_items(dataset, spec, seed=seed, cap=cap, multi_label=multi,
                                          verify=verify and preloaded is None)
    n_train = len(items) - len(valid_idx)
    bs = min(spec.batch_size, n_train)

    if backbone is not None:
        mean, std = backbone.mean, backbone.std
    elif stats is not None:
        mean, std = stats
    else:
        mean, std = _default_stats(spec)

    aug = spec.augmentation
    batch_tfms = list(aug_transforms(do_flip=aug.do_flip, flip_vert=aug.flip_vert,
                                     max_rotate=aug.max_rotate, max_lighting=aug.max_lighting,
                                     max_zoom=aug.max_zoom, max_warp=aug.max_warp))
    if aug.noise_std > 0:
        batch_tfms.append(GaussianNoise(aug.noise_std))
    batch_tfms.append(Normalize.from_stats(mean, std))

    image_block = TransformBlock(type_tfms=LoadRGB(spec.image_size) if preloaded is None else Preloaded(preloaded),
                                 batch_tfms=IntToFloatTensor)
    if multi:
        y_block, get_y = MultiCategoryBlock(vocab=list(dataset.classes)), all_labels
    else:
        y_block, get_y = CategoryBlock(vocab=list(dataset.classes)), first_label
    block = DataBlock(blocks=(image_block, y_block), get_items=items_of, get_y=get_y,
                      splitter=IndexSplitter(valid_idx),
                      item_tfms=Resize(spec.image_size, method=ResizeMethod.Squish) if preloaded is None else None,
                      batch_tfms=batch_tfms)
    dls = block.dataloaders(items, path=Path(dataset.root), bs=bs, val_bs=bs, num_workers=num_workers,
                            drop_last=n_train >= bs, verbose=False, **({} if device is None else {"device": device}))
    dls.unreadable = tuple(bad)
    dls.fixed_split = _has_fixed_split(items)
    dls.max_images_per_class = cap
    return dls


def ensure_normalize(dls: "DataLoaders", mean: Sequence[float], std: Sequence[float]) -> None:
    """Make ``Normalize(mean, std)`` the normalisation of every loader (replacing other stats)."""
    import torch
    from fastai.data.transforms import Normalize

    want_m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    want_s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    seen = set()
    for dl in dls.loaders:
        pipe = dl.after_batch
        if id(pipe) in seen:
            continue
        seen.add(id(pipe))
        norms = [f for f in pipe.fs if isinstance(f, Normalize)]
        if len(norms) == 1 and torch.allclose(norms[0].mean.cpu().float(), want_m) \
                and torch.allclose(norms[0].std.cpu().float(), want_s):
            continue
        if norms:
            log.warning("replacing the DataLoaders' Normalize stats with the backbone's")
        pipe.fs = pipe.fs.filter(lambda f: not isinstance(f, Normalize))
        pipe.add(Normalize.from_stats(mean, std))
