"""What does ``recommend`` cost, per stage, at 1k / 10k / 100k images, and against one training run?

Generates ImageFolder datasets of tiny PNGs (``--px``, default 24 px; ``--classes`` classes, each
with its own colour and stripe direction): a few template images per class are written once and
the rest are hard links to them (the file count is what matters: the profile reads every
header; the similarity and the feature cache sample). Then, in one process, side by side:

* :func:`finetune_advisor.recommend.advise` on each size (default: the cpu profile, the real
  ImageNet ResNet-50 of ``shared/tools/pretrained``, the similarity against the shared
  Tiny-ImageNet reference (its built reference is cached), the default cached-feature LR range
  test). Stages from ``rec.timings`` (profile = read + profile; backbone; similarity; lr_finder =
  features + sweep + transferability), with ``features`` (one embedding pass,
  ``cache_features``), ``sweep`` (``find_lr_cached``) and ``transfer`` (LogME + linear probe)
  split out by timers around the functions ``recommend`` calls.
* one cpu-profile ``train()`` (``rec.config``: 2 frozen + 2 unfrozen epochs, 64 px) on the 1k and
  the 10k datasets (``--train-sizes``); recommend's total as a fraction of it.

Note the cpu profile caps training (and the feature cache) at 200 images a class: with the
default 10 classes, ``train()`` on the 10k and the 100k sets trains on 2,000 images, as it
would on a user's 10-class dataset of that size.

Goals (issue 13): recommend <= 35% of train() at 1k and <= 10% at 10k images; total at 100k
<= 1.3x total at 10k.

    python benchmarks/recommend_scaling.py --quick --backbone resnet18 --no-pretrained  # fast smoke run
    OMP_NUM_THREADS=1 python benchmarks/recommend_scaling.py --threads 1 --keep /tmp/fa-scaling \\
        --out benchmarks/results/recommend_scaling.txt               # 1k, 10k, 100k; train at 1k and 10k
    python benchmarks/recommend_scaling.py --sizes 100000 --train-sizes --keep /tmp/fa-scaling  # no train()
    python benchmarks/recommend_scaling.py --lr-finder full --sizes 1000   # the study's full-network test
"""
from __future__ import annotations

import argparse
import functools
import io
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
DEFAULT_BACKBONE = f"{SHARED}/tools/pretrained/resnet50_keras_v1.py:resnet50_keras_v1"
DEFAULT_REFERENCE = SHARED / "data" / "tiny-imagenet-200"
TIMERS: dict[str, float] = defaultdict(float)


def _timed(module, name: str, label: str) -> None:
    """Replace ``module.name`` by a timed wrapper (``recommend`` calls it through its module)."""
    func = getattr(module, name)

    @functools.wraps(func)
    def wrapper(*a, **k):
        c = time.perf_counter()
        try:
            return func(*a, **k)
        finally:
            TIMERS[label] += time.perf_counter() - c
    setattr(module, name, wrapper)


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
    p.add_argument("--train-sizes", type=int, nargs="*", default=[1000, 10000],
                   help="sizes to run one cpu-profile train() on (none: skip)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--px", type=int, default=24, help="side of the generated images")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE, help="backbone spec (default: the real ResNet-50)")
    p.add_argument("--no-pretrained", action="store_true", help="random init (torchvision names; speed only)")
    p.add_argument("--reference", default=str(DEFAULT_REFERENCE),
                   help="similarity reference (folder or .npz); 'generated': build one from a 20-class "
                        "generated folder (for random-init backbones)")
    p.add_argument("--lr-finder", choices=["cached", "full"], default="cached")
    p.add_argument("--no-similarity", action="store_true", help="skip the similarity stage")
    p.add_argument("--quick", action="store_true", help="sizes 1k and 10k, train() on 1k")
    p.add_argument("--keep", help="folder for the generated datasets (kept and reused; default: a temp dir)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", help="also write the tables to this file")
    p.add_argument("--csv", help="also write the table here")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = [s for s in args.sizes if s <= 10000] or [1000, 10000]
        args.train_sizes = [min(args.sizes)]
    logging.basicConfig(level=logging.ERROR)
    import warnings
    warnings.filterwarnings("ignore")

    import pandas as pd
    import torch

    import importlib
    rec = importlib.import_module("finetune_advisor.recommend")   # the package's `recommend` is the function
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.train import train

    if args.threads:
        torch.set_num_threads(args.threads)
    report = io.StringIO()

    def out(text=""):
        print(text, flush=True)
        print(text, file=report)

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fa-scaling-"))
    base.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    try:
        ref_path = None if args.no_similarity else args.reference
        if ref_path == "generated":
            from finetune_advisor.similarity import build_reference
            bb = create_backbone(args.backbone, pretrained=not args.no_pretrained)
            ref = build_reference(make_dataset(base / "reference", 400, 20, 32, templates=20), bb, progress=False)
            ref_path = base / f"reference-{bb.key}.npz"
            ref.save(ref_path)
        _timed(rec, "cache_features", "features")
        _timed(rec, "find_lr_cached", "sweep")
        _timed(rec, "transferability_of", "transfer")
        out(f"backbone {args.backbone} ({'random init' if args.no_pretrained else 'pretrained'}), reference "
            f"{ref_path}, lr finder {args.lr_finder}, {args.classes} classes of {args.px} px PNGs, torch threads "
            f"{torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
        rows, recs = [], {}
        for n in args.sizes:
            c = time.perf_counter()
            root = make_dataset(base / f"n{n}", n, args.classes, args.px)
            gen = time.perf_counter() - c
            TIMERS.clear()
            c = time.perf_counter()
            r = rec.advise(root, backbone=args.backbone, pretrained=not args.no_pretrained, fallback=False,
                           reference=ref_path, similarity=not args.no_similarity, profile="cpu",
                           lr_finder_method=args.lr_finder, progress=False)
            total = time.perf_counter() - c
            recs[n] = r
            t = r.timings
            row = {"images": n, "profile": t.get("profile", 0.0), "backbone": t.get("backbone", 0.0),
                   "similarity": t.get("similarity", 0.0), "features": TIMERS.get("features", 0.0),
                   "sweep": TIMERS.get("sweep", 0.0), "transfer": TIMERS.get("transfer", 0.0),
                   "lr_finder": t.get("lr_finder", 0.0), "total": total}
            m = r.config.measurements
            row["cached imgs"] = (m.transferability or {}).get("n_images", "")
            row["sim imgs"] = r.similarity.n_images_embedded if r.similarity else 0
            row["lr"] = r.config.lr
            rows.append(row)
            print(f"  {n} images (generated in {gen:.0f} s): " + ", ".join(
                f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        train_s = {}
        for n in args.train_sizes or []:
            if n not in recs:
                continue
            r = recs[n]
            c = time.perf_counter()
            res = train(r.config, r.dataset, backbone=r.backbone, progress=False)
            train_s[n] = time.perf_counter() - c
            cfg = r.config
            print(f"  train() on {n} images: {train_s[n]:.1f} s", flush=True)
            ntr = getattr(res, "n_train", None)
            out(f"train() cpu profile on {n} images: {cfg.head_epochs}+{cfg.unfrozen_epochs} epochs, "
                f"{cfg.image_size} px, batch {cfg.batch_size}, fine_tune {cfg.fine_tune}"
                f"{f', {ntr} training images' if ntr else ''}: {train_s[n]:.1f} s (measured)")
        df = pd.DataFrame(rows)
        df["% of train"] = [100 * t / train_s[n] if n in train_s else float("nan")
                            for n, t in zip(df["images"], df["total"])]
        out("\nrecommend() seconds per stage (profile = read + header profile; lr_finder = features + sweep + "
            "transfer)")
        with pd.option_context("display.width", 220, "display.max_columns", 20, "display.float_format",
                               "{:.3g}".format):
            out(df.to_string(index=False))
        out("")
        tot = dict(zip(df["images"], df["total"]))
        for n, goal in ((1000, 35.0), (10000, 10.0)):
            if n in tot and n in train_s:
                frac = 100 * tot[n] / train_s[n]
                out(f"goal recommend <= {goal:g}% of train() at {n} images: {frac:.1f}% "
                    f"({tot[n]:.1f} s / {train_s[n]:.1f} s) -> {'met' if frac <= goal else 'MISSED'}")
        if 10000 in tot and 100000 in tot:
            ratio = tot[100000] / tot[10000]
            out(f"goal total(100k) <= 1.3x total(10k): {ratio:.2f}x -> {'met' if ratio <= 1.3 else 'MISSED'}")
        if 1000 in tot and 10000 in tot:
            out(f"total(10k) / total(1k): {tot[10000] / tot[1000]:.2f}x")
        out(f"script total {time.perf_counter() - t_start:.0f} s")
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text("command: python benchmarks/recommend_scaling.py "
                                      + " ".join(argv if argv is not None else sys.argv[1:]) + "\n"
                                      + report.getvalue())
        if args.csv:
            df.to_csv(args.csv, index=False)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
