"""The argument parser: one subcommand per library function, with examples in each epilog.
Every command that runs a recommendation (``recommend``, ``train``, ``report``) takes the same
measurement options (:func:`add_recommend_args`). A parsed command names its function in
``args.command`` (a key of ``commands.COMMANDS``); this module imports none of them, so parsing
(and ``--help``) stays fast."""
from __future__ import annotations

import argparse
from .. import __version__
from .options import INVARIANCE_FLAGS

EPILOG_RECOMMEND = """examples:
  finetune-advisor recommend --sample                 # the embedded Quick Draw sample
  finetune-advisor recommend data/pets --json > config.json
  finetune-advisor recommend data/xray/labels.csv --label-sep '|' --profile paper
  finetune-advisor recommend data/aerial --no-canonical-up --orientation-matters
  finetune-advisor recommend data/pets --backbone resnet50 --weights resnet50.pth
  finetune-advisor recommend data/pets --backbone my_models.py:my_resnet --reference tiny-imagenet-200/
  finetune-advisor recommend data/pets --budget 15m             # a schedule that trains in 15 minutes here
"""

EPILOG_REFERENCE = """examples:
  finetune-advisor reference build tiny-imagenet-200/ --backbone resnet34
  finetune-advisor reference build tiny-imagenet-200/ --backbone tools/resnet50_keras_v1.py:resnet50_keras_v1
  finetune-advisor reference show --backbone efficientnet_lite0
"""

EPILOG_TRAIN = """examples:
  finetune-advisor train data/pets --out runs/pets              # recommend, then train
  finetune-advisor train data/pets --config config.json --out runs/pets
  finetune-advisor train data/pets --budget 10m --out runs/pets  # recommend a schedule that fits 10 minutes
"""

EPILOG_TUNE = """examples:
  finetune-advisor tune data/pets --budget 5x --out tune/pets      # five runs' worth of the recommendation
  finetune-advisor tune data/pets --budget 20m --trials 30         # 20 minutes of wall-clock, at most 30 trials
  finetune-advisor tune data/pets --config config.json --out tune/pets          # start from a saved Config
  finetune-advisor tune data/pets --out tune/pets                  # again: resumes (no trial lost or repeated)
  finetune-advisor tune data/pets --storage postgresql://me@db/tune --budget 10x   # start a shared study,
  finetune-advisor tune data/pets --storage postgresql://me@db/tune --worker       # then on each other machine
  finetune-advisor train data/pets --config tune/pets/best_config.json --out runs/pets
  finetune-advisor report data/pets --config config.json --tune tune/pets --out pets.html
"""

EPILOG_BENCH = """examples:
  finetune-advisor bench run --profile cpu --seeds 3            # the six stand-ins (+ your copies), resumable
  finetune-advisor bench run --study mine --storage postgresql://me@db/bench   # on each machine
  finetune-advisor bench run --worker --study mine --workers 2   # two single-thread processes work its queue
  finetune-advisor bench run --dataset mine=data/mine --datasets pets --fractions 1.0
  finetune-advisor bench run --study long --datasets draw --parameters --anchors no_similarity_rule \
      --head-epochs 5 --unfrozen-epochs 15                      # baseline vs one anchor, longer schedule
  finetune-advisor bench status --study mine --storage postgresql://me@db/bench
  finetune-advisor bench outputs --study mine --storage postgresql://me@db/bench --out bench/mine
"""

EPILOG_CALIBRATE = """examples:
  finetune-advisor bench run --study calib --grid calibration --datasets all --fractions 1.0 --seeds 2 \
      --anchors fastai_fine_tune --no-lr-finder --backbone resnet50          # the sweep (resumable)
  finetune-advisor calibrate --study calib --out resnet50-cpu.json              # fit + leave-one-out
  finetune-advisor recommend data/pets --backbone resnet50 --calibration resnet50-cpu.json
  finetune-advisor calibrate --study calib --validate calib-loo --seeds 3       # leave-one-dataset-out, resumable
  finetune-advisor bench run --worker --study calib-loo --storage sqlite:///bench/calib-loo/bench.db --workers 2
  finetune-advisor bench outputs --study calib-loo --storage sqlite:///bench/calib-loo/bench.db   # the table (loo.md)
  finetune-advisor calibrate --study calib --validate calib-loo-v2 --reuse-from calib-loo \
      --reuse-storage sqlite:///bench/calib-loo/bench.db     # after a refit: train only the configs it moved
"""

EPILOG_REPORT = """examples:
  finetune-advisor report data/pets --out pets.html                 # recommend, then report
  finetune-advisor report data/pets --config config.json --out pets.html
  finetune-advisor report data/pets --config config.json --run runs/pets --bench bench/pets --out pets.html
  finetune-advisor report data/pets --format md --out pets.md       # pets.md + pets_files/*.png
  finetune-advisor report data/pets --config config.json --json > report.json
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="finetune-advisor",
        description="Tells you how to fine-tune an ImageNet-pretrained ResNet on your image dataset "
                    "with fastai, and backs the advice with measurements.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors on stderr")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = _add(sub, "recommend", "recommend", common, EPILOG_RECOMMEND,
             "recommend a fine-tuning config for a dataset, with a reason for every choice")
    _add_dataset_args(p)
    add_recommend_args(p)
    p.add_argument("--json", action="store_true", help="print the Config as JSON on stdout")
    p.add_argument("--out", help="also write the Config JSON to this file")
    p.add_argument("--plot", help="write the LR-finder plot (PNG) to this file")
    _add_train_budget(p)

    p = _add(sub, "profile", "profile", common, None, "profile a dataset (counts, imbalance, resolution)")
    _add_dataset_args(p, sample=False)
    p.add_argument("--json", action="store_true", help="print the profile as JSON")

    _add_reference(sub, common)

    p = _add(sub, "train", "train", common, EPILOG_TRAIN,
             "train a fastai model from a Config (recommending one first if none is given)")
    _add_dataset_args(p)
    p.add_argument("--config", help="a Config JSON from 'finetune-advisor recommend --out' (skips the "
                                    "recommendation and its options)")
    p.add_argument("--trust-config-code", action="store_true",
                   help="allow a --config whose backbone names code (file.py:function), which runs it")
    add_recommend_args(p)
    _add_train_budget(p)
    p.add_argument("--out", default="finetune-advisor-run", help="output folder (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result summary as JSON")

    _add_tune(sub, common)
    _add_bench(sub, common)
    _add_calibrate(sub, common)

    p = _add(sub, "report", "report", common, EPILOG_REPORT,
             "write one self-contained HTML (or Markdown) report: config, dataset, similarity, LR finder")
    _add_dataset_args(p)
    p.add_argument("--config", help="a Config JSON from 'finetune-advisor recommend --out' (skips the "
                                    "measurements; the dataset is still read for the profile and sample images)")
    add_recommend_args(p)
    p.add_argument("--run", help="a 'finetune-advisor train --out' folder: its curves and final metrics")
    p.add_argument("--bench", help="a benchmark output folder (heatmap.png, regret.csv)")
    p.add_argument("--tune", help="a 'finetune-advisor tune --out' folder: the best config found, its trials "
                                  "and Optuna's plots")
    p.add_argument("--out", help="report file (default: report.html, or report.md with --format md; "
                                 "with --json only when given)")
    p.add_argument("--format", choices=["html", "md"],
                   help="html: one self-contained file; md: Markdown plus a <name>_files/ folder of images "
                        "(default: from --out's extension, else html)")
    p.add_argument("--json", action="store_true", help="print the report data as JSON on stdout")
    return parser


def _add(sub, name: str, command: str | None, common, epilog: str | None, help_text: str):
    """A subcommand running ``commands.COMMANDS[command]``. ``command`` None: a group of actions
    (bench, reference); given without one, it prints its own help."""
    p = sub.add_parser(name, parents=[common], help=help_text, description=help_text, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(command=command, help_parser=p)
    return p


def _add_train_budget(p) -> None:
    p.add_argument("--budget", dest="train_budget", metavar="TIME",
                   help="wall-clock time for training (e.g. 15m, 90s, 2h): the schedule's epochs, and if need be "
                        "the image size, are cut to fit, from the throughput measured on this machine")


def _add_dataset_args(p, sample: bool = True) -> None:
    p.add_argument("path", nargs="?", help="dataset folder or CSV file")
    p.add_argument("--layout", choices=["auto", "folders", "csv", "filename"], default="auto")
    p.add_argument("--csv", dest="csv_path", help="CSV of image,labels (when not inside the folder)")
    p.add_argument("--label-sep", metavar="SEP",
                   help="separator between the labels of a multi-label CSV row, e.g. '|' or ' '; '' keeps each "
                        "cell as one label (default: '|' or ';' when one occurs, a space only when splitting on it "
                        "is consistent across the file, e.g. not for a class 'sea lion'); the choice is printed "
                        "with the dataset")
    p.add_argument("--filename-regex", help=r"regex with one group = label, on the file stem (default: Pets '^(.+)_\d+$')")
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="read CSV image names that leave the dataset folder (absolute paths, ../); skipped otherwise")
    if sample:
        p.add_argument("--sample", action="store_true", help="use the small dataset embedded in the package")


def add_recommend_args(p) -> None:
    """The options of the measurements behind a recommendation (see ``options.options_from_args``)."""
    _add_backbone_args(p)
    p.add_argument("--reference", help="Tiny-ImageNet folder (built and cached) or a reference .npz")
    p.add_argument("--profile", choices=["auto", "cpu", "paper"], default="auto",
                   help="cpu: small images, short schedule; paper: the study's 224 px, 5+15 epochs; auto: paper "
                        "where torch sees a CUDA or MPS device, else cpu (default: auto)")
    p.add_argument("--threshold", type=float, help="near/far similarity threshold (default: per backbone, 0.72)")
    p.add_argument("--lr-loss", choices=["train", "valid"], default="valid",
                   help="loss recorded by the LR range test: valid (the study's, default) or train (cheaper, noisier)")
    p.add_argument("--lr-steps", type=int, default=100, help="steps of the LR range test (default: %(default)s)")
    p.add_argument("--no-similarity", action="store_true", help="skip the similarity measurement")
    p.add_argument("--no-lr-finder", action="store_true", help="skip the LR range test")
    p.add_argument("--lr-finder", dest="lr_finder_method", choices=["auto", "cached", "full"], default="auto",
                   help="cached: the body runs once per image and the range test trains the head on the cached "
                        "features (fast, stable); full: the study's range test through the frozen network (minutes "
                        "on a CPU); auto (default): full with --policy study, whose rules use its pick, else cached")
    p.add_argument("--policy", choices=["calibrated", "study"], default="calibrated",
                   help="calibrated: the rule fitted on a calibration sweep for this backbone and profile (default; "
                        "without one, the study policy with a warning); study: the published rules exactly")
    p.add_argument("--calibration", help="a calibration file from 'finetune-advisor calibrate' (default: the shipped "
                                         "one for the backbone and profile)")
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


def _add_reference(sub, common) -> None:
    p = _add(sub, "reference", None, common, EPILOG_REFERENCE,
             "build or inspect the Tiny-ImageNet similarity reference")
    ref_sub = p.add_subparsers(title="reference commands", metavar="ACTION")
    b = _add(ref_sub, "build", "reference build", common, EPILOG_REFERENCE,
             "build the reference class means from a local Tiny-ImageNet copy and cache them")
    b.add_argument("path", help="Tiny-ImageNet folder (with train/<wnid>/...)")
    _add_backbone_args(b)
    b.add_argument("--image-size", type=int, default=128)
    b.add_argument("--images-per-class", type=int, default=20)
    b.add_argument("--out", help="write the reference here instead of the cache")
    b.add_argument("--json", action="store_true")
    s = _add(ref_sub, "show", "reference show", common, EPILOG_REFERENCE, "show the reference in use")
    _add_backbone_args(s)
    s.add_argument("--reference", help="a reference .npz or Tiny-ImageNet folder")
    s.add_argument("--json", action="store_true")


def _add_tune(sub, common) -> None:
    p = _add(sub, "tune", "tune", common, EPILOG_TUNE,
             "search around the recommendation for a better config, within a budget (Optuna: TPE, the "
             "recommendation as trial 0, pruning per epoch; resumable, distributable)")
    _add_dataset_args(p)
    p.add_argument("--config", help="start from this Config JSON instead of recommending one (skips the "
                                    "recommendation and its options)")
    p.add_argument("--trust-config-code", action="store_true",
                   help="allow a --config whose backbone names code (file.py:function), which runs it")
    add_recommend_args(p)
    p.add_argument("--budget", help="how much to spend: a multiple of one training run of the recommended config "
                                    "(5x), or wall-clock time (20m, 90s, 2h) (default: the study's last, else 5x)")
    p.add_argument("--trials", type=int, help="at most this many trials (all workers together)")
    p.add_argument("--out", default="finetune-advisor-tune",
                   help="output folder: best_config.json, trials.csv, tune.json, plots, and the default storage "
                        "(default: %(default)s)")
    p.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///<out>/tune.db; postgresql://user@host/db "
                                     "to share a study between machines)")
    p.add_argument("--study", default="tune", help="study name (default: %(default)s)")
    p.add_argument("--worker", action="store_true",
                   help="join a study started elsewhere (same --storage and --study) and work on it")
    p.add_argument("--heartbeat", type=int, default=60,
                   help="heartbeat interval in seconds; a trial silent for two is retried (default: %(default)s)")
    p.add_argument("--no-portfolio", action="store_true",
                   help="after the recommendation, go straight to TPE instead of first trying the calibration's "
                        "portfolio (the sweep's cells that best complement the rule's)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_bench(sub, common) -> None:
    p = _add(sub, "bench", None, common, EPILOG_BENCH,
             "the study's one-at-a-time sweep over the reference datasets (resumable, distributable)")
    bench_sub = p.add_subparsers(title="bench commands", metavar="COMMAND")
    b = _add(bench_sub, "run", "bench run", common, None,
             "start or resume a sweep (a second machine with the same --storage URL joins it)")
    b.add_argument("--study", default="bench", help="study name (default: %(default)s)")
    b.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///<out>/bench.db; "
                                     "postgresql://user@host/db to share a study between machines)")
    b.add_argument("--out", help="output folder (default: bench/<study>)")
    b.add_argument("--datasets", nargs="*", help="reference datasets (default, or no names: the study's seven; "
                                                 "'all': every registered dataset; 'none': only your own --dataset)")
    b.add_argument("--data-path", action="append", default=[], metavar="NAME=PATH",
                   help="where your copy of a reference dataset lives (repeatable)")
    b.add_argument("--dataset", action="append", default=[], metavar="NAME=PATH",
                   help="add your own dataset to the run (repeatable)")
    b.add_argument("--fractions", nargs="+", type=float, default=[0.2, 1.0])
    b.add_argument("--sizes", nargs="+", type=int, metavar="K",
                   help="run each reference dataset at these sizes instead of whole: at most K images a class, "
                        "a stratified subsample with a fixed seed (names pets@10, ...; e.g. --sizes 10 30 100)")
    b.add_argument("--seeds", type=int, default=3, help="repeats per cell (default: %(default)s)")
    b.add_argument("--profile", choices=["cpu", "paper"], default="cpu")
    for field, what in [("head-epochs", "head (frozen) epochs"), ("unfrozen-epochs", "unfrozen epochs"),
                        ("image-size", "image size in px"), ("max-images-per-class", "images a class cap")]:
        b.add_argument(f"--{field}", type=int, help=f"override the profile's {what}")
    b.add_argument("--grid", choices=["table1", "calibration", "schedule"], default="table1",
                   help="table1: the study's one-at-a-time sweep; calibration: absolute LRs x fine-tune "
                        "depth x unfrozen-phase LR ratio, for 'calibrate'; schedule: a few of those cells under "
                        "the profile's fixed epochs and under step budgets (use with --sizes) (default: %(default)s)")
    b.add_argument("--parameters", nargs="*", metavar="P",
                   help="parameters of the grid to vary (default: all; none: baselines and anchors only)")
    b.add_argument("--anchors", nargs="*", metavar="A",
                   help="anchors to run (default: fastai_fine_tune lr_find_valley no_similarity_rule; "
                        "tune@3x: finetune-advisor tune with a budget of 3 runs, its best trial's metric)")
    b.add_argument("--backbone", help="backbone for the recommendations (default: chosen by dataset size)")
    b.add_argument("--no-similarity", action="store_true", help="skip the similarity measurement")
    b.add_argument("--no-lr-finder", action="store_true",
                   help="skip the baselines' LR range test (a calibration grid does not need it)")
    b.add_argument("--policy", choices=["calibrated", "study"], default="study",
                   help="the policy of the baselines (default: %(default)s, the sweep the study published)")
    b.add_argument("--reference", help="Tiny-ImageNet folder or reference .npz for the similarity "
                                       "(default: the shared tiny-imagenet-200 sample when present, else the cache)")
    b.add_argument("--n-trials", type=int, help="stop this worker after N trials")
    b.add_argument("--worker", action="store_true", help="only work the queue of an existing study")
    b.add_argument("--workers", type=int, default=1, metavar="N",
                   help="work the queue with N local processes of --threads threads each (default: %(default)s)")
    b.add_argument("--threads", type=int, default=1, help="torch threads per process with --workers (default: 1)")
    b.add_argument("--heartbeat", type=int, default=60, help="heartbeat interval in seconds")
    b.add_argument("--json", action="store_true", help="print the status and output files as JSON")
    s = _add(bench_sub, "status", "bench status", common, None, "show how far a study is")
    s.add_argument("--study", default="bench")
    s.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///bench/<study>/bench.db)")
    s.add_argument("--json", action="store_true")
    o = _add(bench_sub, "outputs", "bench outputs", common, None,
             "write a study's results table, heatmap and regret summary (runs nothing)")
    o.add_argument("--study", default="bench")
    o.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///bench/<study>/bench.db)")
    o.add_argument("--out", help="output folder (default: bench/<study>)")
    o.add_argument("--json", action="store_true", help="print the output files as JSON")


def _add_calibrate(sub, common) -> None:
    c = _add(sub, "calibrate", "calibrate", common, EPILOG_CALIBRATE,
             "fit the calibrated policy on calibration sweeps (bench run --grid calibration), "
             "chosen by leave-one-dataset-out regret")
    c.add_argument("--study", nargs="+", required=True, help="bench study name(s) of calibration sweeps")
    c.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///bench/<study>/bench.db)")
    c.add_argument("--backbone", help="backbone key the calibration holds for (default: read from the sweep)")
    c.add_argument("--partial", action="store_true",
                   help="fit on every dataset with results, even one whose grid is not complete")
    c.add_argument("--exclude", nargs="+", default=(), metavar="DATASET",
                   help="fit without these datasets (listed as excluded in the calibration's provenance)")
    c.add_argument("--measure", action="store_true",
                   help="first measure, once per dataset, the predictors the sweep skipped (LR range test, fastai's "
                        "valley, LogME, linear probe) with the sweep's backbone and profile; kept in the study")
    c.add_argument("--out", help="write the calibration file here (with --validate: the validation's output folder, "
                                 "default bench/<NAME>)")
    c.add_argument("--json", action="store_true", help="print the calibration (or the validation table) as JSON")
    v = c.add_argument_group("leave-one-dataset-out validation (--validate NAME)")
    v.add_argument("--validate", metavar="NAME",
                   help="instead of writing a calibration, validate it: per dataset, fit on the others and train the "
                        "config that fit predicts beside fastai's fine_tune, the lr_find valley, the study policy and "
                        "the sweep's best cell, in the new bench study NAME (resumable; more machines join with "
                        "'bench run --worker --study NAME'); prints and writes the table")
    v.add_argument("--loo-storage", metavar="URL",
                   help="storage of the validation study (default: sqlite:///<out>/bench.db)")
    v.add_argument("--seeds", type=int, default=3, help="fresh seeds per config (default: %(default)s)")
    v.add_argument("--seed-offset", type=int, default=100,
                   help="the first seed; the sweep's own seeds are refused (default: %(default)s)")
    v.add_argument("--reuse-from", metavar="OLD",
                   help="an earlier validation study of the same protocol (e.g. fitted before the sweep's second "
                        "seed): copy its baselines and every finished trial whose key and training config (the "
                        "decisions, not their reasons) are unchanged, train only what the refit moved")
    v.add_argument("--reuse-storage", metavar="URL",
                   help="storage of --reuse-from (default: --loo-storage, or sqlite:///bench/<OLD>/bench.db)")
    v.add_argument("--n-trials", type=int, help="stop this worker after N trials (0: only prepare the study and print the table)")
    v.add_argument("--heartbeat", type=int, default=60, help="heartbeat interval in seconds")
