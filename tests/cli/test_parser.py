"""The argument tree: the same measurement options on every command that recommends, one
AdviseOptions built from them, and a command group without its action prints its own help."""
from __future__ import annotations

import pytest

from finetune_advisor.cli import build_parser, main, options_from_args
from finetune_advisor.exceptions import ConfigError
from finetune_advisor.recommend import AdviseOptions


@pytest.mark.parametrize("command", ["recommend", "train", "report"])
def test_every_recommending_command_takes_the_measurement_options(command):
    args = build_parser().parse_args([command, "data/x", "--reference", "ref.npz", "--random-init", "--no-similarity",
                                      "--threshold", "0.6", "--lr-steps", "20", "--profile", "paper",
                                      "--no-canonical-up", "--seed", "4", "-q"])
    opts = options_from_args(args)
    assert opts == AdviseOptions(reference="ref.npz", pretrained=False, similarity=False, threshold=0.6, lr_steps=20,
                                 profile="paper", invariances={"no_canonical_up": True}, seed=4, progress=False)


def test_options_are_checked_once_when_built():
    args = build_parser().parse_args(["recommend", "data/x", "--lr-steps", "3"])
    with pytest.raises(ConfigError, match="lr_steps=3"):
        options_from_args(args)


@pytest.mark.parametrize("group, heading", [("bench", "bench commands"), ("reference", "reference commands")])
def test_a_group_without_its_action_prints_its_own_help(capsys, group, heading):
    assert main([group]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: finetune-advisor {group}") and heading in err


def test_no_command_prints_the_top_level_help(capsys):
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("usage: finetune-advisor [-h]")


def test_version_is_the_installed_distributions(capsys):
    import importlib.metadata

    import pytest

    from finetune_advisor.cli import main
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.split() == ["finetune-advisor", importlib.metadata.version("finetune-advisor")]
