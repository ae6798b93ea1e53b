"""suggest_lr on synthetic curves with a known steepest point (pure: no fastai)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from finetune_advisor.exceptions import LRFinderError
from finetune_advisor.lr_finder import suggest_lr


def test_refine_places_the_pick_between_swept_rates(within_half_step):
    # a noiseless tanh descent centred between two swept rates: refining gets closer to it
    lrs = np.logspace(-7, 1, 41)                          # 0.2 decades a step
    centre = -3.1                                          # half-way between -3.2 and -3.0
    x = np.log10(lrs)
    y = 2.0 - np.tanh((x - centre) / 0.5) + np.where(x > -1, (x + 1) ** 3, 0.0)
    coarse, fine = suggest_lr(lrs, y, refine=False), suggest_lr(lrs, y)
    assert abs(math.log10(fine.lr) - centre) < abs(math.log10(coarse.lr) - centre) - 0.05
    assert within_half_step(fine.lr, lrs, fine.index)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("c", [-4.0, -2.5])
def test_pick_is_within_0_15_decades_of_the_steepest_point(c, seed, synthetic_curve, within_half_step):
    lrs, y = synthetic_curve(c, seed=seed, noise=0.1)
    s = suggest_lr(lrs, y)
    assert abs(math.log10(s.lr) - c) <= 0.15
    assert within_half_step(s.lr, lrs, s.index)
    assert suggest_lr(lrs, y, refine=False).lr == lrs[s.index]   # unrefined: a swept rate
    assert s.slope[s.index] < 0 and s.slope.shape == s.smoothed.shape


@pytest.mark.parametrize("seed", range(3))
def test_savgol_filter_also_finds_it(seed, synthetic_curve):
    lrs, y = synthetic_curve(-3.0, seed=seed, noise=0.05)
    assert abs(math.log10(suggest_lr(lrs, y, filter="savgol").lr) + 3.0) <= 0.2


def test_smoothing_is_per_decade_so_num_it_does_not_move_the_pick(synthetic_curve):
    picks = [math.log10(suggest_lr(*synthetic_curve(-3.0, n=n, noise=0.05)).lr) for n in (50, 100, 300)]
    assert max(picks) - min(picks) <= 0.2


def test_nan_tail_is_cut_and_flagged(synthetic_curve):
    lrs, y = synthetic_curve(-3.0, nan_after=1.5)
    first_nan = int(np.argmax(np.isnan(y)))
    s = suggest_lr(lrs, y)
    assert s.diverged and len(s.smoothed) <= first_nan
    assert np.all(np.isfinite(s.smoothed))
    assert abs(math.log10(s.lr) + 3.0) <= 0.15


def test_huge_finite_tail_does_not_leak_into_the_pick(synthetic_curve):
    lrs, y = synthetic_curve(-3.0, nan_after=None)
    y[np.log10(lrs) > -1.0] = 1e6
    s = suggest_lr(lrs, y)
    assert s.diverged and s.smoothed.max() < 20
    assert abs(math.log10(s.lr) + 3.0) <= 0.15


def test_clean_curve_without_divergence_is_not_flagged():
    lrs = np.logspace(-6, 0, 60)
    s = suggest_lr(lrs, 1.5 - 0.5 * np.tanh((np.log10(lrs) + 2.5) / 0.5))
    assert not s.diverged and abs(math.log10(s.lr) + 2.5) <= 0.1


@pytest.mark.parametrize("first", [np.nan, np.inf])
def test_non_finite_from_the_first_step_raises(first, synthetic_curve):
    lrs, y = synthetic_curve(-3.0)
    y[0] = first
    with pytest.raises(LRFinderError, match="not finite from the first step"):
        suggest_lr(lrs, y)


def test_increasing_curve_raises_never_decreases():
    lrs = np.logspace(-7, 1, 100)
    with pytest.raises(LRFinderError, match="never decreases"):
        suggest_lr(lrs, 1.0 + 0.1 * np.log10(lrs / 1e-7))


def test_flat_noise_raises_rather_than_picking_a_wiggle():
    lrs = np.logspace(-7, 1, 100)
    y = 2.0 + 0.01 * np.random.default_rng(0).standard_normal(100)
    with pytest.raises(LRFinderError, match="never decreases"):
        suggest_lr(lrs, y)


def test_short_curve_works_despite_filtfilt_padding():
    lrs = np.logspace(-5, 0, 10)   # filtfilt's default padlen (9) would refuse 9 points
    y = 2.0 - np.tanh((np.log10(lrs) + 2.5) / 0.8)
    s = suggest_lr(lrs, y)
    assert abs(math.log10(s.lr) + 2.5) <= 0.6


def test_too_few_usable_points_raises():
    lrs = np.logspace(-5, 0, 20)
    y = np.full(20, np.nan)
    y[:5] = [2.0, 1.9, 1.7, 1.4, 1.1]
    with pytest.raises(LRFinderError, match="only 5 usable points"):
        suggest_lr(lrs, y)
    with pytest.raises(LRFinderError, match="at least 8"):
        suggest_lr(lrs[:5], y[:5])


@pytest.mark.parametrize("lrs, losses, match", [
    (np.logspace(-5, 0, 10), np.ones(9), "differ in length"),
    (np.logspace(0, -5, 10), np.linspace(2, 1, 10), "strictly increasing"),
    (np.r_[0.0, np.logspace(-5, 0, 9)], np.linspace(2, 1, 10), "positive"),
])
def test_malformed_inputs_raise(lrs, losses, match):
    with pytest.raises(LRFinderError, match=match):
        suggest_lr(lrs, losses)


def test_unknown_filter_raises(synthetic_curve):
    with pytest.raises(LRFinderError, match="filter"):
        suggest_lr(*synthetic_curve(-3.0), filter="ema")


def test_skip_start_excludes_an_early_drop(synthetic_curve):
    lrs, y = synthetic_curve(-3.0, noise=0.0)
    y[:15] += np.linspace(1.0, 0.0, 15)   # a transient drop in the first 15 points
    assert suggest_lr(lrs, y, skip_start=20).index >= 20
    assert abs(math.log10(suggest_lr(lrs, y, skip_start=20).lr) + 3.0) <= 0.15
