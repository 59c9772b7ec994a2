"""Training and run folders: files, determinism, resuming after an interruption or kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hie_core.errors import ConfigError, UserError
from hie_core.io import read_image
from hie_core.training.config import make_config
from hie_core.training.experiment import RunFolderError, run_experiment
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
    assert info["synthetic"] is True and info["config"]["loss"] == "dice"  # the tiny set carries the manifest
    assert set(info["fingerprint"]) == {"code", "preprocess_version", "config"} and info["distance_backend"]
    assert info["versions"]["torch"] and info["device_name"].startswith("CPU")
    history = reference_run.history
    assert list(history.columns) == [
        "epoch",
        "train_loss",
        "selection_loss",
        "selection_dice",
        "lr",
        "seconds",
    ]
    quick = make_config(preset="quick", device="cpu")
    lr, decay = quick.lr, quick.lr_decay
    assert history["lr"].tolist() == pytest.approx([lr, lr * decay, lr * decay**2])
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
    assert (
        meta["widths"] == (4, 8, 16, 32)
        and meta["target_shape"] == (8, 16, 16)
        and meta["patch_shape"] is None
    )
    assert not model.training


def test_finished_run_is_loaded_not_overwritten(reference_run, tiny_synthetic, capsys):
    before = (reference_run.run_dir / "model_best.pt").stat().st_mtime_ns
    again = run_experiment(tiny_config(tiny_synthetic, reference_run.run_dir))
    assert "loading it, not retraining" in capsys.readouterr().out
    assert (reference_run.run_dir / "model_best.pt").stat().st_mtime_ns == before
    assert again.metrics.equals(reference_run.metrics)
    with pytest.raises(RunFolderError, match="another configuration.*lr"):
        run_experiment(tiny_config(tiny_synthetic, reference_run.run_dir, lr=5e-4))


def test_interrupted_run_resumes_to_identical_results(reference_run, tiny_synthetic, tmp_path):
    out = tmp_path / "interrupted"
    config = tiny_config(tiny_synthetic, out)
    assert run_experiment(config, stop_after_epochs=1) is None
    assert pd.read_csv(out / "history.csv").shape[0] == 1 and not (out / "summary.json").exists()
    run_experiment(config)
    _same_results(reference_run.run_dir, out)


@pytest.mark.slow  # trains a tiny run
def test_a_run_with_mirroring_resumes_to_identical_results(tiny_synthetic, tmp_path):
    options = dict(mirror_axes=(2,))
    whole = run_experiment(tiny_config(tiny_synthetic, tmp_path / "whole", **options))
    assert torch.load(whole.run_dir / "model_best.pt", weights_only=True)["config"]["mirror_axes"] == [2]
    config = tiny_config(tiny_synthetic, tmp_path / "interrupted", **options)
    assert run_experiment(config, stop_after_epochs=1) is None
    run_experiment(config)
    _same_results(whole.run_dir, tmp_path / "interrupted")


@pytest.mark.slow
def test_killed_run_resumes_to_identical_results(reference_run, tiny_synthetic, tmp_path):
    out = tmp_path / "killed"
    config = tiny_config(tiny_synthetic, out)
    code = (
        "import json, sys\nfrom hie_core.training.config import TrainConfig\nfrom hie_core.training.experiment import RunFolderError, run_experiment\n"
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
    assert quick.preset == "quick" and quick.augment == "batched" and not quick.amp
    assert quick.patch_shape and quick.target_spacing_mm and quick.target_shape is None
    seed = make_config(preset="seed", device="cpu")
    assert (seed.epochs, seed.patience, seed.batch_size, seed.lr, seed.weight_decay) == (
        100,
        10,
        4,
        1e-3,
        1e-3,
    )
    assert (seed.lr_decay, seed.l1, seed.grad_clip, seed.target_shape) == (0.9, 1e-4, 1.0, (32, 192, 192))
    assert seed.patch_shape is None and seed.steps_per_epoch is None and seed.augment == "torchio"
    native = make_config(preset="native", device="cpu")
    assert native.target_spacing_mm == (2.5, 1.0, 1.0) and native.patch_shape and native.target_shape is None
    assert make_config(preset="quick", device="cpu", epochs=2, batch_size=None).epochs == 2
    assert make_config(preset="quick", device="cpu").batch_size == make_config(preset="seed", device="cpu").batch_size
    whole = make_config(preset="quick", device="cpu", target_shape=(16, 64, 64), patch_shape="none")
    assert whole.target_spacing_mm is None and whole.patch_shape is None
    assert make_config(preset="quick", device="cpu", patch_shape="16x32x32").patch_shape == (16, 32, 32)
    with pytest.raises(ConfigError, match="divisible by 8"):
        make_config(device="cpu", target_shape=(10, 16, 16), patch_shape="none")
    with pytest.raises(ConfigError, match="needs a patch_shape"):
        make_config(preset="quick", device="cpu", patch_shape="none")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        if not torch.cuda.is_available():
            make_config(device="cuda")
        else:  # pragma: no cover
            raise ConfigError("CUDA is not available (skipped on a GPU machine)")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lr": "abc"}, "lr must be a finite number, got 'abc'"),
        ({"epochs": 1.5}, "epochs must be a whole number, got 1.5"),
        ({"epochs": True}, "epochs must be a whole number"),
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"loss": "l2"}, "loss must be one of dice, .*; got 'l2'"),
        ({"augment": "gpu"}, "augment must be one of torchio, batched, none, got 'gpu'"),
        ({"zadc_norm": "raw"}, "zadc_norm must be one of volume, atlas, got 'raw'"),
        ({"mirror_axes": "3"}, r"mirror_axes must be distinct spatial axes among 0 \(D\), 1 \(H\), 2 \(W\)"),
        ({"mirror_axes": "2,2"}, "mirror_axes must be distinct spatial axes"),
        ({"patch_shape": "16,64"}, "patch_shape must be 3 whole numbers >= 1 in voxels"),
        ({"target_spacing_mm": "a,b,c"}, "target_spacing_mm must be 3 numbers > 0 in mm"),
        ({"foreground_fraction": 2}, "foreground_fraction must be in"),
        ({"data_dir": 5}, "data_dir must be text"),
        ({"dropout": "0,0,0,1"}, r"dropout must be 4 numbers in \[0, 1\)"),
        ({"learning_rate": 1e-3}, "unknown parameter.*learning_rate"),
        ({"patch_shape": (8, 8, 8)}, "norm 'instance' needs a bottleneck of at least 2 voxels"),
        ({"tversky_alpha": -0.1}, "tversky_alpha must be >= 0, got -0.1"),
        ({"tversky_alpha": 0, "tversky_beta": 0.0}, "tversky_alpha and tversky_beta must not both be 0"),
        ({"tversky_beta": "high"}, "tversky_beta must be a finite number, got 'high'"),
        ({"focal_gamma": -1}, "focal_gamma must be >= 0, got -1"),
        ({"hdt_alpha": 0}, "hdt_alpha must be > 0, got 0"),
        ({"hybrid_weight": 1.5}, r"hybrid_weight must be in \[0, 1\], got 1.5"),
        ({"hybrid_weight": float("nan")}, "hybrid_weight must be a finite number"),
        ({"loss": "mine.losses"}, "loss must be one of dice, .*package.module:ClassName.*got 'mine.losses'"),
    ],
)
def test_every_parameter_is_type_checked_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_config(preset="quick", device="cpu", **overrides)
    assert make_config(preset="quick", device="cpu", epochs=2.0).epochs == 2  # an integral float is fine
    for text, axes in (("2", (2,)), ("2,1", (1, 2)), ("none", ()), ("", ())):
        assert make_config(preset="quick", device="cpu", mirror_axes=text).mirror_axes == axes


def test_the_loss_settings_at_their_edges_are_accepted_and_recorded():
    config = make_config(preset="quick", device="cpu", tversky_alpha=0, tversky_beta=1, focal_gamma=0,
                         hdt_alpha=0.5, hybrid_weight=1)  # fmt: skip
    values = {k: config.to_dict()[k] for k in ("tversky_alpha", "tversky_beta", "focal_gamma", "hdt_alpha")}
    assert values == {"tversky_alpha": 0.0, "tversky_beta": 1.0, "focal_gamma": 0.0, "hdt_alpha": 0.5}
    assert config.hybrid_weight == 1.0 and json.loads(config.to_json())["hybrid_weight"] == 1.0


def test_the_default_run_folder_follows_hie_runs_dir(tmp_path, monkeypatch):
    from hie_core.training.experiment import notebook_config, project_root

    monkeypatch.setenv("HIE_RUNS_DIR", str(tmp_path / "elsewhere"))
    config = notebook_config("tversky", preset="quick", device="cpu", seed=2)
    assert config.output_dir == str((tmp_path / "elsewhere" / "quick" / "tversky" / "seed2").resolve())
    monkeypatch.setenv("HIE_RUNS_DIR", "")
    config = notebook_config("tversky", preset="quick", device="cpu", seed=2)
    assert config.output_dir == str(project_root() / "runs" / "quick" / "tversky" / "seed2")
    assert not (tmp_path / "elsewhere").exists()  # naming a folder writes nothing


def test_nonexistent_data_dir_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    config = tiny_config(tmp_path / "missing", out)
    with pytest.raises(UserError, match="missing.*no such folder"):
        run_experiment(config)
    assert not out.exists()


@pytest.mark.slow  # trains a tiny run
def test_a_run_of_other_code_is_trained_again(reference_run, tiny_synthetic, tmp_path, capsys, monkeypatch):
    import shutil

    import hie_core.training.experiment as experiment

    out = tmp_path / "stale"
    shutil.copytree(reference_run.run_dir, out)
    first = run_experiment(tiny_config(tiny_synthetic, out))
    assert "loading it" in capsys.readouterr().out and first.metrics.equals(reference_run.metrics)
    real = experiment.run_fingerprint
    monkeypatch.setattr(experiment, "run_fingerprint", lambda c: {**real(c), "code": "0" * 16})
    again = run_experiment(tiny_config(tiny_synthetic, out))
    assert "produced by other code" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["fingerprint"]["code"] == "0" * 16
    pd.testing.assert_frame_equal(again.metrics, reference_run.metrics)  # same code in truth: same numbers


def test_code_fingerprint_follows_the_sources_that_make_results(tmp_path, monkeypatch):
    from hie_core.training import config as cfg

    base = cfg.code_fingerprint()
    assert base == cfg.code_fingerprint() and len(base) == 16
    package = tmp_path / "hie_core"
    shutil.copytree(
        Path(cfg.__file__).resolve().parents[1], package, ignore=shutil.ignore_patterns("__pycache__")
    )
    monkeypatch.setattr(cfg, "__file__", str(package / "training" / "config.py"))
    assert cfg.code_fingerprint() == base
    (package / "report" / "pages" / "prose.py").write_text("# a change to the book's prose\n", encoding="utf-8")
    assert cfg.code_fingerprint() == base  # reporting does not change a run's numbers
    losses = package / "losses.py"
    losses.write_text(losses.read_text() + "\n# one more line\n")
    assert cfg.code_fingerprint() != base


@pytest.mark.slow
def test_patch_training_with_sliding_window_on_a_fixed_spacing_grid(tiny_synthetic, tmp_path):
    """The native preset's machinery at a tiny size: fixed-spacing grid, lesion patches, sliding window."""
    config = tiny_config(tiny_synthetic, tmp_path / "patches", target_shape=None, target_spacing_mm=(6.0, 3.0, 3.0),
                         patch_shape=(8, 16, 8), foreground_fraction=0.5, steps_per_epoch=2, augment="batched")  # fmt: skip
    result = run_experiment(config)
    assert len(result.history) == 3 and result.history["selection_dice"].between(0, 1).all()
    model, meta = load_best_model(result.run_dir / "model_best.pt")
    assert (
        meta["patch_shape"] == (8, 16, 8)
        and meta["norm"] == "instance"
        and meta["target_spacing_mm"] == (6.0, 3.0, 3.0)
    )
    from hie_core.data import discover_cases

    for case in discover_cases(tiny_synthetic, splits=["test"]):
        pred, geometry = read_image(result.run_dir / "predictions" / "test" / f"{case.case_id}_lesion.mha")
        assert geometry.same_grid(read_image(case.adc)[1])


@pytest.mark.slow
def test_loader_and_device_sources_train_identically_without_augmentation(tiny_synthetic, tmp_path):
    """One training loop: the TorchIO back end's DataLoader and the device source differ only in augmentation."""
    from hie_core.training import fit as fit_module
    from hie_core.training.batches import DeviceBatches, LoaderBatches

    runs = {}
    for name, source in (("loader", LoaderBatches), ("device", DeviceBatches)):
        original = fit_module._batch_source
        fit_module._batch_source = lambda items, config, s=source: (
            s(items, config.patch_shape, None, "cpu") if s is DeviceBatches
            else s(items, config.patch_shape, None, "cpu", 0)
        )  # fmt: skip
        try:
            runs[name] = run_experiment(tiny_config(tiny_synthetic, tmp_path / name, augment="none"))
        finally:
            fit_module._batch_source = original
    _same_results(runs["loader"].run_dir, runs["device"].run_dir)


@pytest.mark.slow  # trains a tiny run
def test_a_truncated_training_checkpoint_is_named_with_how_to_restart(tiny_synthetic, tmp_path):
    from hie_core.training.checkpoints import CheckpointError

    out = tmp_path / "truncated"
    config = tiny_config(tiny_synthetic, out)
    assert run_experiment(config, stop_after_epochs=1) is None
    checkpoint = out / "checkpoint_last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:100])
    with pytest.raises(
        CheckpointError, match=f"{checkpoint}.*delete {checkpoint} to restart this run from epoch 0"
    ):
        run_experiment(config)
    assert not (out / "summary.json").exists()
    checkpoint.unlink()  # as the message says: the run starts over and finishes
    assert run_experiment(config).summary["epochs_run"] == 3


def test_a_finished_run_without_its_weights_is_still_finished(
    reference_run, tiny_synthetic, tmp_path, capsys
):
    from hie_core.report.pages.experiment import check_run_folder
    from hie_core.study.grid import GridRun, gathered_outcomes
    from hie_core.training.checkpoints import CheckpointError

    out = tmp_path / "dice" / "seed1"
    shutil.copytree(reference_run.run_dir, out)
    for name in ("model_best.pt", "checkpoint_last.pt"):  # deleted to save space
        (out / name).unlink()
    again = run_experiment(tiny_config(tiny_synthetic, out))
    printed = capsys.readouterr().out
    assert "loading it, not retraining" in printed
    assert "model_best.pt and checkpoint_last.pt deleted; the results stand" in printed
    assert again.metrics.equals(reference_run.metrics) and not (out / "model_best.pt").exists()
    check_run_folder(again)  # what the notebook checks: the results, not the weights
    assert [o.ok for o in gathered_outcomes([GridRun("dice", 1, out)])] == [True]  # --gather agrees
    with pytest.raises(CheckpointError, match=f"{out / 'model_best.pt'}: model file not found"):
        load_best_model(out / "model_best.pt", "cpu")  # what hie-predict needs names the missing file


def test_a_finished_run_missing_a_results_file_is_trained_again(
    reference_run, tiny_synthetic, tmp_path, capsys
):
    from hie_core.study.grid import GridRun, gathered_outcomes

    out = tmp_path / "dice" / "seed1"
    shutil.copytree(reference_run.run_dir, out)
    (out / "metrics.csv").unlink()
    assert [o.ok for o in gathered_outcomes([GridRun("dice", 1, out)])] == [False]
    capsys.readouterr()
    again = run_experiment(tiny_config(tiny_synthetic, out))
    assert "this finished run misses metrics.csv - training it again" in capsys.readouterr().out
    pd.testing.assert_frame_equal(again.metrics, reference_run.metrics)


@pytest.mark.slow  # trains a tiny run
def test_an_edited_result_file_is_named_and_the_run_redone(reference_run, tiny_synthetic, tmp_path, capsys):
    from hie_core.report.analysis.runs import StudyFolderError, find_runs

    out = tmp_path / "study" / "dice" / "seed0"
    shutil.copytree(reference_run.run_dir, out)
    summary = json.loads((out / "summary.json").read_text())
    masks = {p.relative_to(out).as_posix() for p in (out / "predictions").rglob("*.mha")}
    assert masks and set(summary["checksums"]) == {"config.json", "history.csv", "metrics.csv", *masks}
    assert find_runs(out.parent.parent).runs[0].path == out  # untouched: reported
    metrics = pd.read_csv(out / "metrics.csv")
    metrics.loc[0, "dice"] = 0.99  # a plausible value: only the checksum can tell
    metrics.to_csv(out / "metrics.csv", index=False)
    with pytest.raises(
        StudyFolderError, match=r"seed0: metrics.csv changed since the run wrote it .* run the study"
    ):
        find_runs(out.parent.parent)
    capsys.readouterr()
    again = run_experiment(tiny_config(tiny_synthetic, out))
    assert (
        "metrics.csv changed since this run wrote it (edited or damaged) - training it again"
        in capsys.readouterr().out
    )
    pd.testing.assert_frame_equal(again.metrics, reference_run.metrics)
    assert find_runs(out.parent.parent).runs[0].metrics["dice"].iloc[0] != 0.99


def test_a_window_that_cannot_fit_is_refused_before_anything_is_written(tiny_synthetic, tmp_path):
    from hie_core.errors import ConfigError

    config = tiny_config(tiny_synthetic, tmp_path / "run", target_shape=(1000, 1000, 1000))
    with pytest.raises(
        ConfigError, match=r"target_shape \(1000, 1000, 1000\) with batch_size 2 needs about [\d,]+ GiB"
    ):
        run_experiment(config)
    assert not (tmp_path / "run").exists()
