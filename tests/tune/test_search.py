"""tune in-process on tiny data: the recommendation is trial 0, the budget holds, pruning stops a
trial early, a resumed or joined study adds only what is missing, and the folder reads back."""
from __future__ import annotations

import dataclasses
import math

import pytest

from finetune_advisor.config import Config
from finetune_advisor.exceptions import ConfigError
from finetune_advisor.tune import SearchSpace, read_tune, tune

optuna = pytest.importorskip("optuna")
pytest.importorskip("fastai")

CONFIG = Config(backbone="resnet18", profile="cpu", image_size=32, batch_size=8, head_epochs=2, unfrozen_epochs=2,
                fine_tune="all", head_size=32, lr=1e-3, lr_finetune=5e-4)    # small_config()


def trials_of(out, name="tune"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'tune.db'}").get_trials()


@pytest.fixture(scope="module")
def tuned(folder, backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned") / "out"
    return tune(folder, "2x", config=CONFIG, backbone=backbone, out_dir=out, progress=False), out


def test_the_recommendation_is_trial_0(tuned):
    res, out = tuned
    first = trials_of(out)[0]
    assert first.number == 0 and first.user_attrs["role"] == "recommendation" and first.state.name == "COMPLETE"
    assert first.params == SearchSpace.params_of(CONFIG)
    assert Config.from_json(first.user_attrs["config"]) == CONFIG          # the same config, exactly
    assert first.user_attrs["epochs_run"] == first.user_attrs["epochs_planned"] == 4
    assert (res.recommendation_trial, res.recommendation_value) == (0, first.value)
    assert res.recommendation == CONFIG


def test_the_budget_is_respected(tuned):
    res, out = tuned
    walls = [t.user_attrs["wall_time_s"] for t in trials_of(out)]
    assert res.unit_s == walls[0] and res.budget_s == pytest.approx(2 * walls[0])
    assert res.stopped == "budget" and res.n_trials == len(walls) >= 2
    assert res.spent_s == pytest.approx(sum(walls))
    assert res.spent_s <= res.budget_s + max(walls)       # it stops before a trial that would not fit


def test_the_folder_reads_back(tuned):
    res, out = tuned
    back = read_tune(out)
    assert back.to_dict() == res.to_dict()
    assert set(back.files) >= {"best_config", "trials", "history_plot", "result"}
    assert len((out / "trials.csv").read_text().splitlines()) == res.n_trials + 1
    assert Config.from_json((out / "best_config.json").read_text()) == res.best_config


def test_a_resumed_study_adds_nothing_once_its_budget_is_spent(tuned, folder, backbone, small_config):
    res, out = tuned
    again = tune(folder, config=CONFIG, backbone=backbone, out_dir=out, progress=False)   # the stored budget
    assert again.budget == "2x" and again.n_trials == res.n_trials
    assert [t.number for t in trials_of(out)] == list(range(res.n_trials))
    with pytest.raises(ConfigError, match="started from another config"):
        tune(folder, config=small_config(lr=2e-3), backbone=backbone, out_dir=out, progress=False)


def test_a_worker_joins_the_study_and_a_missing_one_is_named(tuned, folder, backbone, tmp_path):
    res, out = tuned
    url = f"sqlite:///{out / 'tune.db'}"
    more = tune(folder, "100x", storage=url, worker=True, n_trials=res.n_trials + 1, backbone=backbone,
                out_dir=tmp_path / "w", progress=False)
    assert more.n_trials == res.n_trials + 1 and trials_of(out)[-1].user_attrs["role"] == "search"
    with pytest.raises(ConfigError, match="no tune study named 'other'") as err:
        tune(folder, storage=url, study_name="other", worker=True, out_dir=tmp_path / "w", progress=False)
    assert "without --worker" in str(err.value)


def test_pruning_stops_a_trial_early_but_never_the_recommendation(folder, backbone, tmp_path):
    never_good_enough = optuna.pruners.ThresholdPruner(lower=2.0)    # accuracy is never 2: prune at once
    res = tune(folder, "100x", config=CONFIG, backbone=backbone, out_dir=tmp_path, n_trials=2,
               pruner=never_good_enough, progress=False)
    first, second = trials_of(tmp_path)
    assert first.state.name == "COMPLETE" and first.user_attrs["epochs_run"] == 4
    assert second.state.name == "PRUNED"
    assert second.user_attrs["epochs_run"] == 1 < second.user_attrs["epochs_planned"]
    assert list(second.intermediate_values) == [1]
    assert (res.n_pruned, res.n_complete, res.stopped) == (1, 1, "trials")
    assert second.user_attrs["wall_time_s"] < first.user_attrs["wall_time_s"]


def test_multi_label_trials_are_valued_by_macro_roc_auc(tiny, tmp_path, backbone, small_config):
    ds = tiny.multi_label(tmp_path / "ml")
    res = tune(ds, "100x", config=small_config(batch_size=4), backbone=backbone, out_dir=tmp_path / "out",
               n_trials=2, progress=False)
    assert res.metric == "roc_auc_macro" and math.isfinite(res.recommendation_value)
    first = trials_of(tmp_path / "out")[0]
    assert first.value == first.user_attrs["final_metrics"]["roc_auc_macro"]
    assert first.user_attrs["metric_name"] == "accuracy_multi"
    assert all(v <= 0 for v in first.intermediate_values.values())        # minus the validation loss


def test_bad_arguments_fail_before_any_work(folder, tmp_path):
    with pytest.raises(ConfigError, match="n_trials"):
        tune(folder, "5x", n_trials=0, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="budget '5y'"):
        tune(folder, "5y", out_dir=tmp_path)
    assert not (tmp_path / "tune.db").exists()


class InterruptAt(optuna.pruners.BasePruner):
    """Ctrl-C (a KeyboardInterrupt) in the middle of trial ``number``'s training."""

    def __init__(self, number):
        self.number = number

    def prune(self, study, trial):
        if trial.number == self.number:
            raise KeyboardInterrupt
        return False


def test_ctrl_c_fails_the_trial_and_queues_its_parameters_again(folder, backbone, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        tune(folder, "100x", config=CONFIG, backbone=backbone, out_dir=tmp_path, n_trials=2, pruner=InterruptAt(1),
             progress=False)
    ts = trials_of(tmp_path)
    assert [t.state.name for t in ts] == ["COMPLETE", "FAIL", "WAITING"]          # none left RUNNING
    assert ts[1].user_attrs["interrupted"] and ts[2].user_attrs["retry_of"] == 1
    res = tune(folder, "100x", config=CONFIG, backbone=backbone, out_dir=tmp_path, n_trials=2, progress=False)
    ts = trials_of(tmp_path)
    assert [t.state.name for t in ts] == ["COMPLETE", "FAIL", "COMPLETE"] and ts[2].params == ts[1].params
    assert res.n_trials == 2 and not (tmp_path / "tune.json").read_text().count('"interrupted"')


def test_the_portfolio_follows_the_recommendation(folder, backbone, tmp_path):
    cells = [("head_only", -2.0), ("all_half", -3.0), ("all_tenth", -2.5)]   # the second is CONFIG again
    never_good_enough = optuna.pruners.ThresholdPruner(lower=2.0)    # would prune any prunable trial at once
    tune(folder, "100x", config=CONFIG, backbone=backbone, out_dir=tmp_path, n_trials=4, progress=False,
         portfolio=cells, pruner=never_good_enough)
    trials = trials_of(tmp_path)
    assert [t.user_attrs.get("portfolio") for t in trials] == [None, 0, 2, None]
    # the portfolio runs to the end like the recommendation; the TPE trial after it is pruned
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED"]
    assert trials[1].params["fine_tune"] == "none" and trials[1].params["lr"] == pytest.approx(1e-2)
    assert trials[2].params["fine_tune"] == "all" and trials[2].params["lr"] == pytest.approx(10 ** -2.5)
    assert trials[2].params["lr_ratio"] == pytest.approx(0.1)


def test_the_default_portfolio_is_the_recommendations_calibration():
    from finetune_advisor.calibration import shipped_calibrations
    from finetune_advisor.measurements import Measurements
    from finetune_advisor.recommend import AdviseOptions
    from finetune_advisor.tune.portfolio import calibration_of

    cal = next(c for c in shipped_calibrations() if c.portfolio)
    used = dataclasses.replace(CONFIG, measurements=Measurements(calibration=cal.summary()))
    assert calibration_of(used, AdviseOptions()) == cal
    assert calibration_of(CONFIG, AdviseOptions()) is None                  # no calibration: no portfolio
    other = {**cal.summary(), "rule": {**cal.rule.to_dict(), "intercept": -9.0}}
    assert calibration_of(dataclasses.replace(CONFIG, measurements=Measurements(calibration=other)),
                         AdviseOptions()) is None                           # not the one it names any more


def test_ctrl_c_writes_the_finished_trials_and_the_retry_keeps_its_portfolio_mark(folder, backbone, tmp_path):
    with pytest.raises(KeyboardInterrupt):          # trial 1 is the portfolio's cell
        tune(folder, "100x", config=CONFIG, backbone=backbone, out_dir=tmp_path, n_trials=3, pruner=InterruptAt(1),
             portfolio=[("head_only", -2.0)], progress=False)
    ts = trials_of(tmp_path)
    assert [t.state.name for t in ts] == ["COMPLETE", "FAIL", "WAITING"]
    assert ts[1].user_attrs["portfolio"] == 0 and ts[2].user_attrs["portfolio"] == 0   # the retry runs to the end too
    for name in ("best_config.json", "trials.csv", "tune.json"):                   # what was finished is kept
        assert (tmp_path / name).is_file(), name
    assert read_tune(tmp_path).stopped == "interrupted"
