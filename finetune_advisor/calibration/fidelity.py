"""The cells a fidelity check trains around the advice: its rates scaled up and down.

The 128 px ladder (``benchmarks/fidelity_ladder.py``) and the 224 px GPU check
(``benchmarks/gpu_fidelity.py``) train the same cells, so that their tables compare. ``/ 10``
joined ``x 3`` and ``/ 3`` once the ladder's first table had its best at ``/ 3``, the grid's
edge, on half its datasets: a best rate a decade away would otherwise read as half of one.
"""
from __future__ import annotations

from ..config import Config

__all__ = ["RATE_FACTORS", "rate_variants"]

# cell name -> the factor on both the head and the unfrozen rate
RATE_FACTORS: dict[str, float] = {"advice_x3": 3.0, "advice_div3": 1 / 3, "advice_div10": 0.1}


def rate_variants(advice: Config, *, check: str = "fidelity check") -> dict[str, Config]:
    """``advice`` with both rates times each of :data:`RATE_FACTORS`, each with its reason.

    Examples
    --------
    >>> from finetune_advisor.config import DECISION_FIELDS
    >>> advice = Config(lr=3e-3, lr_finetune=1.5e-3, reasons={f: "advised" for f in DECISION_FIELDS})
    >>> cells = rate_variants(advice)
    >>> {name: (round(c.lr, 6), round(c.lr_finetune, 6)) for name, c in cells.items()}
    {'advice_x3': (0.009, 0.0045), 'advice_div3': (0.001, 0.0005), 'advice_div10': (0.0003, 0.00015)}
    >>> cells["advice_div10"].reasons["lr"], cells["advice_div10"].reasons["head_epochs"]
    ("fidelity check: the advice's rates x 0.1", 'advised')
    """
    return {name: advice.replace(f"{check}: the advice's rates x {k:.3g}", lr=advice.lr * k,
                                 lr_finetune=advice.lr_finetune * k)
            for name, k in RATE_FACTORS.items()}
