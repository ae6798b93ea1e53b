"""Does the similarity measure the domain or the number of classes?

Scores random subsets of k Tiny-ImageNet *val* classes (in-domain by construction, held out
from the reference's train images) against the reference, raw (1 - EMD) and with the
class-count floor subtracted (1 - (EMD - EMD_0), what ``finetune-advisor`` reports). An
in-domain dataset should score near the top whatever k is; the raw score does not.

    python benchmarks/similarity_class_count.py                            # EfficientNet-Lite0
    python benchmarks/similarity_class_count.py --backbone resnet50_keras_v1.py:resnet50_keras_v1

Each k is drawn ``--draws`` times (seeded); the table shows mean and min-max over draws.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny-imagenet", default=str(SHARED / "data" / "tiny-imagenet-200"))
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 3, 6, 15, 40, 200])
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--threshold", type=float, default=0.72)
    args = p.parse_args(argv)

    import pandas as pd

    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.data import read_dataset
    from finetune_advisor.similarity import emd_floor, emd_similarity, embed_images, get_reference

    tiny = Path(args.tiny_imagenet)
    if not (tiny / "val").is_dir():
        print(f"error: {tiny / 'val'} not found (pass --tiny-imagenet)", file=sys.stderr)
        return 1
    bb = create_backbone(args.backbone)
    ref = get_reference(bb, path=tiny)
    val = read_dataset(tiny / "val")
    clock = time.perf_counter()
    emb, failed = embed_images(bb, [it.path for it in val.items], image_size=ref.image_size, progress=True)
    if failed:
        print(f"warning: {len(failed)} val images failed to decode", file=sys.stderr)
    ok = [i for i in range(len(val.items)) if i not in set(failed)]
    labels = np.asarray([val.items[i].labels[0] for i in ok])
    emb = emb.astype(np.float64)
    classes = sorted(set(labels))
    means = {c: emb[labels == c].mean(axis=0) for c in classes}
    counts = {c: int((labels == c).sum()) for c in classes}
    print(f"embedded {len(ok)} val images with {bb.key} at {ref.image_size} px in "
          f"{time.perf_counter() - clock:.0f} s", file=sys.stderr)

    rows = []
    rng = np.random.default_rng(0)
    ref_means = ref.class_means.astype(np.float64)
    for k in args.ks:
        raw, floored, floors = [], [], []
        for _ in range(args.draws if k < len(classes) else 1):
            pick = [classes[i] for i in rng.choice(len(classes), size=min(k, len(classes)), replace=False)]
            m = np.stack([means[c] for c in pick])
            w = [counts[c] for c in pick]
            emd, _ = emd_similarity(m, w, ref_means, ref.class_counts)
            floor = emd_floor(w, ref_means, ref.class_counts)
            raw.append(1 - emd)
            floored.append(float(np.clip(1 - (emd - floor), 0, 1)))
            floors.append(floor)
        rows.append({"k": k, "draws": len(raw),
                     "raw 1-EMD": f"{np.mean(raw):.3f} ({min(raw):.3f}-{max(raw):.3f})",
                     "floor EMD_0": round(float(np.mean(floors)), 4),
                     "reported": f"{np.mean(floored):.3f} ({min(floored):.3f}-{max(floored):.3f})",
                     "raw near": f"{sum(r >= args.threshold for r in raw)}/{len(raw)}",
                     "reported near": f"{sum(r >= args.threshold for r in floored)}/{len(floored)}"})
    print(f"backbone {bb.key}, reference {ref.image_size} px, {ref.images_per_class} images/class; "
          f"near = score >= {args.threshold}")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
