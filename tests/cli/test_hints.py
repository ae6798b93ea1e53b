"""Every ``--option`` an error message or hint names exists on the commands that can print it.

The walk reads the package's source: the strings of every ``raise`` and every ``hint=``, and the
module-level ``*HINT*`` constants. A string that names a command (``finetune-advisor train
--out DIR``) is checked against that command; otherwise against the commands that can raise
it: the recommendation's stages (data, backbones, similarity, learner, lr_finder, heuristics,
calibration files, recommend) against ``recommend``, ``train`` and ``report`` alike."""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import pytest

import finetune_advisor
from finetune_advisor.cli.parser import build_parser

PACKAGE = Path(finetune_advisor.__file__).parent
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")
NAMED_COMMAND = re.compile(r"finetune-advisor ((?:reference|bench) \w+|\w+)([^`']*)")
ADVISE = ("recommend", "train", "report")
# where a module's errors surface (the first matching prefix wins); None: any command
RAISED_BY = [
    ("bench/", ("bench run",)),
    ("calibration/sweep.py", ("calibrate",)),
    ("calibration/validate.py", ("calibrate",)),
    ("tune/", ("tune",)),
    ("report/", ("report",)),
    ("train/", ("train",)),
    ("cli/", None),
    ("", ADVISE),
]


def _commands() -> dict[str, set[str]]:
    """Command name (``bench run``) -> its option strings."""
    out: dict[str, set[str]] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prefix} {name}".strip())
        if prefix:
            out[prefix] = {s for a in parser._actions for s in a.option_strings}

    walk(build_parser(), "")
    return out


COMMANDS = _commands()


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _hint_texts() -> list[tuple[str, str]]:
    """``(module path relative to the package, text)`` of every raise, hint= and *HINT* constant."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            texts: list[str] = []
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = _strings(node.exc)
            elif isinstance(node, ast.keyword) and node.arg == "hint":
                texts = _strings(node.value)
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and "HINT" in t.id
                                                      for t in node.targets):
                texts = _strings(node.value)
            found += [(rel, t) for t in texts if "--" in t]
    return list(dict.fromkeys(found))     # a raise's hint= is also inside the raise


HINTS = _hint_texts()


def _raised_by(module: str):
    return next(commands for prefix, commands in RAISED_BY if module.startswith(prefix))


def test_the_walk_finds_the_hints_it_should():
    options = {o for _, text in HINTS for o in OPTION.findall(text)}
    assert {"--lr-steps", "--no-lr-finder", "--weights", "--reference", "--filename-regex", "--csv",
            "--storage"} <= options, options


@pytest.mark.parametrize("module, text", HINTS, ids=[f"{m}:{t[:40]}" for m, t in HINTS])
def test_every_option_a_hint_names_exists_where_it_can_be_printed(module, text):
    every = set().union(*COMMANDS.values())
    rest = text
    for match in NAMED_COMMAND.finditer(text):       # "finetune-advisor train --out DIR": train's --out
        command, tail = match.group(1), match.group(2)
        assert command in COMMANDS, f"{module}: {text!r} names a command that does not exist: {command}"
        for option in OPTION.findall(tail):
            assert option in COMMANDS[command], f"{module}: {text!r}: {command} has no {option}"
        rest = rest.replace(match.group(0), " ")
    for option in OPTION.findall(rest):
        assert option in every, f"{module}: {text!r} names {option}, which no command has"
        for command in _raised_by(module) or ():
            assert option in COMMANDS[command], f"{module}: {text!r} names {option}, which {command} lacks"


def test_the_recommend_options_are_the_same_on_every_command_that_recommends():
    measured = COMMANDS["recommend"] - {"--json", "--out", "--plot"}
    for command, unused in (("train", set()), ("report", {"--budget"})):    # report trains nothing: no training budget
        assert measured - unused <= COMMANDS[command], measured - unused - COMMANDS[command]


def test_the_lr_finder_hints_name_lr_steps_not_num_it():
    import importlib
    recommend = importlib.import_module("finetune_advisor.recommend")
    from finetune_advisor.lr_finder import suggest
    for library in (suggest.HINT_MORE_POINTS, suggest.HINT_DIVERGED, suggest.HINT_LOWER_START,
                    suggest.HINT_NO_DESCENT):
        advised = recommend._ADVISE_LR_HINTS[library]
        assert "num_it" not in advised and "start_lr" not in advised and "end_lr" not in advised
    assert "--lr-steps" in recommend._ADVISE_LR_HINTS[suggest.HINT_MORE_POINTS]


def test_profile_without_a_dataset_does_not_suggest_sample(capsys):
    from finetune_advisor.cli import main
    assert main(["profile"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no dataset given") and "--sample" not in err
    assert main(["recommend"]) == 1
    assert "--sample" in capsys.readouterr().err
