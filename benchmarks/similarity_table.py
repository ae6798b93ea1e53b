"""The study's Table 2 for the datasets at hand: resolution, imbalance, classes, LR-finder rate,
similarity to ImageNet and the near/far verdict, beside the study's published values.

    python benchmarks/similarity_table.py                         # real ResNet-50 (shared tools)
    python benchmarks/similarity_table.py --backbone efficientnet_lite0 --csv out/table.csv

The reference (Tiny-ImageNet class means) is built from ``--tiny-imagenet`` once per backbone and
cached; each dataset then runs the same pipeline as ``finetune-advisor recommend`` (cpu profile).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
DEFAULT_BACKBONE = f"{SHARED}/tools/pretrained/resnet50_keras_v1.py:resnet50_keras_v1"

# name -> (folder under shared/data, study's Table 2 row: resolution, imbalance SD, classes, lr, similarity)
DATASETS = {
    "Tiny-ImageNet val": ("tiny-imagenet-200/val", None),
    "Cancer": ("cancer-ham10000", ("600x450", 1765.2, 7, 0.0050, 0.604)),
    "DOTA": ("dota-crops", ("2304x2181", 18.9, 15, 0.0052, 0.829)),
    "Draw": ("draw-quickdraw", ("128x128", 21.1, 340, 0.0038, 0.581)),
    "Pets": ("pets-oxford", ("436x390", 1.1, 37, 0.0033, 0.702)),
    "Protein": ("protein-hpa", ("512x512", 780.6, 28, 0.0063, 0.819)),
    "X-Ray": ("xray-nih", ("1024x1024", 11491.1, 15, 0.0063, 0.813)),
    "Amazon": (None, ("256x256", 1680.7, 17, 0.0052, 0.817)),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "data"), help="folder holding the sample datasets")
    p.add_argument("--tiny-imagenet", default=str(SHARED / "data" / "tiny-imagenet-200"))
    p.add_argument("--backbone", default=DEFAULT_BACKBONE)
    p.add_argument("--profile", default="cpu", choices=["cpu", "paper"])
    p.add_argument("--lr-steps", type=int, default=100)
    p.add_argument("--only", nargs="*", help="dataset names to run (default: all)")
    p.add_argument("--csv", help="also write the table here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)

    import pandas as pd

    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.recommend import advise
    from finetune_advisor.similarity import get_reference

    data = Path(args.data)
    if not data.is_dir():
        print(f"error: {data} not found (pass --data)", file=sys.stderr)
        return 1
    bb = create_backbone(args.backbone)
    clock = time.perf_counter()
    ref = get_reference(bb, path=args.tiny_imagenet)
    print(f"reference: {bb.key}, {len(ref.class_ids)} classes, {ref.image_size} px, "
          f"{ref.images_per_class} images/class ({time.perf_counter() - clock:.0f} s incl. build if not cached)",
          file=sys.stderr)
    ref_path = ref.path if getattr(ref, "path", None) else None

    rows = []
    for name, (folder, study) in DATASETS.items():
        if args.only and name not in args.only:
            continue
        row = {"dataset": name}
        if study:
            row.update({"study_resolution": study[0], "study_imbalance_sd": study[1], "study_classes": study[2],
                        "study_lr": study[3], "study_similarity": study[4]})
        if folder is None or not (data / folder).exists():
            row["note"] = "no sample here"
            rows.append(row)
            continue
        clock = time.perf_counter()
        rec = advise(data / folder, backbone=args.backbone, reference=ref_path or args.tiny_imagenet,
                     profile=args.profile, lr_steps=args.lr_steps, progress=False)
        prof, sim, lr = rec.profile, rec.similarity, rec.lr_finder
        res = prof.resolution
        row.update({
            "resolution": f"{res['mean_w']:.0f}x{res['mean_h']:.0f}",
            "imbalance_sd": round(prof.imbalance_sd, 1), "classes": prof.n_classes, "images": prof.n_images,
            "lr_finder": lr.lr, "fastai_valley": lr.fastai_valley, "lr_recommended": rec.config.lr,
            "similarity": round(sim.similarity, 3), "sim_ci": f"{sim.ci_low:.3f}-{sim.ci_high:.3f}",
            "emd": round(sim.emd, 4), "verdict": "far" if sim.far else "near",
            "study_verdict": None if not study else ("far" if study[4] < 0.72 else "near"),
            "seconds": round(time.perf_counter() - clock, 1)})
        rows.append(row)
        print(f"{name}: similarity {sim.similarity:.3f} ({row['verdict']}), LR {lr.lr:.2e}, "
              f"{row['seconds']} s", file=sys.stderr)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table.to_string(index=False))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
