"""One function per command: ``cmd_<name>(args) -> exit code``, found by name in :data:`COMMANDS`
(Optuna's CLI habit). Each turns its arguments into library calls (options through
:mod:`.options`) and prints through :mod:`.output`: results on stdout, logs and progress on stderr."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from .. import bench, data
from .._io import write_bytes_atomic, write_text_atomic
from ..backbones import Backbone, create_backbone, names_code
from ..storage_url import STORAGE_ENV
from ..config import Config
from ..exceptions import ConfigError, SimilarityReferenceError
from ..lr_finder import plot_lr_finder
from ..recommend import advise
from ..report import build_report, load_recommendation, write_report
from ..similarity import build_reference, get_reference, reference_cache_path
from ..train import train
from .options import (check_writable, dataset_arg, dataset_path, name_paths, none_means_empty, options_from_args,
                      read_kwargs)
from ..train.fit import DIVERGED_PREFIX
from .output import format_bench_status, format_profile, format_recommendation, format_train_summary, print_error

log = logging.getLogger(__name__)
_CONFIG_HINT = "write one with `finetune-advisor recommend DATASET --out config.json`"


# --- recommend, profile -------------------------------------------------------------------

def cmd_recommend(args: argparse.Namespace) -> int:
    rec = advise(dataset_arg(args), options_from_args(args))     # --out and --plot: checked by early_checks
    if args.out:
        _write_text(Path(args.out), rec.config.to_json())
    if args.plot and rec.lr_finder is not None:
        far = rec.similarity is not None and rec.similarity.far
        ax = plot_lr_finder(rec.lr_finder, divided_lr=rec.config.lr if far else None)
        _write_figure(Path(args.plot), ax.figure)
    print(rec.config.to_json() if args.json else format_recommendation(rec))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    ds = data.read_dataset(dataset_path(args), **{k: v for k, v in read_kwargs(args).items() if v is not None})
    prof = data.profile_dataset(ds)
    if args.json:
        print(json.dumps(dataclasses.asdict(prof), indent=2, default=str))
    else:
        print(format_profile(prof))
    return 0


# --- reference ----------------------------------------------------------------------------

def _reference_backbone(args: argparse.Namespace) -> Backbone:
    if args.random_init:  # the random weights `recommend --random-init` gets with its default --seed 0
        import torch
        torch.manual_seed(0)
    return create_backbone(args.backbone or "efficientnet_lite0", weights=args.weights,
                           pretrained=not args.random_init, fallback=not args.no_fallback)


def cmd_reference_build(args: argparse.Namespace) -> int:
    check_writable(args.out, "--out")
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


def cmd_reference_show(args: argparse.Namespace) -> int:
    ref = get_reference(_reference_backbone(args), path=args.reference, download=False)
    summary = {"backbone": ref.backbone_key, "classes": len(ref.class_ids), "image_size": ref.image_size,
               "images_per_class": ref.images_per_class, "source": ref.source}
    print(json.dumps(summary, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0


# --- train, report ------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    if args.config:                        # --out: checked by early_checks
        config = _read_config(args.config, trust_code=args.trust_config_code)
        dataset = data.read_dataset(dataset_path(args), **{k: v for k, v in read_kwargs(args).items()
                                                           if v is not None})
    else:
        rec = advise(dataset_arg(args), options_from_args(args))
        config, dataset = rec.config, rec.dataset
    try:
        result = train(config, dataset, out_dir=args.out, seed=args.seed, weights=args.weights,
                       progress=not args.quiet)
    except ConfigError as exc:  # e.g. an image_size the backbone cannot take: name the config file
        if not args.config or exc.path:
            raise
        raise ConfigError(exc.message, path=args.config, hint=exc.hint) from None
    summary = result.to_dict()
    print(json.dumps(summary, indent=2, default=str) if args.json else format_train_summary(summary))
    diverged = next((n for n in result.notes if n.startswith(DIVERGED_PREFIX)), None)
    if diverged:                 # a model that predicts NaN is not a result: say so, and exit non-zero
        print_error(diverged)
        return 1
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from ..tune import parse_budget, tune

    budget = None if args.budget is None else parse_budget(args.budget)    # a typo fails now, not after hours
    config = _read_config(args.config, trust_code=args.trust_config_code) if args.config else None
    result = tune(dataset_arg(args), budget, config=config, options=options_from_args(args), storage=args.storage,
                  study_name=args.study, n_trials=args.trials, seed=args.seed, out_dir=args.out,
                  progress=not args.quiet, worker=args.worker, heartbeat_interval=args.heartbeat,
                  portfolio=() if args.no_portfolio else None)
    print(json.dumps(result.to_dict(), indent=2) if args.json else "\n".join(result.summary_lines()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    path = dataset_path(args)
    fmt = args.format or ("md" if args.out and Path(args.out).suffix.lower() in (".md", ".markdown") else "html")
    out = args.out or (None if args.json else f"report.{fmt}")
    check_writable(out, "--out")           # before the measurements and the report, not after them
    if args.config:
        rec = load_recommendation(args.config, path, **read_kwargs(args))
    else:
        rec = advise(dataset_arg(args), options_from_args(args))
    report = build_report(rec, run_dir=args.run, bench=args.bench, seed=args.seed, tune=args.tune)
    if out:
        written = write_report(report, out, format=fmt)
        log.info("wrote %s (%.0f KB)", written, written.stat().st_size / 1024)
    if args.json:
        print(report.to_json())
    elif out:
        print(out)
    return 0


def _read_config(path: str, *, trust_code: bool = False) -> Config:
    """A Config JSON file, or a ConfigError naming the file (missing, binary, truncated, invalid).

    A Config is data, meant to be shared: one whose backbone names code (``file.py:function``,
    ``module:function``) would run that code when the backbone is built, so it is refused unless
    the user says they trust it (``--trust-config-code``); ``--backbone`` on the command line is
    the way to name code."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "it is not UTF-8 text"
        raise ConfigError(f"cannot read config: {reason}", path=path, hint=_CONFIG_HINT) from None
    try:
        config = Config.from_json(text)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path, hint=exc.hint or f"fix the file, or {_CONFIG_HINT}") from None
    if names_code(config.backbone) and not trust_code:
        raise ConfigError(f"its backbone {config.backbone!r} names code, which building the model would import "
                          f"and run", path=path,
                          hint="pass --trust-config-code if you wrote or trust this file, or set a backbone name "
                               "(e.g. resnet50) in it")
    return config


def _write_figure(path: Path, figure) -> None:
    """A figure as PNG, atomically like :func:`_write_text` (its folder created)."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    try:
        write_bytes_atomic(path, buffer.getvalue())
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}", path=path,
                          hint="check the folder exists, is writable and has space") from None


def _write_text(path: Path, text: str) -> None:
    """Atomically (a killed write leaves the previous file); an OSError becomes a one-line ConfigError."""
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}", path=path,
                          hint="check the folder exists, is writable and has space") from None


# --- bench --------------------------------------------------------------------------------

def cmd_bench(args: argparse.Namespace) -> int:
    study_name = args.study
    args.storage = args.storage or os.environ.get(STORAGE_ENV)     # how spawned workers get it (not in argv)
    out = Path(args.out) if args.out else Path("bench") / study_name
    check_writable(out, "--out", folder=True)
    if args.workers < 1 or args.threads < 1:
        raise ConfigError(f"--workers and --threads must be at least 1, got {args.workers} and {args.threads}")
    if args.worker:
        study = bench.open_study(study_name, args.storage, out_dir=out, heartbeat_interval=args.heartbeat,
                                 create=False)
        _refuse_tune_study(study, "has no bench trials to run",
                           f"join it with 'finetune-advisor tune PATH --worker --study {study_name} --storage URL'")
        # N local processes, then the outputs of what they all ran
        ran = _spawn(study, args, out) if args.workers > 1 else bench.run_worker(study, n_trials=args.n_trials,
                                                                                 progress=not args.quiet)
        result = {"ran": ran, "status": bench.study_status(study), "files": bench.write_outputs(study, out)}
    else:
        requested = none_means_empty(args.datasets)
        if requested == [] and args.datasets:       # "--datasets none": only the user's own (--dataset NAME=PATH)
            if not args.dataset:
                raise ConfigError("--datasets none leaves nothing to benchmark",
                                  hint="add your own with --dataset NAME=PATH")
            names = []
        else:
            names = requested or None               # no names: the study's seven
        if args.sizes:
            names = bench.sized_names(names or [n for n, d in bench.REFERENCE_DATASETS.items() if d.group == "study"],
                                      args.sizes)
        datasets = bench.resolve_datasets(names, paths=name_paths(args.data_path), extra=name_paths(args.dataset))
        options = {"backbone": args.backbone, "similarity": not args.no_similarity, "reference": args.reference,
                   "lr_finder": False if args.no_lr_finder else None, "policy": args.policy}
        profile = bench.custom_profile(args.profile, head_epochs=args.head_epochs, image_size=args.image_size,
                                       unfrozen_epochs=args.unfrozen_epochs,
                                       max_images_per_class=args.max_images_per_class)
        grid = bench.select_grid(none_means_empty(args.parameters), args.grid)
        anchors = bench.ANCHORS if args.anchors is None else bench.select_anchors(none_means_empty(args.anchors))
        result = bench.run_bench(study_name, args.storage, datasets=datasets, fractions=args.fractions,
                                 seeds=args.seeds, profile=profile, grid=grid, anchors=anchors,
                                 advise_options=options, n_trials=0 if args.workers > 1 else args.n_trials,
                                 out_dir=out, heartbeat_interval=args.heartbeat, progress=not args.quiet,
                                 write=args.workers == 1)
        study = result.pop("study")
        if args.workers > 1:     # prepared above; now the local processes work the queue
            result.update(ran=_spawn(study, args, out), status=bench.study_status(study),
                          files=bench.write_outputs(study, out))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(format_bench_status(result["status"]))
        for kind, path in result["files"].items():
            print(f"{kind}: {path}")
    return 0


def _spawn(study, args: argparse.Namespace, out: Path) -> int:
    """``bench.spawn_workers`` on the study; how many trials they finished."""
    before = bench.study_status(study)["n_done"]
    codes = bench.spawn_workers(args.study, study.url, args.workers, threads=args.threads, out_dir=out)
    if any(codes):
        print(f"warning: worker exit codes {codes}; rerun the same command to resume", file=sys.stderr)
    return bench.study_status(study)["n_done"] - before


def _existing_study(args: argparse.Namespace):
    storage = args.storage or f"sqlite:///{(Path('bench') / args.study / 'bench.db').resolve()}"
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).exists():
        raise ConfigError(f"no bench database at {storage[len('sqlite:///'):]}",
                          hint="pass --storage, or start one with 'finetune-advisor bench run'")
    return bench.open_study(args.study, storage, create=False)


def _refuse_tune_study(study, what: str, hint: str) -> None:
    """A ConfigError when ``study`` was made by ``tune``: bench's grid readers would make nothing of it."""
    from ..bench.records import study_kind

    if study_kind(study) == "tune":
        raise ConfigError(f"study {study.study_name!r} is a tune study, not a bench sweep: it {what}", hint=hint)


def cmd_bench_status(args: argparse.Namespace) -> int:
    status = bench.study_status(_existing_study(args))
    print(json.dumps(status, indent=2, default=str) if args.json else format_bench_status(status))
    return 0


def cmd_bench_outputs(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path("bench") / args.study
    check_writable(out, "--out", folder=True)
    study = _existing_study(args)
    _refuse_tune_study(study, "has no grid to tabulate",
                       "'finetune-advisor tune' writes its tune.json and trials.csv into its --out folder; "
                       "'bench status' counts its trials")
    files = bench.write_outputs(study, out)
    if study.user_attrs.get("validation"):      # a leave-one-dataset-out study: its table too
        from ..calibration.loo_table import validation_table, write_table
        files.update(write_table(validation_table(study), out))
    print(json.dumps(files, indent=2) if args.json else "\n".join(f"{k}: {v}" for k, v in files.items()))
    return 0


# args.command (set by the parser) -> the function that runs it
def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..calibration.sweep import calibrate, format_calibration

    storage = args.storage or f"sqlite:///{(Path('bench') / args.study[0] / 'bench.db').resolve()}"
    if args.validate:
        return _calibrate_validate(args, storage)
    check_writable(args.out, "--out")
    if args.measure:            # torch's threads were set by the entry point (cli.app), as for every torch command
        from ..calibration.sweep import measure_study

        for name in args.study:
            measure_study(name, storage, progress=not args.quiet)
    cal = calibrate(args.study, storage, backbone=args.backbone, complete_only=not args.partial, exclude=args.exclude)
    if args.out:
        cal.save(args.out)
    if args.json:
        print(json.dumps(cal.to_dict(), indent=2))
    else:
        print(format_calibration(cal))
        if args.out:
            print(f"calibration: {args.out}")
    return 0


def _calibrate_validate(args: argparse.Namespace, storage: str) -> int:
    """``calibrate --validate NAME``: the leave-one-dataset-out validation (calibration.validate)."""
    from ..calibration.validate import run_validation

    out = Path(args.out) if args.out else Path("bench") / args.validate
    check_writable(out, "--out", folder=True)
    result = run_validation(args.study, storage, args.validate, loo_storage=args.loo_storage, seeds=args.seeds,
                            seed_offset=args.seed_offset, backbone=args.backbone, complete_only=not args.partial,
                            n_trials=args.n_trials, out_dir=out, heartbeat_interval=args.heartbeat,
                            progress=not args.quiet, reuse_from=args.reuse_from, reuse_storage=args.reuse_storage)
    if args.json:
        print(json.dumps({"ran": result["ran"], "status": result["status"], "table": result["table"].to_dict(),
                          "files": result["files"]}, indent=2, default=str))
    else:
        print(format_bench_status(result["status"]))
        print(result["table"].markdown())
        for kind, path in result["files"].items():
            print(f"{kind}: {path}")
    return 0


COMMANDS = {
    "recommend": cmd_recommend, "profile": cmd_profile, "train": cmd_train, "tune": cmd_tune, "report": cmd_report,
    "reference build": cmd_reference_build, "reference show": cmd_reference_show,
    "bench run": cmd_bench, "bench status": cmd_bench_status, "bench outputs": cmd_bench_outputs,
    "calibrate": cmd_calibrate,
}
