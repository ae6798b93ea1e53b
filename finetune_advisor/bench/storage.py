"""Where a sweep lives: an Optuna study on an RDB storage (SQLite file, or PostgreSQL / MySQL so
that several machines share it), with heartbeats, dead workers' trials re-queued, and the claim
lock SQLite needs. :class:`BenchStudy` holds it all, plus this process's caches. What a study
records beside its trials (baselines, datasets) and how far it is: :mod:`.records`."""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .._io import NewPaths
from .._signals import deferred_interrupt
from ..exceptions import ConfigError
from ..storage_url import masked_url, normalise_storage_url

if TYPE_CHECKING:
    import optuna

    from ..data import Dataset
    from ..recommend import Recommendation

__all__ = ["BenchStudy", "open_study", "CLAIM_ATTR", "Heartbeat", "requeue_dead_trials", "claim_trial",
           "claim_lock", "normalise_storage_url", "sqlite_files", "holds_work", "CONNECT_TIMEOUT_S",
           "STATEMENT_TIMEOUT_S"]

log = logging.getLogger(__name__)

CLAIM_ATTR = "claimed_as"      # a worker's mark: the trial number it claimed, set once its heartbeat runs
# A server that accepts the connection and never answers must not hang a worker (or its Ctrl-C,
# which Python handles only once the driver's blocking call returns): bound the connect and
# every statement.
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 300


@dataclass(eq=False)
class BenchStudy:
    """An open bench study: the Optuna study, its storage and settings, and this process's caches.

    The caches hold what is costly to redo within one process: datasets read (by path) and
    whole-dataset recommendations (by path, profile and options). The study-reading methods
    callers use (``user_attrs``, ``get_trials``, ``ask``, ...) are passed through to ``study``.
    """

    study: "optuna.Study"
    storage: "optuna.storages.RDBStorage"
    url: str
    heartbeat_interval: float
    grace_period: float
    datasets: dict[str, "Dataset"] = field(default_factory=dict, repr=False)
    advice: dict[tuple, "Recommendation"] = field(default_factory=dict, repr=False)

    @property
    def study_name(self) -> str:
        return self.study.study_name

    @property
    def user_attrs(self) -> dict[str, Any]:
        return self.study.user_attrs

    @property
    def study_id(self) -> int:
        return self.storage.get_study_id_from_name(self.study.study_name)

    def set_user_attr(self, key: str, value: Any) -> None:
        self.study.set_user_attr(key, value)

    def get_trials(self, deepcopy: bool = True, states=None) -> list:
        return self.study.get_trials(deepcopy=deepcopy, states=states)

    def enqueue_trial(self, params: dict, **kwargs: Any) -> None:
        self.study.enqueue_trial(params, **kwargs)

    def ask(self):
        return self.study.ask()

    def tell(self, trial, *args: Any, **kwargs: Any):
        return self.study.tell(trial, *args, **kwargs)


def _default_storage(out_dir: str | os.PathLike | None, study_name: str) -> str:
    folder = Path(out_dir) if out_dir else Path("bench") / study_name
    return f"sqlite:///{(folder / 'bench.db').resolve()}"


def sqlite_files(url: str) -> list[Path]:
    """The files an SQLite storage URL makes (the database, its journals, the claim lock); none for
    another database or an in-memory one.

    >>> [p.name for p in sqlite_files("sqlite:////tmp/b/bench.db")]
    ['bench.db', 'bench.db-journal', 'bench.db-wal', 'bench.db-shm', 'bench.db.claim.lock']
    >>> sqlite_files("postgresql://h/db"), sqlite_files("sqlite://")
    ([], [])
    """
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return []
    db = url[len("sqlite:///"):]
    return [Path(db + suffix) for suffix in ("", "-journal", "-wal", "-shm", ".claim.lock")]


def _has_studies(url: str) -> bool:
    """Whether an SQLite storage's file holds a study (read with sqlite3: Optuna may be what
    failed); False when it does not exist or holds Optuna's empty tables only."""
    import sqlite3

    files = sqlite_files(url)
    if not files or not files[0].is_file():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{files[0].resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT count(*) FROM studies").fetchone()[0] > 0
    except sqlite3.Error as exc:
        return "no such table" not in str(exc)       # unreadable: keep it


def holds_work(study: "BenchStudy | None") -> bool:
    """Whether a study holds a result (a COMPLETE or PRUNED trial) or a trial running now
    (another process's, joined meanwhile): then a failed call's clean-up keeps it. Queued and
    failed trials are no result."""
    return study is not None and any(t.state.name in ("COMPLETE", "PRUNED", "RUNNING")
                                     for t in study.get_trials(deepcopy=False))


def open_study(study_name: str, storage: str | None = None, *, out_dir: str | os.PathLike | None = None,
               heartbeat_interval: int = 60, grace_period: int | None = None, max_retry: int = 3,
               create: bool = True) -> BenchStudy:
    """Create or reopen (``load_if_exists``) the study on an RDB storage with heartbeats.

    ``storage`` is an SQLAlchemy URL (default: ``sqlite:///<out_dir>/bench.db``); a killed
    worker's trials go back to the queue (up to ``max_retry`` times) once their heartbeat is
    older than ``grace_period`` (default: two intervals). ``create=False``: the study must exist.
    """
    import optuna

    if not logging.getLogger().isEnabledFor(logging.DEBUG):   # "[I ...] Using an existing study": --debug only
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = normalise_storage_url(storage or _default_storage(out_dir, study_name))
    made = NewPaths(*sqlite_files(url))     # and the default's folder: a failed open (no such study) removes them
    if storage is None:
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        return _open_study(study_name, url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                           max_retry=max_retry, create=create)
    except BaseException:
        if not _has_studies(url):      # another process's new study, made meanwhile, stays
            made.remove()
        raise


def _open_study(study_name: str, url: str, *, heartbeat_interval: int, grace_period: int | None, max_retry: int,
                create: bool) -> BenchStudy:
    import optuna

    if url.startswith("sqlite://") and url[len("sqlite://"):] in ("", "/:memory:"):
        log.warning("storage %s is in memory: the study is lost when this process ends and cannot be resumed "
                    "or shared (give sqlite:///file.db)", url)
    engine_kwargs = _engine_kwargs(url)
    grace = grace_period or 2 * heartbeat_interval
    def make_storage():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                grace_period=grace,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry))

    try:
        for attempt in range(_CREATION_RETRIES):
            try:
                rdb = make_storage()
                break
            except Exception as exc:
                # two processes opening a new database at once both create its tables and stamp its
                # schema version; the loser's "table ... already exists" or "UNIQUE constraint failed:
                # alembic_version" (an IntegrityError) only means the other one got there first: join it
                if attempt + 1 == _CREATION_RETRIES or not _lost_creation_race(exc):
                    raise
                time.sleep(0.5 * (attempt + 1))
    except ImportError as exc:   # optuna wraps it: "Failed to import DB access module ..."
        raise ConfigError(f"cannot use the storage {masked_url(url)}: its database driver is not installed ({exc})",
                          hint="pip install 'finetune-advisor[postgres]' (psycopg2-binary) for postgresql://, "
                               "or PyMySQL for mysql+pymysql://") from None
    except Exception as exc:
        if not _is_db_error(exc):
            raise
        raise ConfigError(f"cannot open the storage {masked_url(url)}: {_db_reason(exc)}",
                          hint="check that the database server is up and reachable and the URL's user, password "
                               "and database are right") from None
    if create:
        study = optuna.create_study(study_name=study_name, storage=rdb, direction="maximize", load_if_exists=True)
    else:
        try:
            study = optuna.load_study(study_name=study_name, storage=rdb)
        except KeyError:
            raise ConfigError(f"no study named {study_name!r} in {masked_url(url)}",
                              hint="start it with 'finetune-advisor bench run' (Python: run_bench)") from None
    return BenchStudy(study, rdb, url, heartbeat_interval, grace)


def _engine_kwargs(url: str) -> dict[str, Any]:
    """SQLite: wait up to 60 s for a lock. PostgreSQL / MySQL: connect and statement timeouts."""
    if url.startswith("sqlite:"):
        return {"connect_args": {"timeout": 60}}
    if url.startswith(("postgresql://", "postgresql+psycopg")):   # libpq's parameters (psycopg2 and 3)
        return {"connect_args": {"connect_timeout": int(CONNECT_TIMEOUT_S),
                                 "options": f"-c statement_timeout={int(STATEMENT_TIMEOUT_S * 1000)}"},
                "pool_pre_ping": True}
    if url.startswith("mysql"):
        return {"connect_args": {"connect_timeout": int(CONNECT_TIMEOUT_S)}, "pool_pre_ping": True}
    return {}


_CREATION_RETRIES = 5


def _lost_creation_race(exc: BaseException) -> bool:
    """Whether ``exc`` is what a process gets when another created the same new database first."""
    try:
        import sqlalchemy.exc
    except ImportError:  # pragma: no cover - optuna needs it
        return False
    text = str(exc)
    return isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError,
                            sqlalchemy.exc.IntegrityError)) and \
        ("already exists" in text or "UNIQUE constraint" in text or "duplicate key" in text
         or "database is locked" in text)


def _is_db_error(exc: BaseException) -> bool:
    try:
        import sqlalchemy.exc
    except ImportError:  # pragma: no cover - optuna needs it
        return False
    return isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))


def _db_reason(exc: BaseException) -> str:
    """The driver's first line ("timeout expired", "Connection refused", ...)."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    return text[:300] if text else type(orig).__name__


class Heartbeat:
    """Record a trial's heartbeat every ``interval`` s (public ``RDBStorage.record_heartbeat``)."""

    def __init__(self, rdb, trial_id: int, interval: float):
        self.rdb, self.trial_id, self.interval = rdb, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while True:
            try:
                self.rdb.record_heartbeat(self.trial_id)
            except Exception as exc:  # keep training; the trial may be retried if this persists
                log.debug("heartbeat failed: %s", exc)
            if self.stop.wait(self.interval):
                return

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def requeue_dead_trials(bench: BenchStudy, study_id: int) -> None:
    """Fail the trials of dead workers and re-queue them (the storage's retry callback).

    Optuna's ``fail_stale_trials`` covers trials whose heartbeat went stale. A worker killed
    between claiming a trial and its first heartbeat leaves a RUNNING trial with no heartbeat,
    which Optuna never calls stale; such a trial has no :data:`CLAIM_ATTR` for its own number
    (a re-queued copy inherits its predecessor's) and is failed once older than the grace period.
    """
    import optuna
    from optuna.trial import TrialState

    study, rdb = bench.study, bench.storage
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "heartbeat is supposed to be used with Study.optimize"
        optuna.storages.fail_stale_trials(study)
    now = datetime.datetime.now()       # the storage stamps datetime_start with the local clock
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(CLAIM_ATTR) == t.number or t.datetime_start is None:
            continue
        if (now - t.datetime_start).total_seconds() <= bench.grace_period:
            continue
        trial_id = rdb.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if not rdb.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            continue
        log.warning("bench: trial %d (%s) was claimed by a worker that died before its first heartbeat; "
                    "re-queued", t.number, t.user_attrs.get("key"))
        retry = rdb.get_heartbeat_stale_trial_callback()
        if retry is not None:
            retry(study, rdb.get_trial(trial_id))


@contextlib.contextmanager
def claim_lock(url: str) -> Iterator[None]:
    """SQLite: serialise ``ask()`` across processes with a file lock next to the database.

    Optuna's claim (read WAITING, then set RUNNING) is one locked transaction on PostgreSQL and
    MySQL (``SELECT ... FOR UPDATE``), but not on SQLite, where two processes can pop the same
    trial; the lock closes that gap. Other URLs: no lock."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        yield
        return
    import fcntl
    with open(url[len("sqlite:///"):] + ".claim.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def claim_trial(study: "BenchStudy") -> tuple[Any, int]:
    """Claim the next trial (the oldest WAITING one, else a new one): ``(trial, trial_id)``.

    ``ask()`` under :func:`claim_lock`, then at once the first heartbeat (from there on Optuna's
    stale check covers the trial) and :data:`CLAIM_ATTR` (see :func:`requeue_dead_trials`).
    Ctrl-C waits until the claim is whole (a half-made claim would stay RUNNING unseen), then
    fails the claimed trial, so that the next run re-queues it, and is raised."""
    from optuna.trial import TrialState

    rdb = study.storage
    trial, interrupted = None, False
    with claim_lock(study.url), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "heartbeat is supposed to be used with Study.optimize"
        try:
            with deferred_interrupt():
                trial = study.ask()
                trial_id = rdb.get_trial_id_from_study_id_trial_number(study.study_id, trial.number)
                rdb.record_heartbeat(trial_id)
                trial.set_user_attr(CLAIM_ATTR, trial.number)
        except KeyboardInterrupt:          # raised as the block ends: the claim is whole
            interrupted = True
    if interrupted:
        if trial is not None:
            with deferred_interrupt():
                trial.set_user_attr("error", "interrupted (Ctrl-C) as it was claimed")
                study.tell(trial, state=TrialState.FAIL)
        raise KeyboardInterrupt
    return trial, trial_id
