"""benchmarks/valley_anchors.py: the two valley anchors' rates, read off a study's trials."""
import json

import optuna
import pytest


@pytest.fixture(scope="module")
def va(load_benchmark):
    return load_benchmark("valley_anchors")


def _study(trials):
    study = optuna.create_study(direction="maximize")
    for attrs, state in trials:
        study.add_trial(optuna.trial.create_trial(state=state, value=0.5 if state.name == "COMPLETE" else None,
                                                  user_attrs=attrs))
    return study


def test_rates_come_from_the_cached_anchors_config_and_the_fastai_trials_measured_valley(va):
    done, failed = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL
    study = _study([
        ({"label": "anchor:lr_find_valley", "dataset": "a", "config": json.dumps({"lr": 1e-4})}, done),
        ({"label": "anchor:fastai_lr_find", "dataset": "a", "config": json.dumps({"lr": 2e-3}),
          "lr_find_valley": 1e-3}, done),                        # the config's 2e-3 is a placeholder
        ({"label": "anchor:fastai_lr_find", "dataset": "a", "lr_find_valley": 4e-3}, done),
        ({"label": "anchor:fastai_lr_find", "dataset": "a", "lr_find_valley": 9.0}, failed),   # not finished
        ({"label": "anchor:calibrated", "dataset": "a", "config": json.dumps({"lr": 3e-3})}, done),
        ({"label": "anchor:lr_find_valley", "dataset": "b", "config": json.dumps({"lr": 1e-3})}, done),
    ])
    rates = va.valley_rates(study)
    assert rates == {"a": {"cached": [1e-4], "fastai": [1e-3, 4e-3]}, "b": {"cached": [1e-3], "fastai": []}}
    lines = va.format_rows(rates)
    # a: median of 1e-3 and 4e-3 is 2.5e-3, 1.4 decades above 1e-4; b has no fastai valley: left out
    assert lines[2] == "| a | 1.0e-04 | 2.5e-03 (1.0e-03-4.0e-03) | +1.40 |"
    assert len(lines) == 4 and lines[3].startswith("| **median** (1) |")
