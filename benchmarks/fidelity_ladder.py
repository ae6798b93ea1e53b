"""Does the 64 px advice hold at 128 px and a longer schedule? (issue 26's ladder)

Trains, on each dataset and seed, in one bench study and one protocol (by default 128 px, 3 + 9
epochs: three times the cpu profile's 2 + 2, on the bench's fixed stratified subsample of 30
images a class, ``pets@30``, the same images the schedule sweep ``cpu-r50-sched-v1`` used at
64 px):

- ``advice``: the calibrated policy's rates and depth (the shipped calibration for the backbone
  at the cpu profile), as the leave-one-out validation builds it;
- ``advice_x3`` / ``advice_div3``: its head and unfrozen rates x 3 and / 3;
- ``fastai_fine_tune``: fastai's defaults (base_lr 2e-3, wd 0.01, lr_mult 100) on the same epochs;
- ``study``: the published rules with the study's full-network LR range test (bench's baseline;
  head-only spends all 12 epochs on the head).

and prints per dataset each cell's mean ± seed spread (half the range), the winning cell, the
advice's gap to it, and how far the best advice rate moved from the 64 px sweep's best
whole-network rate on the same images, in decades (``ladder.md`` and ``ladder.json`` in
``--out``). Resumable: rerun the same command after a kill; ``--table-only`` runs nothing.

    python benchmarks/fidelity_ladder.py --workers 2                 # about 3 h of two workers
    python benchmarks/fidelity_ladder.py --table-only                # reprint from the committed study
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from finetune_advisor import bench
from finetune_advisor.calibration.model import Calibration, find_calibration
from finetune_advisor.calibration.validate import calibrated_config

REPO = Path(__file__).resolve().parent.parent
RESNET50 = REPO.parent / "shared" / "tools" / "pretrained" / "resnet50_keras_v1.py"
DATASETS = ("pets", "food", "eurosat", "tomato", "mri", "draw")
RATE_FACTORS = {"advice_x3": 3.0, "advice_div3": 1 / 3}


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
    return p.parse_args(argv)


def dataset_names(args: argparse.Namespace) -> list[str]:
    return [f"{d}@{args.size}" for d in args.datasets]


def ladder_cells(baseline, calibration: Calibration) -> dict:
    """The ladder's cells made from the study baseline: the advice and its rates x 3 and / 3."""
    advice = calibrated_config(baseline, calibration)
    cells = {"calibrated": advice}
    for name, k in RATE_FACTORS.items():
        cells[name] = advice.replace(f"fidelity ladder: the advice's rates x {k:.3g}", lr=advice.lr * k,
                                     lr_finetune=advice.lr_finetune * k)
    return cells


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


def write_table(args: argparse.Namespace, storage: str, out: Path) -> str:
    study = bench.open_study(args.study, storage, create=False)
    status = bench.study_status(study)
    return f"{args.study}: {status['n_done']} of {status['n_grid']} trials"


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
    return 0


if __name__ == "__main__":
    sys.exit(main())
