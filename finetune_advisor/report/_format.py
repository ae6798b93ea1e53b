"""How the report writes numbers and values as display text (shared by every section)."""
from __future__ import annotations

import dataclasses
import math
from typing import Any


def finite(v: Any) -> bool:
    """A number (or numeric string) that is not NaN or infinite."""
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, (int, float)) or (hasattr(v, "dtype") and finite(v))


def fmt_value(value: Any) -> str:
    """A Config value as text: 4 significant digits, scientific for very small or large floats.

    >>> fmt_value(0.001), fmt_value(0.25), fmt_value((0.5, 0.25)), fmt_value(None)
    ('1.00e-03', '0.25', '(0.5, 0.25)', 'None')
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 0.01 or abs(value) >= 1e5:
            return f"{value:.2e}"
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt_value(v) for v in value) + ")"
    if dataclasses.is_dataclass(value):
        return ", ".join(f"{k}={fmt_value(v)}" for k, v in dataclasses.asdict(value).items())
    return str(value)


def fmt_num(v: float) -> str:
    return f"{v:g}"


def fmt_cell(v: Any) -> str:
    """A table cell (numpy scalars unwrapped; NaN as an en dash)."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        return fmt_value(v)
    return str(v)
