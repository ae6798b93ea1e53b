"""Inputs a new user gives the CLI, checked before any long work: dataset paths (``~``, URLs),
output paths (missing, read-only, a file in the way), and library errors about the user's own
inputs (a storage that cannot be opened, a bad regular expression) as one ``error:`` line that
names the input; "unexpected ... please report it" stays for our bugs. Also: degenerate data
gets a warning, ``-q`` hides downloads, ``--debug`` holds no image-library chatter, and the
messages never read "2.0% < 2%"."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import pytest

from finetune_advisor.cli import main
from finetune_advisor.testing import make_folder_dataset

QUICK = ["--backbone", "resnet18", "--random-init", "--no-similarity", "--no-lr-finder", "-q"]
MAIN = "import sys; from finetune_advisor.cli import main; sys.exit(main())"


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return rc, out, err


def error_line(rc: int, err: str, *needles) -> str:
    assert rc == 1, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "unexpected" not in lines[0] and "please report" not in lines[0], lines[0]
    for needle in needles:
        assert str(needle) in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def no_measuring(monkeypatch):
    """Fail the test if a command gets as far as measuring (the checks must come first)."""
    from finetune_advisor.cli import commands

    def advise(*args, **kwargs):
        raise AssertionError("advise ran before the input was checked")
    monkeypatch.setattr(commands, "advise", advise)


# --- the dataset path -----------------------------------------------------------------------------

def test_a_literal_tilde_in_the_dataset_path_is_expanded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    make_folder_dataset(tmp_path / "pets", counts={"a": 3, "b": 3}, size=8)
    rc, out, err = cli(capsys, "profile", "~/pets")
    assert rc == 0, err
    assert f"dataset: {tmp_path / 'pets'}" in out
    rc, out, err = cli(capsys, "recommend", "~/pets", *QUICK)
    assert rc == 0 and "6 images" in out, err


@pytest.mark.parametrize("url", ["http://example.com/pets.zip", "https://example.com/pets/",
                                 "s3://bucket/pets", "gs://bucket/pets", "HTTPS://EXAMPLE.COM/x.csv"])
@pytest.mark.parametrize("command", ["recommend", "train", "report", "profile"])
def test_a_url_is_refused_with_the_fix(tmp_path, capsys, no_measuring, url, command):
    rc, _, err = cli(capsys, command, url, *([] if command == "profile" else ["--out", tmp_path / "o"]))
    error_line(rc, err, url, "URLs are not supported; download it first")


def test_a_url_given_as_csv_is_refused(capsys, no_measuring):
    rc, _, err = cli(capsys, "recommend", "--csv", "https://example.com/labels.csv", *QUICK)
    error_line(rc, err, "--csv https://example.com/labels.csv", "URLs are not supported")


# --- output paths, checked before the run -------------------------------------------------------------

WRITERS = [("recommend", "--out", "config.json"), ("recommend", "--plot", "lr.png"),
           ("report", "--out", "report.html"), ("train", "--out", "run")]


@pytest.mark.parametrize("command, flag, name", WRITERS)
def test_an_output_under_a_file_fails_before_the_run(tmp_path, capsys, no_measuring, command, flag, name):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    target = blocker / "sub" / name
    rc, _, err = cli(capsys, command, tmp_path, flag, target, *QUICK)
    line = error_line(rc, err, f"cannot write {target}", "is a file, not a folder", flag)
    assert "please report" not in line


def test_an_output_file_that_is_a_folder_fails_before_the_run(tmp_path, capsys, no_measuring):
    rc, _, err = cli(capsys, "recommend", tmp_path, "--out", tmp_path, *QUICK)
    error_line(rc, err, "is an existing folder", "--out")


def _can_drop_root() -> bool:
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


@pytest.mark.skipif(not _can_drop_root(), reason="root writes anywhere and setpriv is unavailable")
@pytest.mark.parametrize("command, flag, name", WRITERS)
def test_an_output_in_a_read_only_folder_fails_before_the_run(tmp_path, capsys, command, flag, name):
    data = make_folder_dataset(tmp_path / "d", counts={"a": 3, "b": 3}, size=8)
    locked = tmp_path / "locked"
    locked.mkdir()
    args = [command, str(data), flag, str(locked / "new" / name), *QUICK]
    locked.chmod(0o555)
    try:
        if os.geteuid() == 0:   # root writes anything: drop that power for the run
            proc = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable,
                                   "-c", MAIN, *args], capture_output=True, text=True, timeout=300,
                                  cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
            rc, err = proc.returncode, proc.stderr
        else:
            rc, _, err = cli(capsys, *args)
    finally:
        locked.chmod(0o755)
    error_line(rc, err, "cannot write", "is read-only", flag)
    assert not (locked / "new").exists()


def test_an_output_in_a_missing_folder_is_created(tmp_path, capsys):
    data = make_folder_dataset(tmp_path / "d", counts={"a": 3, "b": 3}, size=8)
    out = tmp_path / "new" / "deeper" / "config.json"
    rc, _, err = cli(capsys, "recommend", data, "--out", out, *QUICK)
    assert rc == 0 and out.is_file(), err


def test_the_lr_plot_goes_into_a_missing_folder(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from finetune_advisor.cli.commands import _write_figure
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    path = tmp_path / "plots" / "lr.png"
    _write_figure(path, fig)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- user errors from libraries are not "please report it" ---------------------------------------------

def test_a_storage_file_that_cannot_be_opened(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path}/missing/dir/bench.db"          # sqlite creates no folders
    rc, _, err = cli(capsys, "bench", "run", "--storage", url, "--out", tmp_path / "out", "--datasets", "pets", "-q")
    error_line(rc, err, f"the storage {url}", "unable to open database file")


def test_a_storage_file_that_is_not_a_database(tmp_path, capsys):
    bad = tmp_path / "bench.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    rc, _, err = cli(capsys, "bench", "status", "--storage", f"sqlite:///{bad}")
    error_line(rc, err, f"sqlite:///{bad}", "file is not a database", "--storage")


def test_a_refused_postgresql_connection_names_the_url_without_the_password(capsys):
    pytest.importorskip("psycopg2")
    import socket
    with socket.socket() as s:      # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg2://me:secret@127.0.0.1:{port}/bench"
    rc, _, err = cli(capsys, "bench", "status", "--storage", url)
    line = error_line(rc, err, f"postgresql+psycopg2://me:***@127.0.0.1:{port}/bench", "server")
    assert "secret" not in line


@pytest.mark.parametrize("command", ["profile", "recommend"])
def test_a_bad_filename_regex(tmp_path, capsys, command):
    rc, _, err = cli(capsys, command, tmp_path, "--filename-regex", "([", *(QUICK if command == "recommend" else []))
    error_line(rc, err, "'(['", "not a valid regular expression")


def test_a_real_bug_is_still_reported_as_one(tmp_path, capsys, monkeypatch):
    from finetune_advisor.cli import commands

    def broken(args):
        raise RuntimeError("boom")
    monkeypatch.setitem(commands.COMMANDS, "profile", broken)
    rc, _, err = cli(capsys, "profile", tmp_path)
    assert rc == 1 and err.startswith("error: unexpected RuntimeError: boom") and "please report it" in err


def test_a_storage_programming_error_is_still_a_bug():
    import sqlalchemy.exc

    from finetune_advisor.cli.app import _user_error
    import argparse
    args = argparse.Namespace(storage="sqlite:///x.db", command="bench status", study="bench")
    bug = sqlalchemy.exc.ProgrammingError("SELECT", {}, Exception("no such column"))
    assert _user_error(bug, args) is None
    refused = sqlalchemy.exc.OperationalError("connect", {}, Exception("Connection refused"))
    assert "Connection refused" in _user_error(refused, args)


# --- degenerate data ------------------------------------------------------------------------------------

def test_one_pixel_images_get_a_warning(tmp_path, capsys):
    data = make_folder_dataset(tmp_path / "d", counts={"a": 6, "b": 6}, size=1)
    rc, out, err = cli(capsys, "recommend", data, *QUICK)
    assert rc == 0, err
    assert "images are tiny: mean 1x1 px (smallest 1x1)" in out


def test_many_classes_with_two_images_each(tmp_path, capsys, caplog):
    counts = {f"c{i:03d}": 2 for i in range(300)}
    data = make_folder_dataset(tmp_path / "d", counts=counts, size=8)
    rc, out, err = cli(capsys, "recommend", data, *QUICK)
    assert rc == 0, err
    assert "300 classes with a median of 2 images each: few-shot data" in out


def test_the_similarity_subsample_never_claims_more_images_than_exist(caplog):
    from finetune_advisor.similarity.measure import _draw
    few = {f"c{c}": [2 * c, 2 * c + 1] for c in range(300)}           # 600 images
    with caplog.at_level(logging.INFO, logger="finetune_advisor.similarity.measure"):
        drawn, subsampled = _draw(few, k=20, max_images=4000, seed=0)
    assert not subsampled and sum(map(len, drawn.values())) == 600 and "exceeds" not in caplog.text
    uneven = {f"c{c}": list(range(100 * c, 100 * c + (5 if c % 2 else 40))) for c in range(300)}
    with caplog.at_level(logging.INFO, logger="finetune_advisor.similarity.measure"):
        drawn, subsampled = _draw(uneven, k=20, max_images=2000, seed=0)
    n_drawn = sum(map(len, drawn.values()))
    assert subsampled and 1900 <= n_drawn <= 2000
    assert "300 classes, 3750 images at up to 20 per class, exceed max_images=2000" in caplog.text
    assert f"({n_drawn} images)" in caplog.text


# --- smaller ---------------------------------------------------------------------------------------------

def test_a_drop_just_below_the_limit_never_reads_as_equal():
    import numpy as np

    from finetune_advisor.lr_finder.suggest import NoDescentError, _check_descends
    smoothed = np.array([1.0, 0.995, 0.9801, 0.99])        # largest drop 1.99% < 2%
    with pytest.raises(NoDescentError) as info:
        _check_descends(smoothed, np.log10([1e-5, 1e-4, 1e-3, 1e-2]), 0.02)
    assert "largest drop 1.9% < 2%" in str(info.value)


def test_a_similarity_just_below_the_threshold_never_reads_as_equal():
    from finetune_advisor.heuristics._common import _similarity_phrase
    assert _similarity_phrase(0.7196, True, 0.72) == "similarity 0.7196 < 0.72 (far from ImageNet)"
    assert _similarity_phrase(0.7204, False, 0.72) == "similarity 0.7204 >= 0.72 (near ImageNet)"
    assert _similarity_phrase(0.70, True, 0.72) == "similarity 0.70 < 0.72 (far from ImageNet)"


@pytest.mark.parametrize("level, shown", [(logging.WARNING, False), (logging.INFO, True)])
def test_downloading_is_silent_under_quiet(monkeypatch, capsys, level, shown, tmp_path):
    pytest.importorskip("torchvision")
    from torchvision.models import resnet18
    from torchvision.models._api import WeightsEnum

    from finetune_advisor.backbones import loaders

    def fake_download(self, progress=True, **kwargs):     # what torch.hub prints, then the weights
        sys.stdout.write(f'Downloading: "{self.url}" to cache\n')
        return resnet18(weights=None).state_dict()
    monkeypatch.setattr(WeightsEnum, "get_state_dict", fake_download)
    monkeypatch.setattr(loaders, "_name_lookup_failure", lambda url: None)   # a machine with a network
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))                # nothing cached yet
    monkeypatch.delenv(loaders.OFFLINE_ENV, raising=False)
    old = loaders.log.level
    loaders.log.setLevel(level)                                # what the CLI's -q (or not) sets
    try:
        loaders.torchvision_resnet("resnet18")
    finally:
        loaders.log.setLevel(old)
    out, err = capsys.readouterr()
    assert "Downloading" not in out                            # never on stdout (results only)
    assert ("Downloading" in err) == shown


def test_debug_holds_no_image_library_chatter(tmp_path, capsys, caplog, monkeypatch):
    data = make_folder_dataset(tmp_path / "d", counts={"a": 20, "b": 20}, size=8)
    for name in ("PIL", "PIL.PngImagePlugin", "PIL.Image"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)   # restored afterwards
    caplog.set_level(logging.DEBUG)
    assert main(["profile", str(data), "--debug"]) == 0
    pil = [r for r in caplog.records if r.name.startswith("PIL")]
    assert not pil, f"{len(pil)} PIL records, e.g. {pil[0].getMessage()!r}"


# --- bench's options mean what --help says (issue 29.9) ----------------------------------------------

def test_bench_none_means_none_and_a_worker_stops_after_n_trials(tmp_path, monkeypatch, capsys):
    from finetune_advisor import bench
    from finetune_advisor.cli import main
    seen = {}

    def fake_run_bench(name, storage, *, datasets, grid, anchors, **kwargs):
        seen.update(datasets=[d.name for d in datasets], grid=grid, anchors=anchors)
        raise SystemExit(0)

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    mine = tmp_path / "mine"
    (mine / "a").mkdir(parents=True)
    with pytest.raises(SystemExit):
        main(["bench", "run", "--datasets", "none", "--dataset", f"mine={mine}", "--parameters", "none",
              "--anchors", "none", "--out", str(tmp_path / "o")])
    assert seen == {"datasets": ["mine"], "grid": {}, "anchors": ()}
    assert main(["bench", "run", "--datasets", "none", "--out", str(tmp_path / "o")]) == 1
    assert "--datasets none leaves nothing to benchmark" in capsys.readouterr().err

    ran = {}
    monkeypatch.setattr(bench, "open_study", lambda *a, **k: object())
    monkeypatch.setattr("finetune_advisor.bench.records.study_kind", lambda study: "bench")   # the stub has no attrs
    monkeypatch.setattr(bench, "run_worker", lambda study, n_trials=None, progress=True: ran.update(n=n_trials) or 0)
    monkeypatch.setattr(bench, "study_status", lambda study: {})
    monkeypatch.setattr(bench, "write_outputs", lambda study, out: {})
    monkeypatch.setattr("finetune_advisor.cli.commands.format_bench_status", lambda status: "")
    main(["bench", "run", "--worker", "--n-trials", "6", "--study", "s", "--out", str(tmp_path / "o")])
    assert ran == {"n": 6}
