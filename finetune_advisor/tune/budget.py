"""How much ``tune`` may spend (pure): a multiple of one training run of the recommended config
(``5x``: five times the wall time of trial 0, the recommendation at full fidelity), or
wall-clock time (``20m``, ``90s``, ``2h``); and when to stop starting trials.

>>> parse_budget("5x").seconds(unit_s=30.0)
150.0
>>> parse_budget("20m").seconds(unit_s=None)
1200.0
>>> parse_budget("5y")
Traceback (most recent call last):
...
finetune_advisor.exceptions.ConfigError: budget '5y' is not understood (use a multiple of one training run of the recommended config, e.g. 5x, or wall-clock time, e.g. 20m, 90s or 2h)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..exceptions import ConfigError
from ..heuristics.schedule import DURATION_UNITS as _SECONDS

__all__ = ["Budget", "parse_budget", "may_start", "DEFAULT_BUDGET"]

DEFAULT_BUDGET = "5x"
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(x|s|m|h)\s*$", re.IGNORECASE)
_HINT = "use a multiple of one training run of the recommended config, e.g. 5x, or wall-clock time, e.g. 20m, 90s or 2h"


@dataclass(frozen=True)
class Budget:
    """``amount`` runs of the recommendation (``unit="x"``) or ``amount`` seconds (``unit="s"``)."""

    amount: float
    unit: str
    text: str

    @property
    def relative(self) -> bool:
        """True for a multiple of the recommendation's run (known once trial 0 has run)."""
        return self.unit == "x"

    def seconds(self, unit_s: float | None) -> float | None:
        """The budget in seconds; None for a relative budget before trial 0's time is known."""
        if not self.relative:
            return self.amount
        return None if unit_s is None else self.amount * float(unit_s)


def parse_budget(value: str | float | Budget) -> Budget:
    """``"5x"`` (runs of the recommendation), ``"20m"``, ``"90s"``, ``"2h"``; a number means runs.

    Raises
    ------
    ConfigError
        Not one of those forms, or not positive.

    Examples
    --------
    >>> parse_budget("2.5x"), parse_budget(3).text
    (Budget(amount=2.5, unit='x', text='2.5x'), '3x')
    """
    if isinstance(value, Budget):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        amount, unit, text = float(value), "x", f"{value:g}x"
    else:
        match = _PATTERN.match(str(value))
        if match is None:
            raise ConfigError(f"budget {str(value)!r} is not understood", hint=_HINT)
        number, suffix = float(match.group(1)), match.group(2).lower()
        text = f"{number:g}{suffix}"
        amount, unit = (number, "x") if suffix == "x" else (number * _SECONDS[suffix], "s")
    if not (math.isfinite(amount) and amount > 0):
        raise ConfigError(f"budget {text!r} must be more than nothing", hint=_HINT)
    return Budget(amount, unit, text)


def may_start(budget_s: float | None, spent_s: float, running: int, expected_s: float | None) -> bool:
    """Whether a new trial fits: the time of finished trials, plus ``expected_s`` for each running
    trial and for the new one, within ``budget_s``. Unknown budget or cost: only the first trial.

    >>> may_start(100.0, 60.0, 0, 30.0), may_start(100.0, 60.0, 1, 30.0)
    (True, False)
    """
    if budget_s is None or expected_s is None:
        return spent_s == 0 and running == 0
    return spent_s + (running + 1) * expected_s <= budget_s
