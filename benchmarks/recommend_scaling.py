"""Does ``recommend`` scale with the number of files? Time per stage at 1k / 10k / 100k images.

Generates ImageFolder datasets of tiny PNGs (``--px``, default 24 px; ``--classes`` classes with
a class colour and stripe direction, so the random-init network can learn something): a few
template images per class are written once and the rest are hard links to them (file count is
what matters: the profile reads every header, the similarity and LR-finder stages sample).
Then runs :func:`finetune_advisor.recommend.advise` on each with the random-init torchvision
``resnet18`` (speed only) and a tiny similarity reference built for that backbone from a
generated 20-class folder, so the similarity stage is timed too.

Stages (own timers, wrapped around the package's functions; seconds):
read (``data.read_dataset``), profile (``data.profile_dataset``), embed
(``similarity.embed_images``), emd (``emd_similarity`` + the bootstrap's ``_emd_cost``),
similarity (the whole ``dataset_similarity``), learner (``train.build_learner``), lr_finder
(``lr_finder.find_lr``), heuristics (``heuristics.recommend_config``), and total (``advise``).

Goals: total at 100k <= 1.3x total at 10k; ``recommend`` on the 1k dataset <= 10% of one
cpu-profile ``train()`` run on it (``--train``; 2 head + 2 unfrozen epochs, 64 px).

    python benchmarks/recommend_scaling.py --quick                  # 1k and 10k, train on 1k
    python benchmarks/recommend_scaling.py                          # 1k, 10k, 100k, train on 1k
    python benchmarks/recommend_scaling.py --sizes 100000 --no-train --keep /tmp/fa-scaling
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

TIMERS: dict[str, float] = defaultdict(float)


def _timed(module, name: str, label: str):
    func = getattr(module, name)

    @functools.wraps(func)
    def wrapper(*a, **k):
        c = time.perf_counter()
        try:
            return func(*a, **k)
        finally:
            TIMERS[label] += time.perf_counter() - c
    setattr(module, name, wrapper)


def install_timers() -> None:
    from finetune_advisor import data, heuristics, lr_finder, similarity, train
    _timed(data, "read_dataset", "read")
    _timed(data, "profile_dataset", "profile")
    _timed(similarity, "embed_images", "embed")
    _timed(similarity, "emd_similarity", "emd")
    _timed(similarity, "_emd_cost", "emd")
    _timed(similarity, "dataset_similarity", "similarity")
    _timed(train, "build_learner", "learner")
    _timed(lr_finder, "find_lr", "lr_finder")
    _timed(heuristics, "recommend_config", "heuristics")


def make_dataset(root: Path, n: int, classes: int, px: int, templates: int = 8) -> Path:
    """``root/<class>/<i>.png``: ``templates`` real images per class, the rest hard links."""
    from finetune_advisor.testing import class_color, make_image
    if root.is_dir() and sum(1 for _ in root.rglob("*.png")) == n:
        return root
    shutil.rmtree(root, ignore_errors=True)
    per = [n // classes + (1 if c < n % classes else 0) for c in range(classes)]
    for c in range(classes):
        d = root / f"class{c:03d}"
        d.mkdir(parents=True)
        temps = [make_image(d / f"{i}.png", (px, px), class_color(c, classes), seed=1000 * c + i, stripe=c)
                 for i in range(min(templates, per[c]))]
        for i in range(len(temps), per[c]):
            try:
                os.link(temps[i % len(temps)], d / f"{i}.png")
            except OSError:
                shutil.copyfile(temps[i % len(temps)], d / f"{i}.png")
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--px", type=int, default=24, help="side of the generated images")
    p.add_argument("--backbone", default="resnet18", help="torchvision name, random init")
    p.add_argument("--lr-steps", type=int, default=100)
    p.add_argument("--no-similarity", action="store_true", help="skip the similarity stage")
    p.add_argument("--no-train", action="store_true", help="skip the train() comparison")
    p.add_argument("--quick", action="store_true", help="sizes 1k and 10k")
    p.add_argument("--keep", help="folder for the generated datasets (kept; default: a temp dir, removed)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--csv", help="also write the table here")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = [s for s in args.sizes if s <= 10000] or [1000, 10000]
    logging.basicConfig(level=logging.ERROR)
    import warnings
    warnings.filterwarnings("ignore")

    import pandas as pd
    import torch

    import importlib
    rec = importlib.import_module("finetune_advisor.recommend")
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.similarity import build_reference

    if args.threads:
        torch.set_num_threads(args.threads)
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fa-scaling-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        ref_path = None
        if not args.no_similarity:
            c = time.perf_counter()
            ref_root = make_dataset(base / "reference", 20 * 20, 20, 32, templates=20)
            bb = create_backbone(args.backbone, pretrained=False)
            ref = build_reference(ref_root, bb, progress=False)
            ref_path = base / f"reference-{bb.key}.npz"
            ref.save(ref_path)
            print(f"reference for {bb.key}: {len(ref.class_ids)} classes, {ref.image_size} px, "
                  f"k={ref.images_per_class}, built in {time.perf_counter() - c:.1f} s", flush=True)
        install_timers()
        rows, recs = [], {}
        for n in args.sizes:
            c = time.perf_counter()
            root = make_dataset(base / f"n{n}", n, args.classes, args.px)
            gen = time.perf_counter() - c
            TIMERS.clear()
            c = time.perf_counter()
            r = rec.advise(root, backbone=args.backbone, pretrained=False, fallback=False,
                           reference=ref_path, similarity=not args.no_similarity,
                           lr_steps=args.lr_steps, progress=False)
            total = time.perf_counter() - c
            recs[n] = (root, r)
            row = {"images": n, "generate s": gen}
            row.update({k: TIMERS.get(k, 0.0) for k in ("read", "profile", "similarity", "embed", "emd",
                                                        "learner", "lr_finder", "heuristics")})
            row["total s"] = total
            row["embedded"] = r.similarity.n_images_embedded if r.similarity else 0
            row["lr"] = r.config.lr
            rows.append(row)
            print("  " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  flush=True)
        df = pd.DataFrame(rows)
        with pd.option_context("display.width", 220, "display.max_columns", 20, "display.float_format", "{:.2f}".format):
            print(df.to_string(index=False))
        tot = dict(zip(df["images"], df["total s"]))
        if 10000 in tot and 100000 in tot:
            ratio = tot[100000] / tot[10000]
            print(f"goal total(100k) <= 1.3 x total(10k): {ratio:.2f}x -> {'met' if ratio <= 1.3 else 'MISSED'}")
        if 1000 in tot and 10000 in tot:
            print(f"total(10k) / total(1k): {tot[10000] / tot[1000]:.2f}x")
        if not args.no_train and recs:
            from finetune_advisor.train import train
            n0 = min(recs)
            root, r = recs[n0]
            c = time.perf_counter()
            res = train(r.config, r.dataset, backbone=r.backbone, progress=False)
            t_train = time.perf_counter() - c
            frac = tot[n0] / t_train
            print(f"train() cpu profile on {n0} images ({r.config.head_epochs}+{r.config.unfrozen_epochs} epochs, "
                  f"{r.config.image_size} px, batch {r.config.batch_size}): {t_train:.1f} s; "
                  f"recommend {tot[n0]:.1f} s = {100 * frac:.1f}% of it -> {'met' if frac <= 0.10 else 'MISSED'} (goal <= 10%)")
        if args.csv:
            df.to_csv(args.csv, index=False)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
