"""Command-line interface: one subcommand per library function.

Results go to stdout (``--json`` for one machine-readable document); logs, progress bars and
errors go to stderr. A user error prints ``error: <message>`` on one line and exits 1
(``--debug`` shows the traceback); usage errors exit 2; Ctrl-C exits 130.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

EPILOG_RECOMMEND = """examples:
  finetune-advisor recommend --sample                 # the embedded Quick Draw sample
  finetune-advisor recommend data/pets --json > config.json
  finetune-advisor recommend data/xray/labels.csv --label-sep '|' --profile paper
  finetune-advisor recommend data/aerial --no-canonical-up --orientation-matters
  finetune-advisor recommend data/pets --backbone resnet50 --weights resnet50.pth
  finetune-advisor recommend data/pets --backbone my_models.py:my_resnet --reference tiny-imagenet-200/
"""

EPILOG_REFERENCE = """examples:
  finetune-advisor reference build tiny-imagenet-200/ --backbone resnet34
  finetune-advisor reference build tiny-imagenet-200/ --backbone tools/resnet50_keras_v1.py:resnet50_keras_v1
  finetune-advisor reference show --backbone efficientnet_lite0
"""

EPILOG_TRAIN = """examples:
  finetune-advisor train data/pets --out runs/pets              # recommend, then train
  finetune-advisor train data/pets --config config.json --out runs/pets
"""

EPILOG_BENCH = """examples:
  finetune-advisor bench run --profile cpu --seeds 3            # the six stand-ins (+ your copies), resumable
  finetune-advisor bench run --study mine --storage postgresql://me@db/bench   # on each machine
  finetune-advisor bench run --dataset mine=data/mine --datasets pets --fractions 1.0
  finetune-advisor bench run --study long --datasets draw --parameters --anchors no_similarity_rule \
      --head-epochs 5 --unfrozen-epochs 15                      # baseline vs one anchor, longer schedule
  finetune-advisor bench status --study mine --storage postgresql://me@db/bench
  finetune-advisor bench outputs --study mine --storage postgresql://me@db/bench --out bench/mine
"""

EPILOG_REPORT = """examples:
  finetune-advisor report data/pets --out pets.html                 # recommend, then report
  finetune-advisor report data/pets --config config.json --out pets.html
  finetune-advisor report data/pets --config config.json --run runs/pets --bench bench/pets --out pets.html
  finetune-advisor report data/pets --format md --out pets.md       # pets.md + pets_files/*.png
  finetune-advisor report data/pets --config config.json --json > report.json
"""

INVARIANCE_FLAGS = {
    "orientation_matters": "left and right differ (no horizontal flips)",
    "color_matters": "colour decides the class (no colour augmentation)",
    "size_matters": "size decides the class (no zoom augmentation)",
    "shape_matters": "shape decides the class (no perspective warp)",
    "no_canonical_up": "objects have no canonical 'up' (aerial, microscopy): vertical flips are safe",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``finetune-advisor``; returns the exit code.

    0 success; 1 an error, printed as one ``error: ...`` line on stderr (the traceback only
    with ``--debug``); 2 a usage error; 130 Ctrl-C, at any point (``interrupted`` on stderr).
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while parsing or importing torch, before a command runs
        # on a line of its own: a progress bar may have been half drawn (no newline yet)
        print("\ninterrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    _quiet_third_party()
    from .exceptions import FinetuneAdvisorError
    try:
        return args.func(args) or 0
    except FinetuneAdvisorError as exc:
        if args.debug:
            raise
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout closed early (`... | head`): nothing left to tell anyone
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 1
    except Exception as exc:  # a bug here or in a library: still one line, never a traceback
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {_one_line(str(exc))[:300]} (rerun with --debug "
              f"for the traceback, and please report it)", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-advisor",
        description="Tells you how to fine-tune an ImageNet-pretrained ResNet on your image dataset "
                    "with fastai, and backs the advice with measurements.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = _add(sub, "recommend", cmd_recommend, common, EPILOG_RECOMMEND,
             "recommend a fine-tuning config for a dataset, with a reason for every choice")
    _add_dataset_args(p)
    p.add_argument("--sample", action="store_true", help="use the small dataset embedded in the package")
    _add_recommend_args(p)
    p.add_argument("--json", action="store_true", help="print the Config as JSON on stdout")
    p.add_argument("--out", help="also write the Config JSON to this file")
    p.add_argument("--plot", help="write the LR-finder plot (PNG) to this file")

    p = _add(sub, "profile", cmd_profile, common, None, "profile a dataset (counts, imbalance, resolution)")
    _add_dataset_args(p)
    p.add_argument("--json", action="store_true", help="print the profile as JSON")

    p = _add(sub, "reference", None, common, EPILOG_REFERENCE,
             "build or inspect the Tiny-ImageNet similarity reference")
    ref_sub = p.add_subparsers(title="reference commands", metavar="ACTION")
    b = _add(ref_sub, "build", cmd_reference_build, common, EPILOG_REFERENCE,
             "build the reference class means from a local Tiny-ImageNet copy and cache them")
    b.add_argument("path", help="Tiny-ImageNet folder (with train/<wnid>/...)")
    _add_backbone_args(b)
    b.add_argument("--image-size", type=int, default=128)
    b.add_argument("--images-per-class", type=int, default=20)
    b.add_argument("--out", help="write the reference here instead of the cache")
    b.add_argument("--json", action="store_true")
    s = _add(ref_sub, "show", cmd_reference_show, common, EPILOG_REFERENCE, "show the reference in use")
    _add_backbone_args(s)
    s.add_argument("--reference", help="a reference .npz or Tiny-ImageNet folder")
    s.add_argument("--json", action="store_true")

    p = _add(sub, "train", cmd_train, common, EPILOG_TRAIN,
             "train a fastai model from a Config (recommending one first if none is given)")
    _add_dataset_args(p)
    p.add_argument("--sample", action="store_true", help="use the small dataset embedded in the package")
    p.add_argument("--config", help="a Config JSON from 'finetune-advisor recommend --out'")
    _add_backbone_args(p)
    p.add_argument("--profile", choices=["cpu", "paper"], default="cpu")
    p.add_argument("--out", default="finetune-advisor-run", help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result summary as JSON")

    p = _add(sub, "bench", None, common, EPILOG_BENCH,
             "the study's one-at-a-time sweep over the reference datasets (resumable, distributable)")
    bench_sub = p.add_subparsers(title="bench commands", metavar="COMMAND")
    b = _add(bench_sub, "run", cmd_bench, common, None,
             "start or resume a sweep (a second machine with the same --storage URL joins it)")
    b.add_argument("--study", default="bench", help="study name (default: %(default)s)")
    b.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///<out>/bench.db; "
                                     "postgresql://user@host/db to share a study between machines)")
    b.add_argument("--out", help="output folder (default: bench/<study>)")
    b.add_argument("--datasets", nargs="*", help="reference datasets (default: the study's seven; 'all': "
                                                 "every registered dataset)")
    b.add_argument("--data-path", action="append", default=[], metavar="NAME=PATH",
                   help="where your copy of a reference dataset lives (repeatable)")
    b.add_argument("--dataset", action="append", default=[], metavar="NAME=PATH",
                   help="add your own dataset to the run (repeatable)")
    b.add_argument("--fractions", nargs="+", type=float, default=[0.2, 1.0])
    b.add_argument("--seeds", type=int, default=3, help="repeats per cell (default: %(default)s)")
    b.add_argument("--profile", choices=["cpu", "paper"], default="cpu")
    for field, what in [("head-epochs", "head (frozen) epochs"), ("unfrozen-epochs", "unfrozen epochs"),
                        ("image-size", "image size in px"), ("max-images-per-class", "images a class cap")]:
        b.add_argument(f"--{field}", type=int, help=f"override the profile's {what}")
    b.add_argument("--grid", choices=["table1", "calibration"], default="table1",
                   help="table1: the study's one-at-a-time sweep; calibration: absolute LRs x fine-tune "
                        "depth x unfrozen-phase LR ratio, for 'calibrate' (default: %(default)s)")
    b.add_argument("--parameters", nargs="*", metavar="P",
                   help="parameters of the grid to vary (default: all; none: baselines and anchors only)")
    b.add_argument("--anchors", nargs="*", metavar="A",
                   help="anchors to run (default: fastai_fine_tune lr_find_valley no_similarity_rule)")
    b.add_argument("--backbone", help="backbone for the recommendations (default: chosen by dataset size)")
    b.add_argument("--no-similarity", action="store_true", help="skip the similarity measurement")
    b.add_argument("--reference", help="Tiny-ImageNet folder or reference .npz for the similarity "
                                       "(default: the shared tiny-imagenet-200 sample when present, else the cache)")
    b.add_argument("--n-trials", type=int, help="stop this worker after N trials")
    b.add_argument("--worker", action="store_true", help="only work the queue of an existing study")
    b.add_argument("--heartbeat", type=int, default=60, help="heartbeat interval in seconds")
    b.add_argument("--json", action="store_true", help="print the status and output files as JSON")
    s = _add(bench_sub, "status", cmd_bench_status, common, None, "show how far a study is")
    s.add_argument("--study", default="bench")
    s.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///bench/<study>/bench.db)")
    s.add_argument("--json", action="store_true")
    o = _add(bench_sub, "outputs", cmd_bench_outputs, common, None,
             "write a study's results table, heatmap and regret summary (runs nothing)")
    o.add_argument("--study", default="bench")
    o.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///bench/<study>/bench.db)")
    o.add_argument("--out", help="output folder (default: bench/<study>)")
    o.add_argument("--json", action="store_true", help="print the output files as JSON")

    p = _add(sub, "report", cmd_report, common, EPILOG_REPORT,
             "write one self-contained HTML (or Markdown) report: config, dataset, similarity, LR finder")
    _add_dataset_args(p)
    p.add_argument("--sample", action="store_true", help="use the small dataset embedded in the package")
    p.add_argument("--config", help="a Config JSON from 'finetune-advisor recommend --out' (skips the "
                                    "measurements; the dataset is still read for the profile and sample images)")
    _add_recommend_args(p)
    p.add_argument("--run", help="a 'finetune-advisor train --out' folder: its curves and final metrics")
    p.add_argument("--bench", help="a benchmark output folder (heatmap.png, regret.csv)")
    p.add_argument("--out", help="report file (default: report.html, or report.md with --format md; "
                                 "with --json only when given)")
    p.add_argument("--format", choices=["html", "md"],
                   help="html: one self-contained file; md: Markdown plus a <name>_files/ folder of images "
                        "(default: from --out's extension, else html)")
    p.add_argument("--json", action="store_true", help="print the report data as JSON on stdout")
    return parser


def _add(sub, name: str, func: Callable | None, common, epilog: str | None, help_text: str):
    p = sub.add_parser(name, parents=[common], help=help_text, description=help_text, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def _add_dataset_args(p) -> None:
    p.add_argument("path", nargs="?", help="dataset folder or CSV file")
    p.add_argument("--layout", choices=["auto", "folders", "csv", "filename"], default="auto")
    p.add_argument("--csv", dest="csv_path", help="CSV of image,labels (when not inside the folder)")
    p.add_argument("--label-sep", help="separator between labels in the CSV (default: detect | ; or space)")
    p.add_argument("--filename-regex", help=r"regex with one group = label, on the file stem (default: Pets '^(.+)_\d+$')")


def _add_recommend_args(p) -> None:
    """Options of the measurements behind a recommendation (shared by recommend and report)."""
    _add_backbone_args(p)
    p.add_argument("--reference", help="Tiny-ImageNet folder (built and cached) or a reference .npz")
    p.add_argument("--profile", choices=["cpu", "paper"], default="cpu",
                   help="cpu: small images, short schedule; paper: the study's 224 px, 5+15 epochs (default: cpu)")
    p.add_argument("--threshold", type=float, help="near/far similarity threshold (default: per backbone, 0.72)")
    p.add_argument("--lr-loss", choices=["train", "valid"], default="valid",
                   help="loss recorded by the LR range test: valid (the study's, default) or train (cheaper, noisier)")
    p.add_argument("--lr-steps", type=int, default=100, help="steps of the LR range test (default: %(default)s)")
    p.add_argument("--no-similarity", action="store_true", help="skip the similarity measurement")
    p.add_argument("--no-lr-finder", action="store_true", help="skip the LR range test")
    p.add_argument("--max-images", type=int, default=4000, help="cap on images embedded for similarity")
    p.add_argument("--seed", type=int, default=0)
    for flag, text in INVARIANCE_FLAGS.items():
        p.add_argument("--" + flag.replace("_", "-"), action="store_true", help=text)


def _add_backbone_args(p) -> None:
    p.add_argument("--backbone", help="resnet18..resnet152, efficientnet_lite0, or module:function / file.py:function "
                                      "(default: chosen by dataset size; offline falls back to efficientnet_lite0)")
    p.add_argument("--weights", help="local state_dict for the backbone (no download)")
    p.add_argument("--no-fallback", action="store_true",
                   help="fail instead of falling back to the shipped efficientnet_lite0 when weights are unavailable")
    p.add_argument("--random-init", action="store_true",
                   help="random backbone weights: a smoke test of the pipeline, not advice")


def _dataset_path(args) -> Path:
    from .exceptions import DatasetError
    from .recommend import SAMPLE_DATASET
    if getattr(args, "sample", False):
        return SAMPLE_DATASET
    if args.path is None and args.csv_path is None:
        raise DatasetError("no dataset given", hint="pass a folder or CSV path, or --sample for the embedded one")
    return Path(args.path if args.path is not None else args.csv_path)


def _read_kwargs(args) -> dict:
    return {"layout": args.layout, "csv_path": args.csv_path, "label_sep": args.label_sep,
            "filename_regex": args.filename_regex}


# --- commands ---------------------------------------------------------------------

def cmd_recommend(args) -> int:
    from .recommend import advise
    invariances = {k: True for k in INVARIANCE_FLAGS if getattr(args, k)}
    rec = advise(_dataset_path(args), backbone=args.backbone, weights=args.weights,
                 pretrained=not args.random_init, fallback=not args.no_fallback, reference=args.reference, profile=args.profile,
                 invariances=invariances or None, threshold=args.threshold,
                 similarity=not args.no_similarity, lr_finder=not args.no_lr_finder,
                 lr_loss=args.lr_loss, lr_steps=args.lr_steps, max_images=args.max_images, seed=args.seed,
                 progress=not args.quiet, **_read_kwargs(args))
    if args.out:
        _atomic_write(Path(args.out), rec.config.to_json())
    if args.plot and rec.lr_finder is not None:
        from .lr_finder import plot_lr_finder
        import matplotlib
        matplotlib.use("Agg")
        far = rec.similarity is not None and rec.similarity.far
        ax = plot_lr_finder(rec.lr_finder, divided_lr=rec.config.lr if far else None)
        ax.figure.savefig(args.plot, dpi=120, bbox_inches="tight")
    if args.json:
        print(rec.config.to_json())
    else:
        print(format_recommendation(rec))
    return 0


def cmd_profile(args) -> int:
    from . import data
    from dataclasses import asdict
    ds = data.read_dataset(_dataset_path(args), **{k: v for k, v in _read_kwargs(args).items() if v is not None})
    prof = data.profile_dataset(ds)
    d = asdict(prof)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
    else:
        print(format_profile(prof))
    return 0


def _reference_backbone(args):
    from .backbones import create_backbone
    if args.random_init:  # the random weights `recommend --random-init` gets with its default --seed 0
        import torch
        torch.manual_seed(0)
    return create_backbone(args.backbone or "efficientnet_lite0", weights=args.weights,
                           pretrained=not args.random_init, fallback=not args.no_fallback)


def cmd_reference_build(args) -> int:
    from .exceptions import SimilarityReferenceError
    from .similarity import build_reference, reference_cache_path
    bb = _reference_backbone(args)
    ref = build_reference(args.path, bb, image_size=args.image_size, images_per_class=args.images_per_class,
                          progress=not args.quiet)
    out = Path(args.out) if args.out else reference_cache_path(bb, args.image_size, args.images_per_class)
    try:
        ref.save(out)
    except OSError as exc:
        raise SimilarityReferenceError(f"cannot write the reference: {exc.strerror or exc}", path=out) from None
    summary = {"path": str(out), "backbone": ref.backbone_key, "classes": len(ref.class_ids),
               "image_size": ref.image_size, "images_per_class": ref.images_per_class}
    print(json.dumps(summary, indent=2) if args.json else
          f"reference for {ref.backbone_key}: {len(ref.class_ids)} classes, {ref.image_size} px, "
          f"{ref.images_per_class} images/class -> {out}")
    return 0


def cmd_reference_show(args) -> int:
    from .similarity import get_reference
    bb = _reference_backbone(args)
    ref = get_reference(bb, path=args.reference, download=False)
    summary = {"backbone": ref.backbone_key, "classes": len(ref.class_ids), "image_size": ref.image_size,
               "images_per_class": ref.images_per_class, "source": ref.source}
    print(json.dumps(summary, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


def cmd_train(args) -> int:
    from .exceptions import ConfigError
    from .train import train
    path = _dataset_path(args)
    if args.config:
        from .data import read_dataset
        config = _read_config(args.config)
        dataset = read_dataset(path, **{k: v for k, v in _read_kwargs(args).items() if v is not None})
    else:
        from .recommend import advise
        rec = advise(path, backbone=args.backbone, weights=args.weights, fallback=not args.no_fallback,
                     profile=args.profile, seed=args.seed, progress=not args.quiet, **_read_kwargs(args))
        config, dataset = rec.config, rec.dataset
    try:
        result = train(config, dataset, out_dir=args.out, seed=args.seed, weights=args.weights,
                       progress=not args.quiet)
    except ConfigError as exc:  # e.g. an image_size the backbone cannot take: name the config file
        if not args.config or exc.path:
            raise
        raise ConfigError(exc.message, path=args.config, hint=exc.hint) from None
    summary = result.to_dict()
    print(json.dumps(summary, indent=2, default=str) if args.json else
          "\n".join(f"{k}: {v}" for k, v in summary.items() if k != "config"))
    return 0


def _read_config(path: str) -> "Config":
    """A Config JSON file, or a ConfigError naming the file (missing, binary, truncated, invalid)."""
    from .config import Config
    from .exceptions import ConfigError
    hint = "write one with `finetune-advisor recommend DATASET --out config.json`"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not UTF-8 text"
        raise ConfigError(f"cannot read config: {reason}", path=path, hint=hint) from None
    try:
        return Config.from_json(text)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path, hint=exc.hint or hint) from None


def cmd_report(args) -> int:
    from .report import build_report, load_recommendation, write_report
    path = _dataset_path(args)
    read_kwargs = _read_kwargs(args)
    if args.config:
        rec = load_recommendation(args.config, path, **read_kwargs)
    else:
        from .recommend import advise
        invariances = {k: True for k in INVARIANCE_FLAGS if getattr(args, k)}
        rec = advise(path, backbone=args.backbone, weights=args.weights, fallback=not args.no_fallback,
                     reference=args.reference, profile=args.profile, invariances=invariances or None,
                     threshold=args.threshold, similarity=not args.no_similarity,
                     lr_finder=not args.no_lr_finder, lr_loss=args.lr_loss, lr_steps=args.lr_steps,
                     max_images=args.max_images, seed=args.seed, progress=not args.quiet, **read_kwargs)
    import matplotlib
    matplotlib.use("Agg")
    report = build_report(rec, run_dir=args.run, bench=args.bench, seed=args.seed)
    fmt = args.format or ("md" if args.out and Path(args.out).suffix.lower() in (".md", ".markdown") else "html")
    out = args.out or (None if args.json else f"report.{fmt}")
    if out:
        written = write_report(report, out, format=fmt)
        logging.getLogger(__name__).info("wrote %s (%.0f KB)", written, written.stat().st_size / 1024)
    if args.json:
        print(report.to_json())
    elif out:
        print(out)
    return 0


# --- formatting -------------------------------------------------------------------

def format_recommendation(rec) -> str:
    """A readable summary: measurements, then one line per decision with its reason."""
    from .config import DECISION_FIELDS
    cfg = rec.config
    lines = [format_profile(rec.profile), ""]
    if rec.similarity is not None:
        s = rec.similarity
        verdict = "FAR from ImageNet" if s.far else "near ImageNet"
        lines.append(f"similarity to ImageNet: {s.similarity:.3f} (95% CI {s.ci_low:.3f}-{s.ci_high:.3f}, "
                     f"raw EMD {s.emd:.4f}, {s.backbone_key} @ {s.image_size}px) -> {verdict} "
                     f"(threshold {s.threshold:.2f})")
    if rec.lr_finder is not None:
        r = rec.lr_finder
        lines.append(f"LR finder: {r.lr:.2e} (fastai valley {r.fastai_valley:.2e}, steep {r.fastai_steep:.2e})")
    lines += ["", "recommended config:"]
    width = max(len(f) for f in DECISION_FIELDS)
    for name in DECISION_FIELDS:
        value = getattr(cfg, name)
        if name == "augmentation":
            from dataclasses import asdict
            value = ", ".join(f"{k}={v}" for k, v in asdict(value).items())
        elif isinstance(value, float):
            value = f"{value:.3g}"
        lines.append(f"  {name:<{width}}  {value}")
        lines.append(f"  {'':<{width}}    because {cfg.reasons.get(name, '')}")
    if cfg.warnings:
        lines += ["", "warnings:"] + [f"  - {w}" for w in cfg.warnings]
    return "\n".join(lines)


def format_profile(prof) -> str:
    res = prof.resolution
    kind = "multi-label" if prof.multi_label else "single-label"
    unusable = f" ({prof.n_corrupt} of them unreadable, not used)" if prof.n_corrupt else ""
    lines = [f"dataset: {prof.root} ({prof.layout}, {kind})",
             f"  {prof.n_images} images{unusable}, {prof.n_classes} classes, "
             f"imbalance SD {prof.imbalance_sd:.1f} images/class",
             f"  resolution mean {res['mean_w']:.0f}x{res['mean_h']:.0f}, "
             f"min {res['min_w']:.0f}x{res['min_h']:.0f}, max {res['max_w']:.0f}x{res['max_h']:.0f}"]
    skipped = {k: v for k, v in (prof.skipped or {}).items() if v}
    if skipped:  # by count, then reason
        lines.append(f"  skipped {sum(skipped.values())}: "
                     + ", ".join(f"{v} {k}" for k, v in sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))))
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path``, then rename it over ``path``: a write that
    is killed or fails leaves the previous file intact and no partial file behind."""
    from .exceptions import ConfigError
    from .train import write_text_atomic
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}", path=path,
                          hint="check the folder exists, is writable and has space") from None


def _quiet_third_party() -> None:
    import warnings
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")



def _name_paths(pairs: Sequence[str]) -> dict:
    from .exceptions import ConfigError
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"expected NAME=PATH, got {pair!r}")
        out[name.strip().lower()] = path
    return out


def cmd_bench(args) -> int:
    from . import bench
    study_name = args.study
    out = Path(args.out) if args.out else Path("bench") / study_name
    if args.worker:
        study = bench.open_study(study_name, args.storage, out_dir=out, heartbeat_interval=args.heartbeat,
                                 create=False)
        ran = bench.run_worker(study, progress=not args.quiet)
        result = {"ran": ran, "status": bench.study_status(study), "files": bench.write_outputs(study, out)}
    else:
        datasets = bench.resolve_datasets(args.datasets or None, paths=_name_paths(args.data_path),
                                          extra=_name_paths(args.dataset))
        options = {"backbone": args.backbone, "similarity": not args.no_similarity, "reference": args.reference}
        profile = bench.custom_profile(args.profile, head_epochs=args.head_epochs, image_size=args.image_size,
                                       unfrozen_epochs=args.unfrozen_epochs,
                                       max_images_per_class=args.max_images_per_class)
        grid = bench.select_grid(args.parameters, args.grid)
        anchors = bench.ANCHORS if args.anchors is None else bench.select_anchors(args.anchors)
        result = bench.run_bench(study_name, args.storage, datasets=datasets, fractions=args.fractions,
                                 seeds=args.seeds, profile=profile, grid=grid, anchors=anchors,
                                 advise_options=options,
                                 n_trials=args.n_trials, out_dir=out, heartbeat_interval=args.heartbeat,
                                 progress=not args.quiet)
        result.pop("study")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(format_bench_status(result["status"]))
        for kind, path in result["files"].items():
            print(f"{kind}: {path}")
    return 0


def _existing_study(args):
    from . import bench
    storage = args.storage or f"sqlite:///{(Path('bench') / args.study / 'bench.db').resolve()}"
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).exists():
        from .exceptions import ConfigError
        raise ConfigError(f"no bench database at {storage[len('sqlite:///'):]}",
                          hint="pass --storage, or start one with 'finetune-advisor bench run'")
    return bench.open_study(args.study, storage, create=False)


def cmd_bench_status(args) -> int:
    from . import bench
    status = bench.study_status(_existing_study(args))
    print(json.dumps(status, indent=2, default=str) if args.json else format_bench_status(status))
    return 0


def cmd_bench_outputs(args) -> int:
    from . import bench
    files = bench.write_outputs(_existing_study(args), Path(args.out) if args.out else Path("bench") / args.study)
    print(json.dumps(files, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in files.items()))
    return 0


def format_bench_status(st: dict) -> str:
    lines = [f"study {st['study']}: {st['n_done']}/{st['n_grid']} trials done, {st['n_remaining']} to go"]
    lines.append("states: " + ", ".join(f"{k} {v}" for k, v in sorted(st["states"].items())))
    if st.get("eta_s_one_worker") is not None:
        eta = f"ETA {st['eta_s_one_worker'] / 60:.1f} min on one worker"
        workers = int(st["states"].get("RUNNING", 0))
        if workers > 1:   # one RUNNING trial per live worker
            eta += f", {st['eta_s_one_worker'] / 60 / workers:.1f} min with the {workers} running now"
        lines.append(f"mean trial {st['mean_trial_s']:.1f} s; {eta}")
    for name, note in (st.get("missing_datasets") or {}).items():
        lines.append(f"missing: {name}: {note}")
    for name, note in (st.get("failed_datasets") or {}).items():
        lines.append(f"no baseline: {name}: {note}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
