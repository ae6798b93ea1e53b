"""find_lr on a tiny real fastai Learner: the sweep, BatchNorm warm-up, weights restored, errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from finetune_advisor.exceptions import LRFinderError
from finetune_advisor.lr_finder import LRFinderResult, find_lr

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


def test_find_lr_train_loss(tmp_path, within_half_step):
    learn = make_learner(tmp_path)
    before, cbs_before = _state(learn), list(learn.cbs)
    r = find_lr(learn, loss="train", num_it=80, seed=0)
    _assert_same_state(learn, before)                       # weights and BN buffers restored
    assert list(learn.cbs) == cbs_before                    # our recorder is gone
    assert 1e-7 <= r.lr <= 10 and math.isfinite(r.lr)
    assert r.loss_kind == "train" and r.n_steps == len(r.lrs) == len(r.losses_raw) <= 80
    assert within_half_step(r.lr, r.lrs, r.index) and len(r.losses_smooth) <= r.n_steps
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
    from finetune_advisor.lr_finder import range_test as lf
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


def test_no_training_batches(tmp_path):
    from fastai.data.core import DataLoaders
    learn = make_learner(tmp_path)
    learn.dls = DataLoaders.from_dsets(_dataset(8, 0), _dataset(8, 1), bs=16, device="cpu")
    with pytest.raises(LRFinderError, match="no training batches"):
        find_lr(learn)
