"""Reusing an earlier study's finished trials (bench.reuse): only the same experiment is copied."""
from __future__ import annotations

import dataclasses

import pytest

from finetune_advisor import bench
from finetune_advisor.bench.reuse import REUSED_ATTR
from finetune_advisor.bench.records import baseline_attr
from finetune_advisor.exceptions import ConfigError


def _run(helper, url, root, *, seeds, grid, advise=None, train=None, reuse_from=None):
    study = bench.open_study("s", url)
    bench.prepare_study(study, helper.datasets(root), fractions=[1.0], seeds=seeds, grid=grid,
                        advise_fn=advise or helper.fake_advise, reuse_from=reuse_from)
    bench.run_worker(study, run_trial_fn=train or helper.fake_train, datasets=helper.datasets(root), progress=False)
    return study


def _by_key(study):
    return {t.user_attrs["key"]: t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}


def test_same_key_and_config_is_copied_and_the_rest_is_trained(tmp_path, helper):
    old = _run(helper, f"sqlite:///{tmp_path / 'old.db'}", tmp_path, seeds=[0], grid=helper.SMALL_GRID)
    trained, advised = [], []

    def counting_train(config, dataset, **kw):
        trained.append((dataset.name, kw["seed"]))
        return helper.fake_train(config, dataset, **kw)

    def far_advice_moves(dataset, fraction, profile, options=None):   # only "far" gets a new baseline
        advised.append(dataset.name)
        cfg = helper.fake_advise(dataset, fraction, profile, options)
        return dataclasses.replace(cfg, lr=2e-3) if dataset.name == "far" else cfg

    # the old baseline of "far" is dropped from the copy: the new one is advised afresh
    new = bench.open_study("s", f"sqlite:///{tmp_path / 'new.db'}")
    moved = bench.BENCH_PROFILES["cpu"].apply(far_advice_moves(helper.datasets(tmp_path)[1], 1.0, None))
    new.set_user_attr(baseline_attr("far", 1.0), moved.to_json(indent=None))     # a baseline is trained as such
    advised.clear()
    new = _run(helper, f"sqlite:///{tmp_path / 'new.db'}", tmp_path, seeds=[0, 1], grid=helper.SMALL_GRID,
               advise=far_advice_moves, train=counting_train, reuse_from=old)
    assert advised == []                                    # near's baseline was copied, far's already there
    old_trials, new_trials = _by_key(old), _by_key(new)
    assert set(new_trials) == {k.replace("|0", "|1") for k in old_trials} | set(old_trials)
    same = {k for k, t in old_trials.items() if t.user_attrs["config"] == new_trials[k].user_attrs["config"]}
    # near's configs, and far's fastai fine_tune (it does not depend on the baseline); far's others moved
    assert {k for k in old_trials if k.startswith("near")} < same
    assert {k for k in old_trials if k.startswith("far")} & same == {"far|1|anchor:fastai_fine_tune|0"}
    for key, t in new_trials.items():
        copied = t.user_attrs.get(REUSED_ATTR)
        if key in same:                                     # same key, same config: copied, not trained
            assert copied == f"s#{old_trials[key].number}"
            assert t.values == old_trials[key].values
            assert t.user_attrs["wall_time_s"] == old_trials[key].user_attrs["wall_time_s"]
        else:                                               # a new seed, or a config that moved (far's lr)
            assert copied is None
    assert len(trained) == len(new_trials) - len(same)
    assert sorted(trained) == sorted((k.split("|")[0], int(k.split("|")[-1])) for k in set(new_trials) - same)
    # preparing again copies nothing twice
    again = bench.open_study("s", f"sqlite:///{tmp_path / 'new.db'}")
    bench.prepare_study(again, helper.datasets(tmp_path), fractions=[1.0], seeds=[0, 1], grid=helper.SMALL_GRID,
                        advise_fn=far_advice_moves, reuse_from=old)
    assert len(again.get_trials(deepcopy=False)) == len(new.get_trials(deepcopy=False))


def test_a_study_with_other_settings_is_refused(tmp_path, helper):
    old = _run(helper, f"sqlite:///{tmp_path / 'old.db'}", tmp_path, seeds=[0], grid=helper.SMALL_GRID)
    new = bench.open_study("s", f"sqlite:///{tmp_path / 'new.db'}")
    with pytest.raises(ConfigError, match=r"other grid .*weight_decay"):
        bench.prepare_study(new, helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={"lr": (0.0,)},
                            advise_fn=helper.fake_advise, reuse_from=old)
    blank = bench.open_study("blank", f"sqlite:///{tmp_path / 'blank.db'}")
    with pytest.raises(ConfigError, match="no settings"):
        bench.prepare_study(new, helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid=helper.SMALL_GRID,
                            advise_fn=helper.fake_advise, reuse_from=blank)


def test_a_config_that_differs_only_in_its_reasons_is_the_same_experiment(tmp_path, helper):
    old = _run(helper, f"sqlite:///{tmp_path / 'old.db'}", tmp_path, seeds=[0], grid=helper.SMALL_GRID)

    def reworded(dataset, fraction, profile, options=None):     # same decisions, other explanation
        cfg = helper.fake_advise(dataset, fraction, profile, options)
        return dataclasses.replace(cfg, warnings=("refitted: same rate, new evidence",))

    def no_training(*args, **kwargs):
        raise AssertionError("trained a trial it could have reused")

    new = bench.open_study("s", f"sqlite:///{tmp_path / 'new.db'}")
    for d in helper.datasets(tmp_path):          # this study's own baselines: reworded
        baseline = bench.BENCH_PROFILES["cpu"].apply(reworded(d, 1.0, None))
        new.set_user_attr(baseline_attr(d.name, 1.0), baseline.to_json(indent=None))
    new = _run(helper, f"sqlite:///{tmp_path / 'new.db'}", tmp_path, seeds=[0], grid=helper.SMALL_GRID,
               advise=reworded, train=no_training, reuse_from=old)
    trials = _by_key(new)
    assert set(trials) == set(_by_key(old)) and all(t.user_attrs.get(REUSED_ATTR) for t in trials.values())
    # the copy carries this study's config (its reasons), with the old result
    baseline = trials["near|1|baseline|0"]
    assert "refitted" in baseline.user_attrs["config"]
    assert baseline.values == _by_key(old)["near|1|baseline|0"].values
