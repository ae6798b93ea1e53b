"""A tune killed with SIGKILL mid-trial, then run again to the end: the killed trial is retried
once with its parameters, and no finished trial is lost or repeated. The real CLI runs in a
subprocess (as in tests/test_faults.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

optuna = pytest.importorskip("optuna")
posix_only = pytest.mark.skipif(os.name != "posix", reason="signals to a child process are POSIX-only here")
MAIN = "import sys; from finetune_advisor.cli import main; sys.exit(main())"
GRACE_S = 2          # --heartbeat 1: a trial silent for 2 s was killed


class Child:
    """The CLI in a subprocess; its stderr collected while it runs."""

    def __init__(self, args, cwd):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", MAIN, *map(str, args)], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def wait_for(self, needle: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while needle not in "".join(self.err):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no {needle!r} (exit {self.proc.poll()}):\n{''.join(self.err)}")
            time.sleep(0.02)

    def stop(self, sig, timeout: float = 60) -> int:
        assert self.proc.poll() is None, "finished before the signal: make the trials longer"
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return rc


@posix_only
def test_a_killed_tune_resumes_without_loss_or_repeats(folder, tmp_path, small_config):
    config = tmp_path / "config.json"
    config.write_text(small_config().to_json())
    out = tmp_path / "out"
    args = ["tune", folder, "--config", config, "--random-init", "--out", out, "--budget", "100x",
            "--trials", "3", "--heartbeat", "1"]
    storage = f"sqlite:///{out / 'tune.db'}"

    def trials():
        return optuna.load_study(study_name="tune", storage=storage).get_trials()

    first = Child(args, tmp_path)
    first.wait_for("trial 1 started")
    time.sleep(0.3)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert [t.state.name for t in trials()] == ["COMPLETE", "RUNNING"]     # killed mid-trial
    time.sleep(GRACE_S + 0.5)

    rerun = [*args[:args.index("--trials") + 1], "2", *args[args.index("--trials") + 2:]]   # the retry is enough
    second = subprocess.run([sys.executable, "-c", MAIN, *map(str, rerun), "--json", "-q"], cwd=tmp_path,
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    ts = trials()
    assert [t.state.name for t in ts][:2] == ["COMPLETE", "FAIL"]
    assert ts[2].system_attrs["failed_trial"] == 1 and ts[2].params == ts[1].params   # the killed one, retried
    finished = [t for t in ts if t.state.name in ("COMPLETE", "PRUNED")]
    assert [t.number for t in finished] == [0, 2] and result["n_trials"] == 2
    assert [t.user_attrs["role"] for t in finished].count("recommendation") == 1      # never run twice
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 2          # no trial repeated
    assert not any(t.state.name in ("RUNNING", "WAITING") for t in ts)
