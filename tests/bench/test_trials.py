"""Bench trials: the fraction of a dataset, the baseline (through recommend.configure), the reference."""
from __future__ import annotations

import pytest

from finetune_advisor import bench
from finetune_advisor.bench import BenchDataset, trials
from finetune_advisor.exceptions import ConfigError


def test_bench_baselines_use_the_shared_tiny_imagenet_sample_as_reference(tmp_path, monkeypatch):
    seen = {}

    def fake_advise(path, **kw):
        seen.update(kw)
        raise ConfigError("stop here")

    monkeypatch.setattr(trials, "advise", fake_advise)       # advise_baseline's one call to recommend.advise
    monkeypatch.setenv(bench.SHARED_DATA_ENV, str(tmp_path))
    ds = BenchDataset("x", tmp_path, False, "custom")
    assert bench.default_reference() is None
    with pytest.raises(ConfigError):
        bench.advise_baseline(ds, 1.0, bench.BENCH_PROFILES["cpu"], {"backbone": None})
    assert "reference" not in seen and "backbone" not in seen      # None options keep advise's defaults
    (tmp_path / "tiny-imagenet-200").mkdir()
    for options, expected in [(None, str(tmp_path / "tiny-imagenet-200")), ({"reference": "mine.npz"}, "mine.npz")]:
        seen.clear()
        with pytest.raises(ConfigError):
            bench.advise_baseline(ds, 1.0, bench.BENCH_PROFILES["cpu"], options)
        assert seen["reference"] == expected
    seen.clear()
    with pytest.raises(ConfigError):
        bench.advise_baseline(ds, 1.0, bench.BENCH_PROFILES["cpu"], {"similarity": False})
    assert "reference" not in seen


def test_baseline_without_a_finder_rate_uses_the_default_lr_and_says_so(tmp_path, monkeypatch):
    from finetune_advisor.lr_finder import recorder
    from finetune_advisor.bench import BENCH_PROFILES, advise_baseline
    from finetune_advisor.heuristics import DEFAULT_LR
    from finetune_advisor.testing import make_folder_dataset

    real = recorder.RawLossRecorder

    class Flat(real):   # the sweep runs; the losses it records never decrease (valid and train)
        def after_batch(self):
            super().after_batch()
            self.rec_losses[-1] = self.rec_train_losses[-1] = 2.0 + 0.01 * len(self.rec_losses)

    monkeypatch.setattr(recorder, "RawLossRecorder", Flat)
    root = make_folder_dataset(tmp_path / "flat", counts={"a": 10, "b": 10}, size=16)
    options = {"backbone": "resnet18", "pretrained": False, "similarity": False, "lr_steps": 30, "lr_finder_method": "full"}
    cfg = advise_baseline(BenchDataset("flat", root, False, "custom"), 1.0, BENCH_PROFILES["cpu"], options)
    assert cfg.lr == DEFAULT_LR and cfg.measurements.lr_finder is None
    assert "never decreases" in cfg.measurements.lr_finder_failed


def test_fraction_subset_is_the_packages_stratified_sample(tmp_path):
    from finetune_advisor.data import read_dataset, stratified_indices
    from finetune_advisor.testing import make_folder_dataset

    ds = read_dataset(make_folder_dataset(tmp_path / "d", counts={"a": 10, "b": 3}, size=8))
    sub = bench.fraction_subset(ds, 0.2)
    assert sub.class_counts() == {"a": 2, "b": 1}                     # ceil(0.2 * n), at least one
    picked = stratified_indices([it.labels for it in ds.items], fraction=0.2, seed=0)
    assert sub.items == tuple(ds.items[i] for i in picked)
    assert bench.fraction_subset(ds, 0.2) == sub and bench.fraction_subset(ds, 1.0) is ds
    for bad in (0, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="fraction must be in"):
            bench.fraction_subset(ds, bad)


def test_a_fractions_baseline_goes_through_recommend_configure_once_per_dataset(tmp_path, monkeypatch):
    from finetune_advisor.data import profile_dataset, read_dataset
    from finetune_advisor.measurements import LRFinderResult, Measurements, SimilarityResult
    from finetune_advisor.recommend import AdviseOptions, Recommendation, configure
    from finetune_advisor.testing import make_folder_dataset

    ds = read_dataset(make_folder_dataset(tmp_path / "d", counts={"a": 20, "b": 10}, size=8))
    options = AdviseOptions(profile="cpu", similarity=False, progress=False)
    measured = Measurements(similarity=SimilarityResult(0.6, 0.4, threshold=0.72, far=True),
                            lr_finder=LRFinderResult(lr=1e-3, fastai_valley=5e-4), backbone_source="test",
                            timings_s={"profile": 0.1})
    full = configure(profile_dataset(ds), measured, options, backbone="resnet18", backbone_reason="test")
    calls = []

    def fake_advise(path, **kw):
        calls.append(path)
        return Recommendation(config=full, profile=profile_dataset(ds), dataset=ds, options=options)

    monkeypatch.setattr(trials, "advise", fake_advise)
    cache: dict = {}
    prof = bench.BENCH_PROFILES["cpu"]
    d = BenchDataset("d", ds.root, False, "custom")
    cfg = bench.advise_baseline(d, 0.2, prof, {"similarity": False}, cache=cache)
    assert bench.advise_baseline(d, 1.0, prof, {"similarity": False}, cache=cache) == full   # the advice itself
    assert len(calls) == 1 and len(cache) == 1                        # measured once, on the whole dataset
    sub = bench.fraction_subset(ds, 0.2)
    expected = configure(profile_dataset(sub), measured.replace(fraction=0.2), options, backbone="resnet18",
                         backbone_reason="test")
    assert cfg == expected
    m = cfg.measurements
    assert m.n_images == len(sub) == 6 and m.fraction == 0.2 and m.far is True
    assert m.lr_finder.fastai_valley == 5e-4 and m.lr_find == 1e-3 and m.backbone_source == "test"
    assert cfg.lr == pytest.approx(1e-4)                              # the far rule: lr_find / 10


def test_the_fastai_lr_find_anchor_trains_fine_tune_at_fastais_own_valley(tmp_path):
    """What a fastai user does: learn.lr_find() on the frozen learner (fastai's defaults), then
    fine_tune at its valley (issue 26: the cached-feature valley was a straw man)."""
    pytest.importorskip("fastai")
    from finetune_advisor.bench.grid import anchor_config
    from finetune_advisor.config import Config
    from finetune_advisor.testing import make_folder_dataset
    root = make_folder_dataset(tmp_path / "d", counts={"a": 12, "b": 12}, size=16)
    base = Config(backbone="resnet18", profile="cpu", image_size=32, batch_size=8, head_epochs=1, unfrozen_epochs=1,
                  fine_tune="all", head_size=32, lr=1e-3, lr_finetune=5e-4)
    cfg = anchor_config(base, "fastai_lr_find")
    assert cfg.lr == 2e-3 and cfg.lr_divisor == 100           # fine_tune's config until the rate is measured
    out = trials.train_trial(cfg, BenchDataset("d", root, False, "custom"), fraction=1.0, seed=0,
                             profile=bench.BENCH_PROFILES["cpu"], anchor="fastai_lr_find")
    valley = out["lr_find_valley"]
    assert 1e-7 < valley < 10 and valley != 2e-3          # fastai's range, measured on this data
    assert out["metric"] >= 0 and out["n_train"] > 0
