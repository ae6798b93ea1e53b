"""calibrate() end to end on a real (SQLite) bench study whose trials follow a known rule."""
import math
from pathlib import Path

import pytest

from finetune_advisor import bench
from finetune_advisor.calibration import Calibration
from finetune_advisor.calibration.sweep import calibrate, format_calibration
from finetune_advisor.cli import main
from finetune_advisor.config import Config
from finetune_advisor.exceptions import ConfigError

SIMILARITY = {"d1": 0.55, "d2": 0.65, "d3": 0.75, "d4": 0.85, "d5": 0.95}
GRID = {arm: (-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0) for arm in ("lr_head_only", "lr_all_half")}


@pytest.fixture(scope="module")
def sweep(synthetic_sweep):
    return synthetic_sweep(SIMILARITY)


@pytest.fixture(scope="module")
def study_url(sweep, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cal")
    return sweep.run(f"sqlite:///{tmp_path / 'cal.db'}", tmp_path, GRID)


def test_calibrate_recovers_the_rule_and_records_its_evidence(study_url, sweep, tmp_path):
    cal = calibrate(["cal"], study_url)
    assert cal.backbone == "toynet" and cal.profile == "cpu" and cal.rule.arm == "all_half"
    assert cal.family == "linear:similarity"
    for d, s in SIMILARITY.items():
        assert cal.rule.log10_lr(s) == pytest.approx(sweep.best_log_lr(s), abs=0.35)
    p = cal.provenance
    assert p["datasets"] == sorted(SIMILARITY) and p["n_trials"] == 5 * 14
    assert p["loo_mean_regret"]["linear:similarity"] < p["loo_mean_regret"]["constant"]
    assert p["kendall_tau"]["similarity"]["best_log10_lr"]["tau"] < -0.8
    assert set(p["per_dataset"]["d1"]) >= {"best_cell", "fit_regret", "loo_regret", "loo_portfolio"}
    assert len(cal.portfolio) == 4 and len(p["portfolio_loo_mean_regret"]) == 5
    assert p["portfolio_loo_mean_regret"] == sorted(p["portfolio_loo_mean_regret"], reverse=True)
    text = format_calibration(cal)
    assert "linear:similarity" in text and "d5" in text
    assert Calibration.load(cal.save(tmp_path / "c.json")) == cal


def test_calibrate_command_writes_the_file(study_url, tmp_path, capsys):
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--study", "cal", "--storage", study_url, "--out", str(out), "-q"]) == 0
    assert Calibration.load(out).family == "linear:similarity"
    assert "leave-one-out" in capsys.readouterr().out


def test_too_few_datasets_is_a_clear_error(synthetic_sweep, tmp_path):
    url = synthetic_sweep({"d1": 0.55}).run(f"sqlite:///{tmp_path / 'small.db'}", tmp_path, GRID, name="small",
                                            anchors=())
    with pytest.raises(ConfigError, match="1 usable dataset"):
        calibrate(["small"], url)


# --- predictors the sweep skipped, measured afterwards ----------------------------------------------

FINDER = {"d1": -3.0, "d2": -4.5, "d3": -2.5, "d4": -4.0, "d5": -3.5}   # log10 of each pick; not in similarity order


def test_measured_predictors_are_stored_once_and_can_win_the_fit(sweep, tmp_path):
    from types import SimpleNamespace

    from finetune_advisor.calibration.measure import read_measured
    from finetune_advisor.calibration.sweep import measure_study

    def train_follows_finder(config, dataset, *, fraction, seed, profile):   # best rate = finder x 10
        metric = 0.9 - 0.1 * (math.log10(config.lr) - (FINDER[dataset.name] + 1.0)) ** 2
        return {"metric": metric, "metric_name": "accuracy", "valid_loss": 1 - metric, "wall_time_s": 0.01}

    calls = []

    def fake_measure(path, **options):
        name = Path(path).name
        calls.append((name, options))
        return SimpleNamespace(config=Config(measurements={
            "lr_finder": {"lr": 10 ** FINDER[name], "index": 1, "fastai_valley": 10 ** (FINDER[name] - 1)},
            "transferability": {"logme": 0.1, "probe_accuracy": 0.5}}))

    url = f"sqlite:///{tmp_path / 'f.db'}"
    study = bench.open_study("f", url)
    datasets = []
    for name in FINDER:
        (tmp_path / name).mkdir()
        datasets.append(bench.BenchDataset(name, tmp_path / name, False, "custom"))
    bench.prepare_study(study, datasets, fractions=[1.0], seeds=[0], grid=GRID, anchors=(), advise_fn=sweep.advise)
    bench.run_worker(study, run_trial_fn=train_follows_finder, datasets=datasets, progress=False)

    measure_study("f", url, progress=False, advise_fn=fake_measure)
    measure_study("f", url, progress=False, advise_fn=fake_measure)     # stored: not measured again
    assert sorted(n for n, _ in calls) == sorted(FINDER)
    assert all(o["similarity"] is False and o["lr_finder"] is True and o["backbone"] for _, o in calls)
    stored = read_measured(bench.open_study("f", url, create=False).study)
    assert stored["d1"].lr_finder.lr == pytest.approx(10 ** FINDER["d1"])

    cal = calibrate(["f"], url)
    assert cal.family in ("linear:log10_finder_lr", "linear:log10_valley_lr")
    assert cal.rule.log10_lr(FINDER["d3"] if cal.family.endswith("finder_lr") else FINDER["d3"] - 1) \
        == pytest.approx(FINDER["d3"] + 1.0, abs=0.3)
    assert cal.provenance["per_dataset"]["d2"]["predictors"]["logme"] == pytest.approx(0.1)


def test_calibrate_command_can_leave_datasets_out(study_url, tmp_path, capsys):
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--study", "cal", "--storage", study_url, "--exclude", "d5", "--out", str(out), "-q"]) == 0
    p = Calibration.load(out).provenance
    assert "d5" not in p["datasets"] and "held out" in p["excluded"]["d5"]
