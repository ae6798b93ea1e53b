"""Bench storage: dead workers' trials re-queued, two workers never run the same trial (SQLite, PostgreSQL)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings

from finetune_advisor import bench
from finetune_advisor.bench import open_study, prepare_study


def test_trial_claimed_by_a_worker_that_died_before_its_first_heartbeat_is_requeued(tmp_path, helper):
    # The window the SIGKILL test hits only sometimes: ask() has set the trial RUNNING, no
    # heartbeat has been recorded yet, and Optuna never calls such a trial stale.
    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = open_study("t", url, heartbeat_interval=1, grace_period=1)
    prepare_study(study, helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={"weight_decay": (0.01,)},
                  advise_fn=helper.fake_advise)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # "heartbeat is supposed to be used with Study.optimize"
        orphan = study.ask()               # claimed, then the "worker" dies
    key = orphan.user_attrs["key"]
    n_grid = study.user_attrs["n_grid"]
    time.sleep(1.5)                        # older than the grace period

    ran = bench.run_worker(study, run_trial_fn=helper.fake_train, progress=False)
    assert ran == n_grid
    done = helper.keys(study)
    assert len(done) == len(set(done)) == n_grid and key in done
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[orphan.number] == "FAIL"
    assert "RUNNING" not in states.values()
    # a live worker's claim is never taken for dead: each trial that ran carries its own number
    assert all(t.user_attrs[bench.CLAIM_ATTR] == t.number for t in study.get_trials() if t.state.name == "COMPLETE")


def test_ctrl_c_while_a_trial_is_claimed_fails_it_for_the_next_run(tmp_path, helper, monkeypatch):
    # The window a loaded machine hits: SIGINT arrives between ask() and the claim's end. The claim
    # completes, then the trial is failed (re-queued by the next run), never left RUNNING.
    import os
    import signal

    import pytest
    from finetune_advisor.bench.storage import claim_trial

    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = open_study("t", url)
    prepare_study(study, helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={"weight_decay": (0.01,)},
                  advise_fn=helper.fake_advise)
    ask = study.ask

    def ask_then_ctrl_c(*a, **k):
        trial = ask(*a, **k)
        os.kill(os.getpid(), signal.SIGINT)      # deferred until the claim is whole
        return trial

    monkeypatch.setattr(study, "ask", ask_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        claim_trial(study)
    (trial,) = [t for t in study.get_trials() if t.state.name != "WAITING"]
    assert trial.state.name == "FAIL" and trial.user_attrs["error"] == "interrupted (Ctrl-C) as it was claimed"
    assert trial.user_attrs[bench.CLAIM_ATTR] == trial.number
    monkeypatch.undo()
    prepare_study(study, helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={"weight_decay": (0.01,)},
                  advise_fn=helper.fake_advise)                                     # the next run re-queues it
    bench.run_worker(study, run_trial_fn=helper.fake_train, progress=False)
    done = helper.keys(study)
    assert len(done) == len(set(done)) == study.user_attrs["n_grid"] and trial.user_attrs["key"] in done


# --- two workers ----------------------------------------------------------------------------------

def _two_workers(tmp_path, url, helper):
    study = open_study("t", url, heartbeat_interval=1, grace_period=2)
    prepare_study(study, helper.datasets(tmp_path), fractions=[0.2, 1.0], seeds=[0, 1], grid=helper.SMALL_GRID,
                  advise_fn=helper.fake_advise)
    log = tmp_path / "workers.jsonl"
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "bench_helper.py"), "work", url, str(tmp_path)],
                              env=helper.env(log, sleep="0.05")) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    cells = [(r["ds"], r["fraction"], r["seed"], r["lr"], r["wd"]) for r in runs]
    assert len(cells) == len(set(cells)) == study.user_attrs["n_grid"]     # each trial run once
    assert len({r["pid"] for r in runs}) == 2                               # both workers worked
    done = helper.keys(study)
    assert len(done) == len(set(done)) == study.user_attrs["n_grid"]


def test_two_workers_sqlite_never_run_the_same_trial(tmp_path, helper):
    _two_workers(tmp_path, f"sqlite:///{tmp_path / 'b.db'}", helper)


def test_two_workers_postgresql_never_run_the_same_trial(tmp_path, helper, postgres_url):
    _two_workers(tmp_path, postgres_url, helper)


# --- the advertised postgresql:// URL, timeouts, Ctrl-C ------------------------------------------

def test_postgresql_url_as_help_advertises_it_works(tmp_path, helper, postgres_url, capsys):
    from finetune_advisor.bench.storage import normalise_storage_url
    from finetune_advisor.cli import main
    plain = postgres_url.replace("postgresql+psycopg2://", "postgresql://", 1)   # the form --help shows
    assert normalise_storage_url(plain).startswith(("postgresql+psycopg2://", "postgresql://"))
    study = open_study("t", plain, heartbeat_interval=1, grace_period=2)
    prepare_study(study, helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={"weight_decay": (0.01,)},
                  advise_fn=helper.fake_advise)
    assert bench.run_worker(study, run_trial_fn=helper.fake_train, progress=False) == study.user_attrs["n_grid"]
    assert main(["bench", "status", "--study", "t", "--storage", plain]) == 0
    assert "trials done" in capsys.readouterr().out


def test_postgresql_url_gets_the_installed_driver(monkeypatch):
    import importlib.util

    from finetune_advisor.bench.storage import _engine_kwargs, normalise_storage_url
    real = importlib.util.find_spec
    have = {"psycopg": False, "psycopg2": True}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (object() if have[name] else None)
                        if name in have else real(name, *a))
    assert normalise_storage_url("postgresql://me@db/bench") == "postgresql+psycopg2://me@db/bench"
    assert normalise_storage_url("postgresql+pg8000://me@db/b") == "postgresql+pg8000://me@db/b"  # as given
    have["psycopg"] = True                         # psycopg 3 installed: SQLAlchemy's default works
    assert normalise_storage_url("postgresql://me@db/bench") == "postgresql://me@db/bench"
    args = _engine_kwargs("postgresql+psycopg2://me@db/bench")["connect_args"]
    assert args["connect_timeout"] > 0 and args["options"].startswith("-c statement_timeout=")


def test_postgresql_without_a_driver_says_how_to_install_it(monkeypatch):
    import pytest

    from finetune_advisor.exceptions import ConfigError
    monkeypatch.setitem(sys.modules, "psycopg2", None)     # importing it fails
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError, match=r"driver is not installed.*finetune-advisor\[postgres\]"):
        open_study("t", "postgresql+psycopg2://me:secret@127.0.0.1:1/bench")


class _SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def test_a_server_that_never_answers_times_out_with_one_line(monkeypatch):
    import pytest

    from finetune_advisor.bench import storage
    from finetune_advisor.exceptions import ConfigError
    pytest.importorskip("psycopg2")
    monkeypatch.setattr(storage, "CONNECT_TIMEOUT_S", 2)
    server = _SilentServer()
    try:
        start = time.monotonic()
        with pytest.raises(ConfigError) as info:
            open_study("t", f"postgresql://me:secret@127.0.0.1:{server.port}/bench")
        took = time.monotonic() - start
    finally:
        server.close()
    msg = str(info.value)
    assert took < 15, took                       # not minutes (Optuna may try more than once)
    assert f"127.0.0.1:{server.port}" in msg and "secret" not in msg and "timeout" in msg.lower()
    assert "\n" not in msg.split(" (hint")[0]


def test_ctrl_c_while_the_server_never_answers_exits_130(tmp_path, time_cap):
    import os
    import signal

    import pytest
    pytest.importorskip("psycopg2")
    server = _SilentServer()
    code = ("import sys; from finetune_advisor.bench import storage; storage.CONNECT_TIMEOUT_S = 3; "
            "from finetune_advisor.cli import main; "
            f"sys.exit(main(['bench', 'status', '--study', 't', '--storage', "
            f"'postgresql://me@127.0.0.1:{server.port}/bench']))")
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + time_cap(300)      # a cap; the wait ends on the connection
        while len(server.conns) == 0 and proc.poll() is None and time.monotonic() < deadline:   # it is waiting on the server
            time.sleep(0.05)
        assert server.conns, "the command never connected"
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err[-500:])
    assert took < 8, took


# --- what a failed open leaves, and a tune study read by bench ----------------------------------------

def test_joining_a_study_that_does_not_exist_leaves_no_bench_db(tmp_path, capsys, monkeypatch):
    import pytest

    from finetune_advisor.cli import main
    from finetune_advisor.exceptions import ConfigError
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "run", "--worker", "--study", "nope", "-q"]) == 1       # the default bench/nope/bench.db
    assert "no study named 'nope'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    db = tmp_path / "given.db"
    with pytest.raises(ConfigError, match="no study named"):
        open_study("nope", f"sqlite:///{db}", create=False)
    assert list(tmp_path.iterdir()) == []
    open_study("there", f"sqlite:///{db}")
    with pytest.raises(ConfigError, match="no study named"):                          # a database with a study stays
        open_study("nope", f"sqlite:///{db}", create=False)
    assert db.is_file()


def test_bench_status_on_a_tune_study_counts_its_trials_by_state(tmp_path, capsys):
    import optuna
    from optuna.trial import TrialState, create_trial

    from finetune_advisor.cli import main
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    study = open_study("tune", url)
    study.set_user_attr("tune_version", 1)            # what tune marks its studies with
    study.set_user_attr("budget", "5x")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)}
    for value, state in ((0.8, TrialState.COMPLETE), (0.9, TrialState.COMPLETE), (None, TrialState.PRUNED)):
        study.study.add_trial(create_trial(params={"lr": 1e-3}, distributions=dist, value=value, state=state,
                                           intermediate_values={1: 0.5} if state == TrialState.PRUNED else None))
    assert main(["bench", "status", "--study", "tune", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "a tune study (made by 'finetune-advisor tune'), not a bench sweep: 3 trials, budget 5x" in out
    assert "states: COMPLETE 2, PRUNED 1" in out and "best value 0.9000 (trial 1)" in out
    assert "0/0" not in out
    assert main(["bench", "status", "--study", "tune", "--storage", url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["kind"] == "tune" and status["n_trials"] == 3 and "n_grid" not in status
    assert main(["bench", "outputs", "--study", "tune", "--storage", url, "--out", str(tmp_path / "o")]) == 1
    assert "is a tune study, not a bench sweep" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_a_baseline_trained_otherwise_than_advised_keeps_both_configs_and_the_status_says_so(tmp_path, helper):
    """Issue 26: a 28 px dataset advised 48 px was trained at the bench's 64 px, and a head-only
    config advised 4 head epochs was stored as '2+2'; both configs are kept and reported."""
    from finetune_advisor.bench.adapted import read_adapted
    from finetune_advisor.bench.records import read_baselines
    from finetune_advisor.cli.output import format_bench_status
    from finetune_advisor.config import Config

    advice = {"near": Config(profile="cpu", image_size=48, head_epochs=2, unfrozen_epochs=2),
              "far": Config(profile="cpu", image_size=64, fine_tune="none", head_epochs=4, unfrozen_epochs=0),
              "same": Config(profile="cpu", image_size=64, head_epochs=2, unfrozen_epochs=2)}
    datasets = [*helper.datasets(tmp_path), bench.BenchDataset("same", tmp_path, False, "custom")]
    study = open_study("t", f"sqlite:///{tmp_path / 'b.db'}")
    prepare_study(study, datasets, fractions=[1.0], seeds=[0], grid={}, anchors=(),
                  advise_fn=lambda d, f, prof, opts: advice[d.name])
    trained = read_baselines(study)
    assert trained["near"].image_size == 64
    assert (trained["far"].head_epochs, trained["far"].unfrozen_epochs) == (4, 0)   # head-only keeps its budget
    assert read_adapted(study) == {"near|1": {"image_size": [48, 64]}}
    assert json.loads(study.user_attrs["advised:near|1"])["image_size"] == 48      # the advice itself, kept
    status = bench.study_status(study)
    assert status["trained_otherwise_than_advised"] == {"near|1": {"image_size": [48, 64]}}
    assert "trained otherwise than advised, to fit the bench profile: near|1: image_size 48 -> 64" \
        in format_bench_status(status)
