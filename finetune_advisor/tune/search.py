"""``tune``: a budgeted, multi-fidelity Optuna search that starts from the recommendation.

Trial 0 is the recommendation itself (enqueued with the parameters that reproduce it, never
pruned): its wall time is the unit of a relative budget (``5x``) and its value the one to beat.
Next come the calibration's portfolio (:mod:`finetune_advisor.calibration.portfolio`: the sweep's
cells that best complement the rule's, enqueued at set-up), then a seeded TPE sampler draws from
:class:`~.space.SearchSpace`. The TPE trials are pruned per
epoch (:class:`~.pruning.PruningCallback`, successive halving by default); the recommendation and
the portfolio, chosen on full-length evidence, always run to the end (in ``cpu-lite0-tune-v2`` the
portfolio's head-only cell, the best complement on the sweep, was pruned after its first epoch on
every dataset: an early epoch of one schedule does not rank another's end). The study lives on an
RDB storage as bench's does (:func:`finetune_advisor.bench.storage.open_study`: heartbeats,
dead workers' trials re-queued, SQLite's claim lock), so a killed run resumes with no trial
lost or repeated, and several machines can share one (PostgreSQL URL, ``worker=True``).

The value of a trial: the last epoch's ``accuracy`` (single-label) or the macro ROC AUC of the
final model (multi-label, ``roc_auc_macro``); pruning on a multi-label dataset compares
minus the validation loss per epoch (train does not measure the AUC per epoch).
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .._io import NewPaths
from .._progress import Ticker, progress_to_stderr
from .._signals import deferred_interrupt
from ..backbones import Backbone, create_backbone
from ..bench.records import TUNE_MARK
from ..bench.storage import (BenchStudy, Heartbeat, claim_trial, holds_work, open_study, requeue_dead_trials,
                             sqlite_files)
from ..config import Config
from ..data import Dataset, read_dataset
from ..exceptions import ConfigError, FinetuneAdvisorError
from ..recommend import AdviseOptions, advise
from ..train import train
from .budget import DEFAULT_BUDGET, Budget, may_start, parse_budget
from .ledger import RECOMMENDATION, ROLE_ATTR, SEARCH, Ledger, ledger
from .portfolio import calibration_of, enqueue_portfolio
from .result import TuneResult, summarise, write_outputs
from .space import SearchSpace

__all__ = ["tune", "DEFAULT_OUT", "DEFAULT_STUDY", "DB_FILE"]

log = logging.getLogger(__name__)

DEFAULT_OUT = "finetune-advisor-tune"
DEFAULT_STUDY = "tune"
DB_FILE = "tune.db"
TUNE_VERSION = 1                 # stored with the study (user attr ``tune_version``)
N_STARTUP_TRIALS = 4             # TPE's random trials before it models (budgets are a few runs)
WAIT_S = 5.0                     # a worker waiting for another's trial 0 looks again this often


@dataclass
class _Run:
    """What every trial of this call shares."""

    study: BenchStudy
    study_id: int
    base: Config
    space: SearchSpace
    dataset: Dataset
    backbone: Backbone
    metric: str
    seed: int
    max_images_per_class: int | None
    num_workers: int
    ticker: Ticker


def tune(dataset_or_path: Dataset | str | os.PathLike, budget: str | float | Budget | None = None, *,
         config: Config | None = None, options: AdviseOptions | None = None, storage: str | None = None,
         study_name: str = DEFAULT_STUDY, n_trials: int | None = None, seed: int = 0,
         out_dir: str | os.PathLike = DEFAULT_OUT, progress: bool = True, worker: bool = False,
         backbone: Backbone | None = None, pruner: Any = None, heartbeat_interval: int = 60,
         grace_period: int | None = None, max_images_per_class: int | None = None,
         num_workers: int = 0, portfolio: Sequence[tuple[str, float]] | None = None,
         leave_out: str | None = None) -> TuneResult:
    """Search for a better Config than the recommendation, within a budget.

    Parameters
    ----------
    dataset_or_path : Dataset or path
    budget : str, float or Budget, optional
        ``"5x"`` (or ``5``): five runs of the recommended config, measured on trial 0;
        ``"20m"``, ``"90s"``, ``"2h"``: wall-clock time. No new trial starts once the time of the
        finished ones plus one more full trial (their mean) would pass it; trial 0 always runs.
        Default: the study's last budget, else ``"5x"``.
    config : Config, optional
        Start from this Config instead of recommending one (a resumed study starts from the
        Config it stored).
    options : AdviseOptions, optional
        How to recommend (when no ``config`` is given), read the dataset, and build the
        backbone (``backbone``, ``weights``, ``pretrained``, ``fallback``).
    storage : str, optional
        SQLAlchemy URL; default ``sqlite:///<out_dir>/tune.db``. A PostgreSQL URL lets several
        machines work one study (each calls ``tune(..., worker=True)``).
    study_name : str, default="tune"
    n_trials : int, optional
        At most this many finished trials in the study (all workers together).
    seed : int, default=0
        The training seed of every trial, and the sampler's.
    out_dir : path, default="finetune-advisor-tune"
        ``best_config.json``, ``trials.csv``, ``tune.json``, ``history.png``, ``importance.png``
        (read back with :func:`~finetune_advisor.tune.read_tune`), and the default storage.
    progress : bool, default=True
        A line over the budget with the best value so far, on stderr.
    worker : bool, default=False
        Join an existing study (started by a call without ``worker``) instead of creating one.
    backbone : Backbone, optional
        Default: ``create_backbone(config.backbone)`` with ``options``' weights settings.
    pruner : optuna pruner, optional
        Default ``SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)`` over epochs.
    heartbeat_interval, grace_period : int
        A trial whose heartbeat is older than ``grace_period`` (default two intervals) was
        killed: it is failed and re-queued with the same parameters.
    max_images_per_class, num_workers :
        Passed to :func:`~finetune_advisor.train.train`.
    portfolio : sequence of (arm, log10 lr), optional
        Cells of the calibration sweep's grid to try right after the recommendation (arms of
        :data:`~finetune_advisor.heuristics.policies.ARMS`). Default: the portfolio of the
        calibration the recommendation used (``options.calibration``, else the shipped one it
        names); ``()`` for none.
    leave_out : str, optional
        A dataset name: use the portfolio fitted without that dataset, when the calibration was
        fitted on one of that name (bench's ``tune@Nx`` anchor passes its dataset's).

    Returns
    -------
    TuneResult

    Raises
    ------
    ConfigError
        A bad budget or trial count; a study started from another config or dataset; no
        study to join (``worker``).
    DatasetError, BackboneNotFoundError
        As :func:`~finetune_advisor.train.train`; also when the recommendation itself fails.

    Examples
    --------
    >>> res = tune("pets/", "5x", out_dir="tune/pets")        # doctest: +SKIP
    >>> res.best_value >= res.recommendation_value             # doctest: +SKIP
    True
    """
    import optuna

    parsed = None if budget is None else parse_budget(budget)
    if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1):
        raise ConfigError(f"n_trials must be an integer >= 1, got {n_trials!r}", hint="e.g. --trials 20")
    opts = options or AdviseOptions(progress=progress)
    out = Path(out_dir)
    url = storage or f"sqlite:///{(out / DB_FILE).resolve()}"
    # what a failed set-up (a dataset, config or weights check) takes away again: no empty --out or tune.db
    made, study = NewPaths(out, *sqlite_files(url)), None
    try:
        out.mkdir(parents=True, exist_ok=True)
        study = _open(study_name, url, worker, heartbeat_interval, grace_period)
        n_before = len(study.get_trials(deepcopy=False))
        study.study.sampler = optuna.samplers.TPESampler(seed=_sampler_seed(seed, n_before, worker),
                                                         n_startup_trials=N_STARTUP_TRIALS, constant_liar=True)
        study.study.pruner = pruner if pruner is not None else \
            optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)

        stored = study.user_attrs
        given = dataset_or_path if isinstance(dataset_or_path, Dataset) else None
        if config is None and "base_config" not in stored and not worker:    # a new study: recommend first
            rec = advise(given if given is not None else dataset_or_path, opts)      # a Dataset is not read again
            config, dataset = rec.config, given or rec.dataset
        else:
            dataset = given or read_dataset(dataset_or_path, **{k: v for k, v in opts.read_kwargs().items()
                                                                if v is not None})
        fresh = "base_config" not in stored
        base, space = _settle(study, config, dataset, worker)
        if parsed is None:
            parsed = parse_budget(stored.get("budget", DEFAULT_BUDGET))
        if not worker:
            study.set_user_attr("budget", parsed.text)
            _ensure_recommendation(study, space.params_of(base))
            if fresh:
                if portfolio is None:
                    calibration = calibration_of(base, opts)
                    portfolio = () if calibration is None else calibration.portfolio_for(leave_out)
                enqueue_portfolio(study, space, base, portfolio)
        if backbone is None:
            from fastai.torch_core import set_seed

            set_seed(seed, reproducible=True)    # random-init weights: the same on a resume, as train's
            backbone = create_backbone(base.backbone, weights=opts.weights, pretrained=opts.pretrained,
                                       fallback=opts.fallback)
    except BaseException:
        if not _holds_work(study):      # another process's trials (it joined meanwhile) stay
            made.remove()
        raise
    multi = bool(dataset.multi_label or base.multi_label)
    with Ticker(None, "tune (s of budget)", enabled=progress) as ticker, progress_to_stderr(progress):
        run = _Run(study, study.study_id, base, space, dataset, backbone,
                   "roc_auc_macro" if multi else "accuracy", seed, max_images_per_class, num_workers, ticker)
        try:
            stopped = _loop(run, parsed, n_trials)
        except KeyboardInterrupt:      # the finished trials' outputs first, then the interrupt
            with deferred_interrupt():
                if any(t.state.name in ("COMPLETE", "PRUNED") for t in study.get_trials(deepcopy=False)):
                    write_outputs(summarise(study, base, run.metric, parsed, "interrupted"), study.study, out)
            raise
        except FinetuneAdvisorError:   # trial 0 failed a check (data it cannot train on): as a failed set-up
            if not _holds_work(study):
                made.remove()
            raise
    result = summarise(study, base, run.metric, parsed, stopped)
    return write_outputs(result, study.study, out)


def _holds_work(study: BenchStudy | None) -> bool:
    try:
        return holds_work(study)
    except Exception:  # noqa: BLE001 -- the storage cannot say: keep it
        return True


def _open(name: str, url: str, worker: bool, heartbeat: int, grace: int | None) -> BenchStudy:
    try:
        return open_study(name, url, heartbeat_interval=heartbeat, grace_period=grace, create=not worker)
    except ConfigError as exc:
        if not worker or not exc.message.startswith("no study named"):
            raise
        raise ConfigError(f"no tune study named {name!r} to join in this storage",
                          hint="start it with 'finetune-advisor tune PATH --storage URL' (without --worker; "
                               "Python: tune(..., worker=False)) first") from None


def _sampler_seed(seed: int, n_before: int, worker: bool) -> int:
    """``seed`` for a fresh study; another stream on a resume or for a worker, so that the
    sampler's random start does not draw the parameters it drew before."""
    if n_before == 0 and not worker:
        return seed
    return (seed * 1_000_003 + n_before * 7_919 + (os.getpid() if worker else 0)) % 2 ** 32


def _settle(study: BenchStudy, config: Config | None, dataset: Dataset, worker: bool) -> tuple[Config, SearchSpace]:
    """The study's starting Config and space: stored on the first call, checked on the next."""
    attrs = study.user_attrs
    classes = [str(c) for c in dataset.classes]
    if "base_config" in attrs:
        base = Config.from_json(attrs["base_config"])
        # the same training config, not the same record: a second process's recommendation of the
        # same dataset has its own timings and reasons (issue 29: two tunes started together)
        if config is not None and config.decisions() != base.decisions():
            raise ConfigError(f"the tune study {study.study_name!r} was started from another config",
                              hint="leave the config out to resume it, or use another --out / --study")
        if attrs.get("classes") != classes:
            raise ConfigError(f"the tune study {study.study_name!r} was started on a dataset with other classes "
                              f"({', '.join(attrs.get('classes') or [])[:200]})",
                              hint="pass the dataset it was started on, or use another --out / --study")
        return base, SearchSpace.from_dict(attrs["space"])
    if worker or config is None:     # open_study(create=False) found the study: it is being set up
        raise ConfigError(f"the tune study {study.study_name!r} has no starting config yet",
                          hint="wait until the first 'finetune-advisor tune' (without --worker) has started it")
    space = SearchSpace.around(config)
    for key, value in ((TUNE_MARK, TUNE_VERSION), ("classes", classes), ("space", space.to_dict()),
                       ("base_config", config.to_json(indent=None))):   # base_config last: it marks a set-up study
        study.set_user_attr(key, value)
    return config, space


def _ensure_recommendation(study: BenchStudy, params: dict[str, Any]) -> None:
    """Enqueue the recommendation unless a trial of it is done, waiting or running."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
    if not any(t.user_attrs.get(ROLE_ATTR) == RECOMMENDATION and t.state in live
               for t in study.get_trials(deepcopy=False)):
        study.enqueue_trial(params, user_attrs={ROLE_ATTR: RECOMMENDATION})


def _loop(run: _Run, budget: Budget, n_trials: int | None) -> str:
    """Run trials until the budget or the count is reached; returns why it stopped."""
    from optuna.trial import TrialState

    waiting_said = False
    while True:
        requeue_dead_trials(run.study, run.study_id)
        led = ledger(run.study.get_trials(deepcopy=False))
        budget_s = budget.seconds(led.unit_s)
        run.ticker.total = None if budget_s is None else int(math.ceil(budget_s))
        _show(run, led, led.spent_s)
        if n_trials is not None and led.n_finished + led.n_running >= n_trials:
            return "trials"
        if led.recommendation != "complete":     # trial 0 first: it is the unit and the value to beat
            if led.recommendation == "running":
                if not waiting_said:
                    run.ticker.line("tune: waiting for trial 0 (the recommendation), running elsewhere or killed "
                                    "(then retried once its heartbeat is older than the grace period)")
                    waiting_said = True
                time.sleep(WAIT_S)
                continue
            if led.recommendation != "waiting":
                failed = [t for t in run.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                          if t.user_attrs.get(ROLE_ATTR) == RECOMMENDATION]
                why = failed[-1].user_attrs.get("error", "killed too often") if failed else "it is missing"
                raise ConfigError(f"the recommendation's trial cannot run ({why})",
                                  hint="train it alone with 'finetune-advisor train' to see why, then resume")
        elif not may_start(budget_s, led.spent_s, led.n_running, led.expected_s):
            return "budget"
        _run_one(run, led)


def _show(run: _Run, led: Ledger, spent_s: float, now: str = "") -> None:
    best = f"best {run.metric} {led.best[0]:.4f} (trial {led.best[1]})" if led.best else ""
    run.ticker.update(max(0, int(spent_s) - run.ticker.done), note=", ".join(p for p in (now, best) if p))


def _run_one(run: _Run, led: Ledger) -> None:
    """Claim a trial (the oldest waiting, else a new one), train it, tell the study."""
    from optuna.trial import TrialState

    study, rdb = run.study, run.study.storage
    trial, trial_id = claim_trial(study)
    try:
        with Heartbeat(rdb, trial_id, study.heartbeat_interval):
            _train_claimed(run, trial, led)
    except KeyboardInterrupt:   # not left RUNNING: failed, and its parameters queued again
        with deferred_interrupt():
            frozen = rdb.get_trial(trial_id)
            if frozen.state == TrialState.RUNNING:
                trial.set_user_attr("interrupted", True)
                study.tell(trial, state=TrialState.FAIL)
                marks = {k: frozen.user_attrs[k] for k in ("portfolio",) if k in frozen.user_attrs}
                study.enqueue_trial(frozen.params, user_attrs={ROLE_ATTR: frozen.user_attrs.get(ROLE_ATTR, SEARCH),
                                                               "retry_of": trial.number, **marks})   # still run to the end
        raise


def _train_claimed(run: _Run, trial, led: Ledger) -> None:
    import optuna
    from optuna.trial import TrialState

    from .pruning import PruningCallback   # imports fastai

    study = run.study
    role = trial.user_attrs.get(ROLE_ATTR, SEARCH)
    params = run.space.suggest(trial)
    config = run.space.config_for(run.base, params, reason=f"tune trial {trial.number}")
    planned = SearchSpace.planned_epochs(config)
    for key, value in ((ROLE_ATTR, role), ("config", config.to_json(indent=None)), ("epochs_planned", planned)):
        trial.set_user_attr(key, value)
    what = "the recommendation" if role == RECOMMENDATION else \
        ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())
    run.ticker.line(f"tune: trial {trial.number} started ({what})")
    t0 = time.perf_counter()

    def on_epoch(step: int, value: float) -> None:
        _show(run, led, led.spent_s + time.perf_counter() - t0, f"trial {trial.number} epoch {step}/{planned}")

    multi = run.metric == "roc_auc_macro"
    callback = PruningCallback(trial, "valid_loss" if multi else "accuracy", sign=-1.0 if multi else 1.0,
                               prune=role != RECOMMENDATION and "portfolio" not in trial.user_attrs,
                               on_epoch=on_epoch)
    state, value, error = TrialState.COMPLETE, None, None
    try:
        result = train(config, run.dataset, seed=run.seed, backbone=run.backbone, progress=False,
                       max_images_per_class=run.max_images_per_class, num_workers=run.num_workers,
                       callbacks=[callback])
        trial.set_user_attr("final_metrics", {k: float(v) for k, v in result.final_metrics.items()})
        trial.set_user_attr("metric_name", result.main_metric)   # accuracy, or accuracy_multi
        value = float(result.final_metrics.get(run.metric, float("nan")))
        if not math.isfinite(value):
            state, error = TrialState.FAIL, f"{run.metric} is {value}"
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except Exception as exc:  # one bad config must not stop the search (unless it is the recommendation)
        state, error = TrialState.FAIL, f"{type(exc).__name__}: {exc}"[:500]
        if role == RECOMMENDATION:
            _finish(study, trial, state, None, time.perf_counter() - t0, callback.step, error)
            raise
    _finish(study, trial, state, value, time.perf_counter() - t0, callback.step, error)
    shown = f"{run.metric} {value:.4f}" if state == TrialState.COMPLETE else \
        f"pruned after epoch {callback.step}/{planned}" if state == TrialState.PRUNED else f"failed: {error}"
    run.ticker.line(f"tune: trial {trial.number} {shown} ({time.perf_counter() - t0:.0f} s)")


def _finish(study: BenchStudy, trial, state, value: float | None, wall_s: float, epochs: int,
            error: str | None) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("wall_time_s", float(wall_s))
    trial.set_user_attr("epochs_run", int(epochs))
    if error:
        trial.set_user_attr("error", error)
        log.warning("tune: trial %d failed: %s", trial.number, error)
    with deferred_interrupt():
        if state == TrialState.COMPLETE:
            study.tell(trial, value)
        else:
            study.tell(trial, state=state)
