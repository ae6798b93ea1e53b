"""The run folder: read_run reads back what train wrote; a folder without a run is an error."""
from __future__ import annotations

import json

import pytest

from finetune_advisor.config import Config
from finetune_advisor.exceptions import FinetuneAdvisorError
from finetune_advisor.train import RunFolderError, TrainRun, read_run


def test_read_run_round_trips_what_train_wrote(single_run):
    res, out = single_run
    run = read_run(out)
    assert isinstance(run, TrainRun) and run.path == out and run.problems == ()
    assert run.files == ("config.json", "curves.png", "history.csv", "result.json")   # not model.pkl
    assert run.config == res.config
    assert run.result == json.loads(json.dumps(res.to_dict()))
    assert run.result["files"] == res.files and run.result["beats_baseline"] == res.beats_baseline
    assert list(run.history.columns) == list(res.history.columns)
    assert run.history[["epoch", "phase"]].values.tolist() == res.history[["epoch", "phase"]].values.tolist()
    assert run.history["valid_loss"].tolist() == pytest.approx(res.history["valid_loss"].tolist())
    assert run.curves == (out / "curves.png").read_bytes() and run.curves[:4] == b"\x89PNG"


def test_only_what_was_read_is_set(tmp_path):
    (tmp_path / "result.json").write_text(json.dumps({"final_metrics": {"accuracy": 0.5}}))
    (tmp_path / "config.json").write_text("{not json")
    run = read_run(tmp_path)
    assert run.path == tmp_path and run.files == ("config.json", "result.json")
    assert run.result == {"final_metrics": {"accuracy": 0.5}}
    assert run.history is None and run.curves is None and run.config is None
    assert len(run.problems) == 1 and run.problems[0].startswith("config.json unreadable")


def test_unreadable_files_become_problems(tmp_path):
    (tmp_path / "result.json").write_text("{truncated")
    (tmp_path / "history.csv").write_bytes(b"")
    run = read_run(tmp_path)
    assert run.result is None and run.history is None
    assert [p.split(" ")[0] for p in run.problems] == ["result.json", "history.csv"]


def test_a_folder_without_training_output_is_an_error(tmp_path):
    (tmp_path / "config.json").write_text(Config().to_json())     # a config alone is no run
    with pytest.raises(RunFolderError, match="no training output") as info:
        read_run(tmp_path)
    assert isinstance(info.value, FinetuneAdvisorError) and info.value.path == str(tmp_path)
    assert "history.csv, curves.png or result.json" in str(info.value)
