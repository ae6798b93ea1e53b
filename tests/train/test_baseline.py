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


@pytest.mark.parametrize("acc, n_valid, expected", [
    (np.float32(0.3), 10, False),            # float32 0.30000001 vs float64 0.3: a tie
    (np.float32(0.3) + 1e-7, 10, False),
    (0.4, 10, True),                          # one more image right
    (0.3004, 1000, False), (0.301, 1000, True),
    (float("nan"), 10, False),
])
def test_a_tie_does_not_beat_the_single_label_baseline(acc, n_valid, expected):
    from finetune_advisor.train import beats_baseline
    assert beats_baseline({"accuracy": acc}, {"metric": "accuracy", "value": 0.3}, n_valid) is expected


@pytest.mark.parametrize("loss, expected", [(0.5, False), (np.float32(0.49999), False), (0.4996, False),
                                            (0.4994, True), (float("nan"), False)])
def test_a_tie_does_not_beat_the_multi_label_prior(loss, expected):
    from finetune_advisor.train import beats_baseline
    base = {"metric": "accuracy_multi", "value": 0.9, "log_loss": 0.5}
    assert beats_baseline({"valid_loss": loss, "accuracy_multi": 0.95}, base, 12) is expected


def test_train_result_reports_a_tie_as_not_beating():
    from finetune_advisor.config import Config
    from finetune_advisor.train import TrainResult
    res = TrainResult(config=Config(), history=None, final_metrics={"accuracy": float(np.float32(0.3)),
                                                                    "valid_loss": 0.7},
                      baseline={"metric": "accuracy", "value": 0.3, "log_loss": 0.69}, wall_time_s=1.0,
                      backbone="resnet18", n_train=20, n_valid=10)
    assert res.beats_baseline is False and res.to_dict()["beats_baseline"] is False
