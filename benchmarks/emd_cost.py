"""Cost of the exact EMD (POT's ``ot.emd2``) at the sizes the similarity measure meets.

The dataset side has ``n`` classes (7: Cancer, 340: Quick Draw, 1000: ImageNet-sized), the
reference side Tiny-ImageNet's 200; the class means are random non-negative 2048-d vectors
(ResNet-50 penultimate features are post-ReLU), the ground cost ``1 - cos``, the weights random
positive counts. ``emd_similarity`` (cost matrix + transport plan) is timed beside the bare
``ot.emd2`` solve, and so is one bootstrap round (``similarity.transport.emd_cost``, what each of the default 200
rounds pays).

    python benchmarks/emd_cost.py                 # 7, 340, 1000 x 200, 5 repeats
    python benchmarks/emd_cost.py --quick         # 2 repeats
    python benchmarks/emd_cost.py --sizes 340 --ref 200 --dim 512 --csv out/emd.csv

Goal: 340 x 200 well under a second.
"""
from __future__ import annotations

import argparse
import sys
import time


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[7, 340, 1000], help="dataset class counts")
    p.add_argument("--ref", type=int, default=200, help="reference class count (Tiny-ImageNet: 200)")
    p.add_argument("--dim", type=int, default=2048, help="feature dimension (ResNet-50: 2048)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="2 repeats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", help="also write the table here")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 2

    import numpy as np
    import ot
    import pandas as pd

    from finetune_advisor.similarity.transport import cosine_matrix, emd_cost, emd_similarity

    rng = np.random.default_rng(args.seed)
    ref = np.maximum(rng.standard_normal((args.ref, args.dim)), 0.0)
    ref_w = rng.integers(50, 500, args.ref).astype(float)
    b = ref_w / ref_w.sum()
    rows = []
    for n in args.sizes:
        means = np.maximum(rng.standard_normal((n, args.dim)), 0.0)
        w = rng.integers(1, 1000, n).astype(float)
        a = w / w.sum()
        cos = cosine_matrix(means, ref)
        cost = np.clip(1.0 - cos, 0.0, 2.0)
        t_solve, t_full, t_boot = [], [], []
        for _ in range(args.repeats):
            c = time.perf_counter()
            v = ot.emd2(a, b, cost, numItermax=1_000_000)
            t_solve.append(time.perf_counter() - c)
            c = time.perf_counter()
            emd, plan = emd_similarity(means, w, ref, ref_w)
            t_full.append(time.perf_counter() - c)
            c = time.perf_counter()
            emd_cost(a, b, cos)
            t_boot.append(time.perf_counter() - c)
        rows.append({"classes": f"{n} x {args.ref}", "dim": args.dim,
                     "ot.emd2 s (median)": float(np.median(t_solve)), "ot.emd2 s (max)": float(np.max(t_solve)),
                     "emd_similarity s": float(np.median(t_full)),
                     "200 bootstrap rounds s (est.)": 200 * float(np.median(t_boot)),
                     "emd": float(v), "plan nnz": int((plan > 1e-12).sum())})
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format):
        print(df.to_string(index=False))
    big = [r for r in rows if r["classes"].startswith("340 ")]
    if big:
        t = big[0]["emd_similarity s"]
        print(f"goal 340x{args.ref} well under 1 s: {t:.3f} s -> {'met' if t < 0.5 else 'MISSED'}")
    if args.csv:
        df.to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
