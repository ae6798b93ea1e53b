"""Bench runs: kill/resume, failing and missing baselines, argument checks, one real run."""
from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

import pytest

from finetune_advisor import bench
from finetune_advisor.bench import BenchDataset, BenchProfile, open_study, run_bench


@pytest.mark.parametrize("flag, value, message", [("--parameters", "bogus", "unknown parameter(s) bogus"),
                                                   ("--anchors", "nah", "unknown anchor(s) nah"),
                                                   ("--head-epochs", "-1", "must be positive")])
def test_cli_bench_run_rejects_unknown_parameters_anchors_and_bad_schedules(tmp_path, capsys, flag, value, message):
    from finetune_advisor.cli import main
    assert main(["bench", "run", "--study", "x", "--out", str(tmp_path / "o"), flag, value]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()


# --- kill / resume --------------------------------------------------------------------------------

def _n_complete(db) -> int:
    """COMPLETE trials in an SQLite study file, read without touching its schema (0 before it exists)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:       # tables not created yet, or locked for a moment
        return 0


def test_killed_run_resumes_without_loss_or_duplication(tmp_path, helper, time_cap):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    log = tmp_path / "log1.jsonl"
    proc = subprocess.Popen([sys.executable, str(tmp_path / "bench_helper.py"), "run", url, str(tmp_path)],
                            env=helper.env(log, sleep="0.15"))
    deadline = time.monotonic() + time_cap(900)      # a cap against a hang; the wait ends on the 5th trial
    while proc.poll() is None and time.monotonic() < deadline and _n_complete(tmp_path / "b.db") < 5:
        time.sleep(0.3)      # read-only polling: opening the storage here would race its creation
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    study = open_study("t", url, create=False)
    assert study is not None
    before = {t.user_attrs["key"]: (t.number, t.value) for t in study.get_trials() if t.state.name == "COMPLETE"}
    assert len(before) >= 5
    n_grid = study.user_attrs["n_grid"]
    assert len(before) < n_grid, "the run finished before the kill; slow the fake trainer down"
    time.sleep(2.5)  # let the killed trial's heartbeat go stale

    ran: list[str] = []

    def counting_train(config, dataset, *, fraction, seed, profile):
        ran.append((dataset.name, fraction, seed, config.lr, config.weight_decay))
        return helper.fake_train(config, dataset, fraction=fraction, seed=seed, profile=profile)

    def no_advise(*a, **k):
        raise AssertionError("baselines must come from the study on resume")

    out = run_bench("t", url, datasets=helper.datasets(tmp_path), fractions=[0.2, 1.0], seeds=[0, 1],
                    grid=helper.SMALL_GRID, advise_fn=no_advise, run_trial_fn=counting_train,
                    heartbeat_interval=1, grace_period=2, out_dir=tmp_path / "out", progress=False)
    study = out["study"]
    done = helper.keys(study)
    assert len(done) == len(set(done)) == n_grid                       # no loss, no duplicate
    after = {t.user_attrs["key"]: (t.number, t.value) for t in study.get_trials() if t.state.name == "COMPLETE"}
    assert all(after[k] == v for k, v in before.items())               # finished trials untouched
    assert len(ran) == n_grid - len(before)                            # never recomputed
    assert out["status"]["n_remaining"] == 0 and out["status"]["duplicate_complete_keys"] == 0
    # a third run does nothing
    again = run_bench("t", url, datasets=helper.datasets(tmp_path), fractions=[0.2, 1.0], seeds=[0, 1],
                      grid=helper.SMALL_GRID, advise_fn=no_advise, run_trial_fn=counting_train,
                      out_dir=tmp_path / "out", progress=False, write=False)
    assert again["ran"] == 0 and len(helper.keys(again["study"])) == n_grid


def test_spawned_workers_share_the_queue_and_finish_it_once(tmp_path, helper):
    import json

    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = open_study("t", url)
    bench.prepare_study(study, helper.datasets(tmp_path), fractions=[0.2, 1.0], seeds=[0, 1], grid=helper.SMALL_GRID,
                        advise_fn=helper.fake_advise)
    log = tmp_path / "log.jsonl"
    import os
    os.environ.update(helper.env(log, sleep="0.2"))      # spawn_workers passes the environment on
    try:
        codes = bench.spawn_workers("t", url, 2, threads=1, stagger_s=0.5,
                                    command=[sys.executable, str(tmp_path / "bench_helper.py"), "work", url,
                                             str(tmp_path)])
    finally:
        for k in ("BENCH_TEST_LOG", "BENCH_TEST_SLEEP"):
            os.environ.pop(k, None)
    assert codes == [0, 0]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    done = helper.keys(open_study("t", url, create=False))
    assert len(done) == len(set(done)) == study.user_attrs["n_grid"] == len(rows)   # every trial once
    assert len({r["pid"] for r in rows}) == 2 and {r["threads"] for r in rows} == {"1"}


def test_cli_bench_workers_spawns_that_many_and_rejects_zero(tmp_path, helper, monkeypatch, capsys):
    from finetune_advisor.cli import main

    url = f"sqlite:///{tmp_path / 'b.db'}"
    bench.prepare_study(open_study("t", url), helper.datasets(tmp_path), fractions=[1.0], seeds=[0],
                        grid=helper.SMALL_GRID, advise_fn=helper.fake_advise)
    calls = []
    monkeypatch.setattr(bench, "spawn_workers", lambda *a, **k: calls.append((a, k)) or [0, 0, 0])
    assert main(["bench", "run", "--worker", "--study", "t", "--storage", url, "--out", str(tmp_path / "o"),
                 "--workers", "3", "--threads", "2"]) == 0
    (name, storage, n), options = calls[0]
    assert (name, n, options["threads"]) == ("t", 3, 2) and storage.endswith("b.db")
    assert main(["bench", "run", "--worker", "--study", "t", "--storage", url, "--workers", "0"]) == 1
    assert "--workers and --threads must be at least 1, got 0 and 1" in capsys.readouterr().err


def test_a_dataset_whose_baseline_fails_is_reported_and_the_others_run(tmp_path, helper, capsys):
    from finetune_advisor.cli import main
    from finetune_advisor.exceptions import LRFinderError

    def flaky_advise(dataset, fraction, profile, options=None):
        if dataset.name == "far":
            raise LRFinderError("LR range test on far failed: the smoothed loss never decreases")
        return helper.fake_advise(dataset, fraction, profile, options)

    url = f"sqlite:///{tmp_path / 'f.db'}"
    out = run_bench("flaky", url, datasets=helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={},
                    anchors=(), advise_fn=flaky_advise, run_trial_fn=helper.fake_train, progress=False,
                    write=False)
    st = out["status"]
    assert st["n_grid"] == 1 and st["n_done"] == 1 and set(st["done_by_dataset"]) == {"near"}
    assert "never decreases" in st["failed_datasets"]["far"]
    assert main(["bench", "status", "--study", "flaky", "--storage", url]) == 0
    assert "no baseline: far: 100% of the data: LR range test on far failed" in capsys.readouterr().out
    # the next run retries it: with a baseline now, its trials are added and run
    out = run_bench("flaky", url, datasets=helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={},
                    anchors=(), advise_fn=helper.fake_advise, run_trial_fn=helper.fake_train, progress=False,
                    write=False)
    assert out["status"]["n_done"] == 2 and out["status"]["failed_datasets"] == {}


def test_a_run_where_no_dataset_has_a_baseline_is_an_error_not_an_empty_success(tmp_path, capsys, monkeypatch):
    from finetune_advisor.cli import main
    from finetune_advisor.exceptions import DatasetError, SimilarityReferenceError

    def no_reference(dataset, fraction, profile, options=None):
        raise SimilarityReferenceError("cannot download Tiny-ImageNet")

    with pytest.raises(DatasetError, match="nothing to benchmark.*far: 100% of the data: cannot download"):
        run_bench("none", f"sqlite:///{tmp_path / 'n.db'}", datasets=[BenchDataset("far", tmp_path, False, "custom")],
                  fractions=[1.0], seeds=[0], advise_fn=no_reference, progress=False)
    empty = tmp_path / "empty-shared"
    empty.mkdir()
    monkeypatch.setenv(bench.SHARED_DATA_ENV, str(empty))      # every reference dataset missing
    assert main(["bench", "run", "--study", "m", "--out", str(tmp_path / "m"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: none of the 7 datasets is on this machine") and "FINETUNE_ADVISOR_DATA_" in err[-1]
    assert not (tmp_path / "m").exists()                       # nothing left behind


# --- one real run ---------------------------------------------------------------------------------

def test_real_tiny_end_to_end(tmp_path):
    from finetune_advisor.testing import make_folder_dataset
    root = make_folder_dataset(tmp_path / "data", {"a": 12, "b": 12}, size=(24, 24))
    tiny = BenchProfile("tiny", "cpu", image_size=32, head_epochs=1, unfrozen_epochs=1, batch_size=8,
                        max_images_per_class=None)
    out = run_bench("real", f"sqlite:///{tmp_path / 'r.db'}",
                    datasets=[BenchDataset("toy", root, False, "custom")], fractions=[1.0], seeds=[0],
                    profile=tiny, grid={"weight_decay": (0.0,)}, anchors=("fastai_fine_tune",),
                    advise_options={"backbone": "resnet18", "pretrained": False, "similarity": False,
                                    "lr_steps": 10},
                    out_dir=tmp_path / "o", progress=False)
    st = out["status"]
    assert st["n_grid"] == 3 and st["n_done"] == 3, st
    import pandas as pd
    df = pd.read_csv(out["files"]["results"])
    assert df["metric"].between(0, 1).all() and (df["wall_time_s"] > 0).all()
    assert set(df["epochs_to_best"]) <= {1, 2}


@pytest.mark.parametrize("args, message", [(["--fractions", "0", "2"], "fractions must be distinct numbers in (0, 1]"),
                                           (["--fractions", "0.2", "0.2"], "fractions must be distinct"),
                                           (["--seeds", "0"], "seeds must be at least 1")])
def test_cli_bench_run_rejects_bad_fractions_and_seeds_before_any_work(tmp_path, capsys, args, message):
    from finetune_advisor.cli import main
    assert main(["bench", "run", "--study", "x", "--out", str(tmp_path / "o"), *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[0] and err[0].startswith("error: ") and not (tmp_path / "o").exists()


def test_run_bench_checks_fractions_and_seeds_first(tmp_path):
    from finetune_advisor.exceptions import ConfigError

    def never(*a, **k):
        raise AssertionError("no work before the arguments are checked")

    for kw in ({"fractions": [0.0]}, {"seeds": 0}, {"seeds": [1, 1]}, {"seeds": [-1]}):
        with pytest.raises(ConfigError):
            run_bench("x", out_dir=tmp_path / "o", datasets=[BenchDataset("d", tmp_path, False, "custom")],
                      advise_fn=never, run_trial_fn=never, progress=False, **kw)
    assert not (tmp_path / "o").exists()


def test_spawned_workers_get_the_storage_url_through_the_environment_not_argv(monkeypatch):
    from finetune_advisor.bench import worker
    from finetune_advisor.storage_url import STORAGE_ENV
    seen = []

    class FakeProcess:
        def __init__(self, argv, env, stdout):
            seen.append((argv, env))

        def wait(self):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(worker.subprocess, "Popen", FakeProcess)
    url = "postgresql://alice:hunter2@db.example/bench"
    assert worker.spawn_workers("s", url, 2, stagger_s=0) == [0, 0]
    assert len(seen) == 2
    for argv, env in seen:
        assert not any("hunter2" in a for a in argv) and "--storage" not in argv    # ps shows argv
        assert env[STORAGE_ENV] == url
