"""A schedule sweep (sizes x fixed epochs / the step rule) through calibrate(): the sizes of a
dataset are left out together, and the step rule ships only when it wins leave-one-out."""
import math
from pathlib import Path

import pytest

from finetune_advisor import bench
from finetune_advisor.calibration import Calibration
from finetune_advisor.calibration.size_table import by_size, format_kendall, format_size_table, per_task
from finetune_advisor.calibration.sweep import calibrate, sweep_evidence
from finetune_advisor.config import Config
from finetune_advisor.heuristics import CalibratedRule
from finetune_advisor.heuristics.schedule import steps_per_epoch

SIZES = {"@10": 20, "@100": 200}            # images in the task (two classes)
DATASETS = [f"d{i}{size}" for i in range(1, 5) for size in SIZES]
GRID = {"lr_all_half": (-3.0, -2.5, -2.0), "lr_all_half:steps32": (-3.0, -2.5, -2.0)}


def _advise(dataset, fraction, profile, options=None, cache=None) -> Config:
    n = SIZES["@" + dataset.name.split("@")[1]]
    m = {"far": False, "n_images": n, "n_classes": 2, "images_per_class": {"median": n / 2, "min": n / 2, "max": n / 2},
         "similarity": {"similarity": 0.7, "emd": 0.3, "backbone_key": "toynet", "threshold": 0.72}}
    return profile.apply(Config(profile="cpu", lr=1e-3, lr_finetune=1e-4, backbone="toynet_spec", batch_size=8,
                                valid_pct=0.2, measurements=m))


def _run(tmp_path: Path, train, name: str) -> str:
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    study = bench.open_study(name, url)
    datasets = [bench.BenchDataset(n, tmp_path, False, "custom") for n in DATASETS]
    bench.prepare_study(study, datasets, fractions=[1.0], seeds=[0, 1], grid=GRID, anchors=("fastai_fine_tune",),
                        advise_fn=_advise)
    bench.run_worker(study, run_trial_fn=train, datasets=datasets, progress=False)
    return url


def _score(config, dataset, seed, *, per_step: float) -> dict:
    """Peaks at 10^-2.5; each optimiser step adds ``per_step`` up to 64 steps (a small task's fixed
    epochs give it few); seeds differ by 0.002."""
    n_train = int(config.measurements.n_images * 0.8)
    steps = (config.head_epochs + config.unfrozen_epochs) * steps_per_epoch(n_train, config.batch_size)
    metric = 0.8 - 0.1 * (math.log10(config.lr) + 2.5) ** 2 + per_step * min(steps, 64) + 0.002 * seed
    return {"metric": metric, "metric_name": "accuracy", "valid_loss": 1 - metric, "epochs_to_best": 1,
            "wall_time_s": 0.01}


@pytest.fixture(scope="module")
def steps_win(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("steps")
    return _run(tmp, lambda c, d, *, fraction, seed, profile, cache=None: _score(c, d, seed, per_step=0.002), "win")


def test_the_step_rule_ships_when_it_wins_leave_one_dataset_out(steps_win, tmp_path):
    cal = calibrate(["win"], steps_win)
    assert cal.rule.arm == "all_half" and cal.rule.steps == 32
    assert cal.rule.log10_lr(None) == pytest.approx(-2.5, abs=0.01)
    p = cal.provenance
    choice = p["schedule_choice"]
    assert choice["chosen"] == "step rule"
    assert choice["with_step_rule"]["loo_mean_regret"] < choice["fixed_epochs_only"]["loo_mean_regret"]
    # the sizes of a dataset leave together: each is scored by a rule fitted without its group
    assert {d: row["group"] for d, row in p["per_dataset"].items()} == {d: d.split("@")[0] for d in DATASETS}
    assert p["per_dataset"]["d1@10"]["loo_cell"] == ["all_half:steps32", pytest.approx(-2.5, abs=0.01)]
    assert "steps_gain" in p["kendall_tau"]["log10_images_per_class"]
    assert cal.holds_for()["schedule"] == "32 optimiser steps a phase (1 to 30 epochs)"
    assert Calibration.load(cal.save(tmp_path / "c.json")).rule == cal.rule


def test_the_size_table_compares_advice_constant_and_fastai(steps_win):
    cal = calibrate(["win"], steps_win)
    study = bench.open_study("win", steps_win, create=False)
    evidence, _, info = sweep_evidence([getattr(study, "study", study)])
    table = per_task(evidence, cal, CalibratedRule("all_half", -2.5), info["fastai_fine_tune_seeds"])
    assert list(table["size"]) == [10] * 4 + [100] * 4 and set(table["n_seeds"]) == {2}
    summary = by_size(table)
    # 10 a class: 2 steps an epoch, so fixed 2 + 2 epochs give 8 steps and the rule 64; at 100 both pass 64
    small, large = summary.loc[10], summary.loc[100]
    assert small["advice"] - small["constant"] == pytest.approx(0.002 * 56, abs=1e-6)
    assert large["advice"] == pytest.approx(large["constant"], abs=1e-6)
    assert small["gap_to_best"] == pytest.approx(0.0, abs=1e-6)
    assert list(table["seed_spread"]) == pytest.approx([0.002] * 8)
    text = format_size_table(table)
    assert text.count("\n| d") == 8 and "| 10 | 4 |" in text
    assert "log10_images_per_class" in format_kendall(cal.provenance["kendall_tau"])


def test_fixed_epochs_stay_when_the_step_rule_does_not_win(tmp_path):
    # more steps cost accuracy: the step rule's longer schedules lose
    url = _run(tmp_path, lambda c, d, *, fraction, seed, profile, cache=None: _score(c, d, seed, per_step=-0.001),
               "lose")
    cal = calibrate(["lose"], url)
    assert cal.rule.steps is None and cal.provenance["schedule_choice"]["chosen"] == "fixed epochs"
    assert "schedule_rule" not in cal.schedule
