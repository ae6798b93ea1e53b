"""Why a doctest once failed under load with ``KeyError: '<sqlalchemy generated __init__ for class
v1_3_0_a_py.TrialModel>'``, and the repository hook that prevents it (``conftest.py``)."""
from __future__ import annotations

import gc
import linecache
import os
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"


def _migration_garbage(db: Path) -> list[str]:
    """A new SQLite storage runs Optuna's Alembic migrations, whose mapped classes die as cyclic
    garbage; returns the linecache keys of their generated ``__init__``s."""
    optuna.storages.RDBStorage(f"sqlite:///{db}").engine.dispose()
    return [k for k in linecache.cache if k.startswith("<sqlalchemy generated __init__ for class v")]


def _checkcache_with_a_collection_inside(monkeypatch) -> None:
    """``linecache.checkcache()`` with a garbage collection at its first ``os.stat``, as an
    allocation (or another thread) may start one on a busy machine."""
    real_stat, collected = os.stat, []

    def stat_that_collects(path, *args, **kwargs):
        if not collected:
            collected.append(gc.collect())
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(linecache.os, "stat", stat_that_collects)
    try:
        linecache.checkcache()
    finally:
        monkeypatch.undo()


def _root_hook(request):
    plugin = next(p for p in request.config.pluginmanager.get_plugins()
                  if Path(getattr(p, "__file__", "") or "").resolve() == ROOT_CONFTEST)
    return plugin.pytest_runtest_setup


def test_a_collection_inside_checkcache_drops_a_generated_entry_it_listed(tmp_path, monkeypatch):
    gc.collect()
    linecache.cache.pop(__file__, None)
    linecache.getlines(__file__)                      # a file entry (checked with os.stat) listed before...
    assert _migration_garbage(tmp_path / "a.db")     # ...the entries that die with the classes
    with pytest.raises(KeyError, match="sqlalchemy generated __init__"):
        _checkcache_with_a_collection_inside(monkeypatch)


def test_the_repository_hook_collects_that_garbage_before_each_doctest(tmp_path, monkeypatch, request):
    hook = _root_hook(request)
    assert _migration_garbage(tmp_path / "b.db")
    hook(type("DoctestItem", (), {})())              # what pytest calls before a doctest
    assert not [k for k in linecache.cache if k.startswith("<sqlalchemy generated __init__ for class v")]
    _checkcache_with_a_collection_inside(monkeypatch)   # nothing left to die mid-listing
