"""The command line's arguments turned into the library's options, in one place: every command
that runs a recommendation builds its :class:`~finetune_advisor.recommend.AdviseOptions` here."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from .._io import special_file_kind
from ..exceptions import ConfigError, DatasetError
from ..recommend import SAMPLE_DATASET, AdviseOptions

# --flag-name -> what it tells the augmentation rule (dest names are AdviseOptions.invariances keys)
INVARIANCE_FLAGS = {
    "orientation_matters": "left and right differ (no horizontal flips)",
    "color_matters": "colour decides the class (no colour augmentation)",
    "size_matters": "size decides the class (no zoom augmentation)",
    "shape_matters": "shape decides the class (no perspective warp)",
    "no_canonical_up": "objects have no canonical 'up' (aerial, microscopy): vertical flips are safe",
}


def read_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The dataset-reading options (``--layout``, ``--csv``, ``--label-sep``, ``--filename-regex``)."""
    return {"layout": args.layout, "csv_path": args.csv_path, "label_sep": args.label_sep,
            "filename_regex": args.filename_regex, "allow_outside_paths": args.allow_outside_paths}


def options_from_args(args: argparse.Namespace) -> AdviseOptions:
    """The :class:`AdviseOptions` that ``recommend``, ``train`` and ``report`` pass to ``advise``
    (their arguments come from the same ``add_recommend_args``); checked once, here."""
    invariances = {k: True for k in INVARIANCE_FLAGS if getattr(args, k)}
    return AdviseOptions(
        backbone=args.backbone, weights=args.weights, pretrained=not args.random_init,
        fallback=not args.no_fallback, reference=args.reference, profile=args.profile,
        invariances=invariances or None, threshold=args.threshold, similarity=not args.no_similarity,
        lr_finder=not args.no_lr_finder, lr_loss=args.lr_loss, lr_steps=args.lr_steps,
        max_images=args.max_images, seed=args.seed, progress=not args.quiet, policy=args.policy,
        calibration=args.calibration, lr_finder_method=args.lr_finder_method,
        budget=getattr(args, "train_budget", None), **read_kwargs(args))


URL_SCHEMES = ("http://", "https://", "s3://", "gs://", "ftp://", "hf://")


def local_path(value: str | Path, what: str = "dataset") -> Path:
    """A local path argument: a literal ``~`` expanded (as for ``--weights`` and ``--reference``);
    a URL refused with the fix, never mangled into ``https:/...`` "does not exist".

    >>> local_path("~/data/pets") == Path.home() / "data" / "pets"
    True
    """
    text = str(value)
    if text.lower().startswith(URL_SCHEMES):
        raise DatasetError(f"{what} {text} is a URL: URLs are not supported; download it first",
                           hint="then pass the local folder or CSV")
    return Path(text).expanduser()


def dataset_path(args: argparse.Namespace) -> Path:
    """The dataset argument (a folder, a CSV via --csv, or --sample); a DatasetError when none is given.
    ``~`` is expanded and a URL refused (``--csv`` too, which it also rewrites in ``args``)."""
    if getattr(args, "sample", False):
        return SAMPLE_DATASET
    if getattr(args, "csv_path", None) is not None:
        args.csv_path = str(local_path(args.csv_path, "--csv"))
    if args.path is None and args.csv_path is None:
        sample = ", or --sample for the embedded one" if hasattr(args, "sample") else ""
        raise DatasetError("no dataset given", hint=f"pass a folder or CSV path{sample}")
    return local_path(args.path) if args.path is not None else Path(args.csv_path)


def dataset_arg(args: argparse.Namespace):
    """The dataset :func:`early_checks` already read (a :class:`~finetune_advisor.data.Dataset`),
    else the dataset argument's path (:func:`dataset_path`)."""
    return getattr(args, "dataset_read", None) or dataset_path(args)


def name_paths(pairs: Sequence[str]) -> dict[str, str]:
    """``NAME=PATH`` arguments as ``{name (lower case): path}``.

    >>> name_paths(["Pets=data/pets"])
    {'pets': 'data/pets'}
    """
    out = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"expected NAME=PATH, got {pair!r}")
        out[name.strip().lower()] = path
    return out


def check_writable(path: str | Path | None, flag: str = "--out", *, folder: bool = False) -> None:
    """Fail before any long work when ``path`` (a file; with ``folder``, a folder) cannot be written.

    Missing folders are fine where they can be created (the writers create them): the nearest
    existing one must be a folder this user can write. A file path that is an existing folder,
    or a folder path that is an existing file, is refused too. None: nothing to check.
    """
    import os

    if path is None:
        return
    target = Path(path).expanduser().resolve()
    kind = special_file_kind(target)
    if kind is not None:         # /dev/full, a FIFO: never replaced by a regular file
        raise ConfigError(f"cannot write {path}: it is {kind}, not a {'folder' if folder else 'regular file'}",
                          hint=f"pass {flag} a {'folder' if folder else 'file'} path")
    if target.exists() and target.is_dir() != folder:
        raise ConfigError(f"cannot write {path}: it is an existing {'file' if folder else 'folder'}",
                          hint=f"pass {flag} a {'folder' if folder else 'file'} path")
    probe = target if folder else target.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"cannot write {path}: {probe} is a file, not a folder",
                          hint=f"choose a {flag} path in a folder you can write")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: the folder {probe} is read-only for you",
                          hint=f"choose a {flag} path in a folder you can write")


def early_checks(args: argparse.Namespace) -> None:
    """The argument checks that need no torch, run before torch loads (seconds): a bad value
    answers at once, not after the libraries' start-up. The dataset read here is kept on ``args``
    for the command (:func:`dataset_arg`), so it is listed once."""
    from .. import bench, data
    from ..heuristics import parse_duration

    command = args.command
    if command in ("recommend", "train") and getattr(args, "train_budget", None):
        parse_duration(args.train_budget)
    if command == "tune" and args.budget is not None:
        from ..tune import parse_budget
        parse_budget(args.budget)
    # the outputs first (as the commands check them), then the dataset
    if command in ("recommend", "report"):
        check_writable(getattr(args, "out", None), "--out")
        check_writable(getattr(args, "plot", None), "--plot")
    if command in ("train", "tune"):
        check_writable(args.out, "--out", folder=True)
    args.dataset_read = None
    if command in ("recommend", "train", "report", "tune") and not getattr(args, "config", None):
        path = dataset_path(args)
        if not (getattr(args, "worker", False) and command == "tune"):
            # lists the files, decodes nothing: an empty folder or bad layout answers in a second
            args.dataset_read = data.read_dataset(path, **{k: v for k, v in read_kwargs(args).items()
                                                           if v is not None})
    if command == "bench run" and not args.worker:
        from ..bench.worker import check_fractions, check_seeds
        check_seeds(args.seeds)
        check_fractions(args.fractions)
        if args.sizes:
            bench.sized_names(["x"], args.sizes)
        bench.select_grid(none_means_empty(args.parameters), args.grid)
        if args.anchors:
            bench.select_anchors(none_means_empty(args.anchors))


def none_means_empty(names: Sequence[str] | None) -> list[str] | None:
    """A name list where ``none`` (alone) asks for no names: ``--parameters none``, ``--datasets none``.

    >>> none_means_empty(["none"]), none_means_empty(None), none_means_empty(["lr"])
    ([], None, ['lr'])
    """
    if names is not None and [n.lower() for n in names] == ["none"]:
        return []
    return None if names is None else list(names)
