"""finetune-advisor: how to fine-tune an ImageNet-pretrained network on your dataset with fastai.

>>> import finetune_advisor
>>> sorted(finetune_advisor.__all__)  # doctest: +NORMALIZE_WHITESPACE
['AdviseOptions', 'Calibration', 'Config', 'FinetuneAdvisorError', 'Measurements', 'Recommendation',
 'TuneResult', '__version__', 'advise', 'build_report', 'create_backbone', 'recommend', 'train', 'tune']
"""
__version__ = "0.2.0"     # first: modules that stamp outputs with it import it from here

from .backbones import create_backbone  # noqa: E402
from .calibration import Calibration  # noqa: E402
from .config import Config  # noqa: E402
from .exceptions import FinetuneAdvisorError  # noqa: E402
from .measurements import Measurements  # noqa: E402
# Bound after the submodule import on purpose: `finetune_advisor.recommend` is the function.
from .recommend import AdviseOptions, Recommendation, advise, recommend  # noqa: E402
from .train import train  # noqa: E402
# Bound after the subpackage import, as recommend is: `finetune_advisor.tune` is the function.
from .tune import TuneResult, tune  # noqa: E402


def __getattr__(name: str):
    # build_report pulls in the report and bench packages: loaded on first use, so that the
    # console script reaches its Ctrl-C handling quickly
    if name == "build_report":
        from .report import build_report
        return build_report
    raise AttributeError(f"module 'finetune_advisor' has no attribute {name!r}")


__all__ = ["recommend", "advise", "AdviseOptions", "Recommendation", "Config", "Measurements", "Calibration",
           "train", "tune", "TuneResult", "build_report", "create_backbone", "FinetuneAdvisorError", "__version__"]
