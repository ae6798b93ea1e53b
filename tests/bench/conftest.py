"""Fixtures of the bench tests: a helper module (fake advise and train, shared by in-process tests
and subprocess workers); the throwaway PostgreSQL server is in tests/conftest.py."""
from __future__ import annotations

import textwrap

import pytest

# Helper module shared by the in-process tests and the subprocess workers.
HELPER = textwrap.dedent('''
    import os, sys, time, json
    from pathlib import Path
    from finetune_advisor import bench
    from finetune_advisor.config import Config

    SMALL_GRID = {"lr": (-1.0, 0.0, 1.0), "weight_decay": (0.01, 0.1)}

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
                                     "ds": dataset.name, "fraction": fraction, "seed": seed,
                                     "threads": os.environ.get("OMP_NUM_THREADS")}) + "\\n")
        time.sleep(float(os.environ.get("BENCH_TEST_SLEEP", "0")))
        metric = 0.5 + 0.1 * fraction - abs(config.weight_decay - 0.01) + 0.01 * seed - 0.2 * abs(config.lr - 3e-3)
        return {"metric": metric, "metric_name": "accuracy", "valid_loss": 1 - metric,
                "epochs_to_best": 2, "wall_time_s": 0.01}

    def datasets(root):
        return [bench.BenchDataset("near", Path(root), False, "custom"),
                bench.BenchDataset("far", Path(root), False, "custom")]

    def keys(study, state="COMPLETE"):
        return [t.user_attrs["key"] for t in study.get_trials(deepcopy=False)
                if t.state.name == state and "key" in t.user_attrs]

    def env(log=None, sleep="0"):
        out = dict(os.environ, BENCH_TEST_SLEEP=sleep, PYTHONPATH=os.pathsep.join(sys.path))
        if log:
            out["BENCH_TEST_LOG"] = str(log)
        return out

    if __name__ == "__main__":
        mode, url, root = sys.argv[1], sys.argv[2], sys.argv[3]
        study = bench.open_study("t", url, heartbeat_interval=1, grace_period=2)
        if mode == "run":
            bench.prepare_study(study, datasets(root), fractions=[0.2, 1.0], seeds=[0, 1], grid=SMALL_GRID,
                                advise_fn=fake_advise)
        bench.run_worker(study, run_trial_fn=fake_train, datasets=datasets(root), progress=False)
''')


@pytest.fixture()
def helper(tmp_path, monkeypatch):
    """The helper module, written to ``tmp_path/bench_helper.py`` (run it as a worker from there)."""
    (tmp_path / "bench_helper.py").write_text(HELPER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    mod = importlib.import_module("bench_helper")
    mod = importlib.reload(mod)
    return mod


