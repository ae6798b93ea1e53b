"""LogME against a hand-worked case and the closed-form evidence; the linear probe on separable data."""
import math

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from finetune_advisor.transferability import linear_probe, logme, logme_evidence


def test_logme_hand_worked_one_feature():
    # n = 2, d = 1, F = [[1], [1]], y = [1, -1]: y is orthogonal to the feature, so z = Uᵀy = 0,
    # the posterior mean m = 0 and γ = Σβs²/(α+βs²) → 0 as α = γ/|m|² grows without bound; the
    # residual is |y|² = 2, so β = (n − γ)/2 → 1. The evidence tends to that of y ~ N(0, I/β).
    ev, alpha, beta = logme_evidence(np.array([[1.0], [1.0]]), np.array([1.0, -1.0]))
    assert beta == pytest.approx(1.0, rel=1e-3) and alpha > 1e6
    # evidence per example: N(y; 0, I/β) with β = 1 → (−2/2 log 2π − |y|²/2) / 2 = −(log 2π + 1) / 2
    assert ev == pytest.approx(-(math.log(2 * math.pi) + 1) / 2, abs=1e-3)


@pytest.mark.parametrize("n,d", [(30, 5), (12, 40)])
def test_logme_equals_the_gaussian_marginal_likelihood_at_its_fixed_point(n, d):
    rng = np.random.default_rng(n)
    f = rng.standard_normal((n, d))
    y = f @ rng.standard_normal(d) * 0.3 + 0.5 * rng.standard_normal(n)
    ev, alpha, beta = logme_evidence(f, y)
    cov = f @ f.T / alpha + np.eye(n) / beta       # y ~ N(0, F Fᵀ/α + I/β)
    assert ev == pytest.approx(multivariate_normal(np.zeros(n), cov).logpdf(y) / n, rel=1e-6)
    if n <= d:          # F Fᵀ ≈ d·I: the evidence is flat along a ridge of (α, β)
        return
    # and the fixed point maximises it: nearby (α, β) give less evidence
    for a, b in ((alpha * 1.5, beta), (alpha, beta * 0.7)):
        cov2 = f @ f.T / a + np.eye(n) / b
        assert multivariate_normal(np.zeros(n), cov2).logpdf(y) / n <= ev + 1e-9


def test_logme_ranks_informative_features_higher_and_takes_multi_label():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 15)
    informative = np.eye(3)[y] + 0.2 * rng.standard_normal((45, 3))
    noise = rng.standard_normal((45, 3))
    assert logme(informative, y) > logme(noise, y)
    multi = np.c_[y == 0, (y == 1) | (y == 2)].astype(float)
    assert logme(informative, multi) > logme(noise, multi)


def test_linear_probe_accuracy_and_auc():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(3), 10)
    sep = np.eye(3)[y] * 3 + 0.1 * rng.standard_normal((30, 3))
    assert linear_probe(sep, y) == pytest.approx(1.0)
    assert linear_probe(rng.standard_normal((30, 3)), y) < 0.8
    multi = np.c_[y == 0, y == 1].astype(int)
    assert linear_probe(sep, multi) == pytest.approx(1.0)
    assert math.isnan(linear_probe(sep[:3], np.array([0, 1, 2])))     # one example a class: no folds
