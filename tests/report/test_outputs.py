"""The optional inputs: a training run (--run) and a benchmark folder (--bench), and missing ones."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune_advisor.config import Config
from finetune_advisor.exceptions import FinetuneAdvisorError
from finetune_advisor.report import ReportInputError, build_report, render_html


def _fake_run(folder: Path, config: Config) -> Path:
    import pandas as pd
    folder.mkdir()
    pd.DataFrame({"epoch": [1, 2, 3], "phase": ["frozen", "frozen", "unfrozen"], "phase_epoch": [1, 2, 1],
                  "train_loss": [1.2, 0.9, 0.7], "valid_loss": [1.1, 0.95, 0.8], "accuracy": [0.4, 0.55, 0.62],
                  "error_rate": [0.6, 0.45, 0.38], "lr_body": [float("nan")] * 2 + [1e-4],
                  "lr_head": [1e-3, 1e-3, 1e-3], "seconds": [1.0, 1.1, 1.3]}).to_csv(folder / "history.csv",
                                                                                   index=False)
    (folder / "config.json").write_text(config.replace(head_epochs=9).to_json())
    (folder / "result.json").write_text(json.dumps({
        "final_metrics": {"valid_loss": 0.8, "accuracy": 0.62, "error_rate": 0.38},
        "baseline": {"metric": "accuracy", "value": 0.33, "prediction": "cat"}, "beats_baseline": True,
        "backbone": "resnet18", "n_train": 18, "n_valid": 6, "wall_time_s": 12.5, "notes": []}))
    return folder


def test_training_run_and_benchmark_are_embedded(made, tmp_path, assert_self_contained):
    from PIL import Image
    _, rec = made
    run = _fake_run(tmp_path / "run", rec.config)
    bench = tmp_path / "bench"
    bench.mkdir()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(bench / "heatmap.png")
    (bench / "regret.csv").write_text("dataset,config,regret\ncancer,recommended,0.01\ncancer,default,0.05\n")
    rep = build_report(rec, run_dir=run, bench=bench)
    tr = rep.section("training")
    assert tr.available and tr.figures[0].name == "curves.png"     # re-plotted from history.csv
    assert tr.facts["final accuracy"] == "0.6200" and tr.facts["beats baseline"] == "yes"
    assert any("head_epochs (9)" in n for n in tr.notes)            # the run's config differs
    assert len(tr.tables[0].rows) == 3
    b = rep.section("benchmark")
    assert b.available and b.figures[0].data == (bench / "heatmap.png").read_bytes()
    assert b.tables[0].columns == ["dataset", "config", "regret"] and len(b.tables[0].rows) == 2
    assert_self_contained(render_html(rep))

    (run / "curves.png").write_bytes((bench / "heatmap.png").read_bytes())   # an existing curves.png wins
    (bench / "heatmap.png").unlink()
    (bench / "regret.csv").unlink()
    rep = build_report(rec, run_dir=run, bench=bench)
    assert rep.section("training").figures[0].data == (run / "curves.png").read_bytes()
    b = rep.section("benchmark")
    assert not b.available
    assert any("No heatmap.png" in n for n in b.notes) and any("No regret.csv" in n for n in b.notes)


def test_bench_regret_table_is_shown_compact_with_spreads(made, tmp_path):
    import pandas as pd
    from finetune_advisor import bench as bench_mod
    rows = [{"dataset": "cancer", "fraction": 1.0, "label": lab, "seed": seed, "metric": m + 0.01 * seed,
             "metric_name": "accuracy"}
            for seed in range(3) for lab, m in [("baseline", 0.5), ("anchor:fastai_fine_tune", 0.6)]]
    folder = tmp_path / "bench"
    folder.mkdir()
    bench_mod.regret_summary(pd.DataFrame(rows)).to_csv(folder / "regret.csv", index=False)
    b = build_report(made[1], bench=folder).section("benchmark")
    t = b.tables[0]
    assert t.columns[:7] == ["dataset", "fraction", "metric", "baseline (mean ± std)", "seeds", "best cell", "regret"]
    row = dict(zip(t.columns, t.rows[0]))
    assert row["baseline (mean ± std)"].startswith("0.51") and " ± " in row["baseline (mean ± std)"]
    assert row["best cell"] == "anchor:fastai_fine_tune" and row["seeds"] == "3"
    assert row["margin over fastai_fine_tune"].startswith("-0.1")     # paired std is 0: same offsets per seed
    assert row["margin over lr_find_valley"] == "–"
    assert b.data["regret"][0]["margin_std_over_fastai_fine_tune"] not in ("", None)   # full table kept


@pytest.mark.parametrize("kwarg", ["run_dir", "bench"])
def test_missing_run_or_bench_folder_is_a_clear_error(made, tmp_path, kwarg):
    missing = tmp_path / "nope"
    with pytest.raises(ReportInputError) as info:
        build_report(made[1], **{kwarg: missing})
    assert isinstance(info.value, FinetuneAdvisorError) and info.value.path == str(missing)
    assert str(missing) in str(info.value)


def test_run_folder_without_training_output_is_an_error(made, tmp_path):
    with pytest.raises(ReportInputError, match="no training output"):
        build_report(made[1], run_dir=tmp_path)
