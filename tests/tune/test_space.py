"""The search space (pure): the recommendation round-trips exactly, ranges hold it, the arms map
as in the calibration sweep; budgets parse, and the ledger counts what a budget spends."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace as T

import pytest

from finetune_advisor.config import DECISION_FIELDS, Config
from finetune_advisor.exceptions import ConfigError
from finetune_advisor.tune import SearchSpace, parse_budget
from finetune_advisor.tune.budget import may_start
from finetune_advisor.tune.ledger import ledger

RECS = {
    "all": Config(profile="cpu", lr=2e-3, lr_finetune=2e-4, head_epochs=2, unfrozen_epochs=2, fine_tune="all"),
    "none": Config(profile="cpu", lr=1e-2, lr_finetune=1e-3, head_epochs=4, unfrozen_epochs=0, fine_tune="none"),
    "last": Config(profile="paper", lr=3e-3, lr_finetune=3e-5, head_epochs=5, unfrozen_epochs=15, fine_tune="last",
                   dropout=(0.7, 0.25)),
    "high lr": Config(lr=0.5, lr_finetune=0.5, fine_tune="all"),
}


@pytest.mark.parametrize("name", RECS)
def test_the_recommendation_round_trips_and_lies_inside_every_range(name):
    rec = RECS[name]
    space = SearchSpace.around(rec)
    params = space.params_of(rec)
    assert space.config_for(rec, params, reason="tuned") == rec
    assert SearchSpace.from_dict(space.to_dict()) == space
    for p, v in params.items():
        rng = getattr(space, p)
        assert (v in rng) if p == "fine_tune" else rng[0] <= v <= rng[1], (p, v, rng)
    # an Optuna trial enqueued with these params suggests them back
    import optuna
    assert space.suggest(optuna.trial.FixedTrial(params)) == params


def test_ranges_are_around_the_recommendation_and_clipped():
    space = SearchSpace.around(RECS["all"])
    assert space.lr == pytest.approx((2e-3 * 10 ** -1.5, 2e-3 * 10 ** 1.5))
    assert space.lr_ratio == (0.05, 1.0) and space.dropout_p1 == (0.0, 0.5)
    assert space.head_epochs == (1, 4) and space.unfrozen_epochs == (1, 4)
    high = SearchSpace.around(RECS["high lr"])
    assert high.lr[1] == 0.5 and high.lr[0] == pytest.approx(0.5 * 10 ** -1.5)   # clipped at 0.3, then widened
    assert SearchSpace.around(RECS["last"]).fine_tune == ("none", "all", "last")


def test_head_only_spends_every_epoch_on_the_head_and_only_changed_fields_get_the_reason():
    rec = dataclasses.replace(RECS["all"], reasons={f: "the rules" for f in DECISION_FIELDS})
    space = SearchSpace.around(rec)
    cfg = space.config_for(rec, {**space.params_of(rec), "fine_tune": "none", "head_epochs": 3, "unfrozen_epochs": 2},
                           reason="tuned: trial 4")
    assert (cfg.fine_tune, cfg.head_epochs, cfg.unfrozen_epochs) == ("none", 5, 0)
    assert SearchSpace.planned_epochs(cfg) == 5
    changed = {k for k, v in cfg.reasons.items() if v == "tuned: trial 4"}
    assert changed == {"fine_tune", "head_epochs", "unfrozen_epochs"}
    deeper = space.config_for(rec, {**space.params_of(rec), "lr": 1e-2, "lr_ratio": 0.5}, reason="tuned")
    assert (deeper.lr, deeper.lr_finetune) == (1e-2, 5e-3)
    with pytest.raises(ConfigError, match="unknown tune parameter"):
        space.config_for(rec, {"weight_decay": 0.1})


@pytest.mark.parametrize("text, amount, unit", [("5x", 5, "x"), ("0.5X", 0.5, "x"), ("20m", 1200, "s"),
                                                ("90s", 90, "s"), ("2h", 7200, "s"), (3, 3, "x")])
def test_budgets_parse(text, amount, unit):
    b = parse_budget(text)
    assert (b.amount, b.unit) == (amount, unit)


@pytest.mark.parametrize("text", ["5y", "", "x5", "-2x", "0m", "five"])
def test_bad_budgets_say_what_is_understood(text):
    with pytest.raises(ConfigError, match="budget") as err:
        parse_budget(text)
    assert "\n" not in str(err.value) and "20m" in str(err.value)


def test_a_trial_starts_only_when_its_expected_cost_fits():
    assert may_start(None, 0.0, 0, None)                 # trial 0 always
    assert not may_start(None, 5.0, 0, None)
    assert may_start(30.0, 20.0, 0, 10.0) and not may_start(30.0, 21.0, 0, 10.0)
    assert not may_start(30.0, 10.0, 2, 10.0)            # other workers' running trials count


def test_the_ledger_counts_retried_trials_once():
    S = lambda name: T(name=name)      # noqa: E731
    trials = [T(number=0, state=S("COMPLETE"), value=0.7, user_attrs={"role": "recommendation", "wall_time_s": 4.0}),
              T(number=1, state=S("FAIL"), value=None, user_attrs={"role": "search"}),            # killed
              T(number=2, state=S("FAIL"), value=None, user_attrs={"interrupted": True, "wall_time_s": 1.0}),
              T(number=3, state=S("PRUNED"), value=0.4, user_attrs={"wall_time_s": 1.0}),
              T(number=4, state=S("FAIL"), value=None, user_attrs={"error": "boom", "wall_time_s": 0.5}),
              T(number=5, state=S("RUNNING"), value=None, user_attrs={})]
    led = ledger(trials)
    assert (led.n_finished, led.n_complete, led.n_pruned, led.n_failed, led.n_running) == (3, 1, 1, 1, 1)
    assert (led.spent_s, led.unit_s, led.recommendation, led.recommendation_trial) == (6.5, 4.0, "complete", (0.7, 0))
