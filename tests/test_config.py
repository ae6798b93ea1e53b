import json

import pytest

import finetune_advisor
from finetune_advisor.config import DECISION_FIELDS, Augmentation, Config
from finetune_advisor.exceptions import ConfigError


def full_reasons(**over):
    reasons = {f: f"reason for {f}" for f in DECISION_FIELDS}
    reasons.update(over)
    return reasons


def test_study_defaults_match_table_1():
    cfg = Config.study_defaults()
    assert (cfg.backbone, cfg.batch_size, cfg.weight_decay, cfg.beta2) == ("resnet34", 64, 0.1, 0.99)
    assert cfg.dropout == (0.5, 0.25) and cfg.lr_divisor == 10
    assert (cfg.head_epochs, cfg.unfrozen_epochs, cfg.image_size) == (5, 15, 224)


def test_json_round_trip_is_exact():
    cfg = Config(lr=1.234e-3, dropout=(0.75, 0.5), augmentation=Augmentation(do_flip=False, noise_std=0.05),
                 reasons=full_reasons(), measurements={"similarity": {"similarity": 0.61, "emd": 0.39}},
                 warnings=("few images",), multi_label=True, fine_tune="last")
    text = cfg.to_json()
    assert json.loads(text)["augmentation"]["do_flip"] is False
    back = Config.from_json(text)
    assert back == cfg
    assert isinstance(back.augmentation, Augmentation) and back.dropout == (0.75, 0.5)


def test_reasons_must_cover_every_decision_field():
    reasons = full_reasons()
    del reasons["lr"]
    with pytest.raises(ConfigError, match="missing \\['lr'\\]"):
        Config(reasons=reasons)
    with pytest.raises(ConfigError, match="unexpected \\['bogus'\\]"):
        Config(reasons=full_reasons(bogus="x"))


def test_unknown_keys_are_rejected_with_the_valid_ones():
    d = Config().to_dict()
    d["learning_rate"] = 1e-3
    with pytest.raises(ConfigError) as err:
        Config.from_dict(d)
    assert "learning_rate" in str(err.value) and "'lr'" in str(err.value)


@pytest.mark.parametrize("text, match", [("{", "not valid JSON"), ("[1, 2]", "JSON object"),
                                         ('{"schema_version": 99}', "schema_version 99"),
                                         ('{"fine_tune": "half"}', "fine_tune")])
def test_bad_json_gives_config_error(text, match):
    with pytest.raises(ConfigError, match=match):
        Config.from_json(text)


def test_replace_records_the_user_as_reason():
    cfg = Config(reasons=full_reasons()).replace(batch_size=16)
    assert cfg.batch_size == 16 and cfg.reasons["batch_size"] == "set by user"
    with pytest.raises(ConfigError, match="unknown field"):
        cfg.replace(bs=16)


def test_public_names_exist_and_import_is_light():
    for name in finetune_advisor.__all__:
        assert getattr(finetune_advisor, name) is not None
    import subprocess
    import sys
    code = "import sys, finetune_advisor; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
