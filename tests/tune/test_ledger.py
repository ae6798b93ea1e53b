"""The tune study's accounts, and reading a smaller budget's search off a larger one (pure)."""
from __future__ import annotations

from types import SimpleNamespace

from finetune_advisor.tune.budget import parse_budget
from finetune_advisor.tune.ledger import ledger, replay


def trial(number, state, value, wall, role="search", **attrs):
    return SimpleNamespace(number=number, state=SimpleNamespace(name=state), value=value,
                           user_attrs={"role": role, "wall_time_s": wall, **attrs})


SEARCH = [trial(0, "COMPLETE", 0.80, 10.0, "recommendation"), trial(1, "PRUNED", 0.40, 2.0),
          trial(2, "FAIL", None, 1.0, error="nan loss"), trial(3, "COMPLETE", 0.85, 10.0),
          trial(4, "PRUNED", 0.50, 3.0), trial(5, "COMPLETE", 0.90, 12.0), trial(6, "RUNNING", None, None)]


def test_replay_is_the_prefix_the_stopping_rule_lets_start():
    # 3x = 30 s: after trials 0-3 (23 s spent, 10 s expected a trial) the next would end past 30 s
    assert [t.number for t in replay(SEARCH, parse_budget("3x"))] == [0, 1, 2, 3]
    # cheap pruned and failed trials leave room: at 4x trial 4 starts (23 + 10 <= 40), then 26 + 10 <= 40
    assert [t.number for t in replay(SEARCH, parse_budget("4x"))] == [0, 1, 2, 3, 4, 5]
    # a budget a little over one run still lets nothing but trial 0 start (10 + 10 > 15)
    assert [t.number for t in replay(SEARCH, parse_budget("1.5x"))] == [0]


def test_replay_never_counts_unfinished_trials_and_keeps_trial_order():
    shuffled = list(reversed(SEARCH))
    assert [t.number for t in replay(shuffled, parse_budget("100x"))] == [0, 1, 2, 3, 4, 5]
    assert ledger(replay(SEARCH, parse_budget("3x"))).best == (0.85, 3)


def test_an_absolute_budget_replays_in_seconds():
    assert [t.number for t in replay(SEARCH, parse_budget("22s"))] == [0, 1, 2]
