"""Checkpoint files: atomic saves, and every damaged or wrong file named in a CheckpointError."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from hie_core.config import DEFAULTS
from hie_core.errors import UserError
from hie_core.model import ARCH_LABELS, UNet3D, arch_options, build_model
from hie_core.training.checkpoints import (
    CheckpointError,
    load_model_file,
    load_training_checkpoint,
    save_checkpoint,
)

WIDTHS = [4, 8, 16, 32]


def model_payload(seed: int = 0, **extra) -> dict:
    """A model-file payload as the trainer writes it (tiny widths)."""
    torch.manual_seed(seed)
    model = UNet3D(in_channels=2, out_channels=1, widths=WIDTHS, prior_probability=0.3, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    return {"state_dict": model.state_dict(), "widths": list(WIDTHS), "in_channels": 2,
            "target_shape": [8, 16, 16], "loss": "dice", "epoch": 1, **extra}  # fmt: skip


def write_model_file(path: Path, seed: int = 0, **extra) -> Path:
    """A valid ``model_best.pt`` at ``path``."""
    return save_checkpoint(path, model_payload(seed, **extra))


def training_payload(epoch: int = 3) -> dict:
    model = UNet3D(in_channels=2, out_channels=1, widths=WIDTHS, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch, "best_dice": 0.5, "best_epoch": 2, "bad_epochs": 1, "history": [{"epoch": 1}]}  # fmt: skip


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_model_file_round_trip_rebuilds_the_network(tmp_path):
    path = write_model_file(tmp_path / "model_best.pt")
    model, meta = load_model_file(path)
    expected = model_payload()["state_dict"]
    assert not model.training and model.widths == tuple(WIDTHS)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key])
    assert meta["widths"] == tuple(WIDTHS) and meta["target_shape"] == (8, 16, 16) and meta["loss"] == "dice"
    assert meta["patch_shape"] is None and meta["target_spacing_mm"] is None and "state_dict" not in meta
    assert meta["mirror_axes"] == ()  # a file from before test-time mirroring: none, as it was made
    assert meta["arch"] == "unet3d" and isinstance(model, UNet3D)  # a file from before arch: the seed's U-Net
    newer = write_model_file(
        tmp_path / "new.pt", patch_shape=[8, 16, 16], target_spacing_mm=None, mirror_axes=[2]
    )
    assert load_model_file(newer)[1]["patch_shape"] == (8, 16, 16)
    assert load_model_file(newer)[1]["mirror_axes"] == (2,)
    bad = write_model_file(tmp_path / "bad.pt", mirror_axes=[3])
    with pytest.raises(CheckpointError, match="bad.pt: model file has invalid mirror_axes"):
        load_model_file(bad)
    del_optional = model_payload()
    del del_optional["loss"], del_optional["epoch"]
    assert load_model_file(save_checkpoint(tmp_path / "min.pt", del_optional))[1]["epoch"] is None


@pytest.mark.parametrize("arch", ["segresnet", "dynunet", "swinunetr"])
def test_model_file_of_another_arch_rebuilds_it_from_the_recorded_options(tmp_path, arch):
    # an anisotropic patch: DynUNet's kernels and strides are planned from it, and recorded
    options = arch_options(arch, WIDTHS, (32, 64, 64), (4.0, 2.0, 2.0))
    torch.manual_seed(0)
    model = build_model(arch, 2, WIDTHS, norm="instance", prior_probability=0.3, options=options, dropout=DEFAULTS["dropout"])
    payload = {**model_payload(), "state_dict": model.state_dict(), "arch": arch, "arch_options": options,
               "norm": "instance", "patch_shape": [32, 64, 64], "target_spacing_mm": [4.0, 2.0, 2.0]}  # fmt: skip
    loaded, meta = load_model_file(save_checkpoint(tmp_path / "model_best.pt", payload))
    assert type(loaded) is type(model) and not loaded.training
    assert meta["arch"] == arch and meta["arch_options"] == options
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    if (
        arch == "dynunet"
    ):  # the recorded plan, not a replanned one, shapes the network (seconds for the others)
        x = torch.randn(1, 2, 32, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model.eval()(x))
    for bad, message in (
        ({"arch": "resnet"}, "invalid arch 'resnet' \\(it must be one of unet3d"),
        ({"arch_options": [1]}, "invalid arch_options"),
    ):
        with pytest.raises(CheckpointError, match=message):
            load_model_file(save_checkpoint(tmp_path / "bad.pt", {**payload, **bad}))
    with pytest.raises(CheckpointError, match=f"do not fit a {ARCH_LABELS[arch]} with widths"):
        load_model_file(save_checkpoint(tmp_path / "other.pt", {**payload, "in_channels": 3}))


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = write_model_file(tmp_path / "model_best.pt", seed=0)
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        save_checkpoint(path, {"state_dict": lambda: 0})  # cannot be pickled: nothing replaced
    assert path.read_bytes() == before and _files(tmp_path) == ["model_best.pt"]
    write_model_file(path, seed=1)
    assert path.read_bytes() != before and _files(tmp_path) == ["model_best.pt"]
    assert save_checkpoint(tmp_path / "new" / "checkpoint_last.pt", training_payload()).is_file()


def _truncated(path: Path) -> None:
    data = write_model_file(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])


BAD_MODEL_FILES = {
    "missing": (lambda p: None, "model file not found"),
    "empty": (lambda p: p.write_bytes(b""), "empty (0 bytes)"),
    "truncated": (_truncated, "truncated or corrupt"),
    "tail cut": (lambda p: p.write_bytes(write_model_file(p).read_bytes()[:-5]), "truncated or corrupt"),
    "garbage": (
        lambda p: p.write_bytes(b"this is not a checkpoint"),
        "truncated or corrupt, or not a PyTorch file",
    ),
    "pickle": (lambda p: p.write_bytes(pickle.dumps(Path("x"))), "not a model file written by hie_core"),
    "folder": (lambda p: p.mkdir(), "is a folder"),
    "training checkpoint": (
        lambda p: save_checkpoint(p, training_payload()),
        "this is a training checkpoint (checkpoint_last.pt); pass the run's model_best.pt",
    ),
    "not ours": (lambda p: torch.save({"weights": torch.zeros(2)}, p), "missing state_dict, widths"),
    "a tensor": (lambda p: torch.save(torch.zeros(3), p), "it holds a Tensor"),
    "bad widths": (lambda p: save_checkpoint(p, model_payload(widths=[4, 8])), "invalid widths [4, 8]"),
    "other weights": (
        lambda p: save_checkpoint(p, model_payload(widths=[8, 16, 32, 64])),
        "the weights do not fit a 3D U-Net with widths [8, 16, 32, 64]",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_MODEL_FILES))
def test_bad_model_files_raise_one_clear_error_naming_the_file(tmp_path, kind):
    make, expected = BAD_MODEL_FILES[kind]
    path = tmp_path / "model_best.pt"
    make(path)
    with pytest.raises(CheckpointError) as err:
        load_model_file(path)
    message = str(err.value)
    assert isinstance(err.value, UserError)
    assert message.startswith(f"{path}: ") and expected in message
    assert "\n" not in message and "Traceback" not in message


def test_training_checkpoint_next_to_a_model_file_names_it(tmp_path):
    save_checkpoint(tmp_path / "checkpoint_last.pt", training_payload())
    write_model_file(tmp_path / "model_best.pt")
    with pytest.raises(CheckpointError, match=f"pass {tmp_path / 'model_best.pt'}$"):
        load_model_file(tmp_path / "checkpoint_last.pt")


def test_training_checkpoint_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint_last.pt", training_payload(epoch=3))
    payload = load_training_checkpoint(path)
    assert payload["epoch"] == 3 and payload["history"] == [{"epoch": 1}]
    model = UNet3D(in_channels=2, out_channels=1, widths=WIDTHS, dropout=DEFAULTS["dropout"], norm=DEFAULTS["norm"])
    model.load_state_dict(payload["model"])
    torch.optim.AdamW(model.parameters()).load_state_dict(payload["optimizer"])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("truncated", "truncated or corrupt"), ("empty", "empty (0 bytes)"),
     ("model file", "this is a model file (model_best.pt)"), ("not ours", "missing optimizer, scheduler, epoch")],
)  # fmt: skip
def test_bad_training_checkpoint_says_how_to_restart(tmp_path, kind, expected):
    path = tmp_path / "run" / "checkpoint_last.pt"
    save_checkpoint(path, training_payload())
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "model file":
        write_model_file(path)
    else:
        save_checkpoint(path, {"model": {}})
    with pytest.raises(CheckpointError) as err:
        load_training_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message
    assert message.endswith(f"delete {path} to restart this run from epoch 0, or delete the run folder")
    with pytest.raises(CheckpointError, match="training checkpoint not found"):
        load_training_checkpoint(tmp_path / "nowhere" / "checkpoint_last.pt")
