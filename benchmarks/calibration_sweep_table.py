"""The calibration sweep read as a comparison, before any fresh trial: per dataset, fastai's
``fine_tune`` and the study policy without its LR finder (the sweep's baseline: the study's default rate,
÷10 when far) as trained in the sweep, the cell the
calibrated rule picks when fitted *without* that dataset (leave-one-dataset-out, read off the
dataset's own curve), and the sweep's best cell. All numbers are the sweep's own trials (mean
over its seeds), so the oracle column carries the winner's margin and the calibrated column is
an estimate; ``calibration_loo.py`` is the validation with fresh seeds.

    python benchmarks/calibration_sweep_table.py --study cpu-r50-calib-v1 \\
        --storage sqlite:///$PWD/docs/bench/cpu-r50-calib-v1/bench.db \\
        --calibration finetune_advisor/resources/calibrations/resnet50_keras_v1-cpu.json [--markdown OUT.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from finetune_advisor.bench import open_study, results_table
from finetune_advisor.calibration import Calibration


def sweep_table(study_name: str, storage: str, calibration: Calibration) -> pd.DataFrame:
    study = open_study(study_name, storage, create=False)
    res = results_table(getattr(study, "study", study))
    res = res[res["fraction"] == 1.0]
    per = calibration.provenance["per_dataset"]
    rows = []
    for ds, info in per.items():
        g = res[res["dataset"] == ds]
        score = g["roc_auc_macro"] if info["multi_label"] else g["metric"]
        g = g.assign(score=score.astype(float))

        def mean_of(mask) -> float:
            return float(g.loc[mask, "score"].mean()) if mask.any() else float("nan")

        best = float(info["best_score"])
        cell = info["best_cell"]
        rows.append({
            "dataset": ds, "score": "macro AUROC" if info["multi_label"] else "accuracy",
            "similarity": info["predictors"].get("similarity"), "seeds": info["n_seeds"],
            "fine_tune": mean_of(g["value"].astype(str) == "fastai_fine_tune"),
            "study (no finder)": mean_of(g["parameter"] == "baseline"),
            "calibrated (LOO)": best - float(info["loo_regret"]),
            "best cell": best, "best at": f"{cell['arm']} 1e{cell['log10_lr']:+.1f}",
        })
    return pd.DataFrame(rows).set_index("dataset")


def to_markdown(t: pd.DataFrame) -> str:
    cols = ["score", "similarity", "seeds", "fine_tune", "study (no finder)", "calibrated (LOO)", "best cell", "best at"]
    lines = ["| dataset | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for ds, r in t.iterrows():
        cells = [f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols]
        lines.append(f"| {ds} | " + " | ".join(cells) + " |")
    single = t[(t["score"] == "accuracy") & t[["fine_tune", "study (no finder)"]].notna().all(axis=1)]
    lines.append(f"| **mean, single-label with every column ({len(single)})** | | | | "
                 + " | ".join(f"**{single[c].mean():.3f}**" for c in ("fine_tune", "study (no finder)", "calibrated (LOO)",
                                                                       "best cell")) + " | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", required=True)
    p.add_argument("--storage", required=True)
    p.add_argument("--calibration", required=True, help="a calibration fitted on this study")
    p.add_argument("--markdown", help="also write the table here")
    args = p.parse_args(argv)
    cal = Calibration.load(args.calibration)
    t = sweep_table(args.study, args.storage, cal)
    text = to_markdown(t)
    print(f"calibration: {cal.evidence()}; {cal.rule.describe()}, depth arm {cal.rule.arm!r} (family {cal.family})")
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
