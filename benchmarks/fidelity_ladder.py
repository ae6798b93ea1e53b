"""Does the 64 px advice hold at 128 px and a longer schedule? (issue 26's ladder)

Trains, on each dataset and seed, in one bench study and one protocol (by default 128 px, 3 + 9
epochs: three times the cpu profile's 2 + 2, on the bench's fixed stratified subsample of 30
images a class, ``pets@30``, the same images the schedule sweep ``cpu-r50-sched-v1`` used at
64 px):

- ``advice``: the calibrated policy's rates and depth (the shipped calibration for the backbone
  at the cpu profile), as the leave-one-out validation builds it;
- ``advice_x3`` / ``advice_div3`` / ``advice_div10``: its head and unfrozen rates x 3, / 3 and / 10
  (``calibration.fidelity.RATE_FACTORS``; ``/ 10`` was added to the finished first table, whose
  best lay at ``/ 3``, the grid's edge, on half the datasets);
- ``fastai_fine_tune``: fastai's defaults (base_lr 2e-3, wd 0.01, lr_mult 100) on the same epochs;
- ``study``: the published rules with the study's full-network LR range test (bench's baseline;
  head-only spends all 12 epochs on the head).

and prints per dataset each cell's mean ± seed spread (half the range), the winning cell, the
advice's gap to it, and how far the best advice rate moved from the 64 px sweep's best
whole-network rate on the same images, in decades (``ladder.md`` and ``ladder.json`` in
``--out``). Resumable: rerun the same command after a kill; ``--table-only`` runs nothing.

    python benchmarks/fidelity_ladder.py --workers 2                 # about 1.5 h of two workers
    python benchmarks/fidelity_ladder.py --table-only                # reprint from the committed study
    python benchmarks/fidelity_ladder.py --table-only --ship         # the verdict into the shipped calibration

A cell that trains the network from a head-only study baseline gets the profile's 3 + 9 epochs
(``bench.expand_grid(profile=)``); the first run, before that fix, trained them 12 + 0 on pets
and food (``--reuse-from`` copied its other trials). ``--ship`` stores the verdict with the
calibration (``Calibration.with_fidelity``) once every trial is done: a calibration transferred
to another profile (``paper``) then cites it in its reasons.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from finetune_advisor import bench
from finetune_advisor.calibration.fidelity import rate_variants
from finetune_advisor.calibration.model import Calibration, find_calibration
from finetune_advisor.calibration.validate import calibrated_config

REPO = Path(__file__).resolve().parent.parent
RESNET50 = REPO.parent / "shared" / "tools" / "pretrained" / "resnet50_keras_v1.py"
DATASETS = ("pets", "food", "eurosat", "tomato", "mri", "draw")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--backbone", default=f"{RESNET50}:resnet50_keras_v1",
                   help="the calibration's backbone spec (default: the shared ResNet-50)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--size", type=int, default=30, help="images a class (the bench's fixed subsample)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--head-epochs", type=int, default=3)
    p.add_argument("--unfrozen-epochs", type=int, default=9)
    p.add_argument("--calibration", help="a calibration file (default: the shipped one for the backbone at cpu)")
    p.add_argument("--study", default="cpu-r50-ladder-128")
    p.add_argument("--storage", help="default: sqlite:///<out>/bench.db")
    p.add_argument("--out", help="default: docs/bench/<study>")
    p.add_argument("--reference-study", default="cpu-r50-sched-v1",
                   help="the 64 px sweep whose best rate the ladder's is compared with (docs/bench/<name>/bench.db)")
    p.add_argument("--reuse-from", help="an earlier run of the ladder: copy its trials of the same key and config")
    p.add_argument("--reuse-storage", help="its storage (default: --storage)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes, one thread each")
    p.add_argument("--table-only", action="store_true", help="print the table so far; prepare and train nothing")
    p.add_argument("--ship", action="store_true",
                   help="write the verdict into the calibration (the shipped one, or --calibration) as its fidelity "
                        "check, which a transferred calibration's reasons cite; only once every dataset is complete")
    return p.parse_args(argv)


def dataset_names(args: argparse.Namespace) -> list[str]:
    return [f"{d}@{args.size}" for d in args.datasets]


def ladder_cells(baseline, calibration: Calibration) -> dict:
    """The ladder's cells made from the study baseline: the advice and its rates scaled."""
    advice = calibrated_config(baseline, calibration)
    return {"calibrated": advice, **rate_variants(advice, check="fidelity ladder")}


def prepare(args: argparse.Namespace, storage: str, out: Path) -> None:
    profile = bench.custom_profile("cpu", image_size=args.image_size, head_epochs=args.head_epochs,
                                   unfrozen_epochs=args.unfrozen_epochs)
    study = bench.open_study(args.study, storage, out_dir=out)
    loaded: dict[str, Calibration] = {}

    def calibration_for(backbone_key: str) -> Calibration:
        if backbone_key not in loaded:
            cal, why_not = find_calibration(backbone_key, "cpu", args.calibration)
            if cal is None:
                sys.exit(f"error: {why_not}")
            loaded[backbone_key] = cal
        return loaded[backbone_key]

    def extra(name: str, fraction: float, baseline) -> dict:
        return ladder_cells(baseline, calibration_for(baseline.measurements.similarity.backbone_key))

    reuse_from = None if not args.reuse_from else bench.open_study(args.reuse_from, args.reuse_storage or storage,
                                                                   create=False)
    bench.prepare_study(study, bench.resolve_datasets(dataset_names(args)), fractions=[1.0], seeds=args.seeds,
                        reuse_from=reuse_from,
                        profile=profile, grid={}, anchors=("fastai_fine_tune",), extra_anchors=extra,
                        advise_options={"policy": "study", "similarity": True, "lr_finder": True,
                                        "backbone": args.backbone})


# the ladder's cells as results_table labels them -> the table's names (in the table's order)
CELLS = {"anchor:calibrated": "calibrated", "anchor:advice_x3": "advice x3", "anchor:advice_div3": "advice /3",
         "anchor:advice_div10": "advice /10", "anchor:fastai_fine_tune": "fastai fine_tune", "baseline": "study"}
ADVICE_CELLS = ("anchor:calibrated", "anchor:advice_x3", "anchor:advice_div3", "anchor:advice_div10")
REFERENCE_ARM = "lr_all_half"     # the 64 px sweep's whole-network arm at lr/2, the advice's own arm
TIE = 1e-6                        # float32 scores: closer than this is the same count of images
WITHIN = 0.01                     # the test: the advice within 1 point of the best cell on the mean
# a best rate half a decade away or more calls for its own calibration; the ladder's rates are x 3
# apart (0.477 decades), so "half a decade" is read as 0.45: one step in the same direction everywhere
MOVE_THRESHOLD = 0.45


def cell_rates(study) -> dict[tuple[str, str], float]:
    """(dataset, label) -> the head rate the cell trained (the same at every seed)."""
    rates = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.name == "COMPLETE" and "config" in t.user_attrs:
            rates[(t.user_attrs["dataset"], t.user_attrs["label"])] = float(json.loads(t.user_attrs["config"])["lr"])
    return rates


def valid_sizes(study) -> dict[str, int]:
    """Dataset -> its validation images (one image is 1/n of accuracy: the table's resolution)."""
    return {t.user_attrs["dataset"]: int(t.user_attrs["n_valid"]) for t in study.get_trials(deepcopy=False)
            if t.state.name == "COMPLETE" and t.user_attrs.get("n_valid")}


def best_rates(results, arm: str = REFERENCE_ARM) -> dict[str, list[float]]:
    """Dataset -> the log10 rates of ``arm`` with the best mean score over the seeds all its
    rates have (ties: all of them), from a sweep's ``bench.results_table``."""
    out = {}
    for dataset, g in results[results["parameter"] == arm].groupby("dataset"):
        seeds = set.intersection(*(set(v["seed"]) for _, v in g.groupby("value")))
        means = g[g["seed"].isin(seeds)].groupby("value")["metric"].mean()
        if len(means):
            out[dataset] = sorted(float(v) for v in means.index[means == means.max()])
    return out


def _mid(values: list[float]) -> float:
    return sum(values) / len(values)


def ladder_table(results, rates: dict[tuple[str, str], float], reference: dict[str, list[float]],
                 n_valid: dict[str, int] | None = None) -> dict:
    """The ladder's numbers (pure): per dataset each cell's mean and half-range over the seeds
    every cell has, the winners, the advice's gap to the best, and how far the best advice rate
    moved from the 64 px sweep's best (decades; the middle of tied rates); then the means over the
    datasets every cell completed and the verdicts."""
    rows = []
    for dataset, g in results[results["label"].isin(list(CELLS))].groupby("dataset", sort=True):
        by_cell = {label: v for label, v in g.groupby("label")}
        seeds = sorted(set.intersection(*(set(v["seed"]) for v in by_cell.values())))
        complete = len(by_cell) == len(CELLS) and bool(seeds)
        cells = {}
        for label, v in sorted(by_cell.items(), key=lambda kv: list(CELLS).index(kv[0])):     # the table's order
            m = v[v["seed"].isin(seeds)]["metric"] if seeds else v["metric"]
            cells[CELLS[label]] = {"mean": float(m.mean()), "spread": float((m.max() - m.min()) / 2), "n": int(len(m))}
        row = {"dataset": dataset, "seeds": seeds, "complete": complete, "cells": cells,
               "one_image": 1 / n_valid[dataset] if n_valid and n_valid.get(dataset) else None}
        if complete:
            best = max(c["mean"] for c in cells.values())
            row["winners"] = [n for n, c in cells.items() if c["mean"] >= best - TIE]
            gap = best - cells["calibrated"]["mean"]
            row["advice_gap"] = 0.0 if gap <= TIE else gap
            advice = {lab: cells[CELLS[lab]]["mean"] for lab in ADVICE_CELLS}
            top = max(advice.values())
            ladder_best = sorted(math.log10(rates[(dataset, lab)]) for lab, v in advice.items() if v >= top - TIE)
            row["best_log10_lr"] = ladder_best
            tried = [math.log10(rates[(dataset, lab)]) for lab in ADVICE_CELLS]
            # a best at the lowest or highest rate tried bounds the move rather than measures it
            row["at_edge"] = ("low" if min(tried) in ladder_best else "high" if max(tried) in ladder_best
                              else None) if len(ladder_best) < len(tried) else None
            row["reference_log10_lr"] = reference.get(dataset)
            row["lr_move_decades"] = None if not reference.get(dataset) else _mid(ladder_best) - _mid(reference[dataset])
        rows.append(row)
    done = [r for r in rows if r["complete"]]
    summary: dict = {"n_datasets": len(done), "n_partial": len(rows) - len(done)}
    if done:
        summary["mean"] = {name: sum(r["cells"][name]["mean"] for r in done) / len(done) for name in CELLS.values()}
        summary["mean_advice_gap"] = sum(r["advice_gap"] for r in done) / len(done)
        summary["best_mean_cell"] = max(summary["mean"], key=summary["mean"].get)
        summary["gap_to_best_mean_cell"] = summary["mean"][summary["best_mean_cell"]] - summary["mean"]["calibrated"]
        summary["advice_holds"] = summary["mean_advice_gap"] <= WITHIN
        moves = [r["lr_move_decades"] for r in done if r["lr_move_decades"] is not None]
        summary["mean_lr_move_decades"] = sum(moves) / len(moves) if moves else None
        summary["mean_abs_lr_move_decades"] = sum(map(abs, moves)) / len(moves) if moves else None
        summary["rate_moved"] = None if not moves else abs(summary["mean_lr_move_decades"]) >= MOVE_THRESHOLD
        summary["n_at_edge"] = sum(r["at_edge"] is not None for r in done)
    return {"rows": rows, "summary": summary}


def _rate(logs: list[float] | None) -> str:
    return "–" if not logs else " / ".join(f"{10 ** v:.1e}" for v in logs)


def format_table(table: dict, *, title: str, command: str) -> str:
    """The ladder's Markdown: one row per dataset, the mean row, and the verdicts in words."""
    names = list(CELLS.values())
    lines = [f"# {title}", "", f"Reprint: `{command}`", "",
             "| dataset | seeds | 1 image | " + " | ".join(names) + " | best | advice gap | best advice lr (128 px) "
             "| best lr (64 px) | moved (decades) |",
             "|---|---|---:|" + "---:|" * len(names) + "---|---:|---:|---:|---:|"]
    for r in table["rows"]:
        cells = " | ".join(f"{r['cells'][n]['mean']:.3f} ± {r['cells'][n]['spread']:.3f}" if n in r["cells"] else "–"
                           for n in names)
        seeds = ",".join(map(str, r["seeds"])) or "–"
        seeds += " | " + ("–" if r["one_image"] is None else f"{r['one_image']:.3f}")
        if not r["complete"]:
            lines.append(f"| {r['dataset']} (partial) | {seeds} | {cells} | – | – | – | – | – |")
            continue
        move = "–" if r["lr_move_decades"] is None else f"{r['lr_move_decades']:+.2f}"
        move += {"low": " (lowest tried)", "high": " (highest tried)"}.get(r.get("at_edge"), "")
        lines.append(f"| {r['dataset']} | {seeds} | {cells} | {', '.join(r['winners'])} | {r['advice_gap']:.3f} "
                     f"| {_rate(r['best_log10_lr'])} | {_rate(r['reference_log10_lr'])} | {move} |")
    s = table["summary"]
    if not s["n_datasets"]:
        return "\n".join(lines + ["", "No dataset has every cell yet."])
    means = " | ".join(f"**{s['mean'][n]:.3f}**" for n in names)
    lines.append(f"| **mean** ({s['n_datasets']}) | | | {means} | {s['best_mean_cell']} | {s['mean_advice_gap']:.3f} "
                 f"| | | {'–' if s['mean_lr_move_decades'] is None else format(s['mean_lr_move_decades'], '+.2f')} |")
    holds = "holds" if s["advice_holds"] else "does not hold"
    lines += ["", f"**Verdict.** On {s['n_datasets']} datasets ({s['n_partial']} partial, left out), the calibrated "
              f"advice is {s['mean_advice_gap']:.3f} below each dataset's best cell on the mean (the test: at most "
              f"{WITHIN:.2f}), and {s['gap_to_best_mean_cell']:.3f} below the best cell on the mean "
              f"({s['best_mean_cell']}): the 64 px advice {holds} at 128 px by that test."]
    if s["rate_moved"] is not None:
        moved = ("half a decade or more: the longer schedule calls for its own calibration" if s["rate_moved"]
                 else "less than half a decade: no separate calibration is called for")
        lines.append(f"The best advice rate lies {s['mean_lr_move_decades']:+.2f} decades from the 64 px sweep's "
                     f"best on the mean (mean |move| {s['mean_abs_lr_move_decades']:.2f}; the rates are x 3 apart, "
                     f"/ 10 below): {moved}.")
        if s.get("n_at_edge"):
            lines.append(f"On {s['n_at_edge']} of {s['n_datasets']} datasets the best advice rate is the lowest or "
                         "highest tried: there the move is a bound, not a measurement.")
    return "\n".join(lines) + "\n"


def write_table(args: argparse.Namespace, storage: str, out: Path) -> str:
    """``ladder.md`` and ``ladder.json`` in ``out`` from the study (and the 64 px sweep's best
    rates); returns the Markdown."""
    study = bench.open_study(args.study, storage, create=False)
    reference: dict[str, list[float]] = {}
    ref_db = REPO / "docs" / "bench" / args.reference_study / "bench.db"
    if ref_db.exists():
        reference = best_rates(bench.results_table(bench.open_study(args.reference_study, f"sqlite:///{ref_db}",
                                                                    create=False)))
    table = ladder_table(bench.results_table(study), cell_rates(study), reference, valid_sizes(study))
    table["study"] = args.study
    table["reference_study"] = args.reference_study if reference else None
    table["status"] = {k: v for k, v in bench.study_status(study).items() if k in ("n_done", "n_grid")}
    command = f"python benchmarks/fidelity_ladder.py --table-only --study {args.study}"
    text = format_table(table, title=f"The fidelity ladder: {args.study} ({table['status']['n_done']} of "
                        f"{table['status']['n_grid']} trials)", command=command)
    (out / "ladder.md").write_text(text)
    (out / "ladder.json").write_text(json.dumps(table, indent=2) + "\n")
    return text


def ship_fidelity(args: argparse.Namespace, storage: str, table: dict) -> Path:
    """Store the ladder's verdict in the calibration it checked (``Calibration.with_fidelity``)."""
    from finetune_advisor.bench.records import read_baselines
    from finetune_advisor.calibration.model import SHIPPED_DIR

    s, done = table["summary"], table["status"]
    if s.get("n_partial") or not s.get("n_datasets") or done["n_done"] < done["n_grid"]:
        sys.exit(f"error: the ladder is not complete ({done['n_done']} of {done['n_grid']} trials): nothing shipped")
    baseline = next(iter(read_baselines(bench.open_study(args.study, storage, create=False)).values()))
    key = baseline.measurements.similarity.backbone_key
    cal, why_not = find_calibration(key, "cpu", args.calibration)
    if cal is None:
        sys.exit(f"error: {why_not}")
    path = Path(args.calibration) if args.calibration else SHIPPED_DIR / f"{cal.backbone}-{cal.profile}.json"
    check = {"study": args.study, "image_size": args.image_size, "head_epochs": args.head_epochs,
             "unfrozen_epochs": args.unfrozen_epochs, "images_per_class": args.size, "seeds": args.seeds,
             "n_datasets": s["n_datasets"], "mean_advice_gap": round(s["mean_advice_gap"], 4),
             "best_mean_cell": s["best_mean_cell"], "gap_to_best_mean_cell": round(s["gap_to_best_mean_cell"], 4),
             "holds": bool(s["advice_holds"]), "n_at_edge": s.get("n_at_edge", 0),
             "mean_lr_move_decades": None if s["mean_lr_move_decades"] is None else round(s["mean_lr_move_decades"], 3),
             "table": f"docs/bench/{args.study}/ladder.md"}
    cal.with_fidelity(check).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out or REPO / "docs" / "bench" / args.study).resolve()
    storage = args.storage or f"sqlite:///{out / 'bench.db'}"
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        print(f"[1/3] preparing {args.study} (study baselines with the full range test, trials)...", file=sys.stderr)
        prepare(args, storage, out)
        print(f"[2/3] {args.workers} worker(s)", file=sys.stderr)
        clock = time.perf_counter()
        codes = bench.spawn_workers(args.study, storage, args.workers, out_dir=out)
        print(f"      done in {(time.perf_counter() - clock) / 60:.1f} min (exit codes {codes})", file=sys.stderr)
    print(write_table(args, storage, out))
    if args.ship:
        path = ship_fidelity(args, storage, json.loads((out / "ladder.json").read_text()))
        print(f"the fidelity check is in {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
