"""similarity/transport.py: the EMD by hand and the class-count floor."""
from __future__ import annotations

import math

import numpy as np
import pytest

from finetune_advisor import similarity as S

SQ2 = 1 / math.sqrt(2)


def test_emd_hand_computed_unequal_counts():
    # a = (3, 1)/4 over e1, e2; b = (1, 1)/2 over e1, (e1+e2)/sqrt2.
    # d = [[0, 1-1/sqrt2], [1, 1-1/sqrt2]]; optimum: a0 -> b0 0.5 (0), a0 -> b1 0.25, a1 -> b1 0.25.
    emd, plan = S.emd_similarity([[1, 0], [0, 1]], [3, 1], [[1, 0], [1, 1]], [1, 1])
    assert emd == pytest.approx(0.5 * (1 - SQ2), abs=1e-9)
    np.testing.assert_allclose(plan, [[0.5, 0.25], [0.0, 0.25]], atol=1e-12)


def test_emd_weights_proportional_to_counts_matter():
    # Same means, counts swapped to (1, 3): b1 can take only 0.5 of a1's 0.75, the other 0.25
    # must go to b0 at distance 1: EMD = 0.25 * 1 + 0.5 * (1 - 1/sqrt2).
    emd_31, _ = S.emd_similarity([[1, 0], [0, 1]], [3, 1], [[1, 0], [1, 1]], [1, 1])
    emd_13, plan = S.emd_similarity([[1, 0], [0, 1]], [1, 3], [[1, 0], [1, 1]], [1, 1])
    assert emd_13 == pytest.approx(0.25 + 0.5 * (1 - SQ2), abs=1e-9)
    assert emd_13 > emd_31 + 0.2
    np.testing.assert_allclose(plan.sum(axis=1), [0.25, 0.75])
    # counts scale: (30, 10) is the same as (3, 1)
    assert S.emd_similarity([[1, 0], [0, 1]], [30, 10], [[1, 0], [1, 1]], [7, 7])[0] == pytest.approx(emd_31)


def test_emd_identical_is_zero_orthogonal_is_one_zero_vector_finite():
    means = np.random.default_rng(0).random((5, 8))
    emd, plan = S.emd_similarity(means, [1, 2, 3, 4, 5], means, [1, 2, 3, 4, 5])
    assert emd == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(np.diag(plan), np.arange(1, 6) / 15, atol=1e-12)
    assert S.emd_similarity([[1, 0]], [1], [[0, 1]], [1])[0] == pytest.approx(1.0)
    emd0, _ = S.emd_similarity([[0, 0]], [1], [[0, 1]], [1])  # cosine of a zero vector := 0
    assert emd0 == pytest.approx(1.0) and math.isfinite(emd0)
    with pytest.raises(ValueError):
        S.emd_similarity([[1, 0]], [0], [[0, 1]], [1])


def test_emd_floor_removes_the_class_count_trend():
    rng = np.random.default_rng(3)
    ref = np.abs(rng.normal(size=(60, 16))) ** 3        # non-negative, spread-out class means
    counts = np.full(60, 5)
    for k in (1, 4, 15):
        pick = rng.choice(60, k, replace=False)
        emd, _ = S.emd_similarity(ref[pick], np.ones(k), ref, counts)
        floor = S.emd_floor(np.ones(k), ref, counts, draws=64)
        assert emd > 0.05                                  # raw score penalises few classes
        assert abs(emd - floor) < 0.5 * emd, (k, emd, floor)
    floors = [S.emd_floor(np.ones(k), ref, counts) for k in (1, 4, 15, 60)]
    assert floors == sorted(floors, reverse=True) and floors[-1] == pytest.approx(0.0)
    assert S.emd_floor([1, 2], ref, counts, seed=1) == S.emd_floor([1, 2], ref, counts, seed=1)
