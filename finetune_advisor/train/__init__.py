"""Fine-tune an ImageNet backbone with fastai as a Config says (:func:`train`: both phases, a
per-epoch history, the majority baseline), and the run folder it writes and :func:`read_run`
reads back. The DataLoaders and the Learner come from :mod:`finetune_advisor.learner` (re-exported
here under their old names)."""
from ..learner import build_dataloaders, build_learner, split_body_head  # noqa: F401  (their old home)
from .baseline import beats_baseline, macro_roc_auc, majority_baseline
from .fit import train
from .plots import plot_history
from .result import TrainResult
from .run_folder import RunFolderError, TrainRun, read_run

__all__ = ["train", "TrainResult", "read_run", "TrainRun", "RunFolderError", "plot_history",
           "majority_baseline", "macro_roc_auc", "beats_baseline"]

# Models exported before the learner package existed pickled these as finetune_advisor.train.<name>;
# resolve them lazily (PEP 562) so those model.pkl files still load without importing fastai here.
_MOVED = {"LoadRGB": "transforms", "GaussianNoise": "transforms", "first_label": "dataloaders",
          "all_labels": "dataloaders"}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"finetune_advisor.learner.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
