"""Training and run folders: files, determinism, resuming after an interruption or kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from hie_core.io import read_image
from hie_core.training.config import PRESETS, make_config
from hie_core.training.experiment import run_experiment
from hie_core.training.fit import load_best_model

from .conftest import tiny_config

FILES = ("config.json", "history.csv", "model_best.pt", "checkpoint_last.pt", "metrics.csv", "summary.json")


def _weights(run_dir):
    return torch.load(run_dir / "model_best.pt", weights_only=True)["state_dict"]


def _same_results(a, b):
    for key, value in _weights(a).items():
        torch.testing.assert_close(value, _weights(b)[key], rtol=0, atol=0, msg=key)
    pd.testing.assert_frame_equal(pd.read_csv(a / "metrics.csv"), pd.read_csv(b / "metrics.csv"))
    ha, hb = (pd.read_csv(p / "history.csv").drop(columns="seconds") for p in (a, b))
    pd.testing.assert_frame_equal(ha, hb)
    assert sorted(
        p.relative_to(a) for p in a.rglob("*") if p.is_file() and "papermill" not in p.name
    ) == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and "papermill" not in p.name)


@pytest.fixture(scope="module")
def reference_run(tiny_synthetic, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "reference"
    return run_experiment(tiny_config(tiny_synthetic, out))


def test_run_folder_has_every_file(reference_run, tiny_synthetic):
    run_dir = reference_run.run_dir
    for name in FILES:
        assert (run_dir / name).is_file(), name
    info = json.loads((run_dir / "config.json").read_text())
    assert info["synthetic"] is False and info["config"]["loss"] == "dice"
    assert info["versions"]["torch"] and info["device_name"].startswith("CPU")
    history = reference_run.history
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "val_dice", "lr", "seconds"]
    assert history["lr"].tolist() == pytest.approx([1e-3, 9e-4, 8.1e-4])
    metrics = reference_run.metrics
    assert sorted(metrics["split"].unique()) == ["test", "val"] and len(metrics) == 3
    for col in ("burden_percent", "dice", "masd_mm", "nsd", "n_pred", "n_ref"):
        assert col in metrics
    assert metrics["dice"].between(0, 1).all()
    assert set(reference_run.summary["splits"]) == {"val", "test"}


def test_predictions_are_on_the_native_grid(reference_run, tiny_synthetic):
    from hie_core.data import discover_cases

    for case in discover_cases(tiny_synthetic, splits=["test"]):
        pred, geometry = read_image(
            reference_run.run_dir / "predictions" / "test" / f"{case.case_id}_lesion.mha"
        )
        native = read_image(case.adc)[1]
        assert geometry.same_grid(native) and set(np.unique(pred)) <= {0, 1}


def test_best_checkpoint_loads_with_weights_only(reference_run):
    model, meta = load_best_model(reference_run.run_dir / "model_best.pt")
    assert meta["widths"] == [4, 8, 16, 32] and meta["target_shape"] == [8, 16, 16]
    assert not model.training


def test_finished_run_is_loaded_not_overwritten(reference_run, tiny_synthetic, capsys):
    before = (reference_run.run_dir / "model_best.pt").stat().st_mtime_ns
    again = run_experiment(tiny_config(tiny_synthetic, reference_run.run_dir))
    assert "loading it, not retraining" in capsys.readouterr().out
    assert (reference_run.run_dir / "model_best.pt").stat().st_mtime_ns == before
    assert again.metrics.equals(reference_run.metrics)
    with pytest.raises(FileExistsError, match="another configuration.*lr"):
        run_experiment(tiny_config(tiny_synthetic, reference_run.run_dir, lr=5e-4))


def test_interrupted_run_resumes_to_identical_results(reference_run, tiny_synthetic, tmp_path):
    out = tmp_path / "interrupted"
    config = tiny_config(tiny_synthetic, out)
    assert run_experiment(config, stop_after_epochs=1) is None
    assert pd.read_csv(out / "history.csv").shape[0] == 1 and not (out / "summary.json").exists()
    run_experiment(config)
    _same_results(reference_run.run_dir, out)


def test_killed_run_resumes_to_identical_results(reference_run, tiny_synthetic, tmp_path):
    out = tmp_path / "killed"
    config = tiny_config(tiny_synthetic, out)
    code = (
        "import json, sys\nfrom hie_core.training.config import TrainConfig\nfrom hie_core.training.experiment import run_experiment\n"
        "run_experiment(TrainConfig.from_dict(json.loads(sys.argv[1])))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, config.to_json()], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint_last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9, mid-training or mid-write
    proc.wait()
    assert not (out / "summary.json").exists()
    run_experiment(config)
    _same_results(reference_run.run_dir, out)


def test_presets_and_overrides():
    quick = make_config(preset="auto", device="cpu")
    assert quick.preset == "quick" and quick.augment == "torchio" and not quick.amp
    seed = make_config(preset="seed", device="cpu")
    assert (seed.epochs, seed.patience, seed.batch_size, seed.lr, seed.weight_decay) == (
        100,
        10,
        4,
        1e-3,
        1e-3,
    )
    assert (seed.lr_decay, seed.l1, seed.grad_clip, seed.target_shape) == (0.9, 1e-4, 1.0, (32, 192, 192))
    assert make_config(preset="quick", device="cpu", epochs=2, batch_size=None).epochs == 2
    assert make_config(preset="quick", device="cpu").batch_size == PRESETS["quick"]["batch_size"]
    with pytest.raises(ValueError, match="unknown loss 'l2'"):
        make_config(device="cpu", loss="l2")
    with pytest.raises(ValueError, match="divisible by 8"):
        make_config(device="cpu", target_shape=(10, 16, 16))
    with pytest.raises(ValueError, match="CUDA is not available"):
        if not torch.cuda.is_available():
            make_config(device="cuda")
        else:  # pragma: no cover
            raise ValueError("CUDA is not available (skipped on a GPU machine)")
