"""finetune-advisor: how to fine-tune an ImageNet-pretrained ResNet on your dataset with fastai.

>>> import finetune_advisor
>>> sorted(finetune_advisor.__all__)[:3]
['Config', 'FinetuneAdvisorError', '__version__']
"""
from .config import Config
from .exceptions import FinetuneAdvisorError

__version__ = "0.1.0"


def __getattr__(name):  # heavy parts (torch, fastai) load only when used
    if name == "recommend":
        from .recommend import recommend
        return recommend
    if name == "train":
        from .train import train
        return train
    if name == "create_backbone":
        from .backbones import create_backbone
        return create_backbone
    raise AttributeError(f"module 'finetune_advisor' has no attribute {name!r}")


__all__ = ["Config", "FinetuneAdvisorError", "__version__", "recommend", "train", "create_backbone"]
