"""Bench registry: reference datasets, stand-ins, 'all'."""
from __future__ import annotations

from finetune_advisor import bench


def test_registry_reports_amazon_missing_and_finds_standins(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    for ref in bench.REFERENCE_DATASETS.values():
        if ref.standin and not ref.smoke_test:
            (shared / ref.standin).mkdir(parents=True)
    monkeypatch.delenv("FINETUNE_ADVISOR_DATA_PETS", raising=False)
    ds = {d.name: d for d in bench.resolve_datasets(shared_data=shared, extra={"mine": tmp_path})}
    assert len(ds) == 8 and ds["amazon"].origin == "missing" and "kaggle" in ds["amazon"].note
    assert sum(d.origin == "stand-in" for d in ds.values()) == 6
    assert {n for n, r in bench.REFERENCE_DATASETS.items() if r.multi_label} == {"amazon", "protein", "xray"}
    assert ds["mine"].origin == "custom"
    monkeypatch.setenv("FINETUNE_ADVISOR_DATA_PETS", str(tmp_path))
    assert bench.resolve_datasets(["pets"], shared_data=shared)[0].origin == "user"
    # The 30-chip Planet sample stands in for Amazon as a smoke test, and says so.
    (shared / "planet-amazon").mkdir()
    amazon = bench.resolve_datasets(["amazon"], shared_data=shared)[0]
    assert amazon.origin == "stand-in" and "smoke test" in amazon.note


def test_all_resolves_every_registered_dataset(tmp_path):
    every = bench.resolve_datasets(["all"], shared_data=tmp_path)
    assert [d.name for d in every] == list(bench.REFERENCE_DATASETS)
    assert len(every) == 16 and all(d.origin == "missing" for d in every)
    assert [d.name for d in bench.resolve_datasets(None, shared_data=tmp_path)] == [
        "amazon", "cancer", "dota", "draw", "pets", "protein", "xray"]


def test_a_sized_name_is_a_fixed_stratified_subsample_of_its_dataset(tmp_path):
    import pytest

    from finetune_advisor.exceptions import ConfigError
    from finetune_advisor.testing import make_folder_dataset
    shared = tmp_path / "shared"
    make_folder_dataset(shared / "pets-oxford", counts={"cat": 12, "dog": 5}, size=8)
    small, whole = bench.resolve_datasets(["pets@4", "pets"], shared_data=shared)
    assert (small.name, small.images_per_class, small.path) == ("pets@4", 4, whole.path)
    assert "at most 4 images a class" in small.note and whole.images_per_class is None
    sub = small.read()
    assert sub.class_counts() == {"cat": 4, "dog": 4}
    assert [it.path for it in sub.items] == [it.path for it in small.read().items]   # the same draw every time
    assert small.advise_source().class_counts() == sub.class_counts() and whole.advise_source() == whole.path
    assert bench.resolve_datasets(["pets@100"], shared_data=shared)[0].read().class_counts() == {"cat": 12, "dog": 5}
    assert bench.sized_names(["pets", "mri"], [10, 30]) == ["pets@10", "pets@30", "mri@10", "mri@30"]
    assert bench.base_name("pets@10") == "pets"
    for bad in (["pets@0"], ["pets@x"], ["cats@10"]):
        with pytest.raises(ConfigError):
            bench.resolve_datasets(bad, shared_data=shared)
    with pytest.raises(ConfigError, match="distinct whole numbers"):
        bench.sized_names(["pets"], [10, 10])
