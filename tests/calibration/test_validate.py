"""The leave-one-dataset-out validation (calibration.validate, calibration.loo_table) on a synthetic
calibration sweep whose trials follow a known rule, with stub advice and training."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from finetune_advisor import bench
from finetune_advisor.calibration import Calibration
from finetune_advisor.calibration.loo_table import (judge_goals, read_table, seed_spread, summarise,
                                                    validation_table, write_table)
from finetune_advisor.calibration.sweep import calibrate
from finetune_advisor.calibration.validate import (LOO_PREFIX, ROLES, VALIDATION_ATTR, prepare_validation,
                                                   run_validation)
from finetune_advisor.cli import main
from finetune_advisor.config import Config
from finetune_advisor.exceptions import ConfigError

SIMILARITY = {"d1": 0.55, "d2": 0.62, "d3": 0.75, "d4": 0.88}     # no best rate halfway between grid points
GRID = {arm: (-4.0, -3.0, -2.0, -1.0) for arm in ("lr_head_only", "lr_all_half")}


ADVISED: list = []


@pytest.fixture(scope="module")
def synthetic(synthetic_sweep):
    return synthetic_sweep(SIMILARITY)


@pytest.fixture(scope="module")
def loo_advise(synthetic):
    def advise(dataset, fraction, profile, options=None, cache=None):
        """The validation's baselines: the study policy with the finder; records the options it got."""
        ADVISED.append((dataset.name, dict(options or {})))
        return profile.apply(Config(profile="cpu", lr=1e-3, lr_finetune=1e-4, backbone=(options or {}).get("backbone"),
                                    measurements=synthetic.measurements(dataset.name, finder=True)))
    return advise


@pytest.fixture(scope="module")
def sweep(synthetic, tmp_path_factory):
    """A finished calibration sweep ('cal', seed 0) over four datasets; returns its URL."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    return synthetic.run(f"sqlite:///{tmp_path / 'cal.db'}", tmp_path, GRID)


@pytest.fixture(scope="module")
def prepared(sweep, loo_advise, tmp_path_factory):
    """A validation study 'loo' prepared on the sweep (2 seeds), not run yet."""
    url = f"sqlite:///{tmp_path_factory.mktemp('loo') / 'loo.db'}"
    study = bench.open_study("loo", url)
    ADVISED.clear()
    specs = prepare_validation(study, ["cal"], sweep, seeds=2, seed_offset=100, advise_fn=loo_advise)
    return study, specs


def _enqueued(study):
    return [t.user_attrs for t in study.get_trials(deepcopy=False) if "key" in t.user_attrs]


def test_the_fit_for_a_dataset_never_sees_it(prepared, sweep):
    study, _ = prepared
    plan = study.user_attrs[VALIDATION_ATTR]
    assert plan["datasets"] == sorted(SIMILARITY)
    assert plan["full_calibration"]["datasets"] == sorted(SIMILARITY)
    for d in SIMILARITY:
        cal = Calibration.from_dict(study.user_attrs[LOO_PREFIX + d]["calibration"])
        assert cal.provenance["datasets"] == sorted(set(SIMILARITY) - {d})
        assert "held out" in cal.provenance["excluded"][d]
        assert d not in cal.provenance["per_dataset"]
        # the same fit calibrate() makes without it
        assert cal.rule == calibrate(["cal"], sweep, exclude=[d], min_datasets=2).rule
    # the fits differ: leaving out the extreme dataset moves the line
    rules = {d: study.user_attrs[LOO_PREFIX + d]["calibration"]["rule"] for d in SIMILARITY}
    assert len({json.dumps(r, sort_keys=True) for r in rules.values()}) > 1


def test_five_configs_per_dataset_and_seed_at_fresh_seeds(prepared, synthetic):
    study, specs = prepared
    keys = {s.key for s in specs}
    for d in SIMILARITY:
        for seed in (100, 101):
            assert {f"{d}|1|{label}|{seed}" for label in ROLES.values()} <= keys
    assert len(specs) == len(SIMILARITY) * 2 * len(ROLES)
    attrs = _enqueued(study)
    assert {a["seed"] for a in attrs} == {100, 101}
    assert {a["key"] for a in attrs} == {s.key for s in specs if s.same_as is None}
    by = {s.key: s.config for s in specs}
    plan = study.user_attrs[VALIDATION_ATTR]
    for d, sim in SIMILARITY.items():
        cal = Calibration.from_dict(study.user_attrs[LOO_PREFIX + d]["calibration"])
        c = by[f"{d}|1|anchor:calibrated|100"]
        assert c.lr == pytest.approx(10 ** cal.rule.log10_lr(sim), rel=0.05)       # rounded to 2 significant digits
        assert c.measurements.policy == "calibrated"
        assert c.measurements.calibration["rule"] == cal.rule.to_dict()
        assert c.head_epochs + c.unfrozen_epochs == 4           # the bench schedule, spent as the sweep did
        o = by[f"{d}|1|anchor:oracle|100"]
        cell = plan["oracles"][d]
        assert o.lr == pytest.approx(10 ** cell["log10_lr"]) and o.fine_tune == ("all" if cell["arm"] != "head_only"
                                                                                 else "none")
        assert cell["arm"] == "all_half"          # the fake's fine-tune bonus
        assert cell["log10_lr"] == min(GRID["lr_all_half"], key=lambda r: abs(r - synthetic.best_log_lr(sim)))
        ft = by[f"{d}|1|anchor:fastai_fine_tune|100"]
        assert (ft.lr, ft.lr_divisor) == (2e-3, 100.0)
        assert by[f"{d}|1|anchor:lr_find_valley|100"].lr == pytest.approx(4e-3)
        assert by[f"{d}|1|baseline|100"].measurements.lr_finder.lr == 1e-3      # advised with the finder
    # the baselines: the study policy, with the finder, the sweep's backbone spec
    opts = dict(ADVISED[0][1])
    assert opts["policy"] == "study" and opts["lr_finder"] is True and opts["backbone"] == "toynet_spec"


def test_preparing_again_enqueues_nothing_and_refits_nothing(prepared, sweep, monkeypatch, loo_advise):
    study, specs = prepared
    before = sorted(a["key"] for a in _enqueued(study))
    loo_before = {d: study.user_attrs[LOO_PREFIX + d] for d in SIMILARITY}
    import finetune_advisor.calibration.validate as validate

    def no_fit(*a, **k):
        raise AssertionError("refitted")
    monkeypatch.setattr(validate, "calibrate", no_fit)
    again = prepare_validation(study, ["cal"], sweep, seeds=2, seed_offset=100, advise_fn=loo_advise)
    assert [s.key for s in again] == [s.key for s in specs]
    assert sorted(a["key"] for a in _enqueued(study)) == before
    assert {d: study.user_attrs[LOO_PREFIX + d] for d in SIMILARITY} == loo_before
    with pytest.raises(ConfigError, match="seeds"):
        prepare_validation(study, ["cal"], sweep, seeds=3, seed_offset=100, advise_fn=loo_advise)


def test_the_sweeps_seeds_are_refused(sweep, tmp_path, loo_advise):
    study = bench.open_study("loo2", f"sqlite:///{tmp_path / 'loo2.db'}")
    with pytest.raises(ConfigError, match="seed-offset"):
        prepare_validation(study, ["cal"], sweep, seeds=2, seed_offset=0, advise_fn=loo_advise)
    with pytest.raises(ConfigError, match="seeds must be"):
        prepare_validation(study, ["cal"], sweep, seeds=0, advise_fn=loo_advise)


def test_run_reads_back_a_table_and_the_goals(sweep, tmp_path, loo_advise, synthetic):
    out = run_validation(["cal"], sweep, "loo", loo_storage=f"sqlite:///{tmp_path / 'loo.db'}", seeds=2,
                         advise_fn=loo_advise, run_trial_fn=synthetic.train, out_dir=tmp_path / "out", progress=False)
    table = out["table"]
    assert out["status"]["n_remaining"] == 0 and table.info["complete"]
    assert [r["dataset"] for r in table.rows] == sorted(SIMILARITY)
    for r in table.rows:
        assert all(r[f"{role}_n"] == 2 for role in ROLES) and r["score"] == "accuracy"
        assert r["fitted_on"] == sorted(set(SIMILARITY) - {r["dataset"]})
        cell = {"d1": -1.0, "d2": -1.0, "d3": -2.0, "d4": -3.0}[r["dataset"]]
        oracle = synthetic.train(Config(lr=10 ** cell, fine_tune="all"), bench.BenchDataset(r["dataset"], None, False, ""),
                            fraction=1.0, seed=100, profile=None)["metric"]
        assert r["oracle_mean"] == pytest.approx(oracle + 0.0005)        # seeds 100, 101: noise 0.002, 0.003
    assert set(table.goals) == {"a", "b", "c"}
    assert all(g["verdict"] in ("met", "missed") for g in table.goals.values())
    md = Path(out["files"]["loo_markdown"]).read_text()
    assert "| d1 | accuracy |" in md and "(a)" in md and "seed spread" in md
    back = read_table(tmp_path / "out")
    assert back.goals == json.loads(json.dumps(table.goals)) and len(back.rows) == 4
    assert pd.read_csv(out["files"]["loo_csv"])["dataset"].tolist() == sorted(SIMILARITY)
    # resuming runs nothing and gives the same table
    again = run_validation(["cal"], sweep, "loo", loo_storage=f"sqlite:///{tmp_path / 'loo.db'}", seeds=2,
                           advise_fn=loo_advise, run_trial_fn=synthetic.train, out_dir=tmp_path / "out", progress=False)
    assert again["ran"] == 0 and again["table"].rows == table.rows


# --- the table's arithmetic, on hand-made numbers ---------------------------------------------------

def _scores(rows):
    return pd.DataFrame(rows, columns=["dataset", "role", "seed", "score"])


def test_mean_std_and_goals_on_hand_made_numbers():
    s = [("a", "calibrated", k, v) for k, v in enumerate((0.80, 0.84, 0.82))]
    s += [("a", "fastai_fine_tune", k, v) for k, v in enumerate((0.70, 0.74, 0.72))]
    s += [("a", "oracle", k, v) for k, v in enumerate((0.83, 0.85, 0.84))]
    s += [("b", "calibrated", k, v) for k, v in enumerate((0.50, 0.52, 0.54))]
    s += [("b", "fastai_fine_tune", k, v) for k, v in enumerate((0.60, 0.60, 0.60))]
    s += [("b", "oracle", k, v) for k, v in enumerate((0.55, 0.55, 0.55))]
    s += [("m", "calibrated", k, v) for k, v in enumerate((0.70, math.nan, 0.72))]     # NaN AUROC dropped
    s += [("m", "fastai_fine_tune", 0, 0.90), ("m", "oracle", 0, 0.80)]
    rows = summarise(_scores(s), {"a": False, "b": False, "m": True})
    a, b, m = rows
    assert a["calibrated_mean"] == pytest.approx(0.82) and a["calibrated_std"] == pytest.approx(0.02)
    assert a["calibrated_n"] == 3 and a["study_n"] == 0 and math.isnan(a["study_mean"])
    assert a["calibrated_minus_fine_tune"] == pytest.approx(0.10) and a["worse_than_spread"] is False
    assert b["seed_spread"] == pytest.approx(math.sqrt((0.02 ** 2 + 0) / 2))
    assert b["worse_than_spread"] is True
    # only paired seeds count: m's seed 2 has no fine_tune or oracle score, so its 0.72 is left out
    assert m["score"] == "macro ROC AUC" and m["calibrated_n"] == 1 and m["fastai_fine_tune_n"] == 1
    assert m["calibrated_mean"] == pytest.approx(0.70) and m["unpaired_scores"] == 1 and a["unpaired_scores"] == 0
    assert m["seed_spread"] == 0.0
    g = judge_goals(rows)
    # (a) single-label only: calibrated (0.82 + 0.52) / 2 = 0.67 vs fine_tune (0.72 + 0.60) / 2 = 0.66
    assert g["a"]["verdict"] == "met" and g["a"]["value"] == pytest.approx(0.01)
    # (b) every dataset: gaps 0.02, 0.03, 0.10 -> mean 0.05 > 0.02
    assert g["b"]["verdict"] == "missed" and g["b"]["value"] == pytest.approx((0.02 + 0.03 + 0.10) / 3)
    assert g["b"]["detail"].startswith("mean gap") and "m +0.100" in g["b"]["detail"]
    # (c) b (-0.08 vs 0.014) and m (-0.20) fail
    assert g["c"]["verdict"] == "missed" and g["c"]["value"] == 2 and "b (-0.080" in g["c"]["detail"]


def test_goal_boundaries_and_unmeasured_goals():
    exact = [{"dataset": "a", "multi_label": False, "calibrated_mean": 0.70, "fastai_fine_tune_mean": 0.70,
              "oracle_mean": 0.72, "seed_spread": 0.0}]
    g = judge_goals(exact)
    assert [g[k]["verdict"] for k in "abc"] == ["met", "met", "met"]     # ties and exactly 2 points are met
    only_multi = [{"dataset": "m", "multi_label": True, "calibrated_mean": 0.7, "fastai_fine_tune_mean": math.nan,
                   "oracle_mean": math.nan, "seed_spread": 0.0}]
    assert {v["verdict"] for v in judge_goals(only_multi).values()} == {"not measured"}
    assert seed_spread(0.02, 1, 0.02, 3) == pytest.approx(math.sqrt(0.0002))


def test_write_and_read_table_round_trip(tmp_path):
    rows = summarise(_scores([("a", "calibrated", 100, 0.8), ("a", "fastai_fine_tune", 100, 0.7)]), {"a": False})
    from finetune_advisor.calibration.loo_table import ValidationTable
    table = ValidationTable("t", tuple(rows), judge_goals(rows), {"seeds": [100], "calibration_studies": ["c"]})
    files = write_table(table, tmp_path)
    back = read_table(tmp_path)
    assert back.study == "t" and back.rows[0]["calibrated_mean"] == 0.8 and back.rows[0]["oracle_mean"] is None
    assert "| a | accuracy | 0.800 | 0.700 | – | – | – | – | +0.100 |" in Path(files["loo_markdown"]).read_text()
    assert back.markdown() == table.markdown() and "left out" not in table.markdown()
    cut_short = summarise(_scores([("a", "calibrated", 100, 0.8), ("a", "fastai_fine_tune", 100, 0.7),
                                   ("a", "calibrated", 101, 0.1)]), {"a": False})    # seed 101 not paired yet
    assert cut_short[0]["calibrated_mean"] == 0.8
    assert "1 score(s) at seeds where another role" in ValidationTable("t", tuple(cut_short), {}, {}).markdown()
    with pytest.raises(ConfigError, match="cannot read"):
        read_table(tmp_path / "nope")


def test_table_header_says_when_the_sweep_had_fewer_seeds_than_planned():
    from finetune_advisor.calibration.loo_table import ValidationTable
    rows = summarise(_scores([("a", "calibrated", 100, 0.8), ("a", "fastai_fine_tune", 100, 0.7)]), {"a": False})

    def header(fitted):
        meta = {"calibration_studies": ["c"], "sweep_seeds": [0, 1], "sweep_seeds_fitted": fitted, "seeds": [100]}
        return ValidationTable("t", tuple(rows), {}, meta).markdown().splitlines()[2]

    assert "(seeds 0, 1; the fits had 1 seed(s) a dataset: the sweep was cut short)" in header([1])
    assert "(seeds 0, 1; the fits had 1 to 2 seed(s) a dataset" in header([1, 2])
    assert "(seeds 0, 1); validation seeds 100" in header([2])


def test_table_of_a_study_that_is_not_a_validation(sweep):
    with pytest.raises(ConfigError, match="not a leave-one-dataset-out"):
        validation_table(bench.open_study("cal", sweep, create=False))


# --- the CLI, end to end with stub advice and training ------------------------------------------------

def test_cli_validate_end_to_end(sweep, tmp_path, monkeypatch, capsys, loo_advise, synthetic):
    import finetune_advisor.bench.worker as worker
    monkeypatch.setattr(worker, "advise_baseline", loo_advise)
    monkeypatch.setattr(worker, "train_trial", synthetic.train)
    out = tmp_path / "loo-out"
    args = ["calibrate", "--study", "cal", "--storage", sweep, "--validate", "cliloo", "--seeds", "1",
            "--out", str(out), "-q"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Leave-one-dataset-out validation: cliloo" in text and "Goals:" in text
    assert (out / "loo.md").is_file() and (out / "loo.csv").is_file() and (out / "bench.db").is_file()
    assert main(args + ["--n-trials", "0", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ran"] == 0 and doc["status"]["n_remaining"] == 0 and set(doc["table"]["goals"]) == {"a", "b", "c"}
    # another worker, through bench, finds nothing left; bench outputs writes the table too
    storage = f"sqlite:///{out / 'bench.db'}"
    assert main(["bench", "outputs", "--study", "cliloo", "--storage", storage, "--out", str(tmp_path / "o2"),
                 "--json", "-q"]) == 0
    assert "loo_markdown" in json.loads(capsys.readouterr().out)
    assert main(args[:-3] + ["--seed-offset", "0", "--out", str(tmp_path / "x"), "-q"]) == 1   # the sweep's seed 0
    assert "seed-offset" in capsys.readouterr().err


def test_a_refit_validation_reuses_the_unchanged_trials(sweep, tmp_path, loo_advise, synthetic, synthetic_sweep,
                                                        monkeypatch, capsys):
    """After a refit (here: a sweep whose best rates sit half a decade higher), a new validation
    with --reuse-from trains only the configs the refit moved; the anchors are copied."""
    old_url = f"sqlite:///{tmp_path / 'old.db'}"
    run_validation(["cal"], sweep, "loo-old", loo_storage=old_url, seeds=1, advise_fn=loo_advise,
                   run_trial_fn=synthetic.train, out_dir=tmp_path / "old", progress=False)
    moved = synthetic_sweep(SIMILARITY)
    moved.best_log_lr = lambda similarity: synthetic.best_log_lr(similarity) + 0.5
    refit_sweep = moved.run(f"sqlite:///{tmp_path / 'cal2.db'}", tmp_path, GRID)
    trained, advised_before = [], len(ADVISED)

    def counting_train(config, dataset, **kw):
        trained.append(config)
        return moved.train(config, dataset, **kw)

    # on the command line, as a user redoes the validation after a refit
    import finetune_advisor.bench.worker as worker
    monkeypatch.setattr(worker, "advise_baseline", loo_advise)
    monkeypatch.setattr(worker, "train_trial", counting_train)
    out = tmp_path / "new"
    assert main(["calibrate", "--study", "cal", "--storage", refit_sweep, "--validate", "loo-new", "--seeds", "1",
                 "--out", str(out), "--reuse-from", "loo-old", "--reuse-storage", old_url, "-q"]) == 0
    text = capsys.readouterr().out
    assert len(ADVISED) == advised_before                 # the baselines were copied, not advised again
    new = bench.open_study("loo-new", f"sqlite:///{out / 'bench.db'}")
    by_label: dict[str, list[bool]] = {}
    for t in new.get_trials(deepcopy=False):
        by_label.setdefault(t.user_attrs["label"], []).append(bool(t.user_attrs.get("reused_from")))
    for label in ("anchor:fastai_fine_tune", "anchor:lr_find_valley", "baseline"):
        assert all(by_label[label]), label               # do not depend on the fit: copied
    assert not any(by_label["anchor:oracle"])             # the best cells moved: trained
    assert len(trained) == sum(not r for flags in by_label.values() for r in flags) > 0
    n_copied = sum(r for flags in by_label.values() for r in flags)
    assert f"({n_copied} copied unchanged from study loo-old: same key, same training config)" in text
    # refused: reusing itself, or a study that is not there
    assert main(["calibrate", "--study", "cal", "--storage", refit_sweep, "--validate", "loo-new", "--seeds", "1",
                 "--out", str(out), "--reuse-from", "loo-new", "--loo-storage", f"sqlite:///{out / 'bench.db'}",
                 "-q"]) == 1
    assert "cannot reuse its own trials" in capsys.readouterr().err
    assert main(["calibrate", "--study", "cal", "--storage", refit_sweep, "--validate", "loo-new", "--seeds", "1",
                 "--out", str(out), "--reuse-from", "nope", "--reuse-storage", old_url, "-q"]) == 1
    assert "no study named 'nope'" in capsys.readouterr().err


def test_the_validation_study_may_live_in_its_own_new_output_folder(sweep, tmp_path, loo_advise):
    out = tmp_path / "docs" / "bench" / "loo-new"            # as benchmarks/calibration_loo.py lays it out
    result = run_validation(["cal"], sweep, "loo", loo_storage=f"sqlite:///{out / 'bench.db'}", seeds=1,
                            advise_fn=loo_advise, n_trials=0, out_dir=out, progress=False)
    assert (out / "bench.db").is_file() and (out / "loo.md").is_file()
    assert result["ran"] == 0 and result["status"]["n_remaining"] > 0
