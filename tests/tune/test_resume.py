"""A tune killed with SIGKILL mid-trial, then run again to the end: the killed trial is retried
once with its parameters, and no finished trial is lost or repeated. The real CLI runs in a
subprocess (as in tests/test_faults.py)."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

optuna = pytest.importorskip("optuna")
posix_only = pytest.mark.skipif(os.name != "posix", reason="signals to a child process are POSIX-only here")
GRACE_S = 2          # --heartbeat 1: a trial silent for 2 s was killed


@posix_only
def test_a_killed_tune_resumes_without_loss_or_repeats(folder, tmp_path, small_config, cli_child):
    config = tmp_path / "config.json"
    config.write_text(small_config().to_json())
    out = tmp_path / "out"
    args = ["tune", folder, "--config", config, "--random-init", "--out", out, "--budget", "100x",
            "--trials", "3", "--heartbeat", "1"]
    storage = f"sqlite:///{out / 'tune.db'}"

    def trials():
        return optuna.load_study(study_name="tune", storage=storage).get_trials()

    first = cli_child(args, tmp_path)
    first.wait_for("trial 1 started")
    time.sleep(0.3)
    assert first.signal(signal.SIGKILL)[0] == -signal.SIGKILL
    assert [t.state.name for t in trials()] == ["COMPLETE", "RUNNING"]     # killed mid-trial
    time.sleep(GRACE_S + 0.5)

    rerun = [*args[:args.index("--trials") + 1], "2", *args[args.index("--trials") + 2:]]   # the retry is enough
    rc, out, err = cli_child([*rerun, "--json", "-q"], tmp_path).wait(900, "the resumed tune hung")
    assert rc == 0, err
    result = json.loads(out)
    ts = trials()
    assert [t.state.name for t in ts][:2] == ["COMPLETE", "FAIL"]
    assert ts[2].system_attrs["failed_trial"] == 1 and ts[2].params == ts[1].params   # the killed one, retried
    finished = [t for t in ts if t.state.name in ("COMPLETE", "PRUNED")]
    assert [t.number for t in finished] == [0, 2] and result["n_trials"] == 2
    assert [t.user_attrs["role"] for t in finished].count("recommendation") == 1      # never run twice
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 2          # no trial repeated
    assert not any(t.state.name in ("RUNNING", "WAITING") for t in ts)
