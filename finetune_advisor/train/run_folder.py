"""A training run's folder: what :func:`~finetune_advisor.train.train` writes there
(``config.json``, ``history.csv``, ``curves.png``, ``model.pkl``, ``result.json``) and
:func:`read_run`, the one reader of it (the report reads runs through here)."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from .._io import write_text_atomic
from ..config import Config
from ..exceptions import FinetuneAdvisorError
from .plots import plot_history
from .result import TrainResult

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd   # loaded where used: 0.5 s that `import finetune_advisor` need not pay
    from fastai.learner import Learner

log = logging.getLogger(__name__)

__all__ = ["RUN_FILES", "TrainRun", "RunFolderError", "read_run", "write_run", "write_result"]

# File names by kind. A folder with a result.json is a complete run (it is written last).
RUN_FILES: Mapping[str, str] = MappingProxyType({
    "config": "config.json", "history": "history.csv", "curves": "curves.png", "model": "model.pkl",
    "result": "result.json"})
WEIGHTS_FILE = "model_state.pth"     # instead of model.pkl when the learner cannot be pickled
_READ = ("config", "history", "curves", "result")
_OUTPUTS = ("history", "curves", "result")   # any of them makes a folder a training run


class RunFolderError(FinetuneAdvisorError):
    """A folder holds no training run's output."""


def write_run(result: TrainResult, learn: "Learner", out: str | os.PathLike) -> None:
    """Write everything but ``result.json`` into ``out`` and record the paths in ``result.files``.

    ``model.pkl`` is ``learn.export`` (reload with ``fastai.learner.load_learner``), written
    to a temp name and renamed; when the learner cannot be pickled (a custom body) the
    weights go to ``model_state.pth`` instead and ``result.notes`` says so.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {kind: out / name for kind, name in RUN_FILES.items()}
    write_text_atomic(files["config"], result.config.to_json())
    write_text_atomic(files["history"], result.history.to_csv(index=False))
    if not result.history.empty:
        plot_history(result.history, files["curves"], baseline=result.baseline)
    else:
        del files["curves"]
    partial = files["model"].with_name(f".{files['model'].name}.tmp")
    try:
        learn.export(partial.resolve())  # then renamed: a killed export leaves no half model.pkl
        partial.replace(files["model"])
    except Exception as exc:  # an unpicklable custom body must not lose the trained weights
        import torch

        partial.unlink(missing_ok=True)
        state = out / WEIGHTS_FILE
        torch.save(learn.model.state_dict(), state)
        files["model"] = state
        msg = (f"learn.export failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
               f"saved the weights to {state} instead")
        log.warning(msg)
        result.notes.append(msg)
    result.files = {k: str(v) for k, v in files.items()}


def write_result(result: TrainResult) -> Path:
    """Write ``result.json`` (:meth:`TrainResult.to_dict`) where :func:`write_run` said, last
    and atomically: a run folder with a ``result.json`` is a complete run."""
    return write_text_atomic(result.files["result"], json.dumps(result.to_dict(), indent=2))


@dataclass(frozen=True)
class TrainRun:
    """A run folder read back by :func:`read_run`; a file that is absent or unreadable is None
    (unreadable ones are described in ``problems``).

    Attributes
    ----------
    path : Path
    files : tuple of str
        The run files present (names, sorted).
    result : dict or None
        ``result.json`` as written (:meth:`TrainResult.to_dict`).
    history : pandas.DataFrame or None
        ``history.csv``.
    config : Config or None
        ``config.json``.
    curves : bytes or None
        ``curves.png``.
    problems : tuple of str
        One line per file that is present but could not be read.
    """

    path: Path
    files: tuple[str, ...]
    result: Mapping[str, Any] | None = None
    history: pd.DataFrame | None = None
    config: Config | None = None
    curves: bytes | None = None
    problems: tuple[str, ...] = ()


def read_run(folder: str | os.PathLike) -> TrainRun:
    """Read the run folder that :func:`~finetune_advisor.train.train` wrote (``out_dir``).

    Raises
    ------
    RunFolderError
        ``folder`` has none of ``history.csv``, ``curves.png`` and ``result.json``.

    Examples
    --------
    >>> run = read_run("runs/pets")                                   # doctest: +SKIP
    >>> run.result["final_metrics"]["accuracy"], len(run.history)     # doctest: +SKIP
    (0.91, 20)
    """
    path = Path(folder)
    present = {kind: path / RUN_FILES[kind] for kind in _READ if (path / RUN_FILES[kind]).is_file()}
    if not set(_OUTPUTS) & set(present):
        names = [RUN_FILES[k] for k in _OUTPUTS]
        raise RunFolderError(f"no training output here (expected {', '.join(names[:-1])} or {names[-1]})",
                             path=path, hint="pass the folder given to `finetune-advisor train --out DIR`")
    read: dict[str, Any] = {}
    problems: list[str] = []
    readers = {"result": lambda p: json.loads(p.read_text(encoding="utf-8")),
               "history": _read_csv,
               "config": lambda p: Config.from_json(p.read_text(encoding="utf-8")),
               "curves": lambda p: p.read_bytes()}
    for kind in ("result", "history", "config", "curves"):
        if kind in present:
            try:
                read[kind] = readers[kind](present[kind])
            except Exception as exc:  # noqa: BLE001 -- the rest of the run is still worth showing
                problems.append(f"{RUN_FILES[kind]} unreadable: {exc}")
    return TrainRun(path=path, files=tuple(sorted(p.name for p in present.values())),
                    problems=tuple(problems), **read)


def _read_csv(path):
    import pandas as pd

    return pd.read_csv(path)
