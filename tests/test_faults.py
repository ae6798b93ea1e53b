"""Faults and determinism: Ctrl-C exits cleanly (130, "interrupted", no traceback) wherever it
lands; files are written atomically, and a truncated one is refused, never trusted; the same
dataset, seed and backbone give the same recommendation.

The Ctrl-C tests run the real CLI in a subprocess and send it SIGINT; everything else goes
through ``cli.main`` or ``advise`` in-process.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from finetune_advisor.cli import main
from finetune_advisor.config import DECISION_FIELDS, Config
from finetune_advisor.testing import make_folder_dataset

torch = pytest.importorskip("torch")

MAIN = "import sys; from finetune_advisor.cli import main; sys.exit(main())"  # what the console script runs
# The CLI with a library import that swallows Ctrl-C, as matplotlib's did once here (the signal
# lands in it, and it carries on): the CLI must still stop.
MAIN_WITH_SWALLOWING_IMPORT = """
import os, signal, sys, time
import finetune_advisor.cli.app as app
def swallowing_import(**kwargs):
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    except BaseException:
        pass
app._import_torch_and_fastai = swallowing_import
sys.exit(app.main())
"""
QUICK = ["--backbone", "resnet18", "--random-init", "--no-similarity", "--no-lr-finder", "-q"]
BASE_COUNTS = {"a": 10, "b": 10, "c": 10}
posix_only = pytest.mark.skipif(os.name != "posix", reason="SIGINT to a child process is POSIX-only here")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_folder_dataset(tmp_path_factory.mktemp("ds") / "d", counts=BASE_COUNTS, size=16)


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory) -> Path:
    """A 3-class reference for random-init ResNet-18 at 32 px (k=16)."""
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.similarity import build_reference
    base = tmp_path_factory.mktemp("ref")
    src = make_folder_dataset(base / "src", counts={"x": 2, "y": 2, "z": 2}, size=16, seed=5)
    ref = build_reference(src, create_backbone("resnet18", pretrained=False), image_size=32,
                          images_per_class=16, progress=False)
    return ref.save(base / "ref.npz")


def leftovers(folder: Path) -> list[str]:
    """Temp files a writer left behind (they all start with a dot)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- Ctrl-C --------------------------------------------------------------------------------------

def assert_clean_interrupt(rc: int, err: str) -> None:
    assert rc == 130, err
    assert err.rstrip().splitlines()[-1] == "interrupted", err
    assert "Traceback" not in err and "Exception ignored" not in err, err


@posix_only
def test_ctrl_c_during_recommend_lr_range_test(dataset, tmp_path, cli_child):
    child = cli_child(["recommend", dataset, "--backbone", "resnet18", "--random-init", "--no-similarity",
                   "--lr-steps", "5000", "--lr-finder", "full"], tmp_path)
    child.wait_for("LR range test on the frozen")   # logged just before the sweep starts
    time.sleep(1.5)                                  # well inside fastai's fit loop
    rc, out, err = child.signal(signal.SIGINT)
    assert_clean_interrupt(rc, err)
    assert out == ""  # no half-printed recommendation


@posix_only
def test_ctrl_c_while_still_loading_torch(dataset, tmp_path, cli_child):
    child = cli_child(["recommend", dataset, "--backbone", "resnet18", "--random-init", "--no-similarity",
                   "--lr-steps", "5000", "--debug"], tmp_path)
    child.wait_for("importing torch and fastai")   # logged just before the import, which takes seconds
    assert_clean_interrupt(*child.signal(signal.SIGINT)[::2])


@posix_only
def test_ctrl_c_swallowed_by_a_library_import_still_stops_the_run(dataset, tmp_path, cli_child):
    child = cli_child(["recommend", dataset, "--backbone", "resnet18", "--random-init", "--no-similarity",
                   "--lr-steps", "5000"], tmp_path, code=MAIN_WITH_SWALLOWING_IMPORT)
    # the recommendation itself would take minutes
    assert_clean_interrupt(*child.wait(60, "the Ctrl-C the import swallowed was lost: the run went on")[::2])


@posix_only
def test_ctrl_c_during_train(dataset, tmp_path, cli_child):
    cfg = Config(backbone="efficientnet_lite0", profile="cpu", image_size=32, batch_size=4, head_epochs=500,
                 fine_tune="none", unfrozen_epochs=0)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    child = cli_child(["train", dataset, "--config", tmp_path / "cfg.json", "--out", tmp_path / "run"], tmp_path)
    child.wait_for("train_loss")  # fastai's epoch table header: training has started
    time.sleep(1.0)
    rc, out, err = child.signal(signal.SIGINT)
    assert_clean_interrupt(rc, err)
    assert not (tmp_path / "run" / "result.json").exists()  # no result claims a run that did not finish


@posix_only
def test_ctrl_c_during_bench_then_resume(dataset, tmp_path, cli_child):
    import optuna
    from optuna.trial import TrialState
    db = f"sqlite:///{tmp_path / 'b.db'}"
    args = ["bench", "run", "--dataset", f"toy={dataset}", "--datasets", "toy", "--seeds", "1",
            "--fractions", "1.0", "--no-similarity", "--backbone", "efficientnet_lite0",
            "--study", "s", "--storage", db, "--out", tmp_path / "out"]
    child = cli_child(args, tmp_path)
    child.wait_for("bench: enqueued")   # baselines done: trials are being trained
    time.sleep(3.0)
    assert_clean_interrupt(*child.signal(signal.SIGINT)[::2])
    study = optuna.load_study(study_name="s", storage=db)
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == TrialState.RUNNING]  # nothing left claimed
    interrupted = [t.user_attrs["key"] for t in trials if t.state == TrialState.FAIL]
    # "interrupted (Ctrl-C)" while it trained, or "... as it was claimed" when the signal landed in the
    # claim (more likely on a busy machine): both are clean
    assert all(t.user_attrs.get("error", "").startswith("interrupted (Ctrl-C)") for t in trials
               if t.state == TrialState.FAIL)
    # resume: the interrupted trial is queued again, finished ones are not recomputed
    done_before = {t.user_attrs["key"]: t.number for t in trials if t.state == TrialState.COMPLETE}
    assert main([str(a) for a in args] + ["--n-trials", "1", "-q"]) == 0
    after = optuna.load_study(study_name="s", storage=db).get_trials(deepcopy=False)
    complete = [t.user_attrs["key"] for t in after if t.state == TrialState.COMPLETE]
    assert len(complete) == len(set(complete)) == len(done_before) + 1
    assert {t.user_attrs["key"]: t.number for t in after
            if t.state == TrialState.COMPLETE and t.user_attrs["key"] in done_before} == done_before
    waiting = {t.user_attrs["key"] for t in after if t.state == TrialState.WAITING}
    assert set(interrupted) <= waiting | set(complete)


# --- atomic writes -------------------------------------------------------------------------------

def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def _error(rc: int, err: str, *needles) -> str:
    assert rc == 1, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert all(str(n) in lines[0] for n in needles), lines[0]
    return lines[0]


def test_config_out_survives_a_killed_write(dataset, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cfg.json"
    rc, _, err = _cli(capsys, "recommend", dataset, *QUICK, "--out", out)
    assert rc == 0, err
    first = out.read_text()
    assert oct(out.stat().st_mode & 0o777) == "0o644"  # readable like any other file, not mkstemp's 0600
    real_replace = os.replace

    def killed(src, dst):  # the process dies between writing the temp file and renaming it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    rc, _, err = _cli(capsys, "recommend", dataset, *QUICK, "--profile", "paper", "--out", out)
    monkeypatch.setattr(os, "replace", real_replace)
    assert_clean_interrupt(rc, err)
    assert out.read_text() == first and Config.from_json(first).profile == "cpu"
    assert leftovers(tmp_path) == []


def test_config_out_disk_full_is_one_line_and_keeps_the_old_file(dataset, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cfg.json"
    assert _cli(capsys, "recommend", dataset, *QUICK, "--out", out)[0] == 0
    first = out.read_text()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    rc, _, err = _cli(capsys, "recommend", dataset, *QUICK, "--profile", "paper", "--out", out)
    _error(rc, err, out, "No space left on device")
    assert out.read_text() == first and leftovers(tmp_path) == []


@pytest.mark.parametrize("damage", ["truncated", "binary", "not_a_config"])
def test_damaged_config_is_refused_with_its_name(dataset, tmp_path, capsys, damage):
    path = tmp_path / "cfg.json"
    text = Config(profile="cpu", image_size=32).to_json()
    if damage == "truncated":  # e.g. written by another tool that was killed
        path.write_text(text[: len(text) // 2])
        needle = "not valid JSON"
    elif damage == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
        needle = "not UTF-8"
    else:
        path.write_text('["a", "list"]')
        needle = "must be a JSON object"
    rc, _, err = _cli(capsys, "train", dataset, "--config", path, "--out", tmp_path / "run", "-q")
    _error(rc, err, path, needle, "finetune-advisor recommend")
    assert not (tmp_path / "run").exists()


def test_reference_cache_killed_write_then_truncated_file(dataset, tmp_path, capsys, monkeypatch, caplog):
    from finetune_advisor.similarity import Reference, reference_cache_path
    src = make_folder_dataset(tmp_path / "tiny", counts={"x": 2, "y": 2, "z": 2}, size=16, seed=5)
    args = ["recommend", dataset, "--backbone", "resnet18", "--random-init", "--no-lr-finder", "-q"]
    cached = reference_cache_path("resnet18-random", source=src.resolve())   # keyed by its folder
    default = reference_cache_path("resnet18-random")
    real_savez = np.savez_compressed

    def killed(fh, **arrays):  # half a zip on disk, then the process is killed
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", killed)
    assert_clean_interrupt(*_cli(capsys, *args, "--reference", src)[::2])
    monkeypatch.setattr(np, "savez_compressed", real_savez)
    assert not cached.exists() and leftovers(cached.parent) == []

    rc, out, err = _cli(capsys, *args, "--reference", src)  # built again, cached whole
    assert rc == 0, err
    good = Reference.load(cached)
    assert not default.exists()        # a plain run's default reference is not replaced by it
    cached.write_bytes(cached.read_bytes()[: cached.stat().st_size // 2])  # e.g. a disk filled up by a copy
    default.write_bytes(cached.read_bytes())

    rc, _, err = _cli(capsys, *args)  # the default cache is the only source: refused, with the way out
    _error(rc, err, default, "corrupt or unreadable", "delete it and rebuild")

    rc, out, err = _cli(capsys, *args, "--reference", src)  # the source is known: rebuilt, not trusted
    assert rc == 0, err
    assert any("ignoring unreadable cached reference" in r.getMessage() for r in caplog.records)
    rebuilt = Reference.load(cached)
    assert rebuilt.class_ids == good.class_ids
    np.testing.assert_array_equal(rebuilt.class_means, good.class_means)


def test_train_result_survives_a_killed_write(dataset, tmp_path, capsys, monkeypatch):
    cfg = Config(backbone="efficientnet_lite0", profile="cpu", image_size=32, batch_size=8, head_epochs=1,
                 fine_tune="none", unfrozen_epochs=0)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    args = ["train", dataset, "--config", tmp_path / "cfg.json", "--out", tmp_path / "run", "-q"]
    assert _cli(capsys, *args)[0] == 0
    result = tmp_path / "run" / "result.json"
    first = json.loads(result.read_text())
    real_replace = os.replace

    def killed_on_result(src, dst):
        if str(dst).endswith("result.json"):
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_on_result)
    assert_clean_interrupt(*_cli(capsys, *args, "--seed", "1")[::2])
    monkeypatch.setattr(os, "replace", real_replace)
    assert json.loads(result.read_text()) == first  # the previous complete result, not half a new one
    assert leftovers(tmp_path / "run") == []


# --- determinism ---------------------------------------------------------------------------------

def _decisions(cfg: Config) -> dict:
    return {f: getattr(cfg, f) for f in DECISION_FIELDS if f != "lr"}


def test_same_seed_same_recommendation_in_process(dataset, tiny_reference):
    from finetune_advisor.recommend import advise
    opts = dict(backbone="resnet18", pretrained=False, reference=tiny_reference, lr_steps=30, seed=3,
                progress=False)
    a, b = advise(dataset, **opts), advise(dataset, **opts)
    assert a.config.lr == pytest.approx(b.config.lr, rel=0.01)
    assert _decisions(a.config) == _decisions(b.config)
    assert a.similarity.to_dict() == b.similarity.to_dict()
    assert a.config.warnings == b.config.warnings


def test_same_seed_same_recommendation_across_processes(dataset, tiny_reference, tmp_path):
    from finetune_advisor.recommend import advise
    args = ["recommend", dataset, "--backbone", "resnet18", "--random-init", "--reference", tiny_reference,
            "--lr-steps", "30", "--seed", "3", "--json", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", MAIN, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    other = Config.from_json(proc.stdout)
    here = advise(dataset, backbone="resnet18", pretrained=False, reference=tiny_reference, lr_steps=30, seed=3,
                  progress=False).config
    assert here.lr == pytest.approx(other.lr, rel=0.01)
    assert _decisions(here) == _decisions(other)
    assert here.measurements.similarity.similarity == pytest.approx(
        other.measurements.similarity.similarity, abs=1e-6)


# --- the atomic writer writes regular files only -------------------------------------------------

def test_the_atomic_writer_refuses_devices_and_fifos_and_writes_through_symlinks(tmp_path):
    from finetune_advisor._io import write_text_atomic
    from finetune_advisor.exceptions import ConfigError
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for target, kind in ((Path("/dev/null"), "a character device"), (fifo, "a FIFO")):
        with pytest.raises(ConfigError, match=f"it is {kind}, not a regular file"):
            write_text_atomic(target, "x")
    assert Path("/dev/null").is_char_device() and fifo.is_fifo()       # left as they were
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert leftovers(tmp_path) == []


def test_recommend_out_to_a_device_is_refused_before_any_work(dataset, capsys):
    assert main(["recommend", str(dataset), *QUICK, "--out", "/dev/null"]) == 1
    err = capsys.readouterr().err
    assert "cannot write /dev/null: it is a character device, not a regular file" in err
    assert Path("/dev/null").is_char_device()


# --- a full disk, a read-only cache: the user's problem, named in one line ------------------------

def _full_disk(fd):
    raise OSError(errno.ENOSPC, "No space left on device")       # as write() and fsync() raise it: no file named


def test_the_atomic_writer_names_the_file_when_the_disk_is_full(tmp_path, monkeypatch):
    from finetune_advisor._io import write_error, write_text_atomic
    monkeypatch.setattr(os, "fsync", _full_disk)
    with pytest.raises(OSError) as caught:
        write_text_atomic(tmp_path / "r.html", "x")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "r.html")
    assert write_error(caught.value) == (f"cannot write {tmp_path / 'r.html'}: no space left on device "
                                         f"(free some space, or write elsewhere)")
    assert leftovers(tmp_path) == [] and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_a_full_disk_while_writing_a_report_is_one_line_naming_the_file(dataset, tmp_path, capsys, monkeypatch, fmt):
    cfg = tmp_path / "cfg.json"
    assert _cli(capsys, "recommend", dataset, *QUICK, "--out", cfg)[0] == 0
    monkeypatch.setattr(os, "fsync", _full_disk)
    out = tmp_path / f"report.{fmt}"
    rc, _, err = _cli(capsys, "report", dataset, "--config", cfg, "--out", out, "-q")
    line = _error(rc, err, "no space left on device", "free some space")
    named = out if fmt == "html" else tmp_path / "report_files"     # Markdown writes its images first
    assert line.startswith(f"error: cannot write {named}") and "unexpected" not in line
    assert not out.exists() and leftovers(tmp_path) == []


def test_a_read_only_cache_is_one_line_naming_the_folder(dataset, tmp_path, capsys, monkeypatch):
    """The reference cache cannot be made (no download is tried): the folder and the fix, not "unexpected"."""
    import urllib.request
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("FINETUNE_ADVISOR_CACHE", str(cache))
    monkeypatch.delenv("FINETUNE_ADVISOR_OFFLINE")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("tried to download"))
    if os.geteuid() == 0:         # root writes anything: refuse as a read-only folder would
        real_mkdir = Path.mkdir

        def read_only(self, *args, **kwargs):
            if self == cache or cache in self.parents:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real_mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", read_only)
    else:
        cache.chmod(0o500)
    try:
        rc, _, err = _cli(capsys, "recommend", dataset, "--backbone", "resnet18", "--random-init",
                          "--no-lr-finder", "-q")
    finally:
        cache.chmod(0o700)
    line = _error(rc, err, f"cannot write {cache / 'references'}: permission denied",
                  "set $FINETUNE_ADVISOR_CACHE to a folder you can write")
    assert "unexpected" not in line
