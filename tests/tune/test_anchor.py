"""bench's ``tune@Nx`` anchor: a label of its own in the grid (never merged with the baseline it
starts from), the worker tells the trial function, train_trial runs tune, and the regret table
gives it a margin without making it a cell."""
from __future__ import annotations

import math

import pytest

from finetune_advisor import bench
from finetune_advisor.bench import BenchDataset
from finetune_advisor.config import Config
from finetune_advisor.exceptions import ConfigError
from finetune_advisor.tune.anchor import anytime_metric

BASE = Config(backbone="resnet18", profile="cpu", image_size=32, batch_size=8, head_epochs=2, unfrozen_epochs=2,
              fine_tune="all", head_size=32, lr=1e-3, lr_finetune=5e-4, measurements={"lr_find": 1e-3, "far": False})


def test_the_anchor_is_a_search_from_the_baseline_never_merged_with_it():
    assert bench.select_anchors(["tune@3x", "tune@10x"]) == ("tune@3x", "tune@10x")
    with pytest.raises(ConfigError, match="tune@<N>x"):
        bench.select_anchors(["tune@3y"])
    assert bench.anchor_config(BASE, "tune@3x") is BASE
    specs = bench.expand_grid({("d", 1.0): BASE}, seeds=[0], grid={}, anchors=["tune@3x", "no_similarity_rule"])
    assert [(s.label, s.same_as) for s in specs] == [
        ("baseline", None), ("anchor:tune@3x", None), ("anchor:no_similarity_rule", "d|1|baseline|0")]


def test_the_worker_tells_the_trial_function_which_anchor(tmp_path, folder):
    calls = []

    def fake_train(config, dataset, *, fraction, seed, profile, **kwargs):
        calls.append(kwargs)
        return {"metric": 0.5, "metric_name": "accuracy", "wall_time_s": 0.01}

    study = bench.open_study("t", f"sqlite:///{tmp_path / 'b.db'}")
    datasets = [BenchDataset("d", folder, False, "custom")]
    bench.prepare_study(study, datasets, fractions=[1.0], seeds=[0], grid={}, anchors=["tune@2x"],
                        advise_fn=lambda *args: BASE)
    assert bench.run_worker(study, run_trial_fn=fake_train, datasets=datasets, progress=False) == 2
    assert calls == [{}, {"anchor": "tune@2x"}]


def test_train_trial_runs_tune_and_records_its_best_trial(folder):
    out = bench.train_trial(BASE, BenchDataset("d", folder, False, "custom"), fraction=1.0, seed=0,
                            profile=bench.BENCH_PROFILES["cpu"], anchor="tune@2x")
    assert out["metric_name"] == "accuracy" and 0 <= out["metric"] <= 1
    assert out["tune_trials"] >= 2 and out["wall_time_s"] > 0 and math.isfinite(out["tune_recommendation_metric"])
    assert Config.from_json(out["tune_best_config"]).image_size == BASE.image_size    # same protocol
    # the search replayed at its own budget ends where it ended; at 1x only trial 0 fits
    assert anytime_metric(out["tune_history"], "2x") == out["metric"]
    assert anytime_metric(out["tune_history"], "1x") == out["tune_recommendation_metric"]


def test_regret_gives_tune_a_margin_but_never_the_best_cell():
    import pandas as pd

    rows = [("baseline", 0.80), ("lr x10^+0.5", 0.85), ("anchor:tune@3x", 0.90), ("anchor:fastai_fine_tune", 0.70)]
    df = pd.DataFrame([{"dataset": "d", "fraction": 1.0, "label": lab, "seed": 0, "metric": m,
                        "metric_name": "accuracy"} for lab, m in rows])
    reg = bench.regret_summary(df).iloc[0]
    assert reg["best_cell"] == "lr x10^+0.5" and reg["regret"] == pytest.approx(0.05)
    assert reg["margin_over_tune@3x"] == pytest.approx(-0.10)
    assert reg["margin_over_fastai_fine_tune"] == pytest.approx(0.10)
