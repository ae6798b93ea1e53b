"""Assemble a :class:`~finetune_advisor.report.model.Report` from a recommendation and the
optional training-run, benchmark and tune folders (:func:`build_report`), and rebuild a
recommendation from a saved Config (:func:`load_recommendation`)."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Config
from ..data import DatasetProfile, profile_dataset, read_dataset
from ..exceptions import ConfigError
from ..recommend import Recommendation
from ..train import RunFolderError, read_run
from ..tune.result import TuneFolderError, read_tune
from .dataset import profile_section
from .model import Report, ReportInputError
from .outputs import bench_section, training_section, tune_section
from .sections import (config_section, far_of, lr_section, similarity_section, summary,
                       warnings_section)


def build_report(rec: Recommendation, *, run_dir: str | os.PathLike | None = None,
                 bench: str | os.PathLike | None = None, title: str | None = None,
                 seed: int = 0, tune: str | os.PathLike | None = None) -> Report:
    """Gather everything a report shows, from a recommendation and optional run/bench folders.

    Parameters
    ----------
    rec : Recommendation
        From :func:`finetune_advisor.recommend.advise` or :func:`load_recommendation`. Only
        ``rec.config`` and ``rec.profile`` are required; ``dataset`` (sample images, skipped
        files), ``similarity`` and ``lr_finder`` are used when present, else the ones recorded
        in ``config.measurements``.
    run_dir : path, optional
        A ``finetune-advisor train --out`` folder (``curves.png`` or ``history.csv``,
        ``result.json``).
    bench : path, optional
        A benchmark output folder holding ``heatmap.png`` and ``regret.csv`` (or ``regret.json``).
    title : str, optional
        Default: "Fine-tuning report: <dataset folder name>".
    tune : path, optional
        A ``finetune-advisor tune --out`` folder (``tune.json``, ``trials.csv``, the plots).
    seed : int, default=0
        Which images are sampled for thumbnails and headers.

    Returns
    -------
    Report

    Raises
    ------
    ReportInputError
        ``run_dir``, ``bench`` or ``tune`` is not a folder, or ``run_dir`` (``tune``) holds no
        training (tune) output.

    Examples
    --------
    >>> rec = advise("pets/", similarity=False)                  # doctest: +SKIP
    >>> html_text = render_html(build_report(rec))               # doctest: +SKIP
    """
    # read at call time: the package's __init__ imports this module before it sets __version__
    from .. import __version__

    run_path = _check_folder(run_dir, "--run", "training run folder (from `finetune-advisor train --out DIR`)")
    bench_path = _check_folder(bench, "--bench", "benchmark folder (holding heatmap.png and regret.csv)")
    config: Config = rec.config
    m = config.measurements
    profile = rec.profile
    # a live run's results (with the LR curve), else what the Config recorded
    similarity = rec.similarity if rec.similarity is not None else m.similarity
    lr = rec.lr_finder if rec.lr_finder is not None else m.lr_finder
    try:
        run = read_run(run_path) if run_path is not None else None
    except RunFolderError as exc:
        raise ReportInputError(f"--run: {exc.message}", path=exc.path, hint=exc.hint) from None
    tune_path = _check_folder(tune, "--tune", "tune folder (from `finetune-advisor tune --out DIR`)")
    try:
        tuned = read_tune(tune_path) if tune_path is not None else None
    except TuneFolderError as exc:
        raise ReportInputError(f"--tune: {exc.message}", path=exc.path, hint=exc.hint) from None

    name = _dataset_name(profile)
    sections = [
        config_section(config),
        profile_section(profile, rec.dataset, config.image_size, seed),
        similarity_section(similarity, m, name),
        lr_section(lr, config, far_of(similarity, m)),
        training_section(run, config),
        bench_section(bench_path),
        tune_section(tuned),
        warnings_section(profile, config, similarity, lr, rec.backbone, run_given=run is not None,
                         run_beats_baseline=(run.result or {}).get("beats_baseline") if run is not None else None),
    ]
    return Report(title=title or f"Fine-tuning report: {name}", dataset=str(profile.root or ""),
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"), version=__version__,
                  summary=summary(config, similarity, lr, profile), sections=sections)


def load_recommendation(config_path: str | os.PathLike, dataset_path: str | os.PathLike,
                        **read_kwargs: Any) -> Recommendation:
    """A :class:`~finetune_advisor.recommend.Recommendation` from a saved Config JSON plus the dataset.

    The dataset is read and profiled again (headers only) for the profile and the sample
    images; the similarity and LR-finder numbers come from ``config.measurements``.

    Raises
    ------
    ConfigError
        The file is missing, unreadable or not a valid Config.
    DatasetError
        The dataset cannot be read.
    """
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError("config file not found", path=path,
                          hint="write one with `finetune-advisor recommend DATASET --out config.json`")
    try:
        config = Config.from_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", path=path) from None
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path, hint=exc.hint) from None
    dataset = read_dataset(dataset_path, **{k: v for k, v in read_kwargs.items() if v is not None})
    return Recommendation.from_config(config, profile_dataset(dataset), dataset=dataset)


def _check_folder(path: str | os.PathLike | None, flag: str, what: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_dir():
        found = "a file" if p.exists() else "nothing"
        raise ReportInputError(f"{flag}: expected a {what}, found {found}", path=p,
                               hint=f"pass an existing folder to {flag}, or leave {flag} out")
    return p


def _dataset_name(profile: DatasetProfile) -> str:
    root = str(profile.root or "")
    return Path(root).name or root or "this dataset"
