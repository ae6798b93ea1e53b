"""Running a sweep: enqueue the trial list once (:func:`prepare_study`), let workers claim and
train trials (:func:`run_worker`, one per process or machine), and both at once with the
outputs written (:func:`run_bench`). Killed workers' trials are re-queued; finished trials are
never recomputed, and no trial key ever has two COMPLETE trials."""
from __future__ import annotations

import functools
import logging
import math
import numbers
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .._progress import progress as progress_iter
from .._progress import progress_to_stderr
from .._signals import deferred_interrupt
from ..config import Config
from ..exceptions import ConfigError, DatasetError, FinetuneAdvisorError
from ..storage_url import STORAGE_ENV
from ..study import TABLE1_GRID
from .datasets import BenchDataset, resolve_datasets
from .adapted import record_advised
from .grid import (ANCHORS, BENCH_PROFILES, FRACTIONS, MEASURED_ANCHORS, BenchProfile, TrialSpec, expand_grid,
                   is_tune_anchor)
from .results import write_outputs
from .reuse import check_reusable, reuse_baselines, reuse_trials
from .records import baseline_attr, keys_by_state, read_datasets, study_status, write_datasets
from .storage import BenchStudy, Heartbeat, claim_trial, open_study, requeue_dead_trials
from .trials import advise_baseline, train_trial

__all__ = ["prepare_study", "run_worker", "spawn_workers", "run_bench", "check_fractions", "check_seeds"]

log = logging.getLogger(__name__)


def check_fractions(fractions: Iterable[float]) -> list[float]:
    """``fractions`` as floats, each in (0, 1], none twice; else a :class:`ConfigError`."""
    out = [float(f) for f in fractions]
    bad = [f for f in out if not 0 < f <= 1]         # NaN fails too
    if not out or bad or len(set(out)) != len(out):
        got = ", ".join(f"{f:g}" for f in out) or "none"
        raise ConfigError(f"fractions must be distinct numbers in (0, 1], got {got}",
                          hint="e.g. --fractions 0.2 1.0: a fifth and all of each dataset")
    return out


def check_seeds(seeds: int | Iterable[int]) -> list[int]:
    """A number of seeds (>= 1) as ``[0, ..., n-1]``, or distinct seeds >= 0; else a :class:`ConfigError`."""
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1 (repeats per cell), got {seeds}")
        return list(range(int(seeds)))
    given = list(seeds)
    if not given or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0 for s in given) \
            or len(set(given)) != len(given):
        raise ConfigError(f"seeds must be distinct integers >= 0, got {given}")
    return [int(s) for s in given]


def prepare_study(study: BenchStudy, datasets: Sequence[BenchDataset], *, fractions: Sequence[float] = FRACTIONS,
                  seeds: Sequence[int] = (0, 1, 2), profile: str | BenchProfile = "cpu",
                  grid: Mapping[str, Sequence[float]] | None = None, anchors: Sequence[str] = ANCHORS,
                  advise_fn: Callable | None = None, advise_options: Mapping[str, Any] | None = None,
                  max_failures: int = 2, extra_anchors: Callable | None = None,
                  reuse_from: BenchStudy | None = None) -> list[TrialSpec]:
    """Compute (or reuse) the baselines and enqueue every missing trial, idempotently.

    Baselines are cached as study user attrs (``baseline:<dataset>|<fraction>``). A trial is
    enqueued only when its key has no WAITING, RUNNING or COMPLETE trial (and fewer than
    ``max_failures`` FAIL ones), so a kill during enqueueing, a second run or a second worker
    adds nothing twice. ``advise_fn(dataset, fraction, profile, options) -> Config`` (the advice,
    before the bench's schedule) defaults to :func:`advise_baseline` (with the study's advice
    cache); the baseline is that advice under the profile (:meth:`BenchProfile.apply`), and where
    that changes what trains, the advice is kept beside it (:mod:`.adapted`). ``extra_anchors`` adds configs
    made per dataset from its baseline (see :func:`expand_grid`). ``reuse_from``, a study run
    with the same settings, lends its baselines and its finished trials of the same key and
    training config (its decisions) instead of advising and training them again
    (:mod:`.reuse`). Returns the full grid.
    """
    fractions, seeds = check_fractions(fractions), check_seeds(seeds)
    prof = BENCH_PROFILES[profile] if isinstance(profile, str) else profile
    advise_fn = advise_fn or functools.partial(advise_baseline, cache=study.advice)
    attrs = study.user_attrs
    settings = {"fractions": fractions, "seeds": seeds, "profile": prof.to_dict(),
                "grid": {k: list(map(float, v)) for k, v in (TABLE1_GRID if grid is None else grid).items()},
                "anchors": list(anchors), "datasets": [d.name for d in datasets]}
    if reuse_from is not None:     # before this study is stamped with its settings: a refusal leaves it as it was
        check_reusable(settings, reuse_from)
    if "settings" in attrs and attrs["settings"] != settings:
        raise ConfigError("this study was started with other settings (datasets, fractions, seeds, profile or grid)",
                          hint=f"use a new study name, or rerun with the original settings: {attrs['settings']}")
    if "settings" not in attrs:
        study.set_user_attr("settings", settings)
    if reuse_from is not None:
        reuse_baselines(study, reuse_from, [baseline_attr(d.name, f) for d in datasets if d.available
                                            for f in fractions])
        attrs = study.user_attrs
    missing = [d for d in datasets if not d.available]
    study.set_user_attr("missing_datasets", {d.name: d.note for d in missing})
    write_datasets(study, datasets)
    baselines: dict[tuple[str, float], Config] = {}
    failed: dict[str, str] = {}
    for d in datasets:
        if not d.available:
            log.warning("bench: %s is missing (%s); it is reported, not faked", d.name, d.note)
            continue
        for f in fractions:
            ak = baseline_attr(d.name, f)
            if ak in attrs:
                baselines[(d.name, f)] = Config.from_json(attrs[ak])
                continue
            log.info("bench: recommending the baseline for %s at %g%% of the data", d.name, 100 * f)
            try:
                advised = advise_fn(d, f, prof, advise_options)
            except FinetuneAdvisorError as exc:  # one dataset's failure must not stop the others
                failed[d.name] = f"{100 * f:g}% of the data: {exc.message}"
                log.error("bench: no baseline for %s at %g%% of the data (%s); its trials are skipped "
                          "this run and retried on the next", d.name, 100 * f, exc.message)
                continue
            cfg = prof.apply(advised)
            changes = record_advised(study, d.name, f, advised, cfg)
            if changes:
                log.info("bench: %s at %g%% trains otherwise than advised to fit the profile: %s", d.name, 100 * f,
                         ", ".join(f"{k} {a} -> {t}" for k, (a, t) in changes.items()))
            study.set_user_attr(ak, cfg.to_json(indent=None))
            baselines[(d.name, f)] = cfg
    study.set_user_attr("failed_datasets", failed)
    specs = expand_grid(baselines, seeds=seeds, grid=grid, anchors=anchors, extra_anchors=extra_anchors,
                        profile=prof)
    study.set_user_attr("aliases", {s.key: s.same_as for s in specs if s.same_as})
    study.set_user_attr("n_grid", sum(s.same_as is None for s in specs))
    if study.user_attrs.get("grid_enqueued") and not _needs_enqueue(study, specs, max_failures):
        return specs
    have = keys_by_state(study)
    wanted = [s for s in specs if not s.same_as and _wants_trial(have.get(s.key, {}), max_failures)]
    reused = {s.key for s in reuse_trials(study, reuse_from, wanted)} if reuse_from is not None else set()
    n_new = 0
    # Seed-major order: a run cut short has every dataset at the first seeds, not all seeds of a few.
    for s in sorted(wanted, key=lambda s: seeds.index(s.seed)):
        if s.key in reused:
            continue
        study.enqueue_trial({}, user_attrs=s.user_attrs())
        n_new += 1
    study.set_user_attr("grid_enqueued", True)
    log.info("bench: enqueued %d trial(s); grid has %d", n_new, study.user_attrs["n_grid"])
    return specs


def _wants_trial(states: Mapping[str, int], max_failures: int) -> bool:
    """A key needs a trial: none done, waiting or running, and fewer than ``max_failures`` failed."""
    return not (states.get("COMPLETE") or states.get("WAITING") or states.get("RUNNING")) \
        and states.get("FAIL", 0) < max_failures


def _needs_enqueue(study: BenchStudy, specs: Sequence[TrialSpec], max_failures: int) -> bool:
    have = keys_by_state(study)
    return any(not s.same_as and _wants_trial(have.get(s.key, {}), max_failures) for s in specs)


def _datasets_of(study: BenchStudy, datasets: Sequence[BenchDataset] | None) -> dict[str, BenchDataset]:
    return {**read_datasets(study), **{d.name: d for d in (datasets or []) if d.available}}


def run_worker(study: BenchStudy, *, run_trial_fn: Callable | None = None,
               datasets: Sequence[BenchDataset] | None = None, n_trials: int | None = None,
               progress: bool = True) -> int:
    """Claim and run WAITING trials until none is left (or ``n_trials`` ran); return how many ran.

    Trials of killed workers are failed first and re-queued by the storage's
    ``RetryHeartbeatStaleTrialCallback`` (see :func:`requeue_dead_trials`). Each trial is
    claimed by :func:`~.storage.claim_trial` (``ask()`` under SQLite's file lock, first
    heartbeat and claim mark at once), keeps a heartbeat while it trains, and
    is finished with ``study.tell``. A claimed trial whose key is already COMPLETE, or RUNNING
    under a lower number, is pruned unrun. ``run_trial_fn(config, dataset, *, fraction, seed,
    profile) -> dict`` (with ``metric``) defaults to :func:`train_trial`; a ``tune@Nx`` anchor's
    trial also gets ``anchor="tune@Nx"``.
    """
    from optuna.trial import TrialState

    if not isinstance(study, BenchStudy):
        raise ConfigError("run_worker needs a study from bench.open_study (RDB storage with heartbeats)")
    rdb = study.storage
    study_id = study.study_id
    run_trial_fn = run_trial_fn or functools.partial(train_trial, cache=study.datasets)
    prof_d = (study.user_attrs.get("settings") or {}).get("profile")
    prof = BenchProfile(**prof_d) if prof_d else BENCH_PROFILES["cpu"]
    by_name = _datasets_of(study, datasets)
    done = 0

    def waiting() -> int:
        return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def run_one() -> None:
        requeue_dead_trials(study, study_id)
        trial, trial_id = claim_trial(study)
        try:
            run_claimed(trial, trial_id)
        except KeyboardInterrupt:  # not left RUNNING: failed now, re-queued by the next run
            with deferred_interrupt():
                if rdb.get_trial(trial_id).state == TrialState.RUNNING:
                    trial.set_user_attr("error", "interrupted (Ctrl-C)")
                    study.tell(trial, state=TrialState.FAIL)
            raise

    def run_claimed(trial, trial_id: int) -> None:
        a = trial.user_attrs
        key = a.get("key")
        if key is None:
            trial.set_user_attr("note", "no grid trial was waiting")
            study.tell(trial, state=TrialState.PRUNED)
            return
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
            if t.number != trial.number and t.user_attrs.get("key") == key and \
                    (t.state == TrialState.COMPLETE or t.number < trial.number):
                trial.set_user_attr("duplicate_of", t.number)
                study.tell(trial, state=TrialState.PRUNED)
                return
        with Heartbeat(rdb, trial_id, study.heartbeat_interval):
            try:
                d = by_name.get(a["dataset"])
                if d is None:
                    raise DatasetError(f"dataset {a['dataset']!r} is not available on this worker")
                # a tune@Nx anchor searches from its config: the trial function is told which
                tuned = {"anchor": a["value"]} if a.get("parameter") == "anchor" and (
                    is_tune_anchor(a["value"]) or a["value"] in MEASURED_ANCHORS) else {}
                out = run_trial_fn(Config.from_json(a["config"]), d, fraction=float(a["fraction"]),
                                   seed=int(a["seed"]), profile=prof, **tuned)
                for k, v in out.items():
                    trial.set_user_attr(k, v)
            except Exception as exc:
                log.warning("bench: trial %d (%s) failed: %s: %s", trial.number, key, type(exc).__name__, exc)
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
                study.tell(trial, state=TrialState.FAIL)
                return
            with deferred_interrupt():
                study.tell(trial, float(out["metric"]))

    requeue_dead_trials(study, study_id)    # a killed worker's trials go back to the queue first
    budget = n_trials if n_trials is not None else math.inf
    total = int(min(budget, waiting()))
    with progress_to_stderr(progress):      # what training prints must not reach stdout (--json)
        for _ in progress_iter(range(total), total=total, desc="bench trials", enabled=progress and total > 0):
            if not waiting():
                break
            run_one()
            done += 1
    while done < budget and waiting():   # trials re-queued while this worker ran
        run_one()
        done += 1
    return done


def spawn_workers(study_name: str, storage: str, n_workers: int = 2, *, threads: int = 1,
                  out_dir: str | os.PathLike | None = None, command: Sequence[str] | None = None,
                  stagger_s: float = 2.0) -> list[int]:
    """Work a prepared study's queue with ``n_workers`` local processes; wait and return their exit codes.

    Each process is ``finetune-advisor bench run --worker`` (or ``command``) with ``threads`` torch
    threads: on a small machine, N single-thread workers keep N cores busy where one N-thread
    worker leaves them waiting on data loading. Other machines may join the same study
    meanwhile. The first worker gets ``stagger_s`` to open a new SQLite file before the next.

    Examples
    --------
    >>> spawn_workers("calib", "sqlite:///bench/calib/bench.db", 2)   # doctest: +SKIP
    [0, 0]
    """
    if n_workers < 1 or threads < 1:
        raise ConfigError(f"workers and threads must be at least 1, got {n_workers} and {threads}")
    # the URL goes through the environment, not argv: a password in it would show in ps
    argv = list(command) if command else [sys.executable, "-m", "finetune_advisor.cli", "bench", "run", "--worker",
                                          "--study", study_name, "-q"]
    if out_dir is not None and not command:
        argv += ["--out", str(out_dir)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), **{STORAGE_ENV: storage})
    procs = []
    try:
        for i in range(n_workers):
            if i:
                time.sleep(stagger_s)
            procs.append(subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL))
        return [p.wait() for p in procs]
    finally:                 # Ctrl-C here stops the workers too; their trials are re-queued on resume
        for p in procs:
            if p.poll() is None:
                p.terminate()


def run_bench(study_name: str = "bench", storage: str | None = None, *,
              datasets: Sequence[BenchDataset] | Sequence[str] | None = None,
              extra: Mapping[str, str] | None = None, paths: Mapping[str, str] | None = None,
              fractions: Sequence[float] = FRACTIONS, seeds: int | Sequence[int] = 3,
              profile: str | BenchProfile = "cpu", grid: Mapping[str, Sequence[float]] | None = None,
              anchors: Sequence[str] = ANCHORS, run_trial_fn: Callable | None = None,
              advise_fn: Callable | None = None, advise_options: Mapping[str, Any] | None = None,
              n_trials: int | None = None, out_dir: str | os.PathLike | None = None,
              heartbeat_interval: int = 60, grace_period: int | None = None, progress: bool = True,
              write: bool = True) -> dict[str, Any]:
    """Prepare (or resume) the study, work through its queue, and write the outputs.

    Running it again with the same arguments resumes: baselines come from the study,
    finished trials are kept, and only missing trials run. ``fractions`` and ``seeds`` (a
    count, or the seeds) are checked before anything is opened or computed. Returns a dict
    with ``study`` (a :class:`BenchStudy`), ``ran`` (trials run by this call), ``status`` and
    ``files``.

    Examples
    --------
    >>> out = run_bench("pets", datasets=["pets"], fractions=[0.2], seeds=1)   # doctest: +SKIP
    >>> out["files"]["heatmap"]                                                # doctest: +SKIP
    'bench/pets/heatmap.png'
    """
    fractions, seed_list = check_fractions(fractions), check_seeds(seeds)
    if datasets is None or all(isinstance(d, str) for d in datasets):
        datasets = resolve_datasets(datasets, paths=paths, extra=extra)
    if datasets and not any(d.available for d in datasets):     # before a study or folder is made: nothing left behind
        first = datasets[0]
        raise DatasetError(f"none of the {len(datasets)} datasets is on this machine ({first.name}: {first.note})",
                           hint="point FINETUNE_ADVISOR_DATA_<NAME> (or --data-path NAME=PATH) at your copies, or "
                                "add your own with --datasets none --dataset NAME=PATH")
    out = Path(out_dir) if out_dir else Path("bench") / study_name
    study = open_study(study_name, storage, out_dir=out, heartbeat_interval=heartbeat_interval,
                       grace_period=grace_period)
    prepare_study(study, datasets, fractions=fractions, seeds=seed_list, profile=profile, grid=grid,
                  anchors=anchors, advise_fn=advise_fn, advise_options=advise_options)
    if not study.user_attrs.get("n_grid"):   # "0/0 trials done" would read like success
        reasons = {**study.user_attrs.get("failed_datasets", {}), **study.user_attrs.get("missing_datasets", {})}
        first = next(iter(reasons.items()), None)
        raise DatasetError("nothing to benchmark: no dataset has a baseline"
                           + (f" ({len(reasons)} missing or failed; {first[0]}: {first[1]})" if first else ""),
                           hint="'finetune-advisor bench status' lists every reason; "
                                "the run resumes once they are fixed")
    ran = run_worker(study, run_trial_fn=run_trial_fn, datasets=datasets, n_trials=n_trials, progress=progress)
    files = write_outputs(study, out) if write else {}
    return {"study": study, "ran": ran, "status": study_status(study), "files": files}
