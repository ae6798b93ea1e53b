"""``finetune-advisor tune``: spend a budget of a few training runs searching around the
recommendation, with Optuna (TPE, the recommendation as trial 0, pruning per epoch, a resumable
RDB storage).

Modules: ``space`` (the parameters and their ranges: pure), ``budget`` (parsing, when to stop:
pure), ``ledger`` (a study's accounts: pure), ``pruning`` (the fastai callback), ``search``
(:func:`tune`), ``result`` (:class:`TuneResult`, the output folder and :func:`read_tune`),
``plots`` (Optuna's figures), ``anchor`` (bench's ``tune@Nx`` anchor).

>>> parse_budget("3x").text
'3x'
"""
from .budget import Budget, parse_budget
from .result import TUNE_FILES, TuneFolderError, TuneResult, read_tune
from .search import tune
from .space import SearchSpace

__all__ = ["tune", "TuneResult", "read_tune", "TuneFolderError", "TUNE_FILES", "SearchSpace", "Budget",
           "parse_budget"]
