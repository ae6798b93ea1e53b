"""finetune-advisor: how to fine-tune an ImageNet-pretrained ResNet on your dataset with fastai.

>>> import finetune_advisor
>>> sorted(finetune_advisor.__all__)
['Config', 'FinetuneAdvisorError', '__version__', 'create_backbone', 'recommend']
"""
from .config import Config
from .exceptions import FinetuneAdvisorError
# Bound after the submodule import on purpose: `finetune_advisor.recommend` is the function.
from .recommend import recommend  # noqa: E402  (light: torch and fastai load inside it)

__version__ = "0.1.0"


def __getattr__(name):  # heavy parts (torch, fastai) load only when used
    if name == "create_backbone":
        from .backbones import create_backbone
        return create_backbone
    raise AttributeError(f"module 'finetune_advisor' has no attribute {name!r}")


__all__ = ["Config", "FinetuneAdvisorError", "__version__", "recommend", "create_backbone"]
