"""Shared fixtures (keep this file small: fixtures used by several test files only)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$FINETUNE_ADVISOR_SHARED_DATA``); skips the test when absent."""
    path = Path(os.environ.get("FINETUNE_ADVISOR_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared sample datasets not found at {path} (set FINETUNE_ADVISOR_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run faster on one thread, and two threads stall when the 2-core
    machine is busy (measured: the LR range test 32 s with 2 threads vs 3 s with 1)."""
    import torch
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")   # the CLI's own pick (finetune_advisor._threads) keeps it


@pytest.fixture(autouse=True)
def _offline_and_private_cache(monkeypatch, tmp_path):
    """No test may reach the network or read/write the user's reference cache."""
    monkeypatch.setenv("FINETUNE_ADVISOR_OFFLINE", "1")
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(tmp_path / "cache"))


# --- tiny generated images, shared by tests/learner and tests/train ----------------------------

class TinyImages:
    """Tiny noisy colour squares as a :class:`~finetune_advisor.data.Dataset`, and a small Config."""

    COLORS = {"blue": (30, 40, 200), "green": (30, 190, 40), "red": (210, 30, 30)}

    @staticmethod
    def write_png(path: Path, color, seed: int, size: int = 20) -> Path:
        import numpy as np
        from PIL import Image
        rng = np.random.default_rng(seed)
        arr = np.clip(np.array(color)[None, None, :] + rng.normal(0, 20, (size, size, 3)), 0, 255)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr.astype("uint8")).save(path)
        return path

    def single_label(self, root: Path, per_class: int = 8, classes=("blue", "red"), split=False):
        from finetune_advisor.data import Dataset, Item
        items = []
        for k, c in enumerate(classes):
            for i in range(per_class):
                p = self.write_png(root / c / f"{c}_{i}.png", self.COLORS[c], seed=100 * k + i)
                sp = None if not split else ("valid" if i < 2 else "train")
                items.append(Item(p, (c,), sp))
        return Dataset(root, "folders", tuple(items), tuple(sorted(classes)), multi_label=False)

    def multi_label(self, root: Path):
        import numpy as np
        from finetune_advisor.data import Dataset, Item
        combos = [("blue",), ("red",), ("blue", "red"), ("green",), ("green", "red"), ("blue", "green")] * 2
        items = []
        for i, labels in enumerate(combos):
            color = np.mean([self.COLORS[c] for c in labels], axis=0)
            items.append(Item(self.write_png(root / f"img_{i}.png", color, seed=i), labels))
        return Dataset(root, "csv", tuple(items), ("blue", "green", "red"), multi_label=True)

    @property
    def no_aug(self):
        from finetune_advisor.config import Augmentation
        return Augmentation(do_flip=False, max_rotate=0.0, max_lighting=0.0, max_zoom=1.0, max_warp=0.0)

    @staticmethod
    def config(**changes):
        from finetune_advisor.config import Augmentation, Config
        base = dict(image_size=32, batch_size=8, head_epochs=1, unfrozen_epochs=1, fine_tune="last",
                    head_size=32, augmentation=Augmentation(max_rotate=5.0, noise_std=0.05))
        base.update(changes)
        return Config(**base)


@pytest.fixture(scope="session")
def tiny() -> TinyImages:
    """Factories for tiny generated datasets (``tiny.single_label(root)``, ``tiny.config()``, ...)."""
    return TinyImages()


@pytest.fixture(scope="module")
def backbone():
    """A random-init resnet18 (no weights needed), one per test module."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("fastai")
    from finetune_advisor.backbones import create_backbone
    torch.manual_seed(0)
    return create_backbone("resnet18", pretrained=False)


@pytest.fixture(scope="module")
def single_ds(tmp_path_factory, tiny):
    """Two classes of 8 tiny images each, one per test module."""
    return tiny.single_label(tmp_path_factory.mktemp("single"))


# --- the real CLI in a subprocess (tests/test_faults.py, tests/tune/test_resume.py) ------------

CLI_MAIN = "import sys; from finetune_advisor.cli import main; sys.exit(main())"  # what the console script runs
# Waits end on the event they wait for (a line on stderr, the child's exit); the cap is only a
# last resort against a hang, scaled for slow or busy machines (the suite runs beside sweeps).
TIME_SCALE = float(os.environ.get("FINETUNE_ADVISOR_TEST_TIME_SCALE", "1"))


class CliChild:
    """The CLI in a subprocess, its stdout and stderr collected line by line while it runs."""

    def __init__(self, args, cwd: Path, code: str = CLI_MAIN):
        import subprocess
        import sys
        import threading
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        # (SIGINT reaches it as from a terminal even in a suite started in the background: conftest.py)
        self.proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.out: list[str] = []
        self._closed = 0                       # streams at EOF: 2 once the child has exited
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(s, buf), daemon=True)
                         for s, buf in ((self.proc.stderr, self.err), (self.proc.stdout, self.out))]
        for t in self._readers:
            t.start()

    def _read(self, stream, buf):
        for line in stream:
            with self._changed:
                buf.append(line)
                self._changed.notify_all()
        with self._changed:
            self._closed += 1
            self._changed.notify_all()

    def wait_for(self, needle: str, cap_s: float = 900) -> None:
        """Block until ``needle`` appears on stderr; fail as soon as the child exits without it."""
        def seen():
            return needle in "".join(self.err)
        with self._changed:
            self._changed.wait_for(lambda: seen() or self._closed == 2, timeout=cap_s * TIME_SCALE)
        if seen():
            return
        if self._closed == 2:
            pytest.fail(f"exited ({self.proc.wait()}) before {needle!r}:\n{''.join(self.err)}")
        self.proc.kill()
        pytest.fail(f"no {needle!r} after the {cap_s * TIME_SCALE:g} s cap (hung?):\n{''.join(self.err)}")

    def signal(self, sig, cap_s: float = 300) -> tuple[int, str, str]:
        """Send ``sig``, then the exit code, stdout and stderr (a hang fails the test)."""
        assert self.proc.poll() is None, "finished before the signal: make the run longer"
        self.proc.send_signal(sig)
        return self.wait(cap_s, f"still running {cap_s * TIME_SCALE:g} s after signal {sig}")

    def wait(self, cap_s: float, failure: str) -> tuple[int, str, str]:
        """The exit code, stdout and stderr once the child exits; killed, and ``failure``, after the cap."""
        import subprocess
        try:
            rc = self.proc.wait(timeout=cap_s * TIME_SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"{failure}:\n{''.join(self.err)}")
        for t in self._readers:
            t.join(timeout=10)
        return rc, "".join(self.out), "".join(self.err)


@pytest.fixture(scope="session")
def cli_child():
    """``cli_child(args, cwd, code=CLI_MAIN)``: a :class:`CliChild` running the CLI."""
    return CliChild


@pytest.fixture(scope="session")
def time_cap():
    """``time_cap(seconds)``: a last-resort cap for a wait, scaled by ``$FINETUNE_ADVISOR_TEST_TIME_SCALE``."""
    return lambda seconds: seconds * TIME_SCALE


# --- a throwaway PostgreSQL server (bench workers and tune share studies on one) ----------------

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
