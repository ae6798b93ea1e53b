"""Schedule advice over dataset sizes (issue 25), reprinted from the committed schedule sweep.

Fits the calibrated rule on ``cpu-r50-sched-v1`` (13 datasets at 10, 30 and 100 images a class;
the whole network at lr/2 at 10^-3, 10^-2.5 and 10^-2 and the head alone at 10^-1.5, each under
the cpu profile's fixed 2 + 2 epochs and under 32 optimiser steps a phase), with every predictor
allowed and leave-one-*dataset*-out (all sizes of a dataset out together), then prints:

1. the rule chosen, and whether the step rule beat the fixed epochs leave-one-out;
2. each predictor's Kendall tau with the best rate, the fine-tune gain and the step rule's gain;
3. the per-size table: the advice (leave-one-out), today's constant (the shipped ResNet-50
   calibration's rule), fastai's ``fine_tune`` and the best cell, per size and per task.

    python benchmarks/schedule_advice.py                     # print (Markdown)
    python benchmarks/schedule_advice.py --out docs/schedule-advice-table.md
    python benchmarks/schedule_advice.py --json              # the calibration it fitted

No training: it reads the study (seconds).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STUDY = "cpu-r50-sched-v1"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default=STUDY)
    ap.add_argument("--storage", default=None, help="default: sqlite:///docs/bench/<study>/bench.db")
    ap.add_argument("--reference", default="resnet50_keras_v1",
                    help="backbone whose shipped cpu calibration is 'today's constant'")
    ap.add_argument("--partial", action="store_true",
                    help="fit on every task with results, even one whose cells are not all in (default: complete ones)")
    ap.add_argument("--out", type=Path, help="also write the Markdown here")
    ap.add_argument("--json", action="store_true", help="print the fitted calibration as JSON instead")
    ap.add_argument("--ship", type=Path, metavar="CALIBRATION",
                    help="give this calibration file the schedule the sweep chose (Calibration.with_schedule: "
                         "only if the sweep chose the file's own rate), and save it in place")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from finetune_advisor.bench import open_study
    from finetune_advisor.calibration import find_calibration
    from finetune_advisor.calibration.size_table import format_kendall, format_size_table, per_task
    from finetune_advisor.calibration.sweep import calibrate, sweep_evidence
    from finetune_advisor.exceptions import FinetuneAdvisorError

    storage = args.storage or f"sqlite:///{REPO / 'docs' / 'bench' / args.study / 'bench.db'}"
    try:
        cal = calibrate([args.study], storage, complete_only=not args.partial)
        reference, why_not = find_calibration(args.reference, "cpu")
        if reference is None:
            raise FinetuneAdvisorError(why_not)
    except FinetuneAdvisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(cal.to_dict(), indent=1))
        return 0
    if args.ship:
        from finetune_advisor.calibration import Calibration

        try:
            shipped = Calibration.load(args.ship).with_schedule(cal)
        except FinetuneAdvisorError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        shipped.save(args.ship)
        print(f"wrote {args.ship}: {shipped.rule.describe()}, {shipped.rule.describe_schedule()}; "
              f"holds for {shipped.holds_for()}", file=sys.stderr)
    study = open_study(args.study, storage, create=False)
    evidence, _, info = sweep_evidence([getattr(study, "study", study)])
    # today's constant: the shipped rule under the profile's fixed epochs (once shipped, the file carries steps)
    constant = dataclasses.replace(reference.rule, steps=None)
    table = per_task(evidence, cal, constant, info.get("fastai_fine_tune_seeds") or {})
    p = cal.provenance
    choice = p.get("schedule_choice") or {}
    seeds = table["n_seeds"].value_counts().sort_index().to_dict()
    lines = [f"# Schedule advice over sizes: {args.study}", "",
             f"Reprint: `python benchmarks/schedule_advice.py` ({len(table)} tasks from "
             f"{table['base'].nunique()} datasets, {p.get('n_trials')} trials; tasks by seeds in: {seeds}).", "",
             f"**Rule chosen** (family `{cal.family}`, leave-one-dataset-out over every predictor): "
             f"{cal.rule.describe()}, depth `{cal.rule.arm}`, schedule: {cal.rule.describe_schedule()}.", ""]
    if choice:
        ws, fx = choice["with_step_rule"], choice["fixed_epochs_only"]
        lines += [f"**Step rule against fixed epochs**, leave-one-dataset-out mean regret: with the step rule allowed "
                  f"{ws['loo_mean_regret']:.4f} ± {ws['standard_error']:.4f} (`{ws['family']}`), fixed epochs only "
                  f"{fx['loo_mean_regret']:.4f} ± {fx['standard_error']:.4f} (`{fx['family']}`): "
                  f"**{choice['chosen']}** ships.", ""]
    lines += ["Leave-one-dataset-out mean regret per family: "
              + ", ".join(f"`{f}` {r}" for f, r in (p.get("loo_mean_regret") or {}).items()), "",
              "## Kendall τ of each predictor with each target (over tasks)", "",
              "`best_log10_lr`: the best cell's rate; `fine_tune_gain`: best whole-network score minus best "
              "head-only; `steps_gain`: best step-rule score minus best fixed-epoch score.", "",
              format_kendall(p.get("kendall_tau") or {}), "",
              "## Per size (leave-one-dataset-out)", "",
              f"Today's constant: the shipped `{args.reference}` cpu calibration, {reference.rule.describe()} "
              f"({constant.arm}, {constant.describe_schedule()}).", "",
              format_size_table(table)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
