"""The published numbers this tool reproduces, defined once.

Sources: the Fellowship.AI study of fastai fine-tuning hyper-parameters (``study``, Table 1 and
Table 2), Overture's guide to hyper-parameter selection (``Overture``), and fastai's own
defaults for ``Learner.fine_tune`` and ``lr_find`` (the anchors we compare against). Rules
live in :mod:`finetune_advisor.heuristics`; this module holds only the numbers they cite.

>>> SIMILARITY_THRESHOLD, LR_FAR_DIVISOR
(0.72, 10.0)
>>> TABLE1_GRID["lr_divisor"]
(10.0, 5.0, 3.0)
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

# --- the study -------------------------------------------------------------------------------
SIMILARITY_THRESHOLD = 0.72    # cosine similarity to (Tiny-)ImageNet below this is "far"
LR_FAR_DIVISOR = 10.0          # lr_find / 10 for far datasets
DISCRIMINATIVE_DIVISOR = 10.0  # Table 1 baseline divisor between layer groups
TABLE1_BASELINE: Mapping[str, object] = MappingProxyType({
    "backbone": "resnet34", "batch_size": 64, "weight_decay": 0.1, "beta2": 0.99,
    "dropout": (0.5, 0.25), "lr_divisor": DISCRIMINATIVE_DIVISOR,
})
# Table 1, each value varied alone around the baseline ("lr": exponents k of lr_find x 10^k).
LR_EXPONENTS = (-1.0, -0.5, 0.0, 0.5, 1.0)
TABLE1_GRID: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "lr": LR_EXPONENTS,
    "lr_divisor": (10.0, 5.0, 3.0),
    "weight_decay": (1e-2, 1e-1, 0.0),
    "beta2": (0.9, 0.95, 0.99),
    "dropout_p1": (0.75, 0.5, 0.25),
})
TABLE1_FRACTIONS = (0.2, 1.0)  # each dataset at 20% and 100% of its images
# Table 2: the study's seven datasets and their similarity to ImageNet (ResNet-34 features).
TABLE2_SIMILARITY: Mapping[str, float] = MappingProxyType({
    "Amazon": 0.817, "Cancer": 0.604, "DOTA": 0.829, "Draw": 0.581,
    "Pets": 0.702, "Protein": 0.819, "X-Ray": 0.813,
})
PAPER_SCHEDULE: Mapping[str, int] = MappingProxyType(
    {"image_size": 224, "head_epochs": 5, "unfrozen_epochs": 15, "batch_size": 64})

# --- Overture --------------------------------------------------------------------------------
DEFAULT_LR = 3e-3              # "the default learning rate is 0.003"
FINETUNE_LR_DIVISOR = 10.0     # fine-tune LR <= head LR / 10
SMALL_MAX = 300                # Figure 9: small = 30-300 images per label
LARGE_MIN = 1000               # Figure 9: large = 1000+ images per label
TINY = 30                      # below the small band
MIN_TRAIN, MIN_VALID = 20, 15  # per label, in the training / validation set
VALID_MIN, VALID_MAX = 0.1, 0.4  # 0.4 at ~40 per label, down to 0.1 with hundreds
MAX_FINETUNE_EPOCHS = 5        # fine-tune "at most 5" epochs
MAX_HEAD_EPOCHS = 15           # head training converges within 10-15 epochs

# --- fastai's defaults (the anchors) ---------------------------------------------------------
FASTAI_BASE_LR = 2e-3          # Learner.fine_tune(base_lr=2e-3)
FASTAI_LR_MULT = 100.0         # fine_tune's unfrozen phase: slice(base_lr / 2 / lr_mult, base_lr / 2)
FASTAI_WEIGHT_DECAY = 0.01
FASTAI_HEAD_DROPOUT = (0.25, 0.5)  # create_head's ps
