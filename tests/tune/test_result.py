"""The result of a search: the best Config's reasons, the folder and its reader, the report's tune
section, and the best Config trained as is by ``finetune-advisor train --config``."""
from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

from finetune_advisor.cli import main
from finetune_advisor.config import DECISION_FIELDS, Config
from finetune_advisor.tune import SearchSpace, TuneFolderError, parse_budget, read_tune
from finetune_advisor.tune.result import summarise, write_outputs

optuna = pytest.importorskip("optuna")


@pytest.fixture(scope="module")
def written(tmp_path_factory, small_config):
    """A finished 3-trial study (made by hand: the recommendation, a better one, a pruned one),
    summarised and written out."""
    base = dataclasses.replace(small_config(), reasons={f: "the rules" for f in DECISION_FIELDS})
    space = SearchSpace.around(base)
    study = optuna.create_study(direction="maximize", study_name="tune")
    better = {**space.params_of(base), "lr": 4e-3, "fine_tune": "none"}
    for params, value, role in [(space.params_of(base), 0.6, "recommendation"), (better, 0.8, "search"),
                                ({**better, "lr": 2e-2}, None, "search")]:
        study.enqueue_trial(params, user_attrs={"role": role, "wall_time_s": 2.0, "epochs_run": 4})
        trial = study.ask()
        space.suggest(trial)
        trial.report(0.5, 1)
        study.tell(trial, value) if value is not None else study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    bench_like = SimpleNamespace(study_name="tune", url="sqlite:///tune.db", get_trials=study.get_trials,
                                 user_attrs={"space": space.to_dict()})
    result = summarise(bench_like, base, "accuracy", parse_budget("3x"), "budget")
    out = tmp_path_factory.mktemp("result")
    return write_outputs(result, study, out), base, out


def test_the_best_config_says_it_was_tuned_on_the_fields_that_changed(written):
    res, base, _ = written
    assert (res.best_trial, res.best_value, res.recommendation_value) == (1, 0.8, 0.6)
    assert res.improvement == pytest.approx(0.2)
    assert (res.n_trials, res.n_complete, res.n_pruned, res.spent_s, res.budget_s) == (3, 2, 1, 6.0, 6.0)
    cfg = res.best_config
    assert (cfg.lr, cfg.fine_tune, cfg.head_epochs, cfg.unfrozen_epochs) == (4e-3, "none", 4, 0)
    tuned = {f for f in DECISION_FIELDS if cfg.reasons[f] != "the rules"}
    assert tuned == {"lr", "lr_finetune", "fine_tune", "head_epochs", "unfrozen_epochs"}
    assert cfg.reasons["lr"] == "tuned: trial 1 of 3, accuracy 0.8000 (the recommendation: 0.6000)"
    assert cfg.backbone == base.backbone and cfg.reasons["backbone"] == "the rules"


def test_the_folder_reads_back_with_both_plots(written, tmp_path):
    res, _, out = written
    assert set(res.files) == {"best_config", "trials", "history_plot", "importance_plot", "result"}
    assert res.notes == []
    back = read_tune(out)
    assert back.to_dict() == res.to_dict() and back.best_config == res.best_config
    with pytest.raises(TuneFolderError, match="no tune.json"):
        read_tune(tmp_path)


def test_the_report_shows_the_tune_section(written, folder):
    from finetune_advisor.data import profile_dataset, read_dataset
    from finetune_advisor.recommend import Recommendation
    from finetune_advisor.report import ReportInputError, build_report, render_html

    res, base, out = written
    ds = read_dataset(folder)
    rec = Recommendation.from_config(base, profile_dataset(ds), dataset=ds)
    section = build_report(rec, tune=out).section("tune")
    assert section.available and [f.name for f in section.figures] == ["tune_history.png", "tune_importance.png"]
    assert section.facts["best"] == "0.8000 (trial 1)" and section.facts["gain over the recommendation"] == "+0.2000"
    assert len(section.tables[0].rows) == 3 and section.tables[0].highlight == [1]
    assert any("fine_tune (none)" in n for n in section.notes)
    assert 'id="tune"' in render_html(build_report(rec, tune=out))
    assert not build_report(rec).section("tune").available
    with pytest.raises(ReportInputError, match="--tune"):
        build_report(rec, tune=folder)


def test_the_best_config_trains_through_train_config(written, folder, tmp_path, capsys):
    res, _, out = written
    rc = main(["train", str(folder), "--config", str(out / "best_config.json"), "--out", str(tmp_path / "run"),
               "-q", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    trained = json.loads(captured.out)
    assert Config.from_dict(trained["config"]) == res.best_config
    assert len(trained["history"]) == 4        # head only: 2 + 2 epochs on the head
