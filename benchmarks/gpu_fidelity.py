"""The 224 px check, prepared for a GPU: does the advice hold at the ``paper`` profile?

The cells of the 128 px ladder, at the ``paper`` profile (224 px, 5 + 15 epochs, batch 64, mixed
precision), on shared single-label datasets at up to 100 images a class (the bench's stratified
subsample, ``pets@100``):

- ``advice``: what ``recommend`` says at ``--profile paper`` (the calibrated policy);
- ``advice_x3`` / ``advice_div3`` / ``advice_div10``: its head and unfrozen rates × 3, ÷ 3 and ÷ 10
  (``calibration.fidelity.RATE_FACTORS``, the ladder's);
- ``fastai_fine_tune``: fastai's defaults (``fine_tune(base_lr=2e-3)``) with the same epochs;
- ``study``: the published rules (``--policy study``'s rates, depth and epochs).

Every image is decoded and resized once and kept on the device as ``uint8``; fastai's batch
augmentation runs there, so there is no per-image PIL work in the training loop
(``build_dataloaders(preloaded=...)``). Training is the package's own ``train`` (two phases).
Writes ``gpu_fidelity.csv`` (one row per dataset × cell × seed) and ``gpu_fidelity.md`` (mean ±
seed spread, the winning cell, the advice's gap to it) to ``--out``.

    python benchmarks/gpu_fidelity.py --out docs/bench/gpu-fidelity          # on a GPU: about 5-8 min
    python benchmarks/gpu_fidelity.py --datasets pets mri --seeds 2
    python benchmarks/gpu_fidelity.py --smoke --out /tmp/smoke               # CPU, tiny data, random init

``--smoke`` runs every step on CPU with a generated dataset and a random-init ResNet-18 at 32 px
for 1 + 1 epochs (the test suite runs it). Its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESNET50 = REPO.parent / "shared" / "tools" / "pretrained" / "resnet50_keras_v1.py"
DATASETS = ("pets", "food", "eurosat", "tomato", "mri", "draw")
CELLS = ("advice", "advice_x3", "advice_div3", "advice_div10", "fastai_fine_tune", "study")
FIELDS = ("dataset", "cell", "seed", "lr", "lr_finetune", "fine_tune", "head_epochs", "unfrozen_epochs",
          "image_size", "accuracy", "n_train", "n_valid", "wall_time_s")


def cell_configs(advice, study_values: dict) -> dict:
    """The cells' Configs from the advice (its ``alternatives["study"]`` holds the study's)."""
    from finetune_advisor.bench.grid import anchor_config
    from finetune_advisor.calibration.fidelity import rate_variants

    cells = {"advice": advice, **rate_variants(advice, check="gpu fidelity")}
    cells["fastai_fine_tune"] = anchor_config(advice, "fastai_fine_tune")
    known = {k: v for k, v in study_values.items() if k in ("lr", "lr_finetune", "lr_divisor", "fine_tune",
                                                            "head_epochs", "unfrozen_epochs")}
    cells["study"] = advice.replace("gpu fidelity: the study policy's choice", **known)
    return cells


def preload(dataset, config, device) -> dict:
    """Every image of ``dataset`` decoded, squished to the config's size, as uint8 CHW on ``device``."""
    import numpy as np
    import torch
    from PIL import Image

    from finetune_advisor.data import load_image

    size = config.image_size
    out = {}
    for item in dataset.items:
        img = load_image(item.path, size).resize((size, size), Image.BILINEAR)
        out[item.path] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).to(device)
    return out


def run_cell(config, dataset, tensors, *, seed: int, device, backbone, fp16: bool) -> dict:
    from finetune_advisor.learner import build_dataloaders
    from finetune_advisor.train import train

    dls = build_dataloaders(dataset, config, seed=seed, backbone=backbone, preloaded=tensors, device=device)
    callbacks = []
    if fp16:
        from fastai.callback.fp16 import MixedPrecision
        callbacks.append(MixedPrecision())
    res = train(config, dataset, seed=seed, backbone=backbone, progress=False, dls=dls, callbacks=callbacks)
    return {"lr": config.lr, "lr_finetune": config.lr_finetune, "fine_tune": config.fine_tune,
            "head_epochs": config.head_epochs, "unfrozen_epochs": config.unfrozen_epochs,
            "image_size": config.image_size, "accuracy": float(res.final_metrics[res.main_metric]),
            "n_train": res.n_train, "n_valid": res.n_valid, "wall_time_s": round(res.wall_time_s, 1)}


def table(rows: list[dict]) -> str:
    """Markdown: per dataset, each cell's mean ± seed spread (half the range), the winner, the advice's gap."""
    import pandas as pd

    df = pd.DataFrame(rows)
    lines = ["| dataset | " + " | ".join(CELLS) + " | best | advice − best |", "|---|" + "---:|" * (len(CELLS) + 2)]
    gaps = []
    for ds, g in df.groupby("dataset", sort=False):
        stats = g.groupby("cell")["accuracy"].agg(["mean", "min", "max"])
        cells = [f"{stats.loc[c, 'mean']:.3f} ± {(stats.loc[c, 'max'] - stats.loc[c, 'min']) / 2:.3f}"
                 if c in stats.index else "n/a" for c in CELLS]
        best = stats["mean"].idxmax()
        gap = stats.loc["advice", "mean"] - stats.loc[best, "mean"] if "advice" in stats.index else math.nan
        gaps.append(gap)
        lines.append(f"| {ds} | " + " | ".join(cells) + f" | {best} | {gap:+.3f} |")
    means = df.groupby("cell")["accuracy"].mean()
    lines.append("| **mean** | " + " | ".join(f"{means.get(c, math.nan):.3f}" for c in CELLS)
                 + f" | {means.idxmax()} | {sum(gaps) / len(gaps):+.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--size", type=int, default=100, help="images a class (the bench's subsample)")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--backbone", default=f"{RESNET50}:resnet50_keras_v1")
    ap.add_argument("--out", type=Path, default=Path("gpu-fidelity"))
    ap.add_argument("--smoke", action="store_true", help="CPU, a generated dataset, random-init ResNet-18, 32 px")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import torch

    from finetune_advisor import bench
    from finetune_advisor.recommend import advise

    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    fp16 = device.type == "cuda"
    options = dict(profile="paper", progress=False, lr_finder_fallback=True)
    scratch = None
    if args.smoke:
        from finetune_advisor.testing import make_folder_dataset

        scratch = tempfile.TemporaryDirectory()
        folder = make_folder_dataset(Path(scratch.name) / "smoke", {"a": 8, "b": 8, "c": 8}, size=(40, 40))
        sources = {"smoke": folder}
        options.update(backbone="resnet18", pretrained=False, similarity=False, lr_steps=40)
    else:
        found = bench.resolve_datasets([f"{d}@{args.size}" for d in args.datasets])
        missing = [d.name for d in found if not d.available]
        if missing:
            print(f"error: datasets not found: {missing} (set FINETUNE_ADVISOR_SHARED_DATA)", file=sys.stderr)
            return 2
        sources = {d.name: d for d in found}
        options.update(backbone=args.backbone)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    start = time.perf_counter()
    for name, source in sources.items():
        rec = advise(source.read() if hasattr(source, "read") else source, **options)
        advice = rec.config
        if args.smoke:             # 1 + 1 epochs at 32 px: the steps, not the numbers
            advice = advice.replace("smoke", image_size=32, head_epochs=1,
                                    unfrozen_epochs=1 if advice.fine_tune != "none" else 0, batch_size=8)
        backbone = rec.backbone
        tensors = preload(rec.dataset, advice, device)
        study = dict((advice.measurements.alternatives or {}).get("study") or {})
        if args.smoke:
            study.update(head_epochs=1, unfrozen_epochs=1 if study.get("fine_tune", "all") != "none" else 0)
        for cell, config in cell_configs(advice, study).items():
            for seed in range(args.seeds):
                row = {"dataset": name, "cell": cell, "seed": seed,
                       **run_cell(config, rec.dataset, tensors, seed=seed, device=device, backbone=backbone, fp16=fp16)}
                rows.append(row)
                print(f"{name:12s} {cell:17s} seed {seed}: {row['accuracy']:.3f} ({row['wall_time_s']:.0f} s)",
                      flush=True)
    with open(args.out / "gpu_fidelity.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    device_name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    text = (f"# 224 px check (`paper` profile){' — SMOKE RUN, numbers meaningless' if args.smoke else ''}\n\n"
            f"Device {device_name}, mixed precision {fp16}, {args.seeds} seed(s), up to {args.size} images a class, "
            f"{time.perf_counter() - start:.0f} s in all. Reprint: `python benchmarks/gpu_fidelity.py`.\n\n"
            f"{table(rows)}\n")
    (args.out / "gpu_fidelity.md").write_text(text)
    print(text)
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
