"""How stable and how good are LR-finder picks? Ours (zero-phase Butterworth + steepest slope in
log(lr)) against fastai's ``valley``/``steep``/``slide`` and a PyTorch-Lightning-style pick, all
computed from the *same* sweeps.

For each dataset (a per-class subset of a folder in ``shared/data``): the real ImageNet
ResNet-50 (``shared/tools/pretrained``), frozen body, cpu profile (64 px), one LR range test
(:func:`finetune_advisor.lr_finder.find_lr`, 100 steps, 1e-7..10, training loss) per seed. The
seed changes the head's initialisation and the batch order. Pickers:

* ``ours``     : ``find_lr``'s ``lr`` (raw per-batch loss, ``suggest_lr``)
* ``valley``   : fastai's ``valley`` (EMA-smoothed loss, as ``Learner.lr_find`` returns it)
* ``steep``    : fastai's ``steep``
* ``slide``    : fastai's ``slide`` on the same trimmed EMA curve ``lr_find`` hands its functions
* ``lightning``: ``_LRFinder.suggestion`` of PyTorch Lightning (EMA beta 0.98, debiased -- the same
  curve as fastai's Recorder): skip the first 10 and last 1 points, drop non-finite losses,
  ``argmin(np.gradient(losses))`` with *unit (index) spacing*, as Lightning <= 2.0 does (newer
  releases pass ``spacing=lrs``; not reproduced here).

Stability: max/min of each picker's LR over the seeds (goal: ours <= 1.5x on every dataset, and
lower than valley's on average). Quality: the frozen head is trained for a fixed budget
(``--grid-epochs`` of ``fit_one_cycle``) at a log grid of learning rates; the grid-best is the
rate with the lowest validation loss, refined by a parabola through it and its neighbours in
log10(lr). Each picker's distance to it, in decades, is ``|log10(pick) - log10(best)|``
averaged over the seeds (goal: ours <= 0.5 decade on every dataset and closer on average than
valley). Note the advisor then divides the pick by 10 for "far" datasets; that is not applied
here (this measures the pickers).

    python benchmarks/lr_finder_stability.py            # cpu sizes: the 6 stand-ins, 5 seeds, 7 rates
    python benchmarks/lr_finder_stability.py --quick    # 2 datasets, 3 seeds, 5 rates (a smoke run)
    python benchmarks/lr_finder_stability.py --full     # every folder, 5 seeds, 100/class, 8 rates x 2 seeds
    python benchmarks/lr_finder_stability.py --datasets draw-quickdraw --seeds 5 --csv out/lr.csv

Default (cpu sizes): the six reference stand-ins (not the 200-class Tiny-ImageNet sample, whose
sweeps cost as much as the other six together; add it with ``--datasets``), 5 finder seeds, 40
images a class, 7 grid rates x 1 seed x 2 epochs. Full settings (``--full``): all 7 folders of shared/data, 5 finder seeds, 8 rates in 1e-5..1e-1,
2 grid seeds, 3 epochs per grid point, 64 px, 100 images per class. On 2 shared CPU cores that
is hours; run it on a quiet machine. Reference point measured here with fastai defaults on
Quick Draw (frozen ResNet-50, 64 px, 5 seeds): max/min spread 2.5x valley, 631x steep, 33x slide.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
DEFAULT_BACKBONE = f"{SHARED}/tools/pretrained/resnet50_keras_v1.py:resnet50_keras_v1"
ALL_DATASETS = ["draw-quickdraw", "pets-oxford", "cancer-ham10000", "dota-crops", "xray-nih",
                "protein-hpa", "tiny-imagenet-200"]
PICKERS = ["ours", "valley", "steep", "slide", "lightning"]


def lightning_pick(lrs, losses, skip_begin: int = 10, skip_end: int = 1) -> float:
    """PyTorch Lightning's ``_LRFinder.suggestion`` (index spacing): steepest np.gradient."""
    import numpy as np
    lrs = np.asarray(lrs, float)
    losses = np.asarray(losses, float)
    idx = np.arange(len(losses))[skip_begin:-skip_end]
    sl = losses[skip_begin:-skip_end]
    finite = np.isfinite(sl)
    sl, idx = sl[finite], idx[finite]
    if len(sl) < 2:
        return math.nan
    return float(lrs[idx[int(np.argmin(np.gradient(sl)))]])


def fastai_slide(lrs, losses, num_it: int) -> float:
    """fastai's ``slide`` on the curve ``Learner.lr_find`` gives its functions."""
    import torch
    from fastai.callback.schedule import slide
    lr_t, loss_t = torch.tensor(lrs[num_it // 10:-5]), torch.tensor(losses[num_it // 10:-5])
    nan = torch.nonzero(torch.isnan(loss_t.view(-1)))
    if len(nan):
        lr_t, loss_t = lr_t[:int(nan.min())], loss_t[:int(nan.min())]
    try:
        return float(slide(lr_t, loss_t, num_it)[0])
    except (IndexError, RuntimeError, ValueError):
        return math.nan


def refine_best(log_lrs, losses) -> float:
    """log10 of the grid-best rate, refined with a parabola through the best point and its neighbours."""
    import numpy as np
    log_lrs, losses = np.asarray(log_lrs, float), np.asarray(losses, float)
    ok = np.isfinite(losses)
    if not ok.any():
        return math.nan
    i = int(np.nanargmin(np.where(ok, losses, np.inf)))
    if 0 < i < len(losses) - 1 and ok[i - 1] and ok[i + 1]:
        a, b, _ = np.polyfit(log_lrs[i - 1:i + 2], losses[i - 1:i + 2], 2)
        if a > 0:
            x = -b / (2 * a)
            return float(np.clip(x, log_lrs[i - 1], log_lrs[i + 1]))
    return float(log_lrs[i])


def _save(path: str | None, record: dict) -> None:
    if path:
        import json
        with open(path, "a") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "data"))
    p.add_argument("--datasets", nargs="+", help="folders under --data (default: the 6 stand-ins; quick 2; full all 7)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE)
    p.add_argument("--seeds", type=int, help="finder seeds (default 5, quick 3)")
    p.add_argument("--per-class", type=int, help="images per class in the subset (quick 40, full 100)")
    p.add_argument("--size", type=int, default=64, help="image size (cpu profile: 64)")
    p.add_argument("--lr-steps", type=int, default=100)
    p.add_argument("--loss", choices=["train", "valid"], default=None,
                   help="loss the finder records (default: find_lr's default)")
    p.add_argument("--cutoff", type=float, help="suggest_lr cut-off, cycles per decade (default: its default)")
    p.add_argument("--start-lr", type=float, default=1e-7)
    p.add_argument("--rates", type=int, help="grid rates in --lr-range (default 7, quick 5, full 8)")
    p.add_argument("--lr-range", type=float, nargs=2, default=[1e-5, 1e-1])
    p.add_argument("--grid-seeds", type=int, help="training seeds per grid rate (quick 1, full 2)")
    p.add_argument("--grid-epochs", type=int, help="fit_one_cycle epochs per grid point (quick 2, full 3)")
    p.add_argument("--no-grid", action="store_true", help="stability only")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="a smoke run: 2 datasets, 3 seeds, 5 rates")
    g.add_argument("--full", action="store_true", help="the documented full settings")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--csv", help="write the per-dataset table here (and <csv>.runs.csv the raw picks)")
    p.add_argument("--save-curves", help="append every sweep (lrs, raw losses) and grid point to this JSON-lines "
                                         "file, for benchmarks/lr_finder_tuning.py")
    args = p.parse_args(argv)
    full, quick = args.full, args.quick
    args.datasets = args.datasets or (ALL_DATASETS if full else ["draw-quickdraw", "pets-oxford"] if quick
                                      else ALL_DATASETS[:-1])
    args.seeds = args.seeds or (3 if quick else 5)
    args.per_class = args.per_class or (100 if full else 40)
    args.rates = args.rates or (8 if full else 5 if quick else 7)
    args.grid_seeds = args.grid_seeds or (2 if full else 1)
    args.grid_epochs = args.grid_epochs or (3 if full else 2)
    logging.basicConfig(level=logging.ERROR, format="%(message)s", stream=sys.stderr)
    warnings.filterwarnings("ignore")

    import numpy as np
    import pandas as pd
    import torch
    from fastai.torch_core import set_seed

    from finetune_advisor import data as fa_data
    from finetune_advisor import heuristics
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.exceptions import FinetuneAdvisorError
    from finetune_advisor.lr_finder import find_lr
    from finetune_advisor.train import build_dataloaders, build_learner

    if args.threads:
        torch.set_num_threads(args.threads)
    bb = create_backbone(args.backbone)
    print(f"backbone {bb.name} ({bb.source or 'callable'}), {args.size} px, {args.per_class}/class, "
          f"{args.seeds} finder seeds, grid {args.rates} rates x {args.grid_seeds} seeds x {args.grid_epochs} ep, "
          f"torch threads {torch.get_num_threads()}, finder loss {args.loss or 'default'}, "
          f"cutoff {args.cutoff or 'default'}", flush=True)
    runs, table = [], []
    for name in args.datasets:
        clock = time.perf_counter()
        ds = fa_data.read_dataset(Path(args.data) / name)
        ds = ds.subset(args.per_class, seed=0)
        prof = fa_data.profile_dataset(ds)
        cfg = heuristics.recommend_config(prof, backbone=args.backbone, profile_name="cpu")
        if cfg.image_size != args.size:
            cfg = cfg.replace(image_size=args.size)
        dls = build_dataloaders(ds, cfg, seed=0, backbone=bb, max_images_per_class=args.per_class)
        picks = {k: [] for k in PICKERS}
        for seed in range(args.seeds):
            set_seed(seed, reproducible=True)
            learn = build_learner(cfg, ds, backbone=bb, dls=dls, seed=seed)
            try:
                with learn.no_bar():
                    res = find_lr(learn, num_it=args.lr_steps, seed=seed, start_lr=args.start_lr,
                                  suggest_kwargs={"cutoff": args.cutoff} if args.cutoff else None,
                                  **({"loss": args.loss} if args.loss else {}))
            except FinetuneAdvisorError as exc:
                print(f"  {name} seed {seed}: finder failed: {exc}", flush=True)
                continue
            rlrs = [float(v) for v in learn.recorder.lrs]
            rloss = [float(v) for v in learn.recorder.losses]
            row = {"ours": res.lr, "valley": res.fastai_valley or math.nan,
                   "steep": res.fastai_steep or math.nan, "slide": fastai_slide(rlrs, rloss, args.lr_steps),
                   "lightning": lightning_pick(rlrs, rloss)}
            for k, v in row.items():
                picks[k].append(v)
            runs.append({"dataset": name, "seed": seed, **row, "steps": res.n_steps})
            _save(args.save_curves, {"kind": "sweep", "dataset": name, "seed": seed, "loss": res.loss_kind,
                                     "lrs": list(res.lrs), "losses": [v if math.isfinite(v) else None
                                                                      for v in res.losses_raw], **row})
            print(f"  {name} seed {seed}: " + ", ".join(f"{k} {v:.2e}" for k, v in row.items()), flush=True)
        out = {"dataset": name, "classes": len(ds.classes), "images": len(ds.items), "bs": cfg.batch_size}
        for k in PICKERS:
            v = np.asarray(picks[k], float)
            v = v[np.isfinite(v) & (v > 0)]
            out[f"{k} max/min"] = float(v.max() / v.min()) if len(v) >= 2 else math.nan
        if not args.no_grid:
            grid = np.logspace(math.log10(args.lr_range[0]), math.log10(args.lr_range[1]), args.rates)
            vl = []
            for lr in grid:
                losses = []
                for gs in range(args.grid_seeds):
                    set_seed(100 + gs, reproducible=True)
                    learn = build_learner(cfg, ds, backbone=bb, dls=dls, seed=100 + gs)
                    with learn.no_bar(), learn.no_logging():
                        learn.fit_one_cycle(args.grid_epochs, float(lr))
                        loss = float(learn.validate()[0])
                    losses.append(loss if math.isfinite(loss) else math.nan)
                vl.append(float(np.nanmean(losses)) if np.isfinite(losses).any() else math.nan)
                _save(args.save_curves, {"kind": "grid", "dataset": name, "lr": float(lr),
                                         "epochs": args.grid_epochs, "valid_losses": losses})
                print(f"  {name} grid lr {lr:.1e}: valid loss {vl[-1]:.4f}", flush=True)
            best = refine_best(np.log10(grid), vl)
            out["grid best lr"] = float(10 ** best)
            out["grid losses"] = " ".join(f"{v:.3f}" for v in vl)
            for k in PICKERS:
                v = np.asarray(picks[k], float)
                v = v[np.isfinite(v) & (v > 0)]
                out[f"{k} |dec|"] = float(np.mean(np.abs(np.log10(v) - best))) if len(v) else math.nan
        out["s"] = round(time.perf_counter() - clock, 1)
        table.append(out)
    df = pd.DataFrame(table)
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.float_format", "{:.3g}".format):
        print(df.drop(columns=["grid losses"], errors="ignore").to_string(index=False))
        if "grid losses" in df:
            print(df[["dataset", "grid losses"]].to_string(index=False))
        if runs:
            print(pd.DataFrame(runs).to_string(index=False))
    ours = df["ours max/min"]
    ok_spread = bool((ours <= 1.5).all())
    better = bool(ours.mean() < df["valley max/min"].mean())
    print(f"goal ours max/min <= 1.5 on every dataset: {'met' if ok_spread else 'MISSED'} "
          f"(worst {ours.max():.2f}); ours mean {ours.mean():.2f} vs valley {df['valley max/min'].mean():.2f}: "
          f"{'met' if better else 'MISSED'}")
    if "ours |dec|" in df:
        d = df["ours |dec|"]
        print(f"goal ours within 0.5 decade of grid-best on every dataset: {'met' if (d <= 0.5).all() else 'MISSED'} "
              f"(worst {d.max():.2f}); mean {d.mean():.2f} vs valley {df['valley |dec|'].mean():.2f}: "
              f"{'met' if d.mean() < df['valley |dec|'].mean() else 'MISSED'}")
    if args.csv:
        df.to_csv(args.csv, index=False)
        pd.DataFrame(runs).to_csv(args.csv + ".runs.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
