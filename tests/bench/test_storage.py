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
