"""LR range test: the pure suggestion on synthetic curves, and find_lr on a tiny real Learner."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from finetune_advisor.exceptions import LRFinderError
from finetune_advisor.lr_finder import LRFinderResult, find_lr, plot_lr_finder, suggest_lr


# --------------------------------------------------------------------------------------
# suggest_lr on synthetic curves with a known steepest point
# --------------------------------------------------------------------------------------
def synthetic_curve(c: float, *, n: int = 100, w: float = 0.3, noise: float = 0.05, seed: int = 0,
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


def test_refine_places_the_pick_between_swept_rates():
    # a noiseless tanh descent centred between two swept rates: refining gets closer to it
    lrs = np.logspace(-7, 1, 41)                          # 0.2 decades a step
    centre = -3.1                                          # half-way between -3.2 and -3.0
    x = np.log10(lrs)
    y = 2.0 - np.tanh((x - centre) / 0.5) + np.where(x > -1, (x + 1) ** 3, 0.0)
    coarse, fine = suggest_lr(lrs, y, refine=False), suggest_lr(lrs, y)
    assert abs(math.log10(fine.lr) - centre) < abs(math.log10(coarse.lr) - centre) - 0.05
    assert _within_half_step(fine.lr, lrs, fine.index)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("c", [-4.0, -2.5])
def test_pick_is_within_0_15_decades_of_the_steepest_point(c, seed):
    lrs, y = synthetic_curve(c, seed=seed, noise=0.1)
    s = suggest_lr(lrs, y)
    assert abs(math.log10(s.lr) - c) <= 0.15
    assert _within_half_step(s.lr, lrs, s.index)
    assert suggest_lr(lrs, y, refine=False).lr == lrs[s.index]   # unrefined: a swept rate
    assert s.slope[s.index] < 0 and s.slope.shape == s.smoothed.shape


@pytest.mark.parametrize("seed", range(3))
def test_savgol_filter_also_finds_it(seed):
    lrs, y = synthetic_curve(-3.0, seed=seed, noise=0.05)
    assert abs(math.log10(suggest_lr(lrs, y, filter="savgol").lr) + 3.0) <= 0.2


def test_smoothing_is_per_decade_so_num_it_does_not_move_the_pick():
    picks = [math.log10(suggest_lr(*synthetic_curve(-3.0, n=n, noise=0.05)).lr) for n in (50, 100, 300)]
    assert max(picks) - min(picks) <= 0.2


def test_nan_tail_is_cut_and_flagged():
    lrs, y = synthetic_curve(-3.0, nan_after=1.5)
    first_nan = int(np.argmax(np.isnan(y)))
    s = suggest_lr(lrs, y)
    assert s.diverged and len(s.smoothed) <= first_nan
    assert np.all(np.isfinite(s.smoothed))
    assert abs(math.log10(s.lr) + 3.0) <= 0.15


def test_huge_finite_tail_does_not_leak_into_the_pick():
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
def test_non_finite_from_the_first_step_raises(first):
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


def test_unknown_filter_raises():
    with pytest.raises(LRFinderError, match="filter"):
        suggest_lr(*synthetic_curve(-3.0), filter="ema")


def test_skip_start_excludes_an_early_drop():
    lrs, y = synthetic_curve(-3.0, noise=0.0)
    y[:15] += np.linspace(1.0, 0.0, 15)   # a transient drop in the first 15 points
    assert suggest_lr(lrs, y, skip_start=20).index >= 20
    assert abs(math.log10(suggest_lr(lrs, y, skip_start=20).lr) + 3.0) <= 0.15


# --------------------------------------------------------------------------------------
# find_lr on a tiny real fastai Learner
# --------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
nn = torch.nn



def _dataset(n: int, seed: int):
    from torch.utils.data import TensorDataset
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.5 * torch.randn(n, 3, 16, 16, generator=g)
    x[torch.arange(n), y] += 1.0          # class k brightens channel k: learnable
    return TensorDataset(x, y)


class NaNHead(nn.Module):
    def forward(self, x):
        return x * float("nan")


class FailAfter(nn.Module):
    """Raises on the k-th training forward pass: an error fastai's after_fit never sees."""

    def __init__(self, k: int):
        super().__init__()
        self.k, self.calls = k, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.k:
            raise RuntimeError("boom")
        return x


def make_learner(tmp_path, *, extra: nn.Module | None = None, valid: bool = True):
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.torch_core import params

    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3), nn.BatchNorm1d(3))
    if extra is not None:
        head.append(extra)
    dsets = (_dataset(256, 0), _dataset(64, 1)) if valid else (_dataset(256, 0),)
    dls = DataLoaders.from_dsets(*dsets, bs=16, device="cpu")
    learn = Learner(dls, nn.Sequential(body, head), loss_func=CrossEntropyLossFlat(),
                    splitter=lambda m: [params(m[0]), params(m[1])], path=tmp_path)
    if hasattr(learn, "progress"):   # no progress bars in tests (slow and noisy)
        learn.remove_cb(learn.progress)
    learn.freeze()   # the study ran the range test on the frozen network
    return learn


def _state(learn):
    return {k: v.detach().clone() for k, v in learn.model.state_dict().items()}


def _assert_same_state(learn, before):
    after = learn.model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), k


def test_find_lr_train_loss(tmp_path):
    learn = make_learner(tmp_path)
    before, cbs_before = _state(learn), list(learn.cbs)
    r = find_lr(learn, loss="train", num_it=80, seed=0)
    _assert_same_state(learn, before)                       # weights and BN buffers restored
    assert list(learn.cbs) == cbs_before                    # our recorder is gone
    assert 1e-7 <= r.lr <= 10 and math.isfinite(r.lr)
    assert r.loss_kind == "train" and r.n_steps == len(r.lrs) == len(r.losses_raw) <= 80
    assert _within_half_step(r.lr, r.lrs, r.index) and len(r.losses_smooth) <= r.n_steps
    assert r.fastai_valley is not None and r.fastai_steep is not None
    # raw, not fastai's EMA: the EMA at step k differs from the raw loss there
    ema = [float(v) for v in learn.recorder.losses]
    assert not np.allclose(r.losses_raw[1:10], ema[1:10])
    json.dumps(r.to_dict(), allow_nan=False)
    assert LRFinderResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_find_lr_valid_loss_is_repeatable(tmp_path):
    learn = make_learner(tmp_path)
    before = _state(learn)
    r1 = find_lr(learn, loss="valid", num_it=60, seed=1)
    r2 = find_lr(learn, loss="valid", num_it=60, seed=1)
    _assert_same_state(learn, before)
    assert r1.loss_kind == "valid" and math.isfinite(r1.lr)
    assert r1.losses_raw[:20] == r2.losses_raw[:20] and r1.lr == r2.lr


def test_bn_warmup_moves_running_stats_only_and_is_undone(tmp_path, monkeypatch):
    from finetune_advisor import lr_finder as lf
    learn = make_learner(tmp_path)
    bn = learn.model[0][1]
    before = _state(learn)
    lf._warm_up_batchnorm(learn, 5)
    assert not torch.equal(bn.running_mean, before["0.1.running_mean"])    # statistics moved
    assert torch.equal(learn.model[0][0].weight, before["0.0.weight"])     # weights did not
    assert learn.model.training                                            # mode kept
    # find_lr warms up for the validation loss only, and puts the statistics back afterwards
    calls = []
    real = lf._warm_up_batchnorm
    monkeypatch.setattr(lf, "_warm_up_batchnorm", lambda learn, n: (calls.append(n), real(learn, n)))
    learn = make_learner(tmp_path)
    before = _state(learn)
    find_lr(learn, loss="valid", num_it=30, seed=0, bn_warmup=7)
    find_lr(learn, loss="train", num_it=30, seed=0)
    assert calls == [7]
    _assert_same_state(learn, before)


def test_flat_validation_loss_falls_back_to_the_training_curve(tmp_path, caplog):
    from torch.utils.data import TensorDataset
    learn = make_learner(tmp_path)
    # validation images carry no signal: their loss cannot fall while training's does
    x_valid, y_valid = learn.dls.valid.dataset.tensors
    flat = TensorDataset(torch.zeros_like(x_valid), y_valid)
    from fastai.data.core import DataLoaders
    learn.dls = DataLoaders.from_dsets(learn.dls.train.dataset, flat, bs=16, device="cpu")
    with caplog.at_level("WARNING", logger="finetune_advisor.lr_finder"):
        r = find_lr(learn, loss="valid", num_it=80, seed=0)
    assert r.loss_kind == "train" and 1e-7 <= r.lr <= 10
    assert "validation loss is flat" in caplog.text


def test_find_lr_nan_from_the_first_step(tmp_path):
    learn = make_learner(tmp_path, extra=NaNHead())
    before, cbs_before = _state(learn), list(learn.cbs)
    with pytest.raises(LRFinderError, match="not finite from the first step"):
        find_lr(learn, num_it=30)
    _assert_same_state(learn, before)
    assert list(learn.cbs) == cbs_before


def test_weights_restored_when_the_sweep_raises(tmp_path):
    learn = make_learner(tmp_path, extra=FailAfter(5))
    before = _state(learn)
    with pytest.raises(RuntimeError, match="boom"):
        find_lr(learn, num_it=30)
    _assert_same_state(learn, before)   # fastai skips after_fit here; the snapshot puts them back


def test_valid_loss_without_validation_set(tmp_path):
    learn = make_learner(tmp_path, valid=False)
    with pytest.raises(LRFinderError, match="validation"):
        find_lr(learn, loss="valid")


def test_bad_arguments(tmp_path):
    learn = make_learner(tmp_path)
    with pytest.raises(LRFinderError, match="loss="):
        find_lr(learn, loss="test")
    with pytest.raises(LRFinderError, match="start_lr"):
        find_lr(learn, start_lr=1.0, end_lr=1e-3)


def test_plot_lr_finder():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs, y = synthetic_curve(-3.0)
    s = suggest_lr(lrs, y)
    r = LRFinderResult(lr=s.lr, lrs=tuple(lrs), losses_raw=tuple(y), losses_smooth=tuple(s.smoothed),
                       index=s.index, fastai_valley=2e-3, fastai_steep=None, loss_kind="train",
                       n_steps=len(lrs), diverged=True)
    ax = plot_lr_finder(r, divided_lr=s.lr / 10)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xscale() == "log"
    assert any("steepest" in t for t in labels) and any("valley" in t for t in labels)
    assert any("recommended" in t for t in labels) and not any("fastai steep" in t for t in labels)
    plt.close(ax.figure)


def test_no_training_batches(tmp_path):
    from fastai.data.core import DataLoaders
    learn = make_learner(tmp_path)
    learn.dls = DataLoaders.from_dsets(_dataset(8, 0), _dataset(8, 1), bs=16, device="cpu")
    with pytest.raises(LRFinderError, match="no training batches"):
        find_lr(learn)
