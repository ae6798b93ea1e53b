"""A tune study's accounts, read from its trials (pure): time spent, trials finished and running,
the unit of a relative budget (trial 0's wall time), the expected cost of one more trial, the
best value so far. The search loop decides with it; the result reports it.

A trial's user attrs (the study format): ``role`` (``"recommendation"`` for trial 0 and its
retries, else ``"search"``), ``config`` (its Config JSON), ``epochs_planned``, ``epochs_run``,
``wall_time_s``, ``final_metrics`` and ``metric_name`` (train's main metric), and ``error`` (it failed while training) or ``interrupted`` (Ctrl-C; its
parameters were queued again) or ``retry_of``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from .budget import Budget

__all__ = ["Ledger", "ledger", "replay", "ROLE_ATTR", "RECOMMENDATION", "SEARCH"]

ROLE_ATTR, RECOMMENDATION, SEARCH = "role", "recommendation", "search"
_ORDER = ("complete", "running", "waiting", "failed", "missing")


@dataclass
class Ledger:
    """``recommendation``: the best state of trial 0 and its retries (complete, running, waiting,
    failed or missing). ``best``: ``(value, trial number)`` of the best completed trial."""

    spent_s: float = 0.0
    n_finished: int = 0
    n_complete: int = 0
    n_pruned: int = 0
    n_failed: int = 0
    n_running: int = 0
    unit_s: float | None = None
    expected_s: float | None = None
    recommendation: str = "missing"
    recommendation_trial: tuple[float, int] | None = None
    best: tuple[float, int] | None = None


def _state(t: Any) -> str:
    return getattr(t.state, "name", str(t.state))


def ledger(trials: Iterable[Any]) -> Ledger:
    """The accounts of ``trials`` (Optuna ``FrozenTrial`` s, or anything with ``number``,
    ``state.name``, ``value`` and ``user_attrs``).

    A finished trial is complete, pruned, or failed while training; a killed or interrupted one
    is re-queued and counts once its copy has run. Time spent is every trial's ``wall_time_s``;
    the expected cost of a trial is the mean of the completed ones (pruned ones cost less).

    >>> from types import SimpleNamespace as T
    >>> S = lambda name: T(name=name)
    >>> led = ledger([T(number=0, state=S("COMPLETE"), value=0.8, user_attrs={"role": "recommendation", "wall_time_s": 10.0}),
    ...               T(number=1, state=S("PRUNED"), value=0.5, user_attrs={"wall_time_s": 2.0}),
    ...               T(number=2, state=S("FAIL"), value=None, user_attrs={}),
    ...               T(number=3, state=S("COMPLETE"), value=0.9, user_attrs={"wall_time_s": 14.0})])
    >>> led.spent_s, led.n_finished, led.unit_s, led.expected_s, led.best
    (26.0, 3, 10.0, 12.0, (0.9, 3))
    """
    led, full = Ledger(), []
    for t in trials:
        state, attrs = _state(t), t.user_attrs
        wall = attrs.get("wall_time_s")
        led.spent_s += float(wall or 0.0)
        failed_training = state == "FAIL" and "error" in attrs
        led.n_complete += state == "COMPLETE"
        led.n_pruned += state == "PRUNED"
        led.n_failed += failed_training
        led.n_running += state == "RUNNING"
        if state == "COMPLETE":
            if wall is not None:
                full.append(float(wall))
            if led.best is None or t.value > led.best[0]:
                led.best = (float(t.value), t.number)
        if attrs.get(ROLE_ATTR) == RECOMMENDATION:
            mine = {"COMPLETE": "complete", "RUNNING": "running", "WAITING": "waiting"}.get(state, "failed")
            if _ORDER.index(mine) < _ORDER.index(led.recommendation):
                led.recommendation = mine
            if mine == "complete":
                led.unit_s = None if wall is None else float(wall)
                led.recommendation_trial = (float(t.value), t.number)
    led.n_finished = led.n_complete + led.n_pruned + led.n_failed
    led.expected_s = sum(full) / len(full) if full else None
    return led


def replay(trials: Iterable[Any], budget: "Budget") -> list[Any]:
    """The finished trials a one-worker search with a smaller ``budget`` would have run: the
    longest prefix (by trial number) that the search loop's stopping rule lets start.

    The loop's choices depend only on the trials before each one (the sampler is seeded, the
    pruner compares with earlier trials), so the first trials of a 10x search are those of a 3x
    search on the same seed, up to where the 3x one stops starting trials; only timing noise
    differs. bench reads ``tune@3x`` off a ``tune@10x`` anchor this way, at no extra cost.

    >>> from types import SimpleNamespace as T
    >>> from finetune_advisor.tune.budget import parse_budget
    >>> done = lambda n, v, wall, role="search": T(number=n, state=T(name="COMPLETE"), value=v,
    ...                                            user_attrs={"role": role, "wall_time_s": wall})
    >>> run = [done(0, 0.8, 10.0, "recommendation"), done(1, 0.7, 10.0), done(2, 0.9, 10.0), done(3, 0.95, 10.0)]
    >>> [t.number for t in replay(run, parse_budget("2x"))], [t.number for t in replay(run, parse_budget("10x"))]
    ([0, 1], [0, 1, 2, 3])
    """
    from .budget import may_start

    finished = sorted((t for t in trials if _state(t) in ("COMPLETE", "PRUNED", "FAIL")), key=lambda t: t.number)
    for k in range(len(finished)):
        led = ledger(finished[:k])
        if led.recommendation == "complete" and not may_start(budget.seconds(led.unit_s), led.spent_s, 0,
                                                              led.expected_s):
            return finished[:k]
    return finished
