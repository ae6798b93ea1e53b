"""Two ``tune`` processes started together on one new study (SQLite, PostgreSQL): the second joins the first
(issue 29.4: it once died on the schema's ``alembic_version`` IntegrityError, or refused with a
false "started from another config" when the two recommendations' timings differed)."""
from __future__ import annotations

import json
import os

import pytest

optuna = pytest.importorskip("optuna")
posix_only = pytest.mark.skipif(os.name != "posix", reason="two child processes")


@pytest.fixture(params=["sqlite", "postgresql"])
def new_storage(request, tmp_path):
    """A storage URL with no study in it yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tune.db'}"
    return request.getfixturevalue("postgres_url")


@posix_only
def test_two_tunes_started_at_once_on_a_new_study_share_it(folder, tmp_path, cli_child, new_storage):
    out = tmp_path / "out"
    out.mkdir()
    storage = new_storage
    # both recommend (each measures its own timings) and create the study at the same moment
    args = ["tune", folder, "--random-init", "--backbone", "resnet18", "--no-similarity", "--lr-steps", "20",
            "--budget", "100x", "--trials", "4", "--storage", storage, "--json", "-q"]
    children = [cli_child([*args, "--out", out / name], tmp_path) for name in ("a", "b")]
    results = [child.wait(900, "a tune hung") for child in children]
    for rc, stdout, err in results:
        assert rc == 0, err
        assert "Traceback" not in err and "IntegrityError" not in err and "another config" not in err
    study = optuna.load_study(study_name="tune", storage=storage)
    done = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert 4 <= len(done) <= 5               # one study, the trial cap shared (a trial may be in flight at the cap)
    assert sum(json.loads(stdout)["n_trials"] for _, stdout, _ in results) >= len(done) - 1
