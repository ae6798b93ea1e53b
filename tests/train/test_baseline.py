"""The majority baseline (single- and multi-label) and the macro ROC AUC."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finetune_advisor.data import Item
from finetune_advisor.exceptions import DatasetError
from finetune_advisor.train import macro_roc_auc, majority_baseline


def test_majority_baseline_multi_label():
    tr = [Item(Path("a"), ("x",)), Item(Path("b"), ("x", "y")), Item(Path("c"), ("x",))]
    va = [Item(Path("d"), ("x",)), Item(Path("e"), ("y",))]
    base = majority_baseline(tr, va, multi_label=True, classes=("x", "y"))
    # predicts {x}: d is right on both labels, e wrong on both -> 2 of 4 decisions
    loss = base.pop("log_loss")
    assert base == {"metric": "accuracy_multi", "value": 0.5, "prediction": ["x"]}
    # priors x: 3/3 (clipped to 0.999), y: 1/3; BCE over the 4 decisions
    p_x, p_y = 0.999, 1 / 3
    expected = -(np.log(p_x) + np.log(1 - p_y) + np.log(1 - p_x) + np.log(p_y)) / 4
    assert loss == pytest.approx(expected)


def test_majority_baseline_needs_validation_images():
    with pytest.raises(DatasetError, match="at least one validation image"):
        majority_baseline([Item(Path("a"), ("x",))], [], multi_label=False, classes=("x",))


def test_macro_roc_auc_skips_labels_without_both_outcomes():
    probs = np.array([[0.9, 0.1], [0.2, 0.3], [0.7, 0.2]])
    assert macro_roc_auc(probs, np.array([[1, 0], [0, 0], [1, 0]])) == 1.0   # label 2: never present
    assert np.isnan(macro_roc_auc(probs, np.zeros((3, 2))))
