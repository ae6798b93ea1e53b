"""Pure rules: dataset profile + similarity to ImageNet + LR-finder rate → :class:`Config`.

Every rule is a small function returning a :class:`Decision` ``(value, reason)``; rules that set
several Config fields return ``{field: Decision}``. Reasons are one sentence naming the source
(``study``: the Fellowship.AI fastai hyper-parameter study; ``Overture``: Overture's guide to
hyper-parameter selection) and the numbers behind the choice.

No I/O and no torch/fastai import here, so the rules can be doctested and need no GPU.

Size bands (median images per class, Overture's Figure 9): *small* < 300, *medium* 300-999,
*large* >= 1000. The median describes the typical class; one tiny class must not decide for
all the others (tiny classes get a warning from :func:`warnings_for` instead).

>>> profile = make_profile({"cat": 180, "dog": 150}, mean_size=(400, 300))
>>> cfg = recommend_config(profile, similarity=0.81, lr_find=4e-3)
>>> cfg.backbone, cfg.batch_size, cfg.fine_tune, cfg.lr
('resnet18', 16, 'none', 0.004)
>>> cfg.reasons["lr"]
'study: lr_find 4.0e-03 as is because similarity 0.81 >= 0.72 (near ImageNet)'
"""
from __future__ import annotations

from ..study import DEFAULT_LR, LR_FAR_DIVISOR, SIMILARITY_THRESHOLD
from ._common import DEFAULT_NOISE_STD, INVARIANCES, Decision, resolve_far
from .compose import make_profile, recommend_config
from .policies import ARMS, POLICIES, PREDICTORS, CalibratedRule, calibrated_plan, predictor_value
from .schedule import (Schedule, StepRule, TimeModel, fit_to_budget, format_duration, parse_duration,
                       split_schedule, steps_per_epoch)
from .rules import (augmentation, batch_size, beta2, choose_architecture, dropout, fine_tune_plan, head_epochs,
                    head_size, image_size, learning_rates, multi_label, validation_split, weight_decay)
from .warnings import lr_finder_warnings, warnings_for

__all__ = [
    "Decision", "SIMILARITY_THRESHOLD", "DEFAULT_LR", "LR_FAR_DIVISOR", "INVARIANCES", "resolve_far",
    "choose_architecture", "validation_split", "batch_size", "fine_tune_plan", "learning_rates",
    "weight_decay", "beta2", "dropout", "head_size", "head_epochs", "image_size", "augmentation",
    "multi_label", "warnings_for", "lr_finder_warnings", "recommend_config", "make_profile",
    "POLICIES", "ARMS", "PREDICTORS", "CalibratedRule", "calibrated_plan", "predictor_value",
    "StepRule", "split_schedule", "steps_per_epoch", "Schedule", "TimeModel", "fit_to_budget", "parse_duration",
    "format_duration",
]
