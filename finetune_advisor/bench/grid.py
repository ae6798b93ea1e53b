"""What the bench trains: the schedules (bench profiles), the grids around each baseline (Table 1,
or the calibration sweep), the anchors, and the expansion into one deterministic trial list.

>>> from finetune_advisor.config import Config
>>> base = Config(profile="cpu", lr=1e-3, lr_finetune=1e-4, measurements={"lr_find": 1e-3, "far": False})
>>> specs = expand_grid({("pets", 0.2): base}, seeds=[0])
>>> [s.label for s in specs][:3]
['baseline', 'lr x10^-1', 'lr x10^-0.5']
>>> sum(s.same_as is None for s in specs)       # distinct configs actually trained
14
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..config import PROFILES, Config
from ..exceptions import ConfigError
from ..heuristics.policies import ARMS
from ..heuristics.schedule import SCHEDULE_MARK, StepRule, n_train_images, split_schedule
from ..study import (FASTAI_BASE_LR, FASTAI_HEAD_DROPOUT, FASTAI_LR_MULT, FASTAI_WEIGHT_DECAY, LR_FAR_DIVISOR,
                     PAPER_SCHEDULE, TABLE1_FRACTIONS, TABLE1_GRID)

__all__ = ["BenchProfile", "BENCH_PROFILES", "custom_profile", "CALIBRATION_LOG10_LRS", "CALIBRATION_ARMS",
           "CALIBRATION_GRID", "SCHEDULE_GRID", "SCHEDULE_STEP_BUDGETS", "GRIDS", "FRACTIONS", "ANCHORS", "ALL_ANCHORS",
           "MEASURED_ANCHORS", "select_grid", "select_anchors",
           "variation_config", "calibration_config", "anchor_config", "TrialSpec", "trial_key", "parse_label",
           "expand_grid", "BENCH_VERSION", "TUNE_ANCHOR_PREFIX", "is_tune_anchor"]

BENCH_VERSION = 1        # stored on every trial (user attr ``bench_version``)

# --- schedules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchProfile:
    """Training schedule of a run; ``None`` keeps the recommendation's value.

    Its :meth:`to_dict` is stored in a study's ``settings``: the field names are part of the
    study format."""

    name: str
    config_profile: str                  # Config.profile ("cpu" | "paper")
    image_size: int | None
    head_epochs: int | None
    unfrozen_epochs: int | None
    batch_size: int | None
    max_images_per_class: int | None

    def apply(self, config: Config) -> Config:
        """``config`` in this schedule. A head-only config (``fine_tune="none"``) spends the whole
        epoch budget on the head, as ``recommend`` and the calibration sweep do, rather than
        dropping the unfrozen epochs it never trains.

        >>> prof = custom_profile("cpu", head_epochs=3, unfrozen_epochs=9)
        >>> c = prof.apply(Config(fine_tune="none", head_epochs=4, unfrozen_epochs=0))
        >>> c.head_epochs, c.unfrozen_epochs, c.image_size
        (12, 0, 64)
        """
        changes = {k: getattr(self, k) for k in ("image_size", "head_epochs", "unfrozen_epochs", "batch_size")
                   if getattr(self, k) is not None}
        if config.fine_tune == "none" and ("head_epochs" in changes or "unfrozen_epochs" in changes):
            changes["head_epochs"] = changes.get("head_epochs", config.head_epochs) + changes.get(
                "unfrozen_epochs", config.unfrozen_epochs)
            changes["unfrozen_epochs"] = 0
        changes["profile"] = self.config_profile
        return _replace(config, f"bench profile {self.name!r}", **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _from_profiles(name: str, **overrides: int | None) -> BenchProfile:
    """A bench profile read from :data:`finetune_advisor.config.PROFILES` (the one schedule table)."""
    table = PROFILES[name]
    fields = {k: table[k] for k in ("image_size", "head_epochs", "unfrozen_epochs", "max_images_per_class")}
    return BenchProfile(name, name, **{**fields, "batch_size": None, **overrides})


BENCH_PROFILES: dict[str, BenchProfile] = {
    # PROFILES caps training at 200 images a class on CPUs; every committed bench study capped
    # 100 (and a study's stored settings must match on resume), so the bench keeps 100.
    "cpu": _from_profiles("cpu", max_images_per_class=100),
    # the study's batch size: the recommendation's would vary with the dataset
    "paper": _from_profiles("paper", batch_size=PAPER_SCHEDULE["batch_size"]),
}

_SCHEDULE_FIELDS = tuple(f.name for f in dataclasses.fields(BenchProfile) if f.name not in ("name", "config_profile"))


def custom_profile(base: str | BenchProfile, **overrides: int | None) -> BenchProfile:
    """``base`` with some schedule fields replaced (``None`` values are ignored); its name
    records the changes, so a study's stored settings tell the schedules apart.

    >>> custom_profile("cpu", head_epochs=5, unfrozen_epochs=15).name
    'cpu+head_epochs=5,unfrozen_epochs=15'
    """
    prof = BENCH_PROFILES[base] if isinstance(base, str) else base
    changes = {k: int(v) for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(_SCHEDULE_FIELDS)
    if unknown:
        raise ConfigError(f"unknown bench profile field(s) {sorted(unknown)}; choose from {list(_SCHEDULE_FIELDS)}")
    if any(v < 0 or (v == 0 and k not in ("head_epochs", "unfrozen_epochs")) for k, v in changes.items()):
        raise ConfigError(f"bench profile values must be positive (epochs may be 0): {changes}")
    if not changes:
        return prof
    name = prof.name + "+" + ",".join(f"{k}={v}" for k, v in sorted(changes.items()))
    return dataclasses.replace(prof, name=name, **changes)


# --- grids ----------------------------------------------------------------------------------

# The calibration sweep: absolute head learning rates (no finder involved) x fine-tune depth x the
# unfrozen phase's rate relative to the head's. Values are log10(lr). "head" trains the head alone
# for the whole epoch budget (head + unfrozen epochs), so every cell costs the same epochs.
CALIBRATION_LOG10_LRS = (-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0)
CALIBRATION_PREFIX = "lr_"        # a calibration cell's parameter is "lr_<arm>" (its value: log10 lr)
# parameter -> (fine_tune, lr_finetune / lr): the calibrated policy's depth arms, whose names the
# stored studies carry ("lr_head_only", "lr_all_half", "lr_all_tenth")
CALIBRATION_ARMS: dict[str, tuple[str, float | None]] = {CALIBRATION_PREFIX + arm: spec for arm, spec in ARMS.items()}
CALIBRATION_GRID: dict[str, tuple[float, ...]] = {arm: CALIBRATION_LOG10_LRS for arm in CALIBRATION_ARMS}
# The schedule sweep (issue 25): the cells that mattered in the calibration sweep (rates around
# its constant 10^-2.5 with fastai's lr/2, and head-only at the portfolio's 10^-1.5), each under
# the profile's fixed epochs and under the step rule ("<arm>:steps<N>": N optimiser steps a phase,
# heuristics.schedule.StepRule). Run it on sized datasets ("pets@10", --sizes). 32 steps is what
# the fixed 2 + 2 epochs gave the calibration sweep's datasets at 100 images a class (16 to 52 a
# phase); a second budget of 96 would have cost 5.5 worker-hours a seed more on this machine.
SCHEDULE_STEP_BUDGETS = (32,)
_SCHEDULE_CELLS: dict[str, tuple[float, ...]] = {"lr_all_half": (-3.0, -2.5, -2.0), "lr_head_only": (-1.5,)}
SCHEDULE_GRID: dict[str, tuple[float, ...]] = {
    f"{arm}{suffix}": lrs for suffix in ("", *(f"{SCHEDULE_MARK}{n}" for n in SCHEDULE_STEP_BUDGETS))
    for arm, lrs in _SCHEDULE_CELLS.items()}
GRIDS: dict[str, Mapping[str, tuple[float, ...]]] = {"table1": TABLE1_GRID, "calibration": CALIBRATION_GRID,
                                                     "schedule": SCHEDULE_GRID}
FRACTIONS = TABLE1_FRACTIONS
# The default anchors are those of the committed studies (their tables and margins are named after them).
# "fastai_lr_find" is what a fastai user does: learn.lr_find() on the frozen learner (fastai's defaults), then
# fine_tune at its valley; "lr_find_valley" is the baseline at the cached-feature range test's valley (about a
# decade below the network's on held-out sets). New studies should ask for fastai_lr_find (--anchors).
ANCHORS = ("fastai_fine_tune", "lr_find_valley", "no_similarity_rule")
MEASURED_ANCHORS = ("fastai_lr_find",)    # their rate is measured when the trial trains (bench.trials)
ALL_ANCHORS = (*ANCHORS, *MEASURED_ANCHORS)
# "tune@3x": finetune-advisor tune from the baseline with a budget of 3 of its runs (opt-in, any N)
TUNE_ANCHOR_PREFIX = "tune@"


def is_tune_anchor(name: Any) -> bool:
    """Whether ``name`` is a ``tune@<N>x`` anchor (a budget of N runs of the baseline).

    >>> is_tune_anchor("tune@3x"), is_tune_anchor("tune@20m"), is_tune_anchor("fastai_fine_tune")
    (True, False, False)
    """
    if not isinstance(name, str) or not name.startswith(TUNE_ANCHOR_PREFIX) or not name.endswith("x"):
        return False
    try:
        return float(name[len(TUNE_ANCHOR_PREFIX):-1]) > 0
    except ValueError:
        return False


def _check_names(kind: str, names: Iterable[str], choices: Sequence[str]) -> None:
    bad = [n for n in names if n not in choices]
    if bad:
        raise ConfigError(f"unknown {kind}(s) {', '.join(bad)}", hint=f"choose from {', '.join(choices)}")


def select_grid(parameters: Sequence[str] | None = None, grid: str = "table1") -> dict[str, tuple[float, ...]]:
    """The part of grid ``grid`` (:data:`GRIDS`) that varies ``parameters`` (None: all of
    it; empty: baselines and anchors only).

    >>> select_grid(["weight_decay"])
    {'weight_decay': (0.01, 0.1, 0.0)}
    >>> list(select_grid(grid="calibration"))
    ['lr_head_only', 'lr_all_half', 'lr_all_tenth']
    """
    _check_names("grid", [grid], list(GRIDS))
    table = GRIDS[grid]
    if parameters is None:
        return dict(table)
    _check_names("parameter", parameters, list(table))
    return {p: table[p] for p in parameters}


def select_anchors(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` checked against :data:`ANCHORS` (and the ``tune@<N>x`` form)."""
    _check_names("anchor", [n for n in names if not is_tune_anchor(n)], [*ALL_ANCHORS, "tune@<N>x (e.g. tune@3x)"])
    return tuple(names)


# --- labels (part of the trial keys a study stores) -------------------------------------------

def _label(parameter: str, value: Any) -> str:
    if parameter == "baseline":
        return "baseline"
    if parameter == "anchor":
        return f"anchor:{value}"
    if parameter == "lr":
        return "lr x10^0" if float(value) == 0 else f"lr x10^{float(value):+g}"
    return f"{parameter}={float(value):g}"


def parse_label(label: str) -> tuple[str, Any]:
    """Inverse of a trial's label: ``(parameter, value)``.

    >>> parse_label("lr x10^+0.5"), parse_label("anchor:lr_find_valley"), parse_label("weight_decay=0.01")
    (('lr', 0.5), ('anchor', 'lr_find_valley'), ('weight_decay', 0.01))
    """
    if label == "baseline":
        return "baseline", None
    if label.startswith("anchor:"):
        return "anchor", label.split(":", 1)[1]
    if label.startswith("lr x10^"):
        return "lr", float(label[len("lr x10^"):])
    p, v = label.split("=", 1)
    return p, float(v)


def trial_key(dataset: str, fraction: float, label: str, seed: int) -> str:
    return f"{dataset}|{float(fraction):g}|{label}|{int(seed)}"


# --- configs around a baseline --------------------------------------------------------------

def _replace(config: Config, reason: str, **changes: Any) -> Config:
    """``config.replace`` (changed fields get ``reason``); a Config without reasons stays so."""
    if not config.reasons:
        return dataclasses.replace(config, **changes)
    return config.replace(reason=reason, **changes)


def _finder_rate(baseline: Config) -> float:
    """The LR-finder rate the baseline rests on (the recommendation before the /10 far rule)."""
    return baseline.lr * LR_FAR_DIVISOR if baseline.measurements.far else baseline.lr


def _with_lr(baseline: Config, lr: float, reason: str) -> Config:
    ratio = baseline.lr_finetune / baseline.lr if baseline.lr else 0.1
    return _replace(baseline, reason, lr=float(lr), lr_finetune=float(lr * ratio))


def variation_config(baseline: Config, parameter: str, value: float) -> Config:
    """``baseline`` with one grid value changed (``lr``: ``value`` is the exponent k).

    >>> base = Config(lr=1e-3, lr_finetune=1e-4, measurements={"far": True})
    >>> cfg = variation_config(base, "lr", 1.0)       # finder rate 1e-2 (before /10) x 10
    >>> round(cfg.lr, 6), round(cfg.lr_finetune, 6)
    (0.1, 0.01)
    >>> variation_config(base, "dropout_p1", 0.25).dropout
    (0.25, 0.25)
    """
    why = f"bench: {_label(parameter, value)}"
    if parameter == "lr":
        return _with_lr(baseline, _finder_rate(baseline) * 10.0 ** float(value), why)
    if parameter == "dropout_p1":
        return _replace(baseline, why, dropout=(float(value), baseline.dropout[1]))
    if parameter in ("lr_divisor", "weight_decay", "beta2"):
        return _replace(baseline, why, **{parameter: float(value)})
    if split_schedule(parameter)[0] in CALIBRATION_ARMS:
        return calibration_config(baseline, parameter, float(value))
    raise ConfigError(f"unknown bench parameter {parameter!r}; "
                      f"choose from {sorted(TABLE1_GRID) + sorted(CALIBRATION_GRID) + sorted(SCHEDULE_GRID)}")


def calibration_config(baseline: Config, arm: str, log10_lr: float) -> Config:
    """``baseline`` trained with head rate ``10**log10_lr`` in calibration ``arm`` (same epochs).

    >>> base = Config(lr=1e-3, lr_finetune=1e-4, head_epochs=2, unfrozen_epochs=2)
    >>> c = calibration_config(base, "lr_all_half", -2.0)
    >>> c.lr, c.lr_finetune, c.fine_tune, c.head_epochs, c.unfrozen_epochs
    (0.01, 0.005, 'all', 2, 2)
    >>> c = calibration_config(base, "lr_head_only", -3.0)
    >>> c.fine_tune, c.head_epochs, c.unfrozen_epochs
    ('none', 4, 0)

    ``arm`` may carry a step rule (``"lr_all_half:steps32"``): each phase then trains
    enough epochs for that many optimiser steps on the baseline's training images
    (``measurements.n_images`` less its validation split, in batches of its batch size).

    >>> base = Config(lr=1e-3, lr_finetune=1e-4, batch_size=8, valid_pct=0.2, measurements={"n_images": 50})
    >>> c = calibration_config(base, "lr_all_half:steps32", -2.0)      # 40 images: 5 steps an epoch
    >>> c.head_epochs, c.unfrozen_epochs
    (7, 7)
    >>> calibration_config(base, "lr_head_only:steps32", -2.0).head_epochs
    13
    """
    arm, steps = split_schedule(arm)
    fine_tune, ratio = CALIBRATION_ARMS[arm]
    lr = 10.0 ** log10_lr
    why = f"bench: {_label(arm if steps is None else f'{arm}{SCHEDULE_MARK}{steps.steps}', log10_lr)}"
    head, unfrozen = baseline.head_epochs, baseline.unfrozen_epochs
    if steps is not None:
        head = unfrozen = _step_epochs(baseline, steps, phases=1)
    if fine_tune == "none":
        head = head + unfrozen if steps is None else _step_epochs(baseline, steps, phases=2)
        return _replace(baseline, why, lr=lr, lr_finetune=lr, fine_tune="none", unfrozen_epochs=0, head_epochs=head)
    return _replace(baseline, why, lr=lr, lr_finetune=lr * ratio, fine_tune=fine_tune, head_epochs=head,
                    unfrozen_epochs=unfrozen)


def _step_epochs(baseline: Config, rule: StepRule, *, phases: int) -> int:
    n_images = baseline.measurements.n_images
    if not n_images:
        raise ConfigError("a step-rule cell needs the baseline's image count (measurements.n_images)")
    return rule.epochs(n_train_images(n_images, baseline.valid_pct), baseline.batch_size, phases=phases)


def anchor_config(baseline: Config, anchor: str) -> Config | None:
    """An anchor in the same protocol (image size, schedule, batch) as ``baseline``; None if
    it cannot be formed (no fastai valley measured).

    ``fastai_fine_tune``: fastai's defaults, ``fine_tune(base_lr=2e-3)``: head at 2e-3, then
    unfrozen at base_lr/2 with ``lr_mult=100`` (slice(1e-5, 1e-3)), wd 0.01, head ps (0.25, 0.5).
    ``fastai_lr_find``: fastai's ``fine_tune`` as above at the valley of ``learn.lr_find()`` on the
    frozen learner, with fastai's defaults; the rate is measured when the trial trains
    (:func:`finetune_advisor.bench.trials.train_trial`), so the config holds fastai's 2e-3 until then.
    ``lr_find_valley``: the baseline with the cached-feature range test's valley as the rate.
    ``no_similarity_rule``: the baseline without the /10 far-from-ImageNet rule.
    ``tune@<N>x``: the baseline itself, where the trial starts ``finetune-advisor tune`` with a
    budget of N of its runs (see :func:`finetune_advisor.tune.anchor.tune_anchor_trial`).
    """
    why = f"bench anchor {anchor}"
    if is_tune_anchor(anchor):
        return baseline
    if anchor in ("fastai_fine_tune", "fastai_lr_find"):
        if anchor == "fastai_lr_find":
            why = "bench anchor fastai_lr_find: fastai's fine_tune at learn.lr_find()'s valley, measured when it trains"
        return _replace(baseline, why, lr=FASTAI_BASE_LR, lr_finetune=FASTAI_BASE_LR / 2, lr_divisor=FASTAI_LR_MULT,
                        weight_decay=FASTAI_WEIGHT_DECAY, beta2=0.99,   # fastai Adam betas (0.9, 0.99)
                        dropout=FASTAI_HEAD_DROPOUT, fine_tune="all")
    if anchor == "lr_find_valley":
        finder = baseline.measurements.lr_finder
        valley = None if finder is None else finder.fastai_valley
        return None if not valley else _with_lr(baseline, float(valley), why)
    if anchor == "no_similarity_rule":
        return _with_lr(baseline, _finder_rate(baseline), why)
    raise ConfigError(f"unknown anchor {anchor!r}; choose from {list(ANCHORS)}")


def _same_config(a: Config, b: Config) -> bool:
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        for k in ("reasons", "measurements", "warnings"):
            d.pop(k)
    if da.keys() != db.keys():
        return False
    for k in da:
        x, y = da[k], db[k]
        if isinstance(x, float) and isinstance(y, float):
            if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-15):
                return False
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y) or any(not math.isclose(float(p), float(q), rel_tol=1e-9) for p, q in zip(x, y)):
                return False
        elif x != y:
            return False
    return True


# --- the trial list -------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialSpec:
    """One cell x seed of the sweep. ``same_as`` names the key of an identical config that is
    trained instead (e.g. ``weight_decay=0.1`` is the baseline); such specs are not enqueued."""

    dataset: str
    fraction: float
    parameter: str              # "baseline" | a grid key | "anchor"
    value: Any                  # float, or the anchor name
    seed: int
    config: Config = field(compare=False, repr=False)
    same_as: str | None = None

    @property
    def label(self) -> str:
        return _label(self.parameter, self.value)

    @property
    def key(self) -> str:
        return trial_key(self.dataset, self.fraction, self.label, self.seed)

    def user_attrs(self) -> dict[str, Any]:
        """The trial's user attrs in the study (the study format: keep these names)."""
        return {"key": self.key, "dataset": self.dataset, "fraction": float(self.fraction),
                "parameter": self.parameter, "value": self.value, "label": self.label, "seed": int(self.seed),
                "config": self.config.to_json(indent=None), "bench_version": BENCH_VERSION}


def expand_grid(baselines: Mapping[tuple[str, float], Config], *, seeds: Sequence[int] = (0, 1, 2),
                grid: Mapping[str, Sequence[float]] | None = None,
                anchors: Sequence[str] = ANCHORS,
                extra_anchors: Callable[[str, float, Config], Mapping[str, Config | None]] | None = None,
                profile: BenchProfile | None = None) -> list[TrialSpec]:
    """The full, deterministic trial list (pure).

    Per (dataset, fraction) in the order given and per seed: the baseline, each ``grid``
    value in order (default: Table 1), then the anchors, then ``extra_anchors(dataset, fraction,
    baseline)``: configs made per dataset (name -> Config, None to skip; labelled
    ``anchor:<name>``, e.g. the leave-one-dataset-out validation's). A spec whose config equals
    an earlier one of the same (dataset, fraction, seed) gets ``same_as`` = that spec's key and
    is not trained again.

    A head-only baseline spends the whole epoch budget on the head; a cell made from it that
    trains the network (fastai's ``fine_tune``, the calibrated advice) gets ``profile``'s two
    phases back instead of zero unfrozen epochs.
    """
    grid = TABLE1_GRID if grid is None else grid
    specs: list[TrialSpec] = []
    for (name, fraction), base in baselines.items():
        extra = dict(extra_anchors(name, float(fraction), base)) if extra_anchors else {}
        for seed in seeds:
            block: list[TrialSpec] = []

            def add(parameter: str, value: Any, cfg: Config | None) -> None:
                if cfg is None:
                    return
                if profile is not None and cfg.fine_tune != "none" and cfg.unfrozen_epochs == 0:
                    cfg = profile.apply(cfg)
                # a search from cfg, or a rate measured at training time: not cfg trained once, never an alias
                tuned = parameter == "anchor" and (is_tune_anchor(value) or value in MEASURED_ANCHORS)
                same = None if tuned else next((s.key for s in block if s.same_as is None and not (
                    s.parameter == "anchor" and (is_tune_anchor(s.value) or s.value in MEASURED_ANCHORS))
                    and _same_config(s.config, cfg)), None)
                block.append(TrialSpec(name, float(fraction), parameter, value, int(seed), cfg, same))

            add("baseline", None, base)
            for parameter, values in grid.items():
                for v in values:
                    add(parameter, float(v), variation_config(base, parameter, float(v)))
            for a in anchors:
                add("anchor", a, anchor_config(base, a))
            for a, cfg in extra.items():
                add("anchor", a, cfg)
            specs.extend(block)
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ConfigError("duplicate trial keys in the grid (repeated dataset, fraction or seed?)")
    return specs
