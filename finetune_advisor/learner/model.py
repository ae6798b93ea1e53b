"""The fastai Learner: a pretrained body split into parameter groups, fastai's head with an output
layer that starts at the label priors, AdamW, the loss and metrics for single- or multi-label."""
from __future__ import annotations

import tempfile
from collections import Counter
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..backbones import Backbone, create_backbone
from ..config import Config
from ..data import Dataset, Item
from ..exceptions import ConfigError
from .dataloaders import build_dataloaders, ensure_normalize
from .spec import LearnerSpec, as_spec

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner

__all__ = ["build_learner", "split_body_head", "label_priors", "prior_output_layer"]

LAST_STAGE_MIN_FRACTION = 0.2               # see _body_stages / split_body_head


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


# --- the head's output layer -------------------------------------------------------------------

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


def build_head(n_features: int, priors: Sequence[float], spec: LearnerSpec, *, multi_label: bool,
               pool: bool = True) -> "nn.Sequential":
    """fastai's head for ``spec`` (``create_head(n_features, n_out, lin_ftrs=[head_size],
    ps=dropout)``, Kaiming-initialised) with the output layer at the label priors.
    ``pool=False`` leaves out the concat pool and flatten: the head then takes the
    already-pooled ``2 * n_features`` vectors of a feature cache.
    """
    import torch.nn as nn
    from fastai.torch_core import apply_init
    from fastai.vision.learner import create_head

    nf = n_features if pool else 2 * n_features
    head = create_head(nf, len(priors), lin_ftrs=[spec.head_size], ps=list(spec.dropout), pool=pool)
    apply_init(head, nn.init.kaiming_normal_)
    head[-1] = prior_output_layer(head[-1].in_features, priors, multi_label=multi_label)
    return head


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


# --- the Learner -------------------------------------------------------------------------------

def build_learner(spec: LearnerSpec | Config, dataset: Dataset, *, backbone: Backbone | None = None,
                  dls: "DataLoaders | None" = None, seed: int = 0, weights=None,
                  num_workers: int = 0, max_images_per_class: int | None = None,
                  path: str | Path | None = None) -> "Learner":
    """A fastai ``Learner`` for ``spec``: pretrained body + fastai head, frozen.

    Parameters
    ----------
    spec : LearnerSpec or Config
        Uses ``backbone``, ``head_size``, ``dropout``, ``beta2``, ``weight_decay``, ``lr``
        (and everything :func:`~finetune_advisor.learner.build_dataloaders` uses).
    dataset : Dataset
        The images; ignored for data when ``dls`` is given (its ``multi_label`` still
        selects the loss and metrics).
    backbone : Backbone, optional
        Default ``create_backbone(spec.backbone, weights=weights, fallback=True)``.
    dls : DataLoaders, optional
        Default ``build_dataloaders(dataset, spec, seed=seed, backbone=backbone, ...)``.
        Given loaders get their ``Normalize`` set to the backbone's stats.
    seed : int, default=0
        Passed to ``build_dataloaders``. Seed the RNGs yourself (``set_seed``) for a
        repeatable head initialisation; :func:`finetune_advisor.train.train` does.
    weights : path, optional
        Local state_dict for the backbone.
    num_workers, max_images_per_class
        Passed to ``build_dataloaders``.
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
        and starts at the training labels' priors (:func:`prior_output_layer`); splitter
        :func:`split_body_head` (three groups); ``opt_func = Adam(sqr_mom=beta2,
        decouple_wd=True)`` (AdamW) with ``wd=weight_decay`` (BatchNorm and bias parameters
        are not decayed, fastai's ``wd_bn_bias=False``); loss ``CrossEntropyLossFlat`` with
        metrics ``accuracy``, ``error_rate``, or ``BCEWithLogitsLossFlat`` with
        ``accuracy_multi`` and ``F1ScoreMulti`` (micro, threshold 0.5) for multi-label. The
        learner is frozen (``learn.freeze()``): only the head and, as fastai does by default
        (``train_bn=True``), the body's BatchNorm weights and biases are trained.

    Raises
    ------
    BackboneNotFoundError
        The backbone cannot be resolved and the fallback is unavailable too.
    DatasetError, ConfigError
        From ``build_dataloaders``; ConfigError also when the backbone cannot take
        ``image_size`` px inputs (EfficientNet-Lite0 needs at least 32).
    """
    import fastai.callback.progress  # noqa: F401  (registers ProgressCallback: learn.no_bar)
    import fastai.callback.schedule  # noqa: F401  (Learner.fit_one_cycle)
    import torch.nn as nn
    from fastai.learner import Learner
    from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat
    from fastai.metrics import F1ScoreMulti, accuracy, accuracy_multi, error_rate
    from fastai.optimizer import Adam

    spec = as_spec(spec)
    if backbone is None:
        backbone = create_backbone(spec.backbone, weights=weights, fallback=True)
    _check_input_size(backbone, spec.image_size)
    if dls is None:
        dls = build_dataloaders(dataset, spec, seed=seed, num_workers=num_workers,
                                max_images_per_class=max_images_per_class, backbone=backbone)
    else:
        ensure_normalize(dls, backbone.mean, backbone.std)
    multi = bool(dataset.multi_label or spec.multi_label)
    priors = label_priors(dls.train_ds.items, list(dls.vocab), multi_label=multi)
    head = build_head(backbone.n_features, priors, spec, multi_label=multi)
    model = nn.Sequential(backbone.new_body(), head)
    if multi:
        loss_func = BCEWithLogitsLossFlat()
        metrics = [accuracy_multi, F1ScoreMulti(thresh=0.5, average="micro")]
    else:
        loss_func = CrossEntropyLossFlat()
        metrics = [accuracy, error_rate]
    learn = Learner(dls, model, loss_func=loss_func,
                    opt_func=partial(Adam, sqr_mom=spec.beta2, decouple_wd=True),
                    lr=spec.lr, splitter=split_body_head, metrics=metrics,
                    wd=spec.weight_decay, train_bn=True,
                    path=Path(path) if path is not None else Path(tempfile.gettempdir()) / "finetune-advisor")
    learn.freeze()
    learn.backbone_name = backbone.name
    return learn
