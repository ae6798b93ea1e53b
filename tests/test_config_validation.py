"""A Config is validated once, when it is built or loaded: every bad value is a ConfigError that
says which field, what was found and what is allowed, and ``train --config`` turns it into one
``error:`` line naming the file and the field, before any dataset is read."""
from __future__ import annotations

import dataclasses
import json

import pytest

from finetune_advisor.cli import main
from finetune_advisor.config import DECISION_FIELDS, Augmentation, Config
from finetune_advisor.exceptions import ConfigError

NAN = float("nan")

# (field, bad value, what the message must say); augmentation.* sets one augmentation field
BAD_VALUES = [
    ("lr", -0.001, "lr must be a finite number > 0, got -0.001"),
    ("lr", 0, "lr must be a finite number > 0, got 0"),
    ("lr", NAN, "lr must be a finite number > 0, got nan"),
    ("lr", "fast", "lr must be a finite number > 0, got 'fast'"),
    ("lr_finetune", -1e-4, "lr_finetune must be a finite number > 0"),
    ("valid_pct", 1.5, "valid_pct must be a number in (0, 1)"),
    ("valid_pct", 0, "valid_pct must be a number in (0, 1)"),
    ("multi_label", "yes", "multi_label must be true or false, got 'yes'"),
    ("multi_label", 1, "multi_label must be true or false, got 1"),
    ("head_epochs", -1, "head_epochs must be an integer >= 0, got -1"),
    ("unfrozen_epochs", 2.5, "unfrozen_epochs must be an integer >= 0, got 2.5"),
    ("batch_size", 16.7, "batch_size must be an integer >= 1, got 16.7"),
    ("batch_size", True, "batch_size must be an integer >= 1, got True"),
    ("image_size", -5, "image_size must be an integer >= 1, got -5"),
    ("head_size", 0, "head_size must be an integer >= 1, got 0"),
    ("dropout", 2, "dropout must be two numbers (p1, p2), each in [0, 1), got 2"),
    ("dropout", [2, 0.5], "dropout[0] must be a number in [0, 1), got 2"),
    ("dropout", [0.5, 1.0], "dropout[1] must be a number in [0, 1), got 1.0"),
    ("lr_divisor", 0, "lr_divisor must be a finite number > 0, got 0"),
    ("weight_decay", -0.1, "weight_decay must be a finite number >= 0, got -0.1"),
    ("beta2", 1.0, "beta2 must be a number in (0, 1), got 1.0"),
    ("fine_tune", "half", "fine_tune must be one of 'none', 'last', 'all', got 'half'"),
    ("profile", "gpu", "profile must be one of 'cpu', 'paper', got 'gpu'"),
    ("backbone", "", "backbone must be a non-empty string"),
    ("augmentation", "strong", "augmentation must be a JSON object"),
    ("augmentation.max_rotate", -400, "augmentation.max_rotate must be a number in [0, 180] (degrees), got -400"),
    ("augmentation.max_rotate", 400, "augmentation.max_rotate must be a number in [0, 180]"),
    ("augmentation.noise_std", -0.1, "augmentation.noise_std must be a finite number >= 0, got -0.1"),
    ("augmentation.max_zoom", 0.5, "augmentation.max_zoom must be a finite number >= 1"),
    ("augmentation.max_lighting", 1.5, "augmentation.max_lighting must be a number in [0, 1)"),
    ("augmentation.max_warp", -1, "augmentation.max_warp must be a number in [0, 1)"),
    ("augmentation.do_flip", "no", "augmentation.do_flip must be true or false, got 'no'"),
    ("augmentation.spin", 1, "augmentation got unknown field(s) ['spin']"),
]


def _config_dict(field: str, value) -> dict:
    d = Config().to_dict()
    if field.startswith("augmentation."):
        d["augmentation"] = {**d["augmentation"], field.split(".", 1)[1]: value}
    else:
        d[field] = value
    return d


@pytest.mark.parametrize("field, value, message", BAD_VALUES, ids=[f"{f}={v!r}" for f, v, _ in BAD_VALUES])
def test_bad_value_in_json_names_the_field_the_value_and_what_is_allowed(field, value, message):
    with pytest.raises(ConfigError) as info:
        Config.from_json(json.dumps(_config_dict(field, value)))
    assert message in str(info.value)


@pytest.mark.parametrize("field, value, message", [b for b in BAD_VALUES if "." not in b[0]][:12])
def test_bad_value_in_python_is_refused_at_construction_and_on_replace(field, value, message):
    with pytest.raises(ConfigError, match="^" + message.split(",")[0].replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        Config(**{field: value})
    with pytest.raises(ConfigError):
        dataclasses.replace(Config(), **{field: value})


def test_augmentation_is_checked_when_built_directly():
    with pytest.raises(ConfigError, match=r"augmentation.max_rotate must be a number in \[0, 180\]"):
        Augmentation(max_rotate=-400)


def test_a_missing_field_in_json_is_an_error_not_the_default():
    d = Config().to_dict()
    del d["lr"]
    with pytest.raises(ConfigError, match=r"missing field\(s\) \['lr'\]"):
        Config.from_dict(d)


def test_partial_configs_in_python_keep_their_defaults_and_numbers_are_normalised():
    import numpy as np
    cfg = Config(lr=np.float32(0.5), batch_size=np.int64(8), multi_label=np.bool_(True), image_size=32)
    assert (type(cfg.lr), type(cfg.batch_size), type(cfg.multi_label)) == (float, int, bool)
    assert Config.from_json(cfg.to_json()) == cfg
    assert set(DECISION_FIELDS) <= set(json.loads(cfg.to_json()))


@pytest.mark.parametrize("field, value, message", [
    ("lr", -0.001, "lr must be a finite number > 0, got -0.001"),
    ("lr", "fast", "lr must be a finite number > 0, got 'fast'"),
    ("valid_pct", 1.5, "valid_pct must be a number in (0, 1)"),
    ("multi_label", "yes", "multi_label must be true or false"),
    ("batch_size", 16.7, "batch_size must be an integer >= 1, got 16.7"),
    ("augmentation.max_rotate", -400, "augmentation.max_rotate must be"),
    ("image_size", -5, "image_size must be an integer >= 1"),
])
def test_train_config_with_a_bad_value_is_one_error_line_naming_the_file(tmp_path, capsys, field, value, message):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_config_dict(field, value)))
    rc = main(["train", str(tmp_path / "not-read"), "--config", str(bad), "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 1 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {bad}: ") and message in lines[0], lines[0]
    assert "unexpected" not in err and "please report" not in err
    assert not (tmp_path / "run").exists()


def test_train_config_missing_lr_is_one_error_line(tmp_path, capsys):
    d = Config().to_dict()
    del d["lr"]
    bad = tmp_path / "nolr.json"
    bad.write_text(json.dumps(d))
    rc = main(["train", str(tmp_path), "--config", str(bad), "--out", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f"error: {bad}: the Config is missing field(s) ['lr']"), err
