"""Helpers shared by the LR-finder tests (as fixtures: test files do not import each other)."""
from __future__ import annotations

import math

import numpy as np
import pytest


def _synthetic_curve(c: float, *, n: int = 100, w: float = 0.3, noise: float = 0.05, seed: int = 0,
                    onset: float = 1.0, nan_after: float | None = 2.5):
    """loss = a - b*tanh((log10 lr - c)/w) + noise + a divergent tail: steepest at lr = 10**c."""
    rng = np.random.default_rng(seed)
    lrs = np.logspace(-7, 1, n)
    x = np.log10(lrs)
    y = 2.3 - 1.0 * np.tanh((x - c) / w)
    y += np.where(x > c + onset, 4 * (x - c - onset) ** 2, 0.0)       # divergence
    y += noise * rng.standard_normal(n) * y / 2.3                      # batch noise ~ loss level
    if nan_after is not None:
        y[x > c + nan_after] = np.nan
    return lrs, y


def _within_half_step(lr, lrs, index) -> bool:
    step = math.log10(lrs[1] / lrs[0])
    return abs(math.log10(lr) - math.log10(lrs[index])) <= step / 2 + 1e-12


@pytest.fixture
def synthetic_curve():
    """``synthetic_curve(c, ...) -> (lrs, losses)``: a noisy tanh descent steepest at lr = 10**c."""
    return _synthetic_curve


@pytest.fixture
def within_half_step():
    """``within_half_step(lr, lrs, index)``: lr lies within half a sweep step of lrs[index]."""
    return _within_half_step
