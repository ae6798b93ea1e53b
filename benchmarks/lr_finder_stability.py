"""How stable are LR-finder picks, cached-feature sweep against full-network sweep? One run,
side by side: ours (zero-phase filter + steepest slope), fastai ``valley`` / ``steep`` and
PyTorch Lightning's steepest-gradient pick.

For each dataset (a folder of ``shared/data``), exactly what ``recommend`` does at the cpu
profile: :func:`finetune_advisor.recommend.range_test_spec` (64 px, the rules' batch, head and
validation split, 200 images a class), the real ImageNet ResNet-50 (``shared/tools/pretrained``),
the data split and per-class sample fixed (seed 0) unless ``--resample``. Two methods:

* ``cached``: :func:`~finetune_advisor.learner.features.cache_features` once per dataset, then
  :func:`~finetune_advisor.lr_finder.cached.find_lr_cached` (200 steps, 5 averaged sweeps,
  validation loss) per seed. Seed ``s`` is passed as ``s * n_sweeps``: ``find_lr_cached``
  averages sweeps ``seed .. seed + n_sweeps - 1``, so consecutive seeds would share 4 of 5
  sweeps and look more stable than they are. All four picks come from the same averaged curve.
* ``full``: the study's test, :func:`~finetune_advisor.lr_finder.find_lr` on
  ``build_learner(spec, ...)`` (frozen body, 100 steps, validation loss, BatchNorm warm-up),
  the DataLoaders built once per dataset (seed 0), the seed setting the head's initialisation
  and the batch order. ``valley`` / ``steep`` are fastai's own ``lr_find`` suggestions from
  that run; Lightning's pick is taken on the curve ours uses. It costs tens of seconds a run
  (minutes on a loaded machine), so it runs seed-major (seed 0 on every dataset, then seed 1,
  ...) until ``--full-budget-min`` is spent: every dataset gets the same number of seeds.

Reported: max/min over seeds of each picker, per method; per dataset the median cached and
full pick (ours) and their ratio; and (``--grid``, default ``cached``) where each pick lands
against the grid-best rate of frozen-head fits, in decades: ``|log10(pick) - log10(best)|``
averaged over seeds. ``--grid cached`` trains the head on the cached features at
``--rates`` log-spaced rates in ``--lr-range`` (one-cycle as fastai's ``fit_one_cycle``: 25%
warm-up from lr/25, cosine to lr/1e5, beta1 0.95 -> 0.85 -> 0.95; AdamW with the spec's beta2
and weight decay; ``--grid-epochs`` epochs, ``--grid-seeds`` seeds), seconds per dataset.
It differs from a real frozen fit in two ways: no augmentation, and the body's BatchNorm uses
ImageNet statistics (fastai trains them). ``--grid full`` is the previous version's grid
(``fit_one_cycle`` on the frozen Learner; minutes per rate here); ``--grid none`` skips it.

Goals (issue 13): ours <= 1.5x max/min on every dataset, for the cached sweep.

    python benchmarks/lr_finder_stability.py --quick            # 2 datasets, 3 seeds, both methods
    OMP_NUM_THREADS=1 python benchmarks/lr_finder_stability.py --threads 1 \\
        --out benchmarks/results/lr_finder_stability.txt        # every dataset cached; full on the 6 stand-ins
    python benchmarks/lr_finder_stability.py --methods cached --datasets pets-oxford xray-nih --seeds 10
    python benchmarks/lr_finder_stability.py --methods full --full-datasets draw-quickdraw --seeds 3
    python benchmarks/lr_finder_stability.py --grid full --datasets draw-quickdraw   # the slow grid
"""
from __future__ import annotations

import argparse
import io
import logging
import math
import sys
import time
import warnings
from itertools import zip_longest
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"
DEFAULT_BACKBONE = f"{SHARED}/tools/pretrained/resnet50_keras_v1.py:resnet50_keras_v1"
STAND_INS = ["cancer-ham10000", "dota-crops", "draw-quickdraw", "pets-oxford", "protein-hpa", "xray-nih"]
EXCLUDED = ["tiny-imagenet-200"]    # the similarity reference (200 classes, 22k files)
PICKERS = ["ours", "valley", "steep", "lightning"]
METHODS = ["cached", "full"]


class Tee:
    """Print to stdout and keep a copy (for ``--out``)."""

    def __init__(self):
        self.buf = io.StringIO()

    def __call__(self, *a, **k):
        print(*a, **k, flush=True)
        print(*a, **{k2: v for k2, v in k.items() if k2 != "flush"}, file=self.buf)


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
            return float(np.clip(-b / (2 * a), log_lrs[i - 1], log_lrs[i + 1]))
    return float(log_lrs[i])


def one_cycle(pct: float, lr: float) -> tuple[float, float]:
    """fastai's ``fit_one_cycle`` schedule at fraction ``pct`` of training: (rate, beta1)."""
    def cos(a, b, t):
        return a + (b - a) * (1 - math.cos(math.pi * t)) / 2
    if pct < 0.25:
        return cos(lr / 25, lr, pct / 0.25), cos(0.95, 0.85, pct / 0.25)
    return cos(lr, lr / 1e5, (pct - 0.25) / 0.75), cos(0.85, 0.95, (pct - 0.25) / 0.75)


def cached_head_fit(cache, spec, lr: float, epochs: int, seed: int) -> float:
    """Validation loss of the head trained on cached features with a fastai-style one cycle."""
    import numpy as np
    import torch
    import torch.nn as nn

    from finetune_advisor.learner.model import build_head

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = build_head(cache.width // 2, cache.priors, spec, multi_label=cache.multi_label, pool=False)
    decay = [m.weight for m in head.modules() if isinstance(m, nn.Linear)]
    rest = [p for p in head.parameters() if all(p is not q for q in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": spec.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.95, spec.beta2), eps=1e-5)
    tx, ty = torch.from_numpy(cache.train_x), torch.from_numpy(cache.train_y)
    bs = max(2, min(int(spec.batch_size), len(tx)))
    per_epoch = max(1, len(tx) // bs)            # fastai drops the last partial training batch
    total, step = epochs * per_epoch, 0
    loss_fn = nn.BCEWithLogitsLoss() if cache.multi_label else nn.CrossEntropyLoss()
    head.train()
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(tx)))
        for b in range(per_epoch):
            idx = order[b * bs:(b + 1) * bs]
            rate, mom = one_cycle(step / total, lr)
            for g in opt.param_groups:
                g["lr"], g["betas"] = rate, (mom, spec.beta2)
            loss = loss_fn(head(tx[idx]), ty[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if not torch.isfinite(loss):
                return math.nan
    head.eval()
    with torch.no_grad():
        value = float(loss_fn(head(torch.from_numpy(cache.valid_x)), torch.from_numpy(cache.valid_y)))
    return value if math.isfinite(value) else math.nan


def full_head_fit(spec, ds, bb, dls, lr: float, epochs: int, seed: int) -> float:
    """Validation loss of ``fit_one_cycle(epochs, lr)`` on the frozen Learner (the old grid)."""
    from fastai.torch_core import set_seed

    from finetune_advisor.learner import build_learner
    set_seed(seed, reproducible=True)
    learn = build_learner(spec, ds, backbone=bb, dls=dls, seed=seed)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
        value = float(learn.validate()[0])
    return value if math.isfinite(value) else math.nan


_WORKER: dict = {}


def _worker_init(backbone: str, data: str, threads: int) -> None:
    """A process for full-network sweeps (``--full-jobs``): the backbone loaded once."""
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    import torch

    from finetune_advisor.backbones import create_backbone
    if threads:
        torch.set_num_threads(threads)
    _WORKER.update(bb=create_backbone(backbone), data=data, sets={})


def full_sweep(name: str, seed: int, steps: int, deadline: float | None = None) -> dict:
    """One full-network range test (in a worker, or in the main process after ``_worker_init``).
    Returns the picks, or ``skipped`` when ``deadline`` (``time.time()``) has passed."""
    if deadline is not None and time.time() > deadline:
        return {"dataset": name, "seed": seed, "skipped": True}
    import numpy as np
    from fastai.torch_core import set_seed

    from finetune_advisor import data as fa_data
    from finetune_advisor.exceptions import FinetuneAdvisorError
    from finetune_advisor.learner import build_dataloaders, build_learner
    from finetune_advisor.lr_finder import find_lr
    from finetune_advisor.lr_finder.cached import lightning_pick
    from finetune_advisor.recommend import AdviseOptions, range_test_spec

    bb = _WORKER["bb"]
    if name not in _WORKER["sets"]:
        ds = fa_data.read_dataset(Path(_WORKER["data"]) / name)
        spec = range_test_spec(fa_data.profile_dataset(ds), AdviseOptions(profile="cpu"))
        _WORKER["sets"][name] = (ds, spec, build_dataloaders(ds, spec, seed=0, backbone=bb))
    ds, spec, dls = _WORKER["sets"][name]
    set_seed(seed, reproducible=True)
    learn = build_learner(spec, ds, backbone=bb, dls=dls, seed=seed)
    c = time.perf_counter()
    try:
        with learn.no_bar():
            res = find_lr(learn, num_it=steps, seed=seed)
    except FinetuneAdvisorError as exc:
        print(f"  {name} full seed {seed}: failed", flush=True)
        return {"dataset": name, "seed": seed, "error": str(exc), "s": time.perf_counter() - c}
    light = res.lightning_steepest or lightning_pick(np.asarray(res.lrs), np.asarray(res.losses_raw))
    print(f"  {name} full seed {seed}: {time.perf_counter() - c:.0f} s, ours {res.lr:.2e}", flush=True)
    return {"dataset": name, "seed": seed, "s": time.perf_counter() - c, "loss": res.loss_kind,
            "picks": {"ours": res.lr, "valley": res.fastai_valley, "steep": res.fastai_steep, "lightning": light},
            "lrs": list(res.lrs), "losses": [v if math.isfinite(v) else None for v in res.losses_raw]}


def cached_task(name: str, *, seeds: int, n_sweeps: int, steps: int, resample: bool, grid: list,
                grid_seeds: int, grid_epochs: int) -> dict:
    """One dataset's cached part: the embedding pass, ``seeds`` cached range tests, the cached grid."""
    import numpy as np

    from finetune_advisor import data as fa_data
    from finetune_advisor.exceptions import FinetuneAdvisorError
    from finetune_advisor.learner.features import cache_features
    from finetune_advisor.lr_finder.cached import find_lr_cached
    from finetune_advisor.recommend import AdviseOptions, range_test_spec

    bb = _WORKER["bb"]
    try:
        ds = fa_data.read_dataset(Path(_WORKER["data"]) / name)
        spec = range_test_spec(fa_data.profile_dataset(ds), AdviseOptions(profile="cpu"))
        c = time.perf_counter()
        cache = cache_features(ds, bb, spec, seed=0, progress=False)
        cache_s = time.perf_counter() - c
    except FinetuneAdvisorError as exc:
        print(f"  {name}: skipped ({exc})", flush=True)
        return {"dataset": name, "skipped": f"cached: {exc}"}
    out = {"dataset": name, "classes": len(ds.classes), "multi": bool(spec.multi_label),
           "images": len(cache.train_x) + len(cache.valid_x), "cache s": cache_s, "seeds": []}
    for seed in range(seeds):
        if resample and seed:
            cache = cache_features(ds, bb, spec, seed=seed, progress=False)
        c = time.perf_counter()
        try:
            res = find_lr_cached(cache, spec, seed=seed * n_sweeps, n_sweeps=n_sweeps, num_it=steps)
        except FinetuneAdvisorError as exc:
            out["seeds"].append({"error": str(exc)})
            continue
        out["seeds"].append({"s": time.perf_counter() - c, "loss": res.loss_kind, "lrs": list(res.lrs),
                             "losses": [v if math.isfinite(v) else None for v in res.losses_raw],
                             "picks": {"ours": res.lr, "valley": res.fastai_valley, "steep": res.fastai_steep,
                                       "lightning": res.lightning_steepest}})
    if grid:
        raw = [[cached_head_fit(cache, spec, float(lr), grid_epochs, 100 + g) for g in range(grid_seeds)]
               for lr in grid]
        out["grid raw"] = raw
        out["grid"] = [float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for v in raw]
    ours = " ".join(f"{x['picks']['ours']:.2e}" if "picks" in x else "fail" for x in out["seeds"])
    print(f"  {name} cached: cache {cache_s:.1f} s ({out['images']} images), sweeps "
          f"{np.mean([x['s'] for x in out['seeds'] if 's' in x] or [np.nan]):.1f} s/seed, ours {ours}", flush=True)
    return out


def save_curve(path, record: dict) -> None:
    if path:
        import json
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


def spread(values) -> float:
    import numpy as np
    v = np.asarray([x for x in values if x is not None], float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(v.max() / v.min()) if len(v) >= 2 else math.nan


def median(values) -> float:
    import numpy as np
    v = np.asarray([x for x in values if x is not None], float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.exp(np.median(np.log(v)))) if len(v) else math.nan


def decades(values, best_log10: float) -> float:
    import numpy as np
    v = np.asarray([x for x in values if x is not None], float)
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.mean(np.abs(np.log10(v) - best_log10))) if len(v) and math.isfinite(best_log10) else math.nan


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED / "data"))
    p.add_argument("--datasets", nargs="+",
                   help=f"folders under --data for the cached sweep (default: all but {EXCLUDED}; quick: 2)")
    p.add_argument("--full-datasets", nargs="+",
                   help=f"folders for the full-network sweep (default: the 6 stand-ins {STAND_INS}; quick: 2)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    p.add_argument("--seeds", type=int, help="seeds per method (default 5, quick 3)")
    p.add_argument("--full-budget-min", type=float, default=35.0,
                   help="stop starting full-network sweeps after this many minutes of them (seed-major order)")
    p.add_argument("--jobs", type=int, default=0,
                   help="worker processes for the per-dataset cached parts and the full-network sweeps, run "
                        "interleaved (0: one after the other in this process)")
    p.add_argument("--resample", action="store_true",
                   help="cached: re-embed per seed with cache_features(seed=s), so the split and per-class "
                        "sample change with the seed as they do in recommend (5x the embedding cost)")
    p.add_argument("--backbone", default=DEFAULT_BACKBONE)
    p.add_argument("--n-sweeps", type=int, default=5, help="find_lr_cached's averaged sweeps")
    p.add_argument("--cached-steps", type=int, default=200, help="find_lr_cached's num_it (recommend: 200)")
    p.add_argument("--full-steps", type=int, default=100, help="find_lr's num_it (recommend: 100)")
    p.add_argument("--grid", choices=["cached", "full", "none"], default="cached",
                   help="frozen-head fits for the grid-best rate: on cached features (seconds), on the frozen "
                        "Learner (minutes per rate), or none")
    p.add_argument("--rates", type=int, default=7, help="grid rates in --lr-range")
    p.add_argument("--lr-range", type=float, nargs=2, default=[1e-5, 1e-1])
    p.add_argument("--grid-seeds", type=int, default=2)
    p.add_argument("--grid-epochs", type=int, default=2, help="epochs per grid fit (cpu profile head_epochs: 2)")
    p.add_argument("--quick", action="store_true", help="smoke run: pets-oxford and protein-hpa, 3 seeds")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    p.add_argument("--out", help="also write everything printed after the progress lines to this file")
    p.add_argument("--csv", help="write the per-dataset table here (and <csv>.runs.csv the raw picks)")
    p.add_argument("--save-curves", help="append every sweep (lrs, recorded losses, picks) to this JSON-lines file "
                                         "(benchmarks/lr_finder_tuning.py reads the 'sweep' records)")
    args = p.parse_args(argv)
    quick_sets = ["pets-oxford", "protein-hpa"]
    if args.datasets is None:
        args.datasets = quick_sets if args.quick else sorted(
            d.name for d in Path(args.data).iterdir() if d.is_dir() and d.name not in EXCLUDED)
    if args.full_datasets is None:
        args.full_datasets = quick_sets if args.quick else [d for d in STAND_INS if d in args.datasets] or STAND_INS
    args.seeds = args.seeds or (3 if args.quick else 5)
    logging.basicConfig(level=logging.ERROR, format="%(message)s", stream=sys.stderr)
    warnings.filterwarnings("ignore")

    import numpy as np
    import pandas as pd
    import torch

    from finetune_advisor import data as fa_data
    from finetune_advisor.backbones import create_backbone
    from finetune_advisor.learner import build_dataloaders
    from finetune_advisor.recommend import AdviseOptions, range_test_spec

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Tee()
    t_start = time.perf_counter()
    bb = create_backbone(args.backbone) if args.grid == "full" else None     # the workers load their own
    header = (f"backbone {Path(args.backbone.split(':')[0]).stem}, cpu-profile range_test_spec, seeds {args.seeds}, methods {args.methods}, "
              f"cached: {args.cached_steps} steps x {args.n_sweeps} sweeps (seed s -> s*{args.n_sweeps}), "
              f"{'resampled' if args.resample else 'fixed'} sample; full: {args.full_steps} steps; "
              f"grid {args.grid} ({args.rates} rates {args.lr_range[0]:g}..{args.lr_range[1]:g} x "
              f"{args.grid_seeds} seeds x {args.grid_epochs} ep); torch threads {torch.get_num_threads()}")
    out(header)
    picks: dict[tuple[str, str], dict[str, list]] = {}   # (dataset, method) -> picker -> values
    runs, info, skipped, fail_count, full_skipped, full_done, best = [], {}, {}, {}, [], {}, {}
    names = list(dict.fromkeys(args.datasets + (args.full_datasets if "full" in args.methods else [])))
    grid = np.logspace(math.log10(args.lr_range[0]), math.log10(args.lr_range[1]), args.rates)

    def prepare(name):
        if name not in info:
            ds = fa_data.read_dataset(Path(args.data) / name)
            spec = range_test_spec(fa_data.profile_dataset(ds), AdviseOptions(profile="cpu"))
            info[name] = {"ds": ds, "spec": spec, "classes": len(ds.classes), "multi": bool(spec.multi_label)}
        return info[name]

    def record(name, method, seed, r):
        """One sweep's result (from cached_task or full_sweep) into the tables."""
        if "error" in r:
            fail_count.setdefault((name, method), []).append(r["error"])
            print(f"  {name} {method} seed {seed}: failed: {r['error']}", flush=True)
            return
        pk = picks.setdefault((name, method), {k: [] for k in PICKERS})
        for k, v in r["picks"].items():
            pk[k].append(v)
        runs.append({"dataset": name, "method": method, "seed": seed, **r["picks"], "loss": r["loss"], "s": r["s"]})
        save_curve(args.save_curves, {"kind": "sweep", "method": method, "dataset": name, "seed": seed,
                                      "loss": r["loss"], "lrs": r["lrs"], "losses": r["losses"], **r["picks"]})

    def record_cached(r):
        name = r["dataset"]
        if "skipped" in r:
            skipped[name] = r["skipped"]
            return
        info.setdefault(name, {}).update({k: r[k] for k in ("classes", "multi", "images", "cache s")})
        info[name]["cached sweep s"] = float(np.mean([x["s"] for x in r["seeds"] if "s" in x] or [math.nan]))
        for seed, x in enumerate(r["seeds"]):
            record(name, "cached", seed, x)
        if r.get("grid"):
            best[name] = refine_best(np.log10(grid), r["grid"])
            info[name]["grid losses"] = " ".join(f"{v:.3f}" for v in r["grid"])
            for lr, losses in zip(grid, r["grid raw"]):
                save_curve(args.save_curves, {"kind": "grid", "grid": "cached", "dataset": name, "lr": float(lr),
                                              "epochs": args.grid_epochs, "valid_losses": losses})

    def record_full(r):
        if r.get("skipped"):
            full_skipped.append(f"{r['dataset']}/{r['seed']}")
            return
        record(r["dataset"], "full", r["seed"], r)
        if "error" not in r:
            full_done.setdefault(r["dataset"], []).append(r["s"])

    # ---- the work: per dataset one cached task (embedding, every seed, the cached grid), and the full
    # sweeps seed-major, interleaved, in --jobs worker processes (or here, one after the other) --------
    cached_tasks = [("cached", n) for n in args.datasets] if "cached" in args.methods else []
    full_tasks = [("full", n, seed) for seed in range(args.seeds) for n in args.full_datasets] \
        if "full" in args.methods else []
    order, ci, fi = [], iter(cached_tasks), iter(full_tasks)
    order += full_tasks[:len(args.full_datasets)]        # seed 0 of every full dataset first
    fi = iter(full_tasks[len(args.full_datasets):])
    for pair in zip_longest(ci, fi):
        order += [t for t in pair if t is not None]
    deadline = time.time() + 60 * args.full_budget_min
    cached_kw = {"seeds": args.seeds, "n_sweeps": args.n_sweeps, "steps": args.cached_steps,
                 "resample": args.resample, "grid": list(grid) if args.grid == "cached" else [],
                 "grid_seeds": args.grid_seeds, "grid_epochs": args.grid_epochs}

    def call(task):
        if task[0] == "cached":
            return cached_task(task[1], **cached_kw)
        return full_sweep(task[1], task[2], args.full_steps, deadline)

    if args.jobs > 0:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                 initargs=(args.backbone, args.data, args.threads)) as pool:
            futures = [(t, pool.submit(cached_task, t[1], **cached_kw) if t[0] == "cached"
                        else pool.submit(full_sweep, t[1], t[2], args.full_steps, deadline)) for t in order]
            results = [(t, f.result()) for t, f in futures]
    else:
        _worker_init(args.backbone, args.data, args.threads)
        results = [(t, call(t)) for t in order]
    for t, r in results:
        (record_cached if t[0] == "cached" else record_full)(r)
    if full_skipped:
        out(f"full-network sweeps not started (--full-budget-min {args.full_budget_min} spent): "
            f"{' '.join(full_skipped)}")

    if args.grid == "full":      # the previous version's grid: fit_one_cycle on the frozen Learner, here
        for name in names:
            d = prepare(name)
            gdls = build_dataloaders(d["ds"], d["spec"], seed=0, backbone=bb)
            vl = []
            for lr in grid:
                losses = [full_head_fit(d["spec"], d["ds"], bb, gdls, float(lr), args.grid_epochs, 100 + g)
                          for g in range(args.grid_seeds)]
                vl.append(float(np.nanmean(losses)) if np.isfinite(losses).any() else math.nan)
                save_curve(args.save_curves, {"kind": "grid", "grid": "full", "dataset": name, "lr": float(lr),
                                              "epochs": args.grid_epochs, "valid_losses": losses})
            best[name] = refine_best(np.log10(grid), vl)
            info[name]["grid losses"] = " ".join(f"{v:.3f}" for v in vl)
    for name in names:
        if "grid losses" in info.get(name, {}):
            print(f"  {name} grid: best {10 ** best[name]:.2e}; valid losses {info[name]['grid losses']}", flush=True)

    # ---- tables ---------------------------------------------------------------------------------
    rows = []
    for name in names:
        if name not in info and (name, "full") not in picks and (name, "full") not in fail_count:
            continue
        d = prepare(name)
        r = {"dataset": name, "cls": d["classes"], "ml": "y" if d["multi"] else "", "imgs": d.get("images", "")}
        for m, tag in (("cached", "C"), ("full", "F")):
            pk = picks.get((name, m), {k: [] for k in PICKERS})
            r[f"{tag} n"] = len(pk["ours"])
            r[f"{tag} fail"] = len(fail_count.get((name, m), []))
            for k in PICKERS:
                r[f"{tag} {k}"] = spread(pk[k])
        c_med, f_med = median(picks.get((name, "cached"), {}).get("ours", [])), median(
            picks.get((name, "full"), {}).get("ours", []))
        r["C ours med"], r["F ours med"] = c_med, f_med
        r["C/F"] = c_med / f_med if f_med == f_med and c_med == c_med else math.nan
        c_valley, f_valley = (median(picks.get((name, m), {}).get("valley", [])) for m in ("cached", "full"))
        r["C valley med"], r["F valley med"] = c_valley, f_valley
        r["valley dec"] = math.log10(c_valley / f_valley) if c_valley == c_valley and f_valley == f_valley else math.nan
        r["steep dec"] = math.log10(r["C/F"]) if r["C/F"] == r["C/F"] else math.nan
        for m, tag in (("cached", "C"), ("full", "F")):
            pk = picks.get((name, m), {k: [] for k in PICKERS})
            for k in PICKERS:
                r[f"{tag} {k} |dec|"] = decades(pk[k], best.get(name, math.nan))
        r["grid best"] = 10 ** best[name] if name in best else math.nan
        r["cache s"], r["C sweep s"] = d.get("cache s", math.nan), d.get("cached sweep s", math.nan)
        r["F sweep s"] = float(np.mean(full_done[name])) if name in full_done else math.nan
        rows.append(r)
    df = pd.DataFrame(rows)
    fmt = {"display.width": 250, "display.max_columns": 60, "display.float_format": "{:.3g}".format}
    spread_cols = ["dataset", "cls", "ml", "imgs"] + [f"{t} {k}" for t in "CF" for k in ["n", "fail"] + PICKERS]
    out("\nmax/min of each pick over seeds (C = cached-feature sweep, F = full-network sweep; n = seeds with a "
        "pick, fail = seeds where our pick raised LRFinderError)")
    with pd.option_context(*[x for kv in fmt.items() for x in kv]):
        out(df[spread_cols].to_string(index=False))
        out("\ncached vs full: our steepest pick and fastai's valley (geometric medians over seeds), how many "
            "decades the cached one lies from the full one (log10 cached / full), and seconds per stage "
            "(cache = one embedding pass; sweep = per seed)")
        out(df[["dataset", "C ours med", "F ours med", "C/F", "steep dec", "C valley med", "F valley med",
                "valley dec", "cache s", "C sweep s", "F sweep s"]].to_string(index=False))
        if best:
            out(f"\ndistance to the grid-best rate of the {args.grid} frozen-head fits, in decades "
                f"(mean |log10(pick / best)| over seeds)")
            out(df[["dataset", "grid best"] + [f"{t} {k} |dec|" for t in "CF" for k in PICKERS]]
                .to_string(index=False))
    # goals and summary
    out("")
    for tag, m in (("C", "cached"), ("F", "full")):
        if m not in args.methods or df[f"{tag} n"].max() < 2:
            continue
        sub = df[df[f"{tag} n"] >= 2]
        ours = sub[f"{tag} ours"]
        means = ", ".join(f"{k} {sub[f'{tag} {k}'].mean():.2f}" for k in PICKERS)
        failed = df[df[f"{tag} fail"] > 0]       # a seed without a pick is not a stable pick
        verdict = "met" if (ours <= 1.5).all() and failed.empty else "MISSED"
        if not failed.empty:
            out(f"{m}: seeds where our pick failed: " + ", ".join(
                f"{n} {int(f)}/{int(f) + int(k)}" for n, f, k in zip(failed["dataset"], failed[f"{tag} fail"],
                                                                     failed[f"{tag} n"])))
        worst = sub.loc[ours.idxmax(), "dataset"]
        out(f"{m}: ours max/min <= 1.5x on all {len(sub)} datasets: {verdict} (worst {ours.max():.2f}x, {worst}); "
            f"mean max/min {means}")
    if "C/F" in df and df["C/F"].notna().any():
        cf = df["C/F"].dropna()
        out(f"cached / full pick (ours): median {float(np.exp(np.median(np.log(cf)))):.2f}x, "
            f"range {cf.min():.2f}x .. {cf.max():.2f}x over {len(cf)} datasets")
    for name, why in skipped.items():
        out(f"skipped {name}: {why}")
    out(f"total {time.perf_counter() - t_start:.0f} s")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(header + "\ncommand: python benchmarks/lr_finder_stability.py "
                                  + " ".join(argv if argv is not None else sys.argv[1:]) + "\n"
                                  + out.buf.getvalue().split("\n", 1)[1])
    if args.csv:
        df.to_csv(args.csv, index=False)
        pd.DataFrame(runs).to_csv(args.csv + ".runs.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
