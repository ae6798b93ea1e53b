"""Bench runner: grid expansion, kill/resume, two workers (SQLite, PostgreSQL), outputs, one real run."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from finetune_advisor import bench
from finetune_advisor.bench import BenchDataset, BenchProfile, expand_grid, open_study, prepare_study, run_bench
from finetune_advisor.config import Config

SMALL_GRID = {"lr": (-1.0, 0.0, 1.0), "weight_decay": (0.01, 0.1)}

# Helper module shared by the in-process tests and the subprocess workers.
HELPER = textwrap.dedent('''
    import os, sys, time, json
    from pathlib import Path
    from finetune_advisor import bench
    from finetune_advisor.config import Config

    def fake_advise(dataset, fraction, profile, options=None):
        far = dataset.name.endswith("far")
        return Config(profile="cpu", lr=1e-3, lr_finetune=1e-4,
                      measurements={"far": far, "lr_find": 1e-2 if far else 1e-3,
                                    "lr_finder": {"fastai_valley": 5e-4}})

    def fake_train(config, dataset, *, fraction, seed, profile):
        log = os.environ.get("BENCH_TEST_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(json.dumps({"pid": os.getpid(), "lr": config.lr, "wd": config.weight_decay,
                                     "ds": dataset.name, "fraction": fraction, "seed": seed}) + "\\n")
        time.sleep(float(os.environ.get("BENCH_TEST_SLEEP", "0")))
        metric = 0.5 + 0.1 * fraction - abs(config.weight_decay - 0.01) + 0.01 * seed - 0.2 * abs(config.lr - 3e-3)
        return {"metric": metric, "metric_name": "accuracy", "valid_loss": 1 - metric,
                "epochs_to_best": 2, "wall_time_s": 0.01}

    def datasets(root):
        return [bench.BenchDataset("near", Path(root), False, "custom"),
                bench.BenchDataset("far", Path(root), False, "custom")]

    if __name__ == "__main__":
        mode, url, root = sys.argv[1], sys.argv[2], sys.argv[3]
        study = bench.open_study("t", url, heartbeat_interval=1, grace_period=2)
        if mode == "run":
            bench.prepare_study(study, datasets(root), fractions=[0.2, 1.0], seeds=[0, 1],
                                grid={"lr": (-1.0, 0.0, 1.0), "weight_decay": (0.01, 0.1)},
                                advise_fn=fake_advise)
        bench.run_worker(study, run_trial_fn=fake_train, datasets=datasets(root), progress=False)
''')


@pytest.fixture()
def helper(tmp_path, monkeypatch):
    (tmp_path / "bench_helper.py").write_text(HELPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    mod = importlib.import_module("bench_helper")
    mod = importlib.reload(mod)
    return mod


def _keys(study, state="COMPLETE"):
    return [t.user_attrs["key"] for t in study.get_trials(deepcopy=False)
            if t.state.name == state and "key" in t.user_attrs]


def _env(log=None, sleep="0"):
    env = dict(os.environ, BENCH_TEST_SLEEP=sleep, PYTHONPATH=os.pathsep.join(sys.path))
    if log:
        env["BENCH_TEST_LOG"] = str(log)
    return env


# --- grid ---------------------------------------------------------------------------------------

def test_grid_expands_to_exact_trial_list():
    near = Config(profile="cpu", lr=1e-3, lr_finetune=1e-4,
                  measurements={"far": False, "lr_finder": {"fastai_valley": 5e-4}})
    far = Config(profile="cpu", lr=1e-3, lr_finetune=1e-4, measurements={"far": True})
    specs = expand_grid({("near", 0.2): near, ("far", 1.0): far}, seeds=[0, 1])
    labels = ["baseline", "lr x10^-1", "lr x10^-0.5", "lr x10^0", "lr x10^+0.5", "lr x10^+1",
              "lr_divisor=10", "lr_divisor=5", "lr_divisor=3", "weight_decay=0.01", "weight_decay=0.1",
              "weight_decay=0", "beta2=0.9", "beta2=0.95", "beta2=0.99", "dropout_p1=0.75",
              "dropout_p1=0.5", "dropout_p1=0.25", "anchor:fastai_fine_tune"]
    expected = [f"near|0.2|{lab}|{s}" for s in (0, 1) for lab in labels + ["anchor:lr_find_valley",
                                                                          "anchor:no_similarity_rule"]]
    expected += [f"far|1|{lab}|{s}" for s in (0, 1) for lab in labels + ["anchor:no_similarity_rule"]]
    assert [s.key for s in specs] == expected
    alias = {s.key: s.same_as for s in specs if s.same_as}
    # near: lr x10^0, divisor 10, wd 0.1, beta2 0.99, p1 0.5 and the no-/10 anchor are the baseline
    assert {k for k in alias if k.startswith("near|0.2|") and k.endswith("|0")} == {
        f"near|0.2|{lab}|0" for lab in ("lr x10^0", "lr_divisor=10", "weight_decay=0.1", "beta2=0.99",
                                        "dropout_p1=0.5", "anchor:no_similarity_rule")}
    # far: the baseline is lr_find/10, so lr x10^-1 is the baseline and the no-/10 anchor is lr x10^0
    assert alias["far|1|lr x10^-1|0"] == "far|1|baseline|0"
    assert alias["far|1|anchor:no_similarity_rule|0"] == "far|1|lr x10^0|0"
    assert "far|1|lr x10^0|0" not in alias
    by = {s.key: s for s in specs}
    assert by["near|0.2|lr x10^+1|0"].config.lr == pytest.approx(1e-2)
    assert by["near|0.2|lr x10^+1|0"].config.lr_finetune == pytest.approx(1e-3)
    assert by["far|1|lr x10^0|0"].config.lr == pytest.approx(1e-2)
    assert by["near|0.2|dropout_p1=0.25|0"].config.dropout == (0.25, 0.25)
    assert by["near|0.2|anchor:lr_find_valley|0"].config.lr == pytest.approx(5e-4)
    ft = by["near|0.2|anchor:fastai_fine_tune|1"].config
    assert (ft.lr, ft.lr_finetune, ft.lr_divisor, ft.weight_decay) == (2e-3, 1e-3, 100.0, 0.01)
    assert sum(s.same_as is None for s in specs) == 2 * 15 + 2 * 14   # near: 1 + 4 lr + 8 + 2 anchors; far: no valley


def test_far_divisor_in_sync_with_heuristics():
    from finetune_advisor import heuristics
    assert bench.LR_FAR_DIVISOR == heuristics.LR_FAR_DIVISOR


def test_custom_profile_overrides_the_schedule_and_names_it():
    prof = bench.custom_profile("cpu", head_epochs=5, unfrozen_epochs=15, image_size=None)
    assert (prof.head_epochs, prof.unfrozen_epochs, prof.image_size) == (5, 15, 64)
    assert prof.name == "cpu+head_epochs=5,unfrozen_epochs=15" and prof.config_profile == "cpu"
    assert bench.custom_profile("paper") is bench.BENCH_PROFILES["paper"]
    with pytest.raises(bench.ConfigError):
        bench.custom_profile("cpu", image_size=0)


@pytest.mark.parametrize("flag, value, message", [("--parameters", "bogus", "unknown parameter(s) bogus"),
                                                   ("--anchors", "nah", "unknown anchor(s) nah"),
                                                   ("--head-epochs", "-1", "must be positive")])
def test_cli_bench_run_rejects_unknown_parameters_anchors_and_bad_schedules(tmp_path, capsys, flag, value, message):
    from finetune_advisor.cli import main
    assert main(["bench", "run", "--study", "x", "--out", str(tmp_path / "o"), flag, value]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_registry_reports_amazon_missing_and_finds_standins(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    for ref in bench.REFERENCE_DATASETS.values():
        if ref.standin and not ref.smoke_test:
            (shared / ref.standin).mkdir(parents=True)
    monkeypatch.delenv("FINETUNE_ADVISOR_DATA_PETS", raising=False)
    ds = {d.name: d for d in bench.resolve_datasets(shared_data=shared, extra={"mine": tmp_path})}
    assert len(ds) == 8 and ds["amazon"].origin == "missing" and "kaggle" in ds["amazon"].note
    assert sum(d.origin == "stand-in" for d in ds.values()) == 6
    assert {n for n, r in bench.REFERENCE_DATASETS.items() if r.multi_label} == {"amazon", "protein", "xray"}
    assert ds["mine"].origin == "custom"
    monkeypatch.setenv("FINETUNE_ADVISOR_DATA_PETS", str(tmp_path))
    assert bench.resolve_datasets(["pets"], shared_data=shared)[0].origin == "user"
    # The 30-chip Planet sample stands in for Amazon as a smoke test, and says so.
    (shared / "planet-amazon").mkdir()
    amazon = bench.resolve_datasets(["amazon"], shared_data=shared)[0]
    assert amazon.origin == "stand-in" and "smoke test" in amazon.note


def test_all_resolves_every_registered_dataset(tmp_path):
    every = bench.resolve_datasets(["all"], shared_data=tmp_path)
    assert [d.name for d in every] == list(bench.REFERENCE_DATASETS)
    assert len(every) == 16 and all(d.origin == "missing" for d in every)
    assert [d.name for d in bench.resolve_datasets(None, shared_data=tmp_path)] == [
        "amazon", "cancer", "dota", "draw", "pets", "protein", "xray"]


def test_calibration_grid_uses_absolute_rates_and_equal_epochs():
    base = Config(profile="cpu", lr=2e-3, lr_finetune=2e-4, head_epochs=2, unfrozen_epochs=2,
                  measurements={"far": True})
    specs = bench.expand_grid({("pets", 1.0): base}, seeds=[0], grid=bench.select_grid(grid="calibration"),
                              anchors=())
    cells = [s for s in specs if s.parameter != "baseline"]
    assert len(cells) == 3 * len(bench.CALIBRATION_LOG10_LRS) and all(s.same_as is None for s in cells)
    # the finder (and the /10 far rule) play no part: the rate is the cell's, whatever the baseline
    rates = sorted({s.config.lr for s in cells})
    assert rates[0] == pytest.approx(1e-4) and rates[-1] == pytest.approx(1e-1) and len(rates) == 7
    for s in cells:
        total = s.config.head_epochs + (s.config.unfrozen_epochs if s.config.fine_tune != "none" else 0)
        assert total == 4
        if s.parameter == "lr_all_tenth":
            assert s.config.lr_finetune == pytest.approx(s.config.lr / 10)
    assert bench._parse_label(cells[0].label) == (cells[0].parameter, cells[0].value)


# --- kill / resume --------------------------------------------------------------------------------

def test_killed_run_resumes_without_loss_or_duplication(tmp_path, helper):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    log = tmp_path / "log1.jsonl"
    proc = subprocess.Popen([sys.executable, str(tmp_path / "bench_helper.py"), "run", url, str(tmp_path)],
                            env=_env(log, sleep="0.15"))
    study = None
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.3)
        if (tmp_path / "b.db").exists():
            try:
                study = open_study("t", url, create=False)
                if len(_keys(study)) >= 5:
                    break
            except Exception:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
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
                    grid=SMALL_GRID, advise_fn=no_advise, run_trial_fn=counting_train,
                    heartbeat_interval=1, grace_period=2, out_dir=tmp_path / "out", progress=False)
    study = out["study"]
    done = _keys(study)
    assert len(done) == len(set(done)) == n_grid                       # no loss, no duplicate
    after = {t.user_attrs["key"]: (t.number, t.value) for t in study.get_trials() if t.state.name == "COMPLETE"}
    assert all(after[k] == v for k, v in before.items())               # finished trials untouched
    assert len(ran) == n_grid - len(before)                            # never recomputed
    assert out["status"]["n_remaining"] == 0 and out["status"]["duplicate_complete_keys"] == 0
    # a third run does nothing
    again = run_bench("t", url, datasets=helper.datasets(tmp_path), fractions=[0.2, 1.0], seeds=[0, 1],
                      grid=SMALL_GRID, advise_fn=no_advise, run_trial_fn=counting_train,
                      out_dir=tmp_path / "out", progress=False, write=False)
    assert again["ran"] == 0 and len(_keys(again["study"])) == n_grid


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
    done = _keys(study)
    assert len(done) == len(set(done)) == n_grid and key in done
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states[orphan.number] == "FAIL"
    assert "RUNNING" not in states.values()
    # a live worker's claim is never taken for dead: each trial that ran carries its own number
    assert all(t.user_attrs[bench.CLAIM_ATTR] == t.number for t in study.get_trials() if t.state.name == "COMPLETE")


# --- two workers ----------------------------------------------------------------------------------

def _two_workers(tmp_path, url, helper):
    study = open_study("t", url, heartbeat_interval=1, grace_period=2)
    prepare_study(study, helper.datasets(tmp_path), fractions=[0.2, 1.0], seeds=[0, 1], grid=SMALL_GRID,
                  advise_fn=helper.fake_advise)
    log = tmp_path / "workers.jsonl"
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "bench_helper.py"), "work", url, str(tmp_path)],
                              env=_env(log, sleep="0.05")) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    cells = [(r["ds"], r["fraction"], r["seed"], r["lr"], r["wd"]) for r in runs]
    assert len(cells) == len(set(cells)) == study.user_attrs["n_grid"]     # each trial run once
    assert len({r["pid"] for r in runs}) == 2                               # both workers worked
    done = _keys(study)
    assert len(done) == len(set(done)) == study.user_attrs["n_grid"]


def test_two_workers_sqlite_never_run_the_same_trial(tmp_path, helper):
    _two_workers(tmp_path, f"sqlite:///{tmp_path / 'b.db'}", helper)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def postgres_url(tmp_path):
    """A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql), or a clear skip."""
    pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed (pip install psycopg2-binary)")
    if os.environ.get("BENCH_TEST_POSTGRES_URL"):
        yield os.environ["BENCH_TEST_POSTGRES_URL"]
        return
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    bindir = Path(bins[-1]).parent
    as_pg: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser") or shutil.which("su")
        if not runuser:
            pytest.skip("running as root and no runuser to switch to the postgres user")
        as_pg = ["runuser", "-u", "postgres", "--"]
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="bench-pg-"))   # pytest's tmp dirs are private to root
    os.chmod(base, 0o755)
    data = base / "pgdata"
    data.mkdir()
    if as_pg:
        shutil.chown(data, "postgres")
    port = _free_port()
    try:
        subprocess.run(as_pg + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(as_pg + [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(data / "log"),
                                "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {data}", "start"],
                       check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        out = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"could not start a PostgreSQL server: {exc} {out.decode(errors='replace')[-300:]}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_pg + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_postgresql_never_run_the_same_trial(tmp_path, helper, postgres_url):
    _two_workers(tmp_path, postgres_url, helper)


# --- outputs --------------------------------------------------------------------------------------

def test_table_heatmap_and_regret_from_a_synthetic_study(tmp_path, helper):
    out = run_bench("syn", f"sqlite:///{tmp_path / 's.db'}", datasets=helper.datasets(tmp_path),
                    fractions=[0.2, 1.0], seeds=[0, 1], grid=SMALL_GRID, advise_fn=helper.fake_advise,
                    run_trial_fn=helper.fake_train, out_dir=tmp_path / "o", progress=False)
    import pandas as pd
    files = out["files"]
    df = pd.read_csv(files["results"])
    assert list(df.columns) == bench.RESULT_COLUMNS
    # every grid cell x seed has a row, aliased ones included
    n_cells = (1 + 3 + 2 + 3) * 2 * 2 * 2   # (baseline, 3 lr, 2 wd, 3 anchors) x datasets x fractions x seeds
    assert len(df) == n_cells and df["same_as"].notna().any()
    imp = pd.read_csv(files["improvement"], index_col=0)
    assert set(imp.index) == {"near @20%", "near @100%", "far @20%", "far @100%"}
    assert (imp["baseline"] == 0).all()
    means = imp.mean(axis=0).tolist()
    assert means == sorted(means, reverse=True)                       # best to worst
    assert set(imp.columns[:2]) == {"weight_decay=0.01", "anchor:fastai_fine_tune"}   # wd 0.01 helps in the fake
    assert Path(files["heatmap"]).stat().st_size > 1000
    reg = pd.read_csv(files["regret"])
    assert len(reg) == 4 and (reg["regret"] >= 0).all()
    assert {"margin_over_fastai_fine_tune", "margin_over_lr_find_valley"} <= set(reg.columns)
    assert out["status"]["n_remaining"] == 0


def test_regret_summary_margins_are_paired_by_seed_and_follow_the_metric_direction():
    import pandas as pd
    rows = []
    for seed, (base, ft, auc_base, auc_ft) in enumerate([(0.60, 0.50, 0.70, 0.80), (0.70, 0.50, 0.72, 0.80),
                                                          (0.80, 0.80, 0.74, 0.80)]):
        rows += [{"dataset": "x", "fraction": 1.0, "label": "baseline", "seed": seed, "metric": base,
                  "metric_name": "accuracy_multi", "valid_loss": 1 - base, "roc_auc_macro": auc_base},
                 {"dataset": "x", "fraction": 1.0, "label": "anchor:fastai_fine_tune", "seed": seed, "metric": ft,
                  "metric_name": "accuracy_multi", "valid_loss": 1 - ft, "roc_auc_macro": auc_ft}]
    df = pd.DataFrame(rows)
    reg = bench.regret_summary(df).iloc[0]
    assert reg["best_cell"] == "baseline" and reg["regret"] == 0 and reg["rank_of_baseline"] == 1
    assert reg["margin_over_fastai_fine_tune"] == pytest.approx(0.1)
    assert reg["fastai_fine_tune_mean"] == pytest.approx(0.6) and reg["fastai_fine_tune_std"] > 0
    assert reg["margin_std_over_fastai_fine_tune"] == pytest.approx(pd.Series([0.1, 0.2, 0.0]).std())
    assert np.isnan(reg["margin_over_lr_find_valley"])               # anchor not in the table
    # lower is better: the baseline's valid loss is lower, so its margin is positive too
    loss = bench.regret_summary(df, "valid_loss", higher_is_better=False).iloc[0]
    assert loss["best_cell"] == "baseline" and loss["margin_over_fastai_fine_tune"] == pytest.approx(0.1)
    auc = bench.regret_summary(df, "roc_auc_macro").iloc[0]
    assert auc["best_cell"] == "anchor:fastai_fine_tune" and auc["regret"] == pytest.approx(0.08)
    assert auc["metric_name"] == "roc_auc_macro" and auc["margin_over_fastai_fine_tune"] == pytest.approx(-0.08)


def test_cli_bench_status(tmp_path, helper, capsys):
    from finetune_advisor.cli import main
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_bench("syn", url, datasets=helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={},
              anchors=(), advise_fn=helper.fake_advise, run_trial_fn=helper.fake_train,
              progress=False, write=False)
    assert main(["bench", "status", "--study", "syn", "--storage", url, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["n_grid"] == 2 and st["n_done"] == 2
    assert main(["bench", "status", "--study", "nope", "--storage", url]) == 1
    out = tmp_path / "outputs"
    assert main(["bench", "outputs", "--study", "syn", "--storage", url, "--out", str(out), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)
    assert {"results", "regret", "heatmap", "status"} <= set(files) and (out / "heatmap.png").is_file()
    assert main(["bench", "outputs", "--study", "syn", "--storage", f"sqlite:///{tmp_path / 'none.db'}"]) == 1
    assert "no bench database" in capsys.readouterr().err


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
    assert err[-1].startswith("error: nothing to benchmark") and "missing" in err[-1]


def test_bench_baselines_use_the_shared_tiny_imagenet_sample_as_reference(tmp_path, monkeypatch):
    import importlib
    recommend = importlib.import_module("finetune_advisor.recommend")   # the package exports a function of that name
    seen = {}

    def fake_advise(path, **kw):
        seen.update(kw)
        raise bench.ConfigError("stop here")

    monkeypatch.setattr(recommend, "advise", fake_advise)
    monkeypatch.setenv(bench.SHARED_DATA_ENV, str(tmp_path))
    ds = BenchDataset("x", tmp_path, False, "custom")
    assert bench.default_reference() is None
    with pytest.raises(bench.ConfigError):
        bench.advise_baseline(ds, 1.0, bench.BENCH_PROFILES["cpu"], {"backbone": None})
    assert "reference" not in seen and "backbone" not in seen      # None options keep advise's defaults
    (tmp_path / "tiny-imagenet-200").mkdir()
    for options, expected in [(None, str(tmp_path / "tiny-imagenet-200")), ({"reference": "mine.npz"}, "mine.npz")]:
        seen.clear()
        with pytest.raises(bench.ConfigError):
            bench.advise_baseline(ds, 1.0, bench.BENCH_PROFILES["cpu"], options)
        assert seen["reference"] == expected
    seen.clear()
    with pytest.raises(bench.ConfigError):
        bench.advise_baseline(ds, 1.0, bench.BENCH_PROFILES["cpu"], {"similarity": False})
    assert "reference" not in seen


def test_baseline_without_a_finder_rate_uses_the_default_lr_and_says_so(tmp_path, monkeypatch):
    from finetune_advisor import lr_finder
    from finetune_advisor.bench import BENCH_PROFILES, advise_baseline
    from finetune_advisor.heuristics import DEFAULT_LR
    from finetune_advisor.testing import make_folder_dataset

    real = lr_finder._recorder_class()

    class Flat(real):   # the sweep runs; the losses it records never decrease (valid and train)
        def after_batch(self):
            super().after_batch()
            self.rec_losses[-1] = self.rec_train_losses[-1] = 2.0 + 0.01 * len(self.rec_losses)

    monkeypatch.setattr(lr_finder, "_recorder_class", lambda: Flat)
    root = make_folder_dataset(tmp_path / "flat", counts={"a": 10, "b": 10}, size=16)
    options = {"backbone": "resnet18", "pretrained": False, "similarity": False, "lr_steps": 30}
    cfg = advise_baseline(BenchDataset("flat", root, False, "custom"), 1.0, BENCH_PROFILES["cpu"], options)
    assert cfg.lr == DEFAULT_LR and "lr_finder" not in cfg.measurements
    assert "never decreases" in cfg.measurements["lr_finder_failed"]


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


def test_status_text_gives_the_eta_for_the_workers_running_now():
    from finetune_advisor.cli import format_bench_status
    st = {"study": "s", "n_done": 10, "n_grid": 30, "n_remaining": 20, "states": {"COMPLETE": 10, "RUNNING": 2},
          "mean_trial_s": 30.0, "eta_s_one_worker": 600.0, "missing_datasets": {"amazon": "no copy"},
          "failed_datasets": {}}
    text = format_bench_status(st)
    assert "10/30 trials done, 20 to go" in text and "missing: amazon: no copy" in text
    assert "ETA 10.0 min on one worker, 5.0 min with the 2 running now" in text
    st["states"] = {"COMPLETE": 10, "RUNNING": 1}
    assert "running now" not in format_bench_status(st)
