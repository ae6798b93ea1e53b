"""The calibration's portfolio (:mod:`finetune_advisor.calibration.portfolio`) as a search's
first trials after the recommendation: the calibration the recommendation used, found again,
and its cells enqueued in the tune study."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from ..bench.storage import BenchStudy
from ..config import Config
from ..exceptions import ConfigError
from ..recommend import AdviseOptions
from .ledger import ROLE_ATTR, SEARCH
from .space import SearchSpace, _same

if TYPE_CHECKING:
    from ..calibration import Calibration

__all__ = ["calibration_of", "enqueue_portfolio"]

log = logging.getLogger(__name__)


def calibration_of(base: Config, opts: AdviseOptions) -> "Calibration | None":
    """The calibration the recommendation used (its summary in ``base.measurements``), found
    again: ``opts.calibration`` or the shipped one; None when it cannot be found."""
    from ..calibration import CalibrationError, find_calibration

    used = base.measurements.calibration
    if not used:
        return None
    try:
        cal, _ = find_calibration(str(used.get("backbone")), str(used.get("profile")), opts.calibration)
    except CalibrationError as exc:     # a user's file gone or changed since: search without it
        log.debug("no portfolio: %s", exc)
        return None
    if cal is None or cal.rule.to_dict() != dict(used.get("rule") or {}):
        return None
    return cal


def enqueue_portfolio(study: BenchStudy, space: SearchSpace, base: Config, cells: Sequence[tuple[str, float]]) -> None:
    """Enqueue the portfolio's (arm, log10 lr) cells after the recommendation, skipping any that
    is the recommendation again or a repeat."""
    from ..heuristics.policies import ARMS

    seen = [space.params_of(base)]
    for i, (arm, log10_lr) in enumerate(cells):
        if arm not in ARMS:
            raise ConfigError(f"portfolio cell {i} has unknown arm {arm!r}; choose from {list(ARMS)}")
        depth, ratio = ARMS[arm]
        params = space.params_at(base, 10 ** float(log10_lr), depth, ratio)
        if any(p.keys() == params.keys() and all(_same(p[k], v) for k, v in params.items()) for p in seen):
            continue
        seen.append(params)
        study.enqueue_trial(params, user_attrs={ROLE_ATTR: SEARCH, "portfolio": i})
    study.set_user_attr("portfolio", [list(c) for c in cells])
