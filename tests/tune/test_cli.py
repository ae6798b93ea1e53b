"""``finetune-advisor tune`` on the command line: help with examples, and a bad budget or trial
count told on one line before any work."""
from __future__ import annotations

import pytest

from finetune_advisor.cli import main


def test_tune_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["tune", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for text in ("--budget", "--trials", "--storage", "--worker", "--out", "examples:", "--budget 20m"):
        assert text in out
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "--tune" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [(["--budget", "5y"], "error: budget '5y' is not understood"),
                                           (["--budget", "0x"], "error: budget '0x' must be more than nothing"),
                                           (["--trials", "0"], "error: n_trials must be an integer >= 1")])
def test_bad_budget_or_trials_is_one_line(folder, tmp_path, capsys, args, message):
    rc = main(["tune", str(folder), "--out", str(tmp_path / "out"), "--backbone", "resnet18", "--random-init",
               "--no-similarity", "--no-lr-finder", "-q", *args])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out" / "tune.db").exists()


# --- a failed check leaves nothing behind ------------------------------------------------------------

QUICK = ["--backbone", "resnet18", "--random-init", "--no-similarity", "--no-lr-finder", "-q"]


def _fails(capsys, *args) -> str:
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_missing_dataset_leaves_no_out_folder(tmp_path, capsys, small_config):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(small_config().to_json())
    new = tmp_path / "new" / "deeper"
    _fails(capsys, "tune", tmp_path / "missing", "--out", new, *QUICK)
    # with --config the dataset is read after the study is opened: what that made is removed again
    assert "does not exist" in _fails(capsys, "tune", tmp_path / "missing", "--config", cfg, "--out", new, *QUICK)
    assert not (tmp_path / "new").exists()


def test_a_dataset_that_fails_its_checks_leaves_no_tune_db(tmp_path, capsys):
    from finetune_advisor.testing import make_folder_dataset
    data = make_folder_dataset(tmp_path / "d", counts={"a": 1, "b": 1}, size=16)   # nothing left to validate on
    _fails(capsys, "tune", data, "--out", tmp_path / "new", *QUICK)
    assert not (tmp_path / "new").exists()
    db = tmp_path / "elsewhere" / "t.db"
    db.parent.mkdir()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    _fails(capsys, "tune", data, "--out", tmp_path / "kept", "--storage", f"sqlite:///{db}", *QUICK)
    assert list(db.parent.iterdir()) == []                                          # no t.db, no journal
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]         # what was there stays


def test_a_worker_with_no_study_to_join_leaves_no_tune_db(folder, tmp_path, capsys):
    err = _fails(capsys, "tune", folder, "--worker", "--out", tmp_path / "new", *QUICK)
    assert "no tune study named 'tune'" in err
    assert not (tmp_path / "new").exists()
