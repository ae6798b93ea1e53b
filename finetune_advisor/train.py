"""Fine-tune an ImageNet backbone with fastai, following a :class:`~finetune_advisor.config.Config`.

The schedule is the study's: train the new head with the body frozen (``fit_one_cycle``),
then, unless ``config.fine_tune == "none"``, unfreeze the last body stage (``"last"``) or the
whole body (``"all"``) and train again with discriminative learning rates
(``slice(lr_finetune / lr_divisor, lr_finetune)``).

Everything is plain fastai, configured rather than subclassed (``cnn_learner`` pattern):

* :func:`build_dataloaders` -- a ``DataBlock`` over a :class:`~finetune_advisor.data.Dataset`;
* :func:`build_learner` -- ``nn.Sequential(body, create_head(...))`` in a ``Learner`` with
  three parameter groups, AdamW (``Adam(sqr_mom=beta2, decouple_wd=True)``) and the
  config's weight decay, dropout and head size;
* :func:`train` -- both phases, seeded, with a per-epoch history, a majority-class baseline
  and optional exports (``config.json``, ``history.csv``, ``curves.png``, ``model.pkl``,
  ``result.json``);
* :func:`plot_history` -- loss and metric curves with the unfreeze point marked.

Everything that ends up inside an exported ``model.pkl`` (image loader, noise transform,
``get_y`` functions, splitter) is defined at module level, so ``load_learner`` only needs
``finetune_advisor`` to be importable.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ._io import atomic_open
from .backbones import IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD, FALLBACK_BACKBONE, Backbone
from .config import PROFILES, Config
from .data import Dataset, Item, load_image
from .exceptions import ConfigError, DatasetError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "build_dataloaders", "build_learner", "train", "plot_history",
           "split_body_head", "majority_baseline", "write_text_atomic"]

FROZEN, UNFROZEN = "frozen", "unfrozen"     # values of the history's ``phase`` column
LAST_STAGE_MIN_FRACTION = 0.2               # see _body_stages / split_body_head
VALID_SPLITS = ("valid", "validation", "val")
TEST_SPLITS = ("test",)                     # held-out items: never trained or validated on


# --- transforms and item functions (module level: they are pickled into model.pkl) -------

def _make_transform_classes():
    """Define the two Transform subclasses lazily so that importing this module stays cheap."""
    import numpy as np
    import torch
    from fastai.data.core import Transform   # fasttransform's Transform in fastai >= 2.8
    from PIL import Image

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
            from fastai.vision.core import PILImage
            if isinstance(o, Item):
                o = o.path
            if isinstance(o, (str, Path)):
                return PILImage(load_image(o, self.size))
            if isinstance(o, Image.Image):   # possibly lazy (Image.open): convert() loads a copy
                return PILImage(o.convert("RGB"))
            img = PILImage.create(o)         # arrays, tensors, bytes
            return img if img.mode == "RGB" else PILImage(img.convert("RGB"))

    class GaussianNoise(Transform):
        """Batch transform (training only): add N(0, std) noise to [0, 1] pixels, then clip."""

        split_idx = 0     # training set only
        order = 95        # after the aug_transforms, before Normalize (99)

        def __init__(self, std: float = 0.05):
            super().__init__()
            self.std = float(std)

        def encodes(self, x):
            from fastai.torch_core import TensorImage
            if not isinstance(x, TensorImage) or self.std <= 0:
                return x
            return (x + torch.randn_like(x) * self.std).clamp(0.0, 1.0)

    LoadRGB.__module__ = GaussianNoise.__module__ = __name__
    LoadRGB.__qualname__, GaussianNoise.__qualname__ = "LoadRGB", "GaussianNoise"
    return LoadRGB, GaussianNoise


def _transform_class(name: str):
    """``LoadRGB`` or ``GaussianNoise``, defined once on first use (see ``__getattr__``)."""
    if name not in globals():
        load_rgb, noise = _make_transform_classes()
        globals().update(LoadRGB=load_rgb, GaussianNoise=noise)
    return globals()[name]


def __getattr__(name: str):
    # PEP 562: LoadRGB / GaussianNoise are created on first use (they subclass fastai's
    # Transform, and importing fastai takes seconds); pickle finds them here by name.
    if name in ("LoadRGB", "GaussianNoise"):
        return _transform_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def first_label(item: Item) -> str:
    """``get_y`` for single-label datasets: the item's (only) label."""
    return item.labels[0]


def all_labels(item: Item) -> list:  # plain `list`: fastai casts results to the annotation
    """``get_y`` for multi-label datasets: all of the item's labels."""
    return list(item.labels)


def items_of(source: Sequence[Item]) -> list:
    """``get_items`` for the DataBlock: the (filtered, subsampled) items, as a list."""
    return list(source)


# --- body stages and the three parameter groups -----------------------------------------

def _n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _body_stages(body) -> list:
    """The body's parameter-bearing stages in forward order.

    Wrappers with a single parameter-bearing child are looked through, and ``ModuleList``
    children (e.g. EfficientNet's ``_blocks``) are expanded into their blocks. For a
    torchvision ResNet body this gives ``[conv1, bn1, layer1, layer2, layer3, layer4]``.
    """
    import torch.nn as nn
    module = body
    while True:
        kids = [c for c in module.children() if _n_params(c) > 0]
        if len(kids) == 1 and not isinstance(kids[0], nn.ModuleList) and list(kids[0].children()):
            module = kids[0]
            continue
        break
    stages = []
    for kid in kids:
        if isinstance(kid, nn.ModuleList):
            stages.extend(block for block in kid.children() if _n_params(block) > 0)
        else:
            stages.append(kid)
    return stages or [module]


def split_body_head(model) -> list:
    """fastai splitter: three parameter groups ``[early body, last body stage, head]``.

    The last stage is the shortest run of final body stages holding at least
    ``LAST_STAGE_MIN_FRACTION`` (20 %) of the body's parameters: ``layer4`` for every
    torchvision ResNet; the last blocks plus ``conv_head`` for EfficientNet-Lite0. Hence
    ``learn.freeze()`` trains the head, ``learn.freeze_to(-2)`` the last stage and the head
    (``fine_tune="last"``), ``learn.unfreeze()`` everything (``fine_tune="all"``).

    Parameters
    ----------
    model : nn.Sequential
        ``nn.Sequential(body, head)`` as built by :func:`build_learner`.

    Returns
    -------
    list of list of Parameter
        Three groups; the first may be empty for a body with a single stage.
    """
    body, head = model[0], model[1]
    stages = _body_stages(body)
    total = max(_n_params(body), 1)
    cut, acc = len(stages), 0
    while cut > 0 and acc < LAST_STAGE_MIN_FRACTION * total:
        cut -= 1
        acc += _n_params(stages[cut])
    last_ids = {id(p) for s in stages[cut:] for p in s.parameters()}
    early = [p for p in body.parameters() if id(p) not in last_ids]
    last = [p for p in body.parameters() if id(p) in last_ids]
    return [early, last, list(head.parameters())]


# --- dataset preparation ------------------------------------------------------------------

def _cap_per_class(items: list[Item], cap: int | None, multi_label: bool, seed: int) -> list[Item]:
    """Seeded, class-stratified subset with at most ``cap`` images per class (original order kept).

    Single-label: ``cap`` images drawn at random from each class; when the layout fixes the
    split, the class's train/valid images are drawn in proportion (at least one valid image).
    Multi-label: items are visited in a seeded random order and kept while any of their labels
    has fewer than ``cap`` kept images.
    """
    if not cap or cap <= 0:
        return items
    import numpy as np
    rng = np.random.default_rng(seed)
    keep: set[int] = set()
    if multi_label:
        counts: Counter = Counter()
        for i in rng.permutation(len(items)):
            labels = items[i].labels or ("",)
            if any(counts[lab] < cap for lab in labels):
                keep.add(int(i))
                counts.update(labels)
        return [it for i, it in enumerate(items) if i in keep]
    by_class: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_class.setdefault(it.labels[0], []).append(i)
    for idx in by_class.values():
        if len(idx) <= cap:
            keep.update(idx)
            continue
        valid = [i for i in idx if _is_valid(items[i])]
        train = [i for i in idx if not _is_valid(items[i])]
        n_valid = 0 if not valid else min(len(valid), max(1, round(cap * len(valid) / len(idx))))
        n_train = min(len(train), cap - n_valid)
        for pool, n in ((train, n_train), (valid, n_valid)):
            if n:
                keep.update(int(i) for i in rng.choice(pool, size=n, replace=False))
    return [it for i, it in enumerate(items) if i in keep]


def _is_valid(item: Item) -> bool:
    return (item.split or "").lower() in VALID_SPLITS


def _is_test(item: Item) -> bool:
    return (item.split or "").lower() in TEST_SPLITS


def _has_fixed_split(items: Sequence[Item]) -> bool:
    flags = [_is_valid(it) for it in items]
    return any(flags) and not all(flags)


def _split_indices(items: list[Item], valid_pct: float, multi_label: bool, seed: int) -> list[int]:
    """Validation indices: the layout's own split when it fixes one, else a seeded split.

    Single-label datasets are split stratified by class (each class contributes
    ``valid_pct`` of its images, largest-remainder rounding, every class keeps at least one
    training image); multi-label datasets are split at random (``round(valid_pct * n)``).
    """
    if _has_fixed_split(items):
        return [i for i, it in enumerate(items) if _is_valid(it)]
    import numpy as np
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


def _default_stats(config: Config) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if config.backbone == FALLBACK_BACKBONE:
        return LITE_MEAN, LITE_STD
    return IMAGENET_MEAN, IMAGENET_STD


def _prepare_items(dataset: Dataset, config: Config, *, seed: int, max_images_per_class,
                   multi_label: bool, verify: bool):
    if not dataset.items:
        raise DatasetError("the dataset has no images", path=dataset.root,
                           hint="check the folder layout (root/<class>/image.jpg)")
    items = [it for it in dataset.items if not _is_test(it)]
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
    cap = PROFILES[config.profile].get("max_images_per_class") if max_images_per_class is None \
        else max_images_per_class
    items = _cap_per_class(items, cap, multi_label, seed)
    bad: list[str] = []
    if verify:
        items, bad = _readable(items, config.image_size)
        if bad:
            log.warning("skipped %d unreadable image(s), e.g. %s", len(bad), bad[0])
        if not items:
            raise DatasetError(f"none of the {len(bad)} selected images could be decoded, e.g. {bad[0]}",
                               path=dataset.root, hint="check the image files (corrupt or unsupported format)")
        if not multi_label and len({it.labels[0] for it in items}) < 2:
            raise DatasetError(f"after skipping {len(bad)} unreadable image(s) only one class has images "
                               f"({items[0].labels[0]!r}); single-label training needs at least 2",
                               path=dataset.root, hint="fix or replace the unreadable images")
    valid_idx = _split_indices(items, config.valid_pct, multi_label, seed)
    n_valid, n_train = len(valid_idx), len(items) - len(valid_idx)
    if n_valid == 0:
        raise DatasetError(f"no validation images: {len(items)} usable image(s) with valid_pct="
                           f"{config.valid_pct}", path=dataset.root,
                           hint="add images: a class needs at least 2 so that one can validate "
                                "(or raise the Config's valid_pct)")
    if n_train < 2:
        raise DatasetError(f"only {n_train} training image(s); at least 2 are needed",
                           path=dataset.root, hint="add images or lower valid_pct")
    return items, valid_idx, bad, cap


# --- public API -----------------------------------------------------------------------------

def build_dataloaders(dataset: Dataset, config: Config, *, seed: int = 0, num_workers: int = 0,
                      max_images_per_class: int | None = None, backbone: Backbone | None = None,
                      stats: tuple[Sequence[float], Sequence[float]] | None = None,
                      verify: bool = True) -> "DataLoaders":
    """Build fastai ``DataLoaders`` for ``dataset`` as ``config`` says.

    Parameters
    ----------
    dataset : Dataset
        Images and labels (``dataset.multi_label`` or ``config.multi_label`` selects
        ``MultiCategoryBlock`` with ``vocab=dataset.classes``; otherwise ``CategoryBlock``).
    config : Config
        Uses ``image_size`` (``Resize``, squish), ``batch_size``, ``valid_pct``, ``profile``
        and ``augmentation`` (fastai ``aug_transforms`` plus optional Gaussian noise).
    seed : int, default=0
        Seeds the validation split and the per-class subset.
    num_workers : int, default=0
        DataLoader worker processes (0 is fastest on 2 CPU cores).
    max_images_per_class : int, optional
        Keep a seeded, class-stratified subset of at most this many images per class
        (train + valid). ``None`` uses ``PROFILES[config.profile]["max_images_per_class"]``
        (200 for ``cpu``, no cap for ``paper``); ``0`` disables the cap.
    backbone : Backbone, optional
        Its ``mean``/``std`` are used for ``Normalize``.
    stats : (mean, std), optional
        Normalisation stats when no backbone is given. Without either, ImageNet stats
        (EfficientNet-Lite stats when ``config.backbone == "efficientnet_lite0"``).
    verify : bool, default=True
        Decode every selected image once first and drop unreadable ones (their paths are in
        ``dls.unreadable``), so a corrupt file cannot stop training mid-epoch.

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
    Batch size is ``min(config.batch_size, n_train)`` and the training loader drops its
    last partial batch (which always leaves at least one batch). ``Normalize`` is always
    the last batch transform.

    Examples
    --------
    >>> dls = build_dataloaders(ds, Config(image_size=32), backbone=bb)  # doctest: +SKIP
    >>> dls.train.bs, len(dls.valid_ds)                                  # doctest: +SKIP
    (16, 4)
    """
    from fastai.data.block import CategoryBlock, DataBlock, MultiCategoryBlock, TransformBlock
    from fastai.data.transforms import IndexSplitter, IntToFloatTensor, Normalize
    from fastai.vision.augment import Resize, ResizeMethod, aug_transforms

    if config.batch_size < 2:
        raise ConfigError(f"batch_size={config.batch_size} is too small; the head's BatchNorm "
                          f"needs at least 2 images per batch", hint="use batch_size >= 2")
    multi = bool(dataset.multi_label or config.multi_label)
    items, valid_idx, bad, cap = _prepare_items(dataset, config, seed=seed,
                                                max_images_per_class=max_images_per_class,
                                                multi_label=multi, verify=verify)
    n_train = len(items) - len(valid_idx)
    bs = min(config.batch_size, n_train)

    if backbone is not None:
        mean, std = backbone.mean, backbone.std
    elif stats is not None:
        mean, std = stats
    else:
        mean, std = _default_stats(config)

    aug = config.augmentation
    batch_tfms = list(aug_transforms(do_flip=aug.do_flip, flip_vert=aug.flip_vert,
                                     max_rotate=aug.max_rotate, max_lighting=aug.max_lighting,
                                     max_zoom=aug.max_zoom, max_warp=aug.max_warp))
    if aug.noise_std > 0:
        batch_tfms.append(_transform_class("GaussianNoise")(aug.noise_std))
    batch_tfms.append(Normalize.from_stats(mean, std))

    image_block = TransformBlock(type_tfms=_transform_class("LoadRGB")(config.image_size),
                                 batch_tfms=IntToFloatTensor)
    if multi:
        y_block, get_y = MultiCategoryBlock(vocab=list(dataset.classes)), all_labels
    else:
        y_block, get_y = CategoryBlock(vocab=list(dataset.classes)), first_label
    block = DataBlock(blocks=(image_block, y_block), get_items=items_of, get_y=get_y,
                      splitter=IndexSplitter(valid_idx),
                      item_tfms=Resize(config.image_size, method=ResizeMethod.Squish),
                      batch_tfms=batch_tfms)
    dls = block.dataloaders(items, path=Path(dataset.root), bs=bs, val_bs=bs, num_workers=num_workers,
                            drop_last=n_train >= bs, verbose=False)
    dls.unreadable = tuple(bad)
    dls.fixed_split = _has_fixed_split(items)
    dls.max_images_per_class = cap
    return dls


def _ensure_normalize(dls: "DataLoaders", mean: Sequence[float], std: Sequence[float]) -> None:
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


def build_learner(config: Config, dataset: Dataset, *, backbone: Backbone | None = None,
                  dls: "DataLoaders | None" = None, seed: int = 0, weights=None,
                  num_workers: int = 0, max_images_per_class: int | None = None,
                  path: str | Path | None = None) -> "Learner":
    """A fastai ``Learner`` for ``config``: pretrained body + fastai head, frozen.

    Parameters
    ----------
    config : Config
        Uses ``backbone``, ``head_size``, ``dropout``, ``beta2``, ``weight_decay``, ``lr``
        (and everything :func:`build_dataloaders` uses).
    dataset : Dataset
        The images; ignored for data when ``dls`` is given (its ``multi_label`` still
        selects the loss and metrics).
    backbone : Backbone, optional
        Default ``create_backbone(config.backbone, weights=weights, fallback=True)``.
    dls : DataLoaders, optional
        Default ``build_dataloaders(dataset, config, seed=seed, backbone=backbone, ...)``.
        Given loaders get their ``Normalize`` set to the backbone's stats.
    seed : int, default=0
        Passed to :func:`build_dataloaders`. Seed the RNGs yourself (``set_seed``) for a
        repeatable head initialisation; :func:`train` does.
    weights : path, optional
        Local state_dict for the backbone.
    num_workers, max_images_per_class
        Passed to :func:`build_dataloaders`.
    path : path, optional
        ``learn.path`` (where fastai's ``save``/``lr_find`` put their ``models/`` folder).
        Default: ``<tempdir>/finetune-advisor``, so nothing is written into the dataset (a
        hyphen, so the folder cannot shadow the package for ``python -m`` run from the tempdir).

    Returns
    -------
    fastai.learner.Learner
        ``model = nn.Sequential(body, head)`` with ``head = create_head(n_features, n_out,
        lin_ftrs=[head_size], ps=dropout)`` -- ``Dropout(p1)`` before the hidden linear
        layer, ``Dropout(p2)`` before the output layer -- initialised with
        ``apply_init(head, kaiming_normal_)``, except the output layer, which gets a bias
        and starts at the training labels' priors (:func:`prior_output_layer`); splitter :func:`split_body_head` (three
        groups); ``opt_func = Adam(sqr_mom=beta2, decouple_wd=True)`` (AdamW) with
        ``wd=weight_decay`` (BatchNorm and bias parameters are not decayed, fastai's
        ``wd_bn_bias=False``); loss ``CrossEntropyLossFlat`` with metrics ``accuracy``,
        ``error_rate``, or ``BCEWithLogitsLossFlat`` with ``accuracy_multi`` and
        ``F1ScoreMulti`` (micro, threshold 0.5) for multi-label. The learner is frozen
        (``learn.freeze()``): only the head and, as fastai does by default
        (``train_bn=True``), the body's BatchNorm weights and biases are trained.

    Raises
    ------
    BackboneNotFoundError
        The backbone cannot be resolved and the fallback is unavailable too.
    DatasetError, ConfigError
        From :func:`build_dataloaders`; ConfigError also when the backbone cannot take
        ``config.image_size`` px inputs (EfficientNet-Lite0 needs at least 32).
    """
    import tempfile
    from functools import partial

    import fastai.callback.progress  # noqa: F401  (registers ProgressCallback: learn.no_bar)
    import fastai.callback.schedule  # noqa: F401  (Learner.fit_one_cycle)
    import torch.nn as nn
    from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat
    from fastai.learner import Learner
    from fastai.metrics import F1ScoreMulti, accuracy, accuracy_multi, error_rate
    from fastai.optimizer import Adam
    from fastai.torch_core import apply_init
    from fastai.vision.learner import create_head

    from .backbones import create_backbone

    if backbone is None:
        backbone = create_backbone(config.backbone, weights=weights, fallback=True)
    _check_input_size(backbone, config.image_size)
    if dls is None:
        dls = build_dataloaders(dataset, config, seed=seed, num_workers=num_workers,
                                max_images_per_class=max_images_per_class, backbone=backbone)
    else:
        _ensure_normalize(dls, backbone.mean, backbone.std)
    multi = bool(dataset.multi_label or config.multi_label)
    head = create_head(backbone.n_features, len(dls.vocab), lin_ftrs=[config.head_size],
                       ps=list(config.dropout))
    apply_init(head, nn.init.kaiming_normal_)
    head[-1] = prior_output_layer(head[-1].in_features, label_priors(dls.train_ds.items, list(dls.vocab),
                                                                     multi_label=multi), multi_label=multi)
    model = nn.Sequential(backbone.new_body(), head)
    if multi:
        loss_func = BCEWithLogitsLossFlat()
        metrics = [accuracy_multi, F1ScoreMulti(thresh=0.5, average="micro")]
    else:
        loss_func = CrossEntropyLossFlat()
        metrics = [accuracy, error_rate]
    learn = Learner(dls, model, loss_func=loss_func,
                    opt_func=partial(Adam, sqr_mom=config.beta2, decouple_wd=True),
                    lr=config.lr, splitter=split_body_head, metrics=metrics,
                    wd=config.weight_decay, train_bn=True,
                    path=Path(path) if path is not None else Path(tempfile.gettempdir()) / "finetune-advisor")
    learn.freeze()
    learn.backbone_name = backbone.name
    return learn


def label_priors(items: Sequence[Item], classes: Sequence[str], *, multi_label: bool) -> list[float]:
    """Training-set frequency of each class, in ``classes`` order (clipped to [1e-3, 1 - 1e-3]).

    Multi-label: the share of images carrying each label; single-label: each class's share.

    >>> from finetune_advisor.data import Item
    >>> items = [Item("a", ("x",)), Item("b", ("x", "y")), Item("c", ("x",)), Item("d", ("x",))]
    >>> label_priors(items, ["x", "y"], multi_label=True)
    [0.999, 0.25]
    """
    n = max(len(items), 1)
    counts = Counter(lab for it in items for lab in (set(it.labels) if multi_label else it.labels[:1]))
    return [min(max(counts[c] / n, 1e-3), 1 - 1e-3) for c in classes]


def prior_output_layer(n_in: int, priors: Sequence[float], *, multi_label: bool) -> "nn.Linear":
    """The head's output layer, initialised so the untrained model predicts the label priors.

    Bias = log-odds of each prior (sigmoid, multi-label) or log-prior (softmax); weights are
    small (normal, std 0.01), so the first epochs start from the majority-class baseline
    instead of from random logits. fastai's head has no output bias (the BatchNorm before it
    has one), which on a short schedule leaves multi-label models predicting ~0.5 for rare
    labels: below the all-negative baseline (measured on xray-nih, see issue 3).
    """
    import torch
    import torch.nn as nn

    layer = nn.Linear(n_in, len(priors), bias=True)
    nn.init.normal_(layer.weight, std=0.01)
    p = torch.tensor(list(priors), dtype=torch.float32)
    with torch.no_grad():
        layer.bias.copy_(torch.log(p / (1 - p)) if multi_label else torch.log(p))
    return layer


def _check_input_size(backbone: Backbone, size: int) -> None:
    """One forward pass of a blank ``size`` px image through the body: a torch shape error
    (kernel larger than the feature map) becomes a ConfigError before any data is loaded."""
    import torch
    body = backbone.body
    param = next(iter(body.parameters()), None)
    was_training = body.training
    body.eval()
    try:
        with torch.no_grad():
            body(torch.zeros(1, 3, size, size, device=param.device if param is not None else "cpu"))
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"image_size={size} is too small for backbone {backbone.name}: {first}",
                          hint="use a larger image_size in the Config (32 px or more)") from None
    finally:
        body.train(was_training)


# --- training -------------------------------------------------------------------------------

@dataclass
class TrainResult:
    """What :func:`train` did and measured.

    Attributes
    ----------
    config : Config
        The configuration trained.
    history : pandas.DataFrame
        One row per epoch: ``epoch`` (1-based, across phases), ``phase`` (``"frozen"`` or
        ``"unfrozen"``), ``phase_epoch``, ``train_loss``, ``valid_loss``, the metrics
        (``accuracy``, ``error_rate`` or ``accuracy_multi``, ``f1_score``), ``lr_body``/
        ``lr_head`` (peak LRs of the last body group and the head) and ``seconds``.
    final_metrics : dict
        Last epoch's ``valid_loss`` and metrics.
    baseline : dict
        Majority-class baseline on the validation set (see :func:`majority_baseline`).
    wall_time_s : float
        Whole call, data preparation and exports included.
    backbone : str
        Name of the backbone actually used (differs from ``config.backbone`` after a fallback).
    n_train, n_valid, n_unreadable : int
        Images used for training / validation, and images skipped because they did not decode.
    files : dict
        Written files by kind (``config``, ``history``, ``curves``, ``model``, ``result``).
    notes : list of str
        Fallbacks and other things the user should know.
    learner : fastai Learner
        The trained learner (not part of :meth:`to_dict`).
    """

    config: Config
    history: "pd.DataFrame"
    final_metrics: dict[str, float]
    baseline: dict[str, Any]
    wall_time_s: float
    backbone: str
    n_train: int
    n_valid: int
    n_unreadable: int = 0
    unreadable: tuple[str, ...] = ()
    seed: int = 0
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    learner: Any = field(default=None, repr=False, compare=False)

    @property
    def main_metric(self) -> str:
        """``accuracy`` (single-label) or ``accuracy_multi`` (multi-label)."""
        return self.baseline["metric"]

    @property
    def beats_baseline(self) -> bool:
        """Whether the model beats the majority-class baseline on the validation set.

        Single-label: accuracy above the majority class's. Multi-label: validation loss
        (mean binary cross-entropy) below the prior predictor's ``baseline["log_loss"]``,
        a proper scoring rule. ``accuracy_multi`` at a 0.5 threshold is not used: with rare
        labels the all-negative answer wins it unless a label's probability crosses 0.5
        (xray-nih: 14 of 15 labels below 25%); it is reported beside ``roc_auc_macro``.
        """
        if self.main_metric == "accuracy_multi":
            return float(self.final_metrics["valid_loss"]) < float(self.baseline["log_loss"])
        return float(self.final_metrics[self.main_metric]) > float(self.baseline["value"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (history as a list of records; no Learner, no DataFrame)."""
        records = json.loads(self.history.to_json(orient="records")) if self.history is not None else []
        return {
            "config": self.config.to_dict(),
            "backbone": self.backbone,
            "seed": self.seed,
            "n_train": self.n_train,
            "n_valid": self.n_valid,
            "n_unreadable": self.n_unreadable,
            "unreadable": list(self.unreadable),
            "final_metrics": {k: float(v) for k, v in self.final_metrics.items()},
            "baseline": _jsonable(self.baseline),
            "beats_baseline": self.beats_baseline,
            "wall_time_s": float(self.wall_time_s),
            "history": records,
            "files": dict(self.files),
            "notes": list(self.notes),
        }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item"):
        return obj.item()
    return obj


def macro_roc_auc(probs, targets) -> float:
    """Mean ROC AUC over the labels that have both positives and negatives (NaN if none).

    Any constant predictor, the majority one included, scores 0.5.

    >>> import numpy as np
    >>> macro_roc_auc(np.array([[.9, .5], [.2, .5], [.7, .5]]), np.array([[1, 0], [0, 0], [1, 0]]))
    1.0
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score
    probs, targets = np.asarray(probs), np.asarray(targets)
    scores = [roc_auc_score(targets[:, j], probs[:, j]) for j in range(targets.shape[1])
              if 0 < targets[:, j].sum() < len(targets)]
    return float(np.mean(scores)) if scores else float("nan")


def majority_baseline(train_items: Sequence[Item], valid_items: Sequence[Item], *,
                      multi_label: bool, classes: Sequence[str]) -> dict[str, Any]:
    """Score of always predicting the training set's majority on the validation set.

    Parameters
    ----------
    train_items, valid_items : sequence of Item
    multi_label : bool
    classes : sequence of str
        The label vocabulary (multi-label).

    Returns
    -------
    dict
        Single-label: ``{"metric": "accuracy", "value": ..., "prediction": majority class}``.
        Multi-label: ``{"metric": "accuracy_multi", "value": ..., "prediction": [labels
        present in more than half of the training images]}`` (accuracy over all
        image x label decisions). Both also hold ``"log_loss"``: the validation loss
        (cross-entropy, or per-label binary cross-entropy) of predicting the training
        priors (:func:`label_priors`), the majority predictor in probability form.

    Examples
    --------
    >>> from finetune_advisor.data import Item
    >>> tr = [Item("a", ("cat",)), Item("b", ("cat",)), Item("c", ("dog",))]
    >>> va = [Item("d", ("cat",)), Item("e", ("dog",))]
    >>> base = majority_baseline(tr, va, multi_label=False, classes=("cat", "dog"))
    >>> base["value"], base["prediction"], round(base["log_loss"], 4)   # -(ln 2/3 + ln 1/3) / 2
    (0.5, 'cat', 0.752)
    """
    if not valid_items:
        raise DatasetError("majority baseline needs at least one validation image")
    if multi_label:
        prior = dict(zip(classes, label_priors(train_items, classes, multi_label=True)))
        predicted = {c for c in classes if prior[c] > 0.5}   # in more than half of the images
        decisions = [(c in set(it.labels), c) for it in valid_items for c in classes]
        value = sum(present == (c in predicted) for present, c in decisions) / max(len(decisions), 1)
        loss = -sum(math.log(prior[c] if present else 1 - prior[c])
                    for present, c in decisions) / max(len(decisions), 1)
        return {"metric": "accuracy_multi", "value": float(value), "prediction": sorted(predicted),
                "log_loss": float(loss)}
    counts = Counter(it.labels[0] for it in train_items)
    top = max(counts.values())
    majority = min(c for c, k in counts.items() if k == top)   # ties: alphabetically first
    value = sum(it.labels[0] == majority for it in valid_items) / len(valid_items)
    prior = dict(zip(classes, label_priors(train_items, classes, multi_label=False)))
    loss = -sum(math.log(prior.get(it.labels[0], 1e-3)) for it in valid_items) / len(valid_items)
    return {"metric": "accuracy", "value": float(value), "prediction": majority, "log_loss": float(loss)}


def _group_lrs(lr: float | slice, n_groups: int) -> list[float]:
    """Per-group LRs as fastai's ``Optimizer.set_hyper`` spreads them (``even_mults``)."""
    if not isinstance(lr, slice):
        return [float(lr)] * n_groups
    if not lr.start:
        return [lr.stop / 10] * (n_groups - 1) + [lr.stop]
    step = (lr.stop / lr.start) ** (1 / (n_groups - 1))
    return [lr.start * step ** i for i in range(n_groups)]


def _history_callback_class():
    from fastai.callback.core import Callback
    from fastai.learner import Recorder

    class _HistoryCallback(Callback):
        """Append one row per epoch (Recorder's values, peak LRs, seconds) to ``rows``."""

        order = Recorder.order + 1      # after the Recorder has stored the epoch's values

        def __init__(self, rows: list, phase: str, first_epoch: int, lr_max: Sequence[float]):
            self.rows, self.phase, self.first_epoch = rows, phase, first_epoch
            self.lr_max = [float(v) for v in lr_max]

        def before_fit(self):
            # peak LRs of the one-cycle schedule; NaN for the last body group while frozen
            frozen = getattr(self.learn.opt, "frozen_idx", 0) > len(self.lr_max) - 2
            self.lr_body = float("nan") if frozen else self.lr_max[-2]
            self.lr_head = self.lr_max[-1]

        def before_epoch(self):
            self.t0 = time.perf_counter()

        def after_epoch(self):
            rec = self.learn.recorder
            values = list(rec.values[-1])
            names = list(rec.metric_names[1:1 + len(values)])
            row = {"epoch": self.first_epoch + self.epoch + 1, "phase": self.phase,
                   "phase_epoch": self.epoch + 1}
            row.update({n: float(v) for n, v in zip(names, values)})
            row.update(lr_body=self.lr_body, lr_head=self.lr_head,
                       seconds=time.perf_counter() - self.t0)
            self.rows.append(row)

    return _HistoryCallback


def train(config: Config, dataset_or_path: Dataset | str | Path, *, out_dir: str | Path | None = None,
          seed: int = 0, backbone: Backbone | None = None, weights=None, num_workers: int = 0,
          progress: bool = True, max_images_per_class: int | None = None) -> TrainResult:
    """Fine-tune as ``config`` says and measure it.

    Phase 1 (``"frozen"``): ``fit_one_cycle(head_epochs, config.lr)`` with the body frozen.
    Phase 2 (``"unfrozen"``, unless ``fine_tune == "none"``): ``freeze_to(-2)`` for
    ``"last"`` or ``unfreeze()`` for ``"all"``, then ``fit_one_cycle(unfrozen_epochs,
    slice(lr_finetune / lr_divisor, lr_finetune))``: fastai spreads the slice geometrically
    over the three groups, so the early body gets ``lr_finetune / lr_divisor``, the last
    stage ``lr_finetune / sqrt(lr_divisor)`` and the head ``lr_finetune``.

    Parameters
    ----------
    config : Config
    dataset_or_path : Dataset or path
        A path is read with :func:`finetune_advisor.data.read_dataset`.
    out_dir : path, optional
        Write ``config.json``, ``history.csv``, ``curves.png``, ``model.pkl`` (``learn.export``;
        reload with ``fastai.learner.load_learner``) and ``result.json`` there.
    seed : int, default=0
        ``set_seed(seed, reproducible=True)``: split, subset, head init, shuffling and
        augmentation are repeatable (same machine, same thread count).
    backbone : Backbone, optional
        Default ``create_backbone(config.backbone, weights=weights, fallback=True)``.
    weights : path, optional
        Local state_dict for the backbone.
    num_workers : int, default=0
    progress : bool, default=True
        Show fastai's progress bars and epoch table (on stderr, so stdout stays clean);
        ``False`` hides both.
    max_images_per_class : int, optional
        See :func:`build_dataloaders` (``None``: the config profile's cap).

    Returns
    -------
    TrainResult

    Raises
    ------
    DatasetError, ConfigError, BackboneNotFoundError

    Examples
    --------
    >>> res = train(Config(profile="cpu"), "pets/", out_dir="run1")   # doctest: +SKIP
    >>> res.final_metrics["accuracy"] > res.baseline["value"]         # doctest: +SKIP
    True
    """
    import pandas as pd
    from fastai.torch_core import set_seed

    from .backbones import create_backbone

    t_start = time.perf_counter()
    if isinstance(dataset_or_path, Dataset):
        dataset = dataset_or_path
    else:
        from .data import read_dataset
        dataset = read_dataset(dataset_or_path)
    multi = bool(dataset.multi_label or config.multi_label)
    notes: list[str] = []

    set_seed(seed, reproducible=True)
    if backbone is None:
        backbone = create_backbone(config.backbone, weights=weights, fallback=True)
    notes.extend(backbone.notes)
    set_seed(seed, reproducible=True)
    dls = build_dataloaders(dataset, config, seed=seed, num_workers=num_workers,
                            max_images_per_class=max_images_per_class, backbone=backbone)
    if dls.unreadable:
        notes.append(f"skipped {len(dls.unreadable)} unreadable image(s), e.g. {dls.unreadable[0]}")
    learn = build_learner(config, dataset, backbone=backbone, dls=dls, seed=seed, path=out_dir)

    train_items, valid_items = list(dls.train_ds.items), list(dls.valid_ds.items)
    baseline = majority_baseline(train_items, valid_items, multi_label=multi, classes=list(dls.vocab))

    rows: list[dict[str, Any]] = []
    History = _history_callback_class()
    quiet = contextlib.ExitStack()
    with quiet:
        if progress:
            quiet.enter_context(contextlib.redirect_stdout(sys.stderr))
        else:
            quiet.enter_context(learn.no_bar())
            quiet.enter_context(learn.no_logging())
        if config.head_epochs > 0:
            learn.fit_one_cycle(config.head_epochs, config.lr,
                                cbs=[History(rows, FROZEN, 0, _group_lrs(config.lr, 3))])
        if config.fine_tune != "none" and config.unfrozen_epochs > 0:
            if config.fine_tune == "last":
                learn.freeze_to(-2)
            else:
                learn.unfreeze()
            lrs = slice(config.lr_finetune / config.lr_divisor, config.lr_finetune)
            learn.fit_one_cycle(config.unfrozen_epochs, lrs,
                                cbs=[History(rows, UNFROZEN, len(rows), _group_lrs(lrs, 3))])

    columns = ["epoch", "phase", "phase_epoch", "train_loss", "valid_loss"]
    history = pd.DataFrame(rows)
    if history.empty:
        history = pd.DataFrame(columns=columns)
    metric_cols = [c for c in history.columns if c not in (*columns, "lr_body", "lr_head", "seconds")]
    final = {} if history.empty else \
        {k: float(history.iloc[-1][k]) for k in ("valid_loss", *metric_cols)}
    if not final:  # no epochs at all: measure the untrained model
        values = learn.validate()
        final = dict(zip(["valid_loss", *[m.name for m in learn.metrics]], map(float, values)))
    if multi:
        with learn.no_bar(), learn.no_logging():
            probs, targets = learn.get_preds()
        final["roc_auc_macro"] = macro_roc_auc(probs.numpy(), targets.numpy())

    result = TrainResult(config=config, history=history, final_metrics=final, baseline=baseline,
                         wall_time_s=0.0, backbone=backbone.name, n_train=len(train_items),
                         n_valid=len(valid_items), n_unreadable=len(dls.unreadable),
                         unreadable=tuple(dls.unreadable), seed=seed, notes=notes, learner=learn)
    if out_dir is not None:
        _write_outputs(result, learn, Path(out_dir))
    result.wall_time_s = time.perf_counter() - t_start
    if out_dir is not None:
        # written last and atomically: a run folder with a result.json is a complete run
        write_text_atomic(result.files["result"], json.dumps(result.to_dict(), indent=2))
    return result


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temp file in the same folder, flushed to
    disk, then ``os.replace``. A write that is killed or fails leaves any previous file intact
    and no partial file under ``path``; a new file gets the permissions of the file it
    replaces (0644 when there was none, not ``mkstemp``'s 0600).

    Examples
    --------
    >>> import tempfile, os
    >>> p = write_text_atomic(os.path.join(tempfile.mkdtemp(), "sub", "a.json"), "{}")
    >>> p.read_text(), oct(p.stat().st_mode & 0o777)
    ('{}', '0o644')
    """
    path = Path(path)
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return path


def _write_outputs(result: TrainResult, learn: "Learner", out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files = {"config": out / "config.json", "history": out / "history.csv",
             "curves": out / "curves.png", "model": out / "model.pkl", "result": out / "result.json"}
    write_text_atomic(files["config"], result.config.to_json())
    write_text_atomic(files["history"], result.history.to_csv(index=False))
    if not result.history.empty:
        plot_history(result.history, files["curves"], baseline=result.baseline)
    else:
        del files["curves"]
    partial = files["model"].with_name(f".{files['model'].name}.tmp")
    try:
        learn.export(partial.resolve())  # then renamed: a killed export leaves no half model.pkl
        partial.replace(files["model"])
    except Exception as exc:  # an unpicklable custom body must not lose the trained weights
        partial.unlink(missing_ok=True)
        import torch
        state = out / "model_state.pth"
        torch.save(learn.model.state_dict(), state)
        files["model"] = state
        msg = (f"learn.export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
               f"saved the weights to {state} instead")
        log.warning(msg)
        result.notes.append(msg)
    result.files = {k: str(v) for k, v in files.items()}


# --- plotting -------------------------------------------------------------------------------

def plot_history(history: "pd.DataFrame", path: str | Path | None = None, ax=None,
                 baseline: dict[str, Any] | None = None):
    """Plot loss and metric per epoch across both phases, the unfreeze point marked.

    Parameters
    ----------
    history : pandas.DataFrame
        :attr:`TrainResult.history` (or ``history.csv`` read back).
    path : path, optional
        Save the figure there (PNG by extension).
    ax : matplotlib Axes or pair of Axes, optional
        One Axes: losses on it, the metric on a twin right axis. Two: losses on the first,
        the metric on the second. None: a new 1x2 figure (no pyplot state is touched).
    baseline : dict, optional
        :attr:`TrainResult.baseline`: its ``log_loss`` and ``value`` are drawn as dotted
        lines ("majority baseline") on the loss and metric axes.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(10, 4), layout="constrained")
        ax_loss, ax_metric = fig.subplots(1, 2)
    elif isinstance(ax, (list, tuple)) or getattr(ax, "ndim", 0) == 1:
        ax_loss, ax_metric = ax[0], ax[1]
        fig = ax_loss.figure
    else:
        ax_loss, ax_metric, fig = ax, ax.twinx(), ax.figure

    x = history["epoch"]
    for col, style in (("train_loss", "o-"), ("valid_loss", "s-")):
        if col in history:
            ax_loss.plot(x, history[col], style, label=col.replace("_", " "))
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    metric = next((m for m in ("accuracy", "accuracy_multi") if m in history), None)
    if metric is not None:
        ax_metric.plot(x, history[metric], "^-", color="tab:green", label=f"valid {metric}")
        ax_metric.set_ylabel(metric)
        ax_metric.set_xlabel("epoch")
    if baseline:
        if baseline.get("log_loss") is not None:
            ax_loss.axhline(float(baseline["log_loss"]), color="tab:orange", linestyle=":",
                            label="majority baseline (valid)")
        if metric is not None and baseline.get("metric") == metric and baseline.get("value") is not None:
            ax_metric.axhline(float(baseline["value"]), color="tab:green", linestyle=":",
                              label="majority baseline")
    phases = history["phase"].tolist() if "phase" in history else []
    if UNFROZEN in phases and FROZEN in phases:
        first = int(history.loc[history["phase"] == UNFROZEN, "epoch"].min())
        for a in {id(ax_loss): ax_loss, id(ax_metric): ax_metric}.values():
            a.axvline(first - 0.5, color="grey", linestyle="--", label="unfreeze")
    ax_loss.legend(loc="best")
    if metric is not None and ax_metric is not ax_loss:
        ax_metric.legend(loc="lower right")
    if len(x):
        ax_loss.set_xticks(list(x))
        ax_metric.set_xticks(list(x))
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
