"""What a trained model must beat: the majority-class predictor's score and loss on the
validation set, and the macro ROC AUC reported for multi-label runs."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from ..data import Item
from ..exceptions import DatasetError
from ..learner import label_priors

__all__ = ["majority_baseline", "macro_roc_auc", "beats_baseline", "MULTI_LABEL_MARGIN"]

MULTI_LABEL_MARGIN = 1e-3   # relative: a multi-label loss must be this much below the prior predictor's


def macro_roc_auc(probs, targets) -> float:
    """Mean ROC AUC over the labels that have both positives and negatives (NaN if none).

    Any constant predictor, the majority one included, scores 0.5.

    >>> macro_roc_auc(np.array([[.9, .5], [.2, .5], [.7, .5]]), np.array([[1, 0], [0, 0], [1, 0]]))
    1.0
    """
    from sklearn.metrics import roc_auc_score   # ~2 s to import; only multi-label runs need it

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
        priors (:func:`~finetune_advisor.learner.label_priors`), the majority predictor in
        probability form.

    Examples
    --------
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


def beats_baseline(final_metrics: Mapping[str, Any], baseline: Mapping[str, Any], n_valid: int) -> bool:
    """Whether a model's validation scores beat ``baseline`` (:func:`majority_baseline`) by a margin.

    Single-label (``accuracy``): both accuracies are turned into counts of correct images out
    of ``n_valid`` (rounded, in float64), and the model must get at least one more right, so
    a float32 accuracy that equals the baseline up to rounding is a tie, not a win. Without
    ``n_valid`` the margin is 1e-6. Multi-label (``accuracy_multi``): ``valid_loss`` must be
    below ``baseline["log_loss"]`` by :data:`MULTI_LABEL_MARGIN` of it. A non-finite score never
    beats anything.

    >>> import numpy as np
    >>> beats_baseline({"accuracy": np.float32(0.3)}, {"metric": "accuracy", "value": 0.3}, 10)
    False
    >>> beats_baseline({"accuracy": 0.4}, {"metric": "accuracy", "value": 0.3}, 10)
    True
    >>> base = {"metric": "accuracy_multi", "value": 0.9, "log_loss": 0.5}
    >>> beats_baseline({"valid_loss": 0.4999}, base, 10), beats_baseline({"valid_loss": 0.49}, base, 10)
    (False, True)
    """
    if baseline["metric"] == "accuracy_multi":
        loss, prior = float(final_metrics["valid_loss"]), float(baseline["log_loss"])
        return bool(math.isfinite(loss) and math.isfinite(prior) and loss < prior - MULTI_LABEL_MARGIN * abs(prior))
    score, base = float(final_metrics[baseline["metric"]]), float(baseline["value"])
    if not (math.isfinite(score) and math.isfinite(base)):
        return False
    if n_valid and n_valid > 0:
        return round(score * n_valid) >= round(base * n_valid) + 1
    return score > base + 1e-6
