"""benchmarks/gpu_fidelity.py --smoke: the 224 px check's every step, on CPU with tiny data."""
import csv


def test_smoke_run_trains_every_cell_from_preloaded_tensors_and_writes_both_tables(tmp_path, load_benchmark):
    gpu = load_benchmark("gpu_fidelity")
    assert gpu.main(["--smoke", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "gpu_fidelity.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["cell"] for r in rows] == list(gpu.CELLS)
    by_cell = {r["cell"]: r for r in rows}
    advice = float(by_cell["advice"]["lr"])
    for cell, factor in (("advice_x3", 3), ("advice_div3", 1 / 3), ("advice_div10", 0.1)):   # the ladder's cells
        assert abs(float(by_cell[cell]["lr"]) - advice * factor) < 1e-12
        assert abs(float(by_cell[cell]["lr_finetune"]) - float(by_cell["advice"]["lr_finetune"]) * factor) < 1e-12
    assert float(by_cell["fastai_fine_tune"]["lr"]) == 2e-3    # fastai's fine_tune default base_lr
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 and int(r["n_train"]) > 0 for r in rows)
    text = (tmp_path / "gpu_fidelity.md").read_text()
    assert "SMOKE RUN" in text and "| smoke |" in text and "| **mean** |" in text


def test_preloaded_loaders_read_no_file(tmp_path, load_benchmark):
    """A preloaded dataset trains from its tensors: the files can go once they are decoded."""
    from finetune_advisor.config import Config
    from finetune_advisor.data import read_dataset
    from finetune_advisor.learner import build_dataloaders
    from finetune_advisor.testing import make_folder_dataset

    gpu = load_benchmark("gpu_fidelity")
    ds = read_dataset(make_folder_dataset(tmp_path / "d", {"a": 6, "b": 6}))
    config = Config(image_size=24, batch_size=4)
    tensors = gpu.preload(ds, config, "cpu")
    for item in ds.items:
        item.path.unlink()
    dls = build_dataloaders(ds, config, preloaded=tensors, device="cpu")
    x, y = dls.one_batch()
    assert tuple(x.shape) == (4, 3, 24, 24) and len(y) == 4
