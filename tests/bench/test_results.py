"""Bench outputs: the results table, heatmap, regret summary, status, and reading them back."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finetune_advisor import bench
from finetune_advisor.bench import run_bench


# --- outputs --------------------------------------------------------------------------------------

def test_table_heatmap_and_regret_from_a_synthetic_study(tmp_path, helper):
    out = run_bench("syn", f"sqlite:///{tmp_path / 's.db'}", datasets=helper.datasets(tmp_path),
                    fractions=[0.2, 1.0], seeds=[0, 1], grid=helper.SMALL_GRID, advise_fn=helper.fake_advise,
                    run_trial_fn=helper.fake_train, out_dir=tmp_path / "o", progress=False)
    import pandas as pd
    files = out["files"]
    df = pd.read_csv(files["results"])
    assert list(df.columns) == bench.RESULT_COLUMNS
    # every grid cell x seed has a row, aliased ones included
    n_cells = (1 + 3 + 2 + 3) * 2 * 2 * 2   # (baseline, 3 lr, 2 wd, 3 anchors) x datasets x fractions x seeds
    assert len(df) == n_cells and df["same_as"].notna().any()
    imp = pd.read_csv(files["improvement"], index_col=0)
    assert set(imp.index) == {"near @20%", "near @100%", "far @20%", "far @100%"}
    assert (imp["baseline"] == 0).all()
    means = imp.mean(axis=0).tolist()
    assert means == sorted(means, reverse=True)                       # best to worst
    assert set(imp.columns[:2]) == {"weight_decay=0.01", "anchor:fastai_fine_tune"}   # wd 0.01 helps in the fake
    assert Path(files["heatmap"]).stat().st_size > 1000
    reg = pd.read_csv(files["regret"])
    assert len(reg) == 4 and (reg["regret"] >= 0).all()
    assert {"margin_over_fastai_fine_tune", "margin_over_lr_find_valley"} <= set(reg.columns)
    assert out["status"]["n_remaining"] == 0


def test_regret_summary_margins_are_paired_by_seed_and_follow_the_metric_direction():
    import pandas as pd
    rows = []
    for seed, (base, ft, auc_base, auc_ft) in enumerate([(0.60, 0.50, 0.70, 0.80), (0.70, 0.50, 0.72, 0.80),
                                                          (0.80, 0.80, 0.74, 0.80)]):
        rows += [{"dataset": "x", "fraction": 1.0, "label": "baseline", "seed": seed, "metric": base,
                  "metric_name": "accuracy_multi", "valid_loss": 1 - base, "roc_auc_macro": auc_base},
                 {"dataset": "x", "fraction": 1.0, "label": "anchor:fastai_fine_tune", "seed": seed, "metric": ft,
                  "metric_name": "accuracy_multi", "valid_loss": 1 - ft, "roc_auc_macro": auc_ft}]
    df = pd.DataFrame(rows)
    reg = bench.regret_summary(df).iloc[0]
    assert reg["best_cell"] == "baseline" and reg["regret"] == 0 and reg["rank_of_baseline"] == 1
    assert reg["margin_over_fastai_fine_tune"] == pytest.approx(0.1)
    assert reg["fastai_fine_tune_mean"] == pytest.approx(0.6) and reg["fastai_fine_tune_std"] > 0
    assert reg["margin_std_over_fastai_fine_tune"] == pytest.approx(pd.Series([0.1, 0.2, 0.0]).std())
    assert np.isnan(reg["margin_over_lr_find_valley"])               # anchor not in the table
    # lower is better: the baseline's valid loss is lower, so its margin is positive too
    loss = bench.regret_summary(df, "valid_loss", higher_is_better=False).iloc[0]
    assert loss["best_cell"] == "baseline" and loss["margin_over_fastai_fine_tune"] == pytest.approx(0.1)
    auc = bench.regret_summary(df, "roc_auc_macro").iloc[0]
    assert auc["best_cell"] == "anchor:fastai_fine_tune" and auc["regret"] == pytest.approx(0.08)
    assert auc["metric_name"] == "roc_auc_macro" and auc["margin_over_fastai_fine_tune"] == pytest.approx(-0.08)
    assert not reg["partial"] and reg["paired_seeds_over_fastai_fine_tune"] == 3
    # a study still running: the anchor's third seed is not in yet; the margin is on the two shared seeds
    running = bench.regret_summary(df.drop(index=5)).iloc[0]
    assert running["partial"] and running["paired_seeds_over_fastai_fine_tune"] == 2
    assert running["margin_over_fastai_fine_tune"] == pytest.approx(0.15)   # not 0.7 - 0.5 = 0.2 (unpaired)


def test_cli_bench_status(tmp_path, helper, capsys):
    from finetune_advisor.cli import main
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_bench("syn", url, datasets=helper.datasets(tmp_path), fractions=[1.0], seeds=[0], grid={},
              anchors=(), advise_fn=helper.fake_advise, run_trial_fn=helper.fake_train,
              progress=False, write=False)
    assert main(["bench", "status", "--study", "syn", "--storage", url, "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["n_grid"] == 2 and st["n_done"] == 2
    assert main(["bench", "status", "--study", "nope", "--storage", url]) == 1
    out = tmp_path / "outputs"
    assert main(["bench", "outputs", "--study", "syn", "--storage", url, "--out", str(out), "--json"]) == 0
    files = json.loads(capsys.readouterr().out)
    assert {"results", "regret", "heatmap", "status"} <= set(files) and (out / "heatmap.png").is_file()
    assert main(["bench", "outputs", "--study", "syn", "--storage", f"sqlite:///{tmp_path / 'none.db'}"]) == 1
    assert "no bench database" in capsys.readouterr().err


def test_status_text_gives_the_eta_for_the_workers_running_now():
    from finetune_advisor.cli import format_bench_status
    st = {"study": "s", "n_done": 10, "n_grid": 30, "n_remaining": 20, "states": {"COMPLETE": 10, "RUNNING": 2},
          "mean_trial_s": 30.0, "eta_s_one_worker": 600.0, "missing_datasets": {"amazon": "no copy"},
          "failed_datasets": {}}
    text = format_bench_status(st)
    assert "10/30 trials done, 20 to go" in text and "missing: amazon: no copy" in text
    assert "ETA 10.0 min on one worker, 5.0 min with the 2 running now" in text
    st["states"] = {"COMPLETE": 10, "RUNNING": 1}
    assert "running now" not in format_bench_status(st)


def test_read_outputs_reads_back_what_write_outputs_wrote(tmp_path, helper):
    import pandas as pd
    out = run_bench("syn", f"sqlite:///{tmp_path / 's.db'}", datasets=helper.datasets(tmp_path),
                    fractions=[0.2, 1.0], seeds=[0, 1], grid=helper.SMALL_GRID, advise_fn=helper.fake_advise,
                    run_trial_fn=helper.fake_train, out_dir=tmp_path / "o", progress=False)
    back = bench.read_outputs(tmp_path / "o")
    study = out["study"]
    results = bench.results_table(study)
    numeric = ["fraction", "seed", "metric", "valid_loss", "roc_auc_macro", "epochs_to_best", "wall_time_s", "trial"]
    expected = results.assign(**{c: pd.to_numeric(results[c]) for c in numeric})   # None -> NaN, as in a CSV
    pd.testing.assert_frame_equal(back.results, expected, check_dtype=False)
    assert back.results["value"].tolist() == results["value"].tolist()             # None, floats, anchor names
    reg = bench.regret_summary(results)
    assert back.regret.columns == tuple(reg.columns) and len(back.regret) == len(reg)
    typed = pd.DataFrame(back.regret.records())      # text as written: parse the numeric columns
    for c in reg.columns:
        if pd.api.types.is_bool_dtype(reg[c]):
            typed[c] = typed[c].map({"True": True, "False": False})
        elif pd.api.types.is_numeric_dtype(reg[c]):
            typed[c] = pd.to_numeric(typed[c].replace("", np.nan))
    pd.testing.assert_frame_equal(typed, reg, check_dtype=False)
    assert back.regret.records()[0]["dataset"] == reg["dataset"].iloc[0]
    pd.testing.assert_frame_equal(back.improvement, bench.improvement_table(results), check_names=False)
    assert back.heatmap == tmp_path / "o" / "heatmap.png" and back.regret_roc_auc_macro is None
    assert back.status == json.loads(json.dumps(bench.study_status(study), default=str))
    assert bench.read_regret(tmp_path / "o" / "regret.csv") == back.regret
    empty = bench.read_outputs(tmp_path / "nothing-here")
    assert (empty.results, empty.regret, empty.heatmap, empty.status) == (None, None, None, None)
