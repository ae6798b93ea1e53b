"""Do the 64 px conclusions hold at a larger image size? (issue 14's robustness check)

Trains, on each dataset and seed, in one bench study and one protocol (by default 128 px, 5 + 5
epochs, the cpu profile's 100 images a class, fraction 1.0):

- ``calibrated``: the calibrated policy's Config (the shipped calibration for the backbone at
  the cpu profile, or ``--calibration FILE``), as the leave-one-out validation builds it;
- ``fastai_fine_tune``: fastai's stock ``fine_tune``;
- ``study``: the study's rules with the LR range test (bench's baseline).

and prints per dataset the mean ± std over seeds, calibrated − fine_tune and calibrated − study,
with the validation's goals (a) and (c) judged on these numbers (``robustness.md`` and
``robustness.json`` in ``--out``). Resumable: rerun the same command after a kill.

    python benchmarks/policy_robustness.py --backbone ../shared/tools/pretrained/resnet50_keras_v1.py:resnet50_keras_v1 \\
        --datasets pets scenes blood --seeds 2 --workers 2
    python benchmarks/policy_robustness.py ... --table-only        # the table so far, runs nothing
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from finetune_advisor import bench
from finetune_advisor.bench.records import read_datasets
from finetune_advisor.calibration.loo_table import judge_goals, role_scores, summarise
from finetune_advisor.calibration.model import Calibration, find_calibration
from finetune_advisor.calibration.validate import calibrated_config

ROLE_OF_LABEL = {"anchor:calibrated": "calibrated", "anchor:fastai_fine_tune": "fastai_fine_tune",
                 "baseline": "study"}
SHOWN = {"calibrated": "calibrated", "fastai_fine_tune": "fastai fine_tune", "study": "study policy"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", required=True, help="the calibration's backbone spec (file.py:callable or a name)")
    p.add_argument("--datasets", nargs="+", default=["pets", "scenes", "blood"])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--head-epochs", type=int, default=5)
    p.add_argument("--unfrozen-epochs", type=int, default=5)
    p.add_argument("--calibration", help="a calibration file (default: the shipped one for the backbone at cpu)")
    p.add_argument("--study", default="cpu-r50-robustness-128")
    p.add_argument("--storage", help="default: sqlite:///<out>/bench.db")
    p.add_argument("--out", help="default: docs/bench/<study>")
    p.add_argument("--workers", type=int, default=2, help="local worker processes, one thread each")
    p.add_argument("--table-only", action="store_true", help="print the table so far; prepare and train nothing")
    return p.parse_args(argv)


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
        return {"calibrated": calibrated_config(baseline, calibration_for(baseline.measurements.similarity.backbone_key))}

    bench.prepare_study(study, bench.resolve_datasets(args.datasets), fractions=[1.0], seeds=args.seeds,
                        profile=profile, grid={}, anchors=("fastai_fine_tune",), extra_anchors=extra,
                        advise_options={"policy": "study", "similarity": True, "lr_finder": True,
                                        "backbone": args.backbone})


def _signed(x: float) -> str:
    return "–" if x != x else f"{x:+.3f}"


def table(args: argparse.Namespace, storage: str, out: Path) -> str:
    study = bench.open_study(args.study, storage, create=False)
    stored = read_datasets(study)
    multi = {d: bool(stored[d].multi_label) for d in args.datasets if d in stored}
    rows = summarise(role_scores(bench.results_table(study), ROLE_OF_LABEL, multi), multi)
    goals = {k: v for k, v in judge_goals(rows).items() if k in "ac"}
    status = bench.study_status(study)
    lines = [f"### {args.study}: {status['n_done']} of {status['n_grid']} trials; "
             f"{args.image_size} px, {args.head_epochs} + {args.unfrozen_epochs} epochs, mean ± std over seeds", "",
             "| dataset | " + " | ".join(SHOWN.values()) + " | calibrated − fine_tune | calibrated − study |",
             "|---|" + "---:|" * (len(SHOWN) + 2)]
    for r in rows:
        cells = []
        for role in SHOWN:
            m, s, n = r[f"{role}_mean"], r[f"{role}_std"], r[f"{role}_n"]
            cells.append("–" if not n else f"{m:.3f}" + ("" if n < 2 else f" ± {s:.3f}") + f" (n={n})")
        lines.append(f"| {r['dataset']} | " + " | ".join(cells)
                     + f" | {_signed(r['calibrated_minus_fine_tune'])} | {_signed(r['calibrated_mean'] - r['study_mean'])} |")
    lines += [""] + [f"- ({k}) {g['goal']}: **{g['verdict']}** — {g['detail']}" for k, g in goals.items()]
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.md").write_text(text, encoding="utf-8")
    (out / "robustness.json").write_text(json.dumps({"rows": rows, "goals": goals, "status": status}, indent=2,
                                                    default=str), encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out or Path("docs") / "bench" / args.study).resolve()
    storage = args.storage or f"sqlite:///{out / 'bench.db'}"
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        print(f"[1/3] preparing {args.study} (baselines with the LR range test, trials)...", file=sys.stderr)
        prepare(args, storage, out)
        print(f"[2/3] {args.workers} worker(s)", file=sys.stderr)
        clock = time.perf_counter()
        codes = bench.spawn_workers(args.study, storage, args.workers, out_dir=out)
        print(f"      done in {(time.perf_counter() - clock) / 60:.1f} min (exit codes {codes})", file=sys.stderr)
    print(table(args, storage, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
