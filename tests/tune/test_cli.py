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
