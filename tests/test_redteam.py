"""Red-team cases (issue 29): a Config whose backbone names code is refused by the commands that build
a model from it unless the user passes ``--trust-config-code``; a diverged training exits non-zero."""
from __future__ import annotations

import pytest

from finetune_advisor.cli import main
from finetune_advisor.config import Config
from finetune_advisor.testing import make_folder_dataset


@pytest.fixture
def evil(tmp_path):
    """A Config whose backbone is a file that leaves a mark when it is imported."""
    mark = tmp_path / "ran"
    code = tmp_path / "evil.py"
    code.write_text(f"open({str(mark)!r}, 'w').write('ran')\n\ndef f(pretrained=True):\n    raise SystemExit(3)\n")
    cfg = tmp_path / "config.json"
    cfg.write_text(Config(backbone=f"{code}:f", image_size=32, batch_size=4, head_epochs=1, unfrozen_epochs=0,
                          fine_tune="none").to_json())
    data = make_folder_dataset(tmp_path / "d", counts={"a": 6, "b": 6}, size=16)
    return cfg, data, mark


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_config_that_names_code_is_refused_and_nothing_runs(evil, tmp_path, command, capsys):
    cfg, data, mark = evil
    extra = ["--budget", "1x"] if command == "tune" else []
    assert main([command, str(data), "--config", str(cfg), "--out", str(tmp_path / "out"), *extra]) != 0
    err = capsys.readouterr().err
    assert "names code" in err and "--trust-config-code" in err and str(cfg) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not mark.exists()


def test_trusting_the_config_runs_its_code(evil, tmp_path):
    cfg, data, mark = evil
    with pytest.raises(SystemExit):     # the file's own function ran
        main(["train", str(data), "--config", str(cfg), "--out", str(tmp_path / "out"), "--trust-config-code"])
    assert mark.read_text() == "ran"


def test_a_diverged_training_exits_non_zero_and_says_what_to_change(tmp_path, capsys):
    data = make_folder_dataset(tmp_path / "d", counts={"a": 8, "b": 8}, size=16)
    cfg = tmp_path / "config.json"
    cfg.write_text(Config(backbone="resnet18", image_size=32, batch_size=4, head_epochs=2, unfrozen_epochs=0,
                          fine_tune="none", lr=1e6).to_json())
    rc = main(["train", str(data), "--config", str(cfg), "--out", str(tmp_path / "run"), "-q"])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "error: training diverged" in err and "lower the learning rate" in err
    assert "note: training diverged" in out and "{" not in out      # readable lines, not a dict repr
