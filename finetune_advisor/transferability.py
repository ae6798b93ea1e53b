"""How transferable a frozen backbone's features are to a dataset, from features alone.

- :func:`logme`: LogME (You, Liu, Wang, Long, "LogME: Practical Assessment of Pre-trained
  Models for Transfer Learning", ICML 2021). Per class, a Bayesian linear regression from the
  features to the one-hot target, its prior precision ``alpha`` and noise precision ``beta``
  set by evidence maximisation (MacKay's fixed point); the score is the maximised log evidence
  per example, averaged over classes. No PyPI package exists; this follows the paper's
  Algorithm 1, computed in the basis of a thin SVD of the features so it costs
  O(n·d·min(n, d)) once and O(min(n, d)) per iteration.
- :func:`linear_probe`: the cross-validated score of a logistic regression on the standardised
  features (accuracy; macro ROC AUC one-vs-rest for multi-label).

Both take the cached features of a class-stratified sample; neither trains the network.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = np.repeat([0, 1], 20)
>>> good = np.c_[y + 0.1 * rng.standard_normal(40), rng.standard_normal((40, 3))]
>>> bad = rng.standard_normal((40, 4))
>>> bool(logme(good, y) > logme(bad, y))
True
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .exceptions import ConfigError

__all__ = ["logme", "logme_evidence", "linear_probe"]

PROBE_COMPONENTS = 128


def logme_evidence(features: np.ndarray, target: np.ndarray, *, max_iter: int = 100,
                   tol: float = 1e-6) -> tuple[float, float, float]:
    """Maximised log evidence per example of ``target ~ features @ w`` with ``w ~ N(0, 1/alpha)``
    and noise ``N(0, 1/beta)``; returns ``(evidence / n, alpha, beta)``.

    With ``F = U diag(s) Vᵀ`` (thin SVD) and ``z = Uᵀ y``, the posterior mean's coordinates are
    ``β s z / (α + β s²)``; the fixed point is ``α = γ / |m|²``, ``β = (n − γ) / |y − F m|²`` with
    ``γ = Σ β s² / (α + β s²)`` (You et al., Algorithm 1).
    """
    f = np.asarray(features, dtype=np.float64)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    return _evidence(u, s, f.shape[1], np.asarray(target, dtype=np.float64), max_iter, tol)


def _evidence(u: np.ndarray, s: np.ndarray, d: int, y: np.ndarray, max_iter: int = 100,
              tol: float = 1e-6) -> tuple[float, float, float]:
    """:func:`logme_evidence` from the features' thin SVD (``u``, ``s``; ``d`` columns), which
    every class of a dataset shares: one decomposition, not one per class."""
    with np.errstate(all="ignore"):       # degenerate inputs (all-zero features) end in NaN, not a warning
        return _fixed_point(u, s, d, y, max_iter, tol)


def _fixed_point(u: np.ndarray, s: np.ndarray, d: int, y: np.ndarray, max_iter: int,
                 tol: float) -> tuple[float, float, float]:
    n = len(y)
    sigma = s ** 2
    z = u.T @ y
    outside = max(float(y @ y - z @ z), 0.0)     # |y|² outside the span of the features
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        denom = alpha + beta * sigma
        gamma = float((beta * sigma / denom).sum())
        m2 = float(((beta * s * z / denom) ** 2).sum())
        residual = float(((alpha * z / denom) ** 2).sum()) + outside
        new_alpha = gamma / max(m2, 1e-300)
        new_beta = max(n - gamma, 1e-9) / max(residual, 1e-300)   # n <= d can fit y exactly
        done = abs(new_alpha / new_beta - alpha / beta) <= tol * (alpha / beta)
        alpha, beta = new_alpha, new_beta
        if done:
            break
    denom = alpha + beta * sigma
    m2 = float(((beta * s * z / denom) ** 2).sum())
    residual = float(((alpha * z / denom) ** 2).sum()) + outside
    log_det = float(np.log(denom).sum()) + (d - len(s)) * math.log(alpha)    # log |αI + βFᵀF|
    alpha, beta = min(alpha, 1e300), min(beta, 1e300)
    evidence = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - beta / 2 * residual - alpha / 2 * m2
                - log_det / 2 - n / 2 * math.log(2 * math.pi))
    return (evidence / n if math.isfinite(evidence) else math.nan), alpha, beta


def _one_hot(labels: np.ndarray | Sequence) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim == 2:                                      # already a (multi-label) indicator matrix
        return y.astype(np.float64)
    classes = np.unique(y)
    return (y[:, None] == classes[None, :]).astype(np.float64)


def logme(features: np.ndarray, labels: np.ndarray | Sequence) -> float:
    """LogME of ``features`` (n × d) for ``labels`` (n class ids, or an n × k 0/1 matrix for
    multi-label), the mean over classes of :func:`logme_evidence`. Higher: more transferable."""
    f = np.asarray(features, dtype=np.float64)
    y = _one_hot(labels)
    if f.ndim != 2 or len(f) != len(y) or len(f) < 2:
        raise ConfigError(f"logme needs n x d features and n labels with n >= 2, got {f.shape} and {len(y)}")
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    return float(np.mean([_evidence(u, s, f.shape[1], y[:, k])[0] for k in range(y.shape[1])]))


def linear_probe(features: np.ndarray, labels: np.ndarray | Sequence, *, folds: int = 3, seed: int = 0,
                 max_iter: int = 500, components: int = PROBE_COMPONENTS) -> float:
    """Cross-validated score of a logistic-regression probe on standardised features, reduced
    to at most ``components`` principal components inside each fold (the full 4,096-wide fit
    cost minutes on 2 cores for a score that moves by a point or two): accuracy
    (single-label: ``labels`` are class ids) or macro ROC AUC (multi-label: an n × k 0/1
    matrix; one-vs-rest, labels present in every fold's training and test part only).

    Folds are stratified and capped by the smallest class (at least 2); NaN when a class has
    a single example.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    k_comp = max(1, min(components, f.shape[1], len(f) - len(f) // max(folds, 2) - 1))
    probe = make_pipeline(StandardScaler(), PCA(k_comp, random_state=seed), LogisticRegression(max_iter=max_iter))
    if y.ndim == 2:
        from sklearn.metrics import roc_auc_score

        keep = (y.sum(axis=0) >= 2) & (y.sum(axis=0) <= len(y) - 2)
        if not keep.any():
            return math.nan
        y = y[:, keep]
        k = min(folds, len(y))
        scores = cross_val_predict(OneVsRestClassifier(probe), f, y, method="predict_proba",
                                   cv=KFold(k, shuffle=True, random_state=seed))
        aucs = [roc_auc_score(y[:, j], scores[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
        return float(np.mean(aucs)) if aucs else math.nan
    _, counts = np.unique(y, return_counts=True)
    k = min(folds, int(counts.min()))
    if k < 2 or len(counts) < 2:
        return math.nan
    pred = cross_val_predict(probe, f, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed))
    return float((pred == y).mean())
