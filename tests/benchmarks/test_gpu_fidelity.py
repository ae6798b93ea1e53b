"""benchmarks/gpu_fidelity.py --smoke: the 224 px check's every step, on CPU with tiny data."""
import csv
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_fidelity.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_fidelity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_trains_every_cell_from_preloaded_tensors_and_writes_both_tables(tmp_path, capsys):
    gpu = _load()
    assert gpu.main(["--smoke", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "gpu_fidelity.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["cell"] for r in rows] == list(gpu.CELLS)
    advice = {k: float(rows[0][k]) for k in ("lr", "lr_finetune")}
    x3, div3 = rows[1], rows[2]
    assert float(x3["lr"]) == advice["lr"] * 3 and abs(float(div3["lr"]) - advice["lr"] / 3) < 1e-12
    assert float(rows[3]["lr"]) == 2e-3                    # fastai's fine_tune default base_lr
    assert all(0.0 <= float(r["accuracy"]) <= 1.0 and int(r["n_train"]) > 0 for r in rows)
    text = (tmp_path / "gpu_fidelity.md").read_text()
    assert "SMOKE RUN" in text and "| smoke |" in text and "| **mean** |" in text


def test_preloaded_loaders_read_no_file(tmp_path):
    """A preloaded dataset trains from its tensors: the files can go once they are decoded."""
    from finetune_advisor.config import Config
    from finetune_advisor.data import read_dataset
    from finetune_advisor.learner import build_dataloaders
    from finetune_advisor.testing import make_folder_dataset

    gpu = _load()
    ds = read_dataset(make_folder_dataset(tmp_path / "d", {"a": 6, "b": 6}))
    config = Config(image_size=24, batch_size=4)
    tensors = gpu.preload(ds, config, "cpu")
    for item in ds.items:
        item.path.unlink()
    dls = build_dataloaders(ds, config, preloaded=tensors, device="cpu")
    x, y = dls.one_batch()
    assert tuple(x.shape) == (4, 3, 24, 24) and len(y) == 4
