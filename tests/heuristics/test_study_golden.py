"""``policy="study"`` is the published rules exactly: the Configs the code wrote before the policies
existed (``data/study_policy_golden.json``, made at commit ee4fed7^ for the embedded sample and
five constructed profiles × similarity × LR-finder rate × profile) come out field for field."""
import json
from pathlib import Path

import pytest

from finetune_advisor.config import Config
from finetune_advisor.data import profile_dataset, read_dataset
from finetune_advisor.heuristics import make_profile, recommend_config
from finetune_advisor.recommend import SAMPLE_DATASET

GOLDEN = json.loads((Path(__file__).parent / "data" / "study_policy_golden.json").read_text())

PROFILES = {
    "tiny_2x20": lambda: make_profile({"a": 20, "b": 18}),
    "small_10x60": lambda: make_profile({f"c{i}": 60 for i in range(10)}),
    "medium_5x400": lambda: make_profile({f"c{i}": 400 + 10 * i for i in range(5)}, mean_size=(500, 375)),
    "large_20x1200": lambda: make_profile({f"c{i}": 1200 for i in range(20)}, mean_size=(64, 64)),
    "imbalanced": lambda: make_profile({"a": 900, "b": 40, "c": 5}),
}


@pytest.fixture(scope="module")
def profiles():
    out = {name: make() for name, make in PROFILES.items()}
    out["sample"] = profile_dataset(read_dataset(SAMPLE_DATASET))
    return out


def _case_id(case):
    return f"{case['profile']}-{case['similarity']}-{case['lr_find']}-{case['profile_name']}"


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=_case_id)
def test_study_policy_reproduces_the_published_config(case, profiles):
    old = Config.from_dict(case["config"])
    new = recommend_config(profiles[case["profile"]], similarity=case["similarity"], lr_find=case["lr_find"],
                           profile_name=case["profile_name"], policy="study")
    new_d, old_d = json.loads(new.to_json()), json.loads(old.to_json())
    for name in old_d:
        if name == "measurements":
            continue
        assert new_d[name] == old_d[name], name
    # what was measured then is still recorded the same way (the policy's own keys come on top)
    new_m = new_d["measurements"]
    assert {k: new_m.get(k) for k in old_d["measurements"]} == old_d["measurements"]
    assert new_m.get("policy", "study") == "study"


def test_the_golden_file_covers_every_depth_and_rate_branch():
    configs = [c["config"] for c in GOLDEN["cases"]]
    assert {c["fine_tune"] for c in configs} >= {"none", "all"}
    assert len({c["lr"] for c in configs}) >= 3
    assert {c["profile"] for c in configs} == {"cpu", "paper"}
