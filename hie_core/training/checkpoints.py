"""The two checkpoint files of a training run: saved atomically, loaded with clear errors.

A run folder holds two kinds of PyTorch file:

- ``model_best.pt``, the *model file*: the weights with the best selection Dice and the run's
  whole configuration, ``{"state_dict", "config", "config_version", "in_channels",
  "arch_options", "epoch"}`` (``arch_options``: the network's derived settings,
  :func:`hie_core.model.arch_options`). Files written before the configuration's schema
  version 2 hold 13 keys instead, the weights beside the fields that rebuild the network and
  predict (``widths``, ``arch``, ``norm``, ``target_shape``, ...); :func:`load_model_file`
  reads both through the one loader (:func:`hie_core.config.upgrade_model_file`).
  ``hie-predict`` and the evaluation read it with :func:`load_model_file`.
- ``checkpoint_last.pt``, the *training checkpoint*: everything needed to resume,
  ``{"model", "optimizer", "scheduler", "epoch", ...}``, written after every epoch and
  read back with :func:`load_training_checkpoint`.

Both are written by :func:`save_checkpoint` (a temporary file in the same folder, then a
rename, so a killed process leaves the old file or the new one, never half a file) and
read with ``torch.load(..., weights_only=True)``, which never runs code from the file.
Every problem a user can meet (missing, empty, truncated or corrupt file, the wrong kind
of file, a file that is not ours) raises :class:`CheckpointError`, whose message names
the file and says what to do.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hie_core.config import CONFIG_VERSION, jsonable, upgrade_model_file
from hie_core.config.schema import FieldError
from hie_core.errors import UserError
from hie_core.io import atomic_write_bytes
from hie_core.model import ARCH_LABELS, build_model

__all__ = [
    "MODEL_FILE",
    "TRAINING_CHECKPOINT",
    "model_file_payload",
    "TRAINING_KEYS",
    "CheckpointError",
    "save_checkpoint",
    "load_model_file",
    "load_training_checkpoint",
]

#: file name of the best weights of a run (the model file)
MODEL_FILE = "model_best.pt"
#: file name of the resumable training state of a run
TRAINING_CHECKPOINT = "checkpoint_last.pt"
#: keys every training checkpoint has
TRAINING_KEYS = ("model", "optimizer", "scheduler", "epoch")


class CheckpointError(UserError, ValueError):
    """A checkpoint file cannot be used; the message names the file and what to do."""


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """``torch.save(payload)`` to ``path`` atomically (temporary file, fsync, rename).

    Args:
        path: destination; its folder is created if needed.
        payload: a model-file or training-checkpoint dict of tensors, numbers, strings,
            lists and dicts (what ``torch.load(weights_only=True)`` can read back).

    Returns:
        ``path``.
    """
    buffer = io.BytesIO()
    torch.save(dict(payload), buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message, at most 120 characters."""
    text = str(exc).strip()
    line = text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(exc).__name__
    return line if len(line) <= 120 else line[:117] + "..."


def _read(path: Path, device: str | torch.device, what: str, remedy: str, where: str) -> dict:
    """``torch.load`` one checkpoint file; every failure becomes a :class:`CheckpointError`.

    ``remedy`` says what to do with a damaged file, ``where`` where the right file is.
    """
    if not path.exists():
        raise CheckpointError(f"{path}: {what} not found; {where}")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a {what}; {where}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: {what} is empty (0 bytes), probably cut off while copying; {remedy}")
    try:
        with warnings.catch_warnings():  # a pickle that is not ours: the error below says it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location=device, weights_only=True)
    except PermissionError:
        raise CheckpointError(f"{path}: cannot read the {what} (permission denied)") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: not a {what} written by hie_core (unreadable as a weights-only PyTorch file); {remedy}"
        ) from None
    except (RuntimeError, OSError) as exc:  # the zip reader, a cut-off file
        raise CheckpointError(
            f"{path}: {what} is truncated or corrupt ({_first_line(exc)}); {remedy}"
        ) from None
    except (EOFError, ValueError, IndexError, KeyError, AttributeError, TypeError):  # the unpickler
        raise CheckpointError(
            f"{path}: {what} is truncated or corrupt, or not a PyTorch file; {remedy}"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"{path}: not a {what} written by hie_core (it holds a {type(payload).__name__}); {remedy}"
        )
    return payload


def model_file_payload(state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any], arch_options: dict,
                       epoch: int, in_channels: int = 2) -> dict:  # fmt: skip
    """What a model file holds: the weights (moved to the CPU) and the run's whole configuration.

    Args:
        state_dict: the network's weights.
        config: every field of the run's configuration (``TrainConfig.to_dict()``).
        arch_options: the network's derived settings (:func:`hie_core.model.arch_options`).
        epoch: the epoch the weights are from.
        in_channels: maps the network takes (2: ADC, ZADC).
    """
    return {"state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "config": jsonable(config),
            "config_version": CONFIG_VERSION, "in_channels": in_channels, "arch_options": dict(arch_options),
            "epoch": epoch}  # fmt: skip


def _check_model_payload(path: Path, payload: dict) -> dict:
    """The payload's configuration (upgraded); a :class:`CheckpointError` naming the file where it is not a model file."""
    if all(k in payload for k in ("model", "optimizer")):
        sibling = path.with_name(MODEL_FILE)
        hint = f"pass {sibling}" if sibling != path and sibling.is_file() else f"pass the run's {MODEL_FILE}"
        raise CheckpointError(f"{path}: this is a training checkpoint ({TRAINING_CHECKPOINT}); {hint}")
    required = ("state_dict", "widths", "in_channels", "target_shape")
    if "config" in payload:
        required = ("state_dict", "in_channels")
    missing = [k for k in required if k not in payload]
    if missing:
        raise CheckpointError(
            f"{path}: not a model file written by hie_core (missing {', '.join(missing)}); "
            f"pass the {MODEL_FILE} of a training run"
        )
    bad = []
    channels = payload["in_channels"]
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        bad.append(f"in_channels {channels!r}")
    if not isinstance(payload.get("arch_options", {}), dict):
        bad.append(f"arch_options {payload['arch_options']!r}")
    if not isinstance(payload["state_dict"], dict):
        bad.append(f"state_dict of type {type(payload['state_dict']).__name__}")
    try:
        config = upgrade_model_file(payload)
    except FieldError as exc:
        bad.append(f"{exc.field} {exc.value!r} (it must be {exc.what})")
        config = {}
    if bad:
        raise CheckpointError(
            f"{path}: model file has invalid {'; '.join(bad)}; pass the {MODEL_FILE} of a training run"
        )
    return config


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Load a ``model_best.pt`` (weights only) and rebuild its network.

    Args:
        path: the model file of a training run, of any version (see the module docstring).
        device: where the weights go (``"cpu"``, ``"cuda"``, ...).

    Returns:
        ``(model, meta)``: the network of the file's ``arch`` (:func:`hie_core.model.build_model`)
        ``(in_channels -> 1 logit)`` in eval mode on ``device``, and ``meta``: every field of the
        run's configuration, upgraded by :func:`hie_core.config.upgrade_model_file` (a file from
        before the schema's version 2 holds only the fields that rebuild and run the network; the
        others are at the schema's defaults; ``loss`` is None where the file has none), with
        ``in_channels``, ``arch_options``, ``epoch`` (None where absent), ``config_version`` (the
        file's, 1 for the old format) and ``config`` (the fields as a dict). Shapes are (D, H, W)
        tuples.

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupt, a training
            checkpoint, not written by hie_core, or its weights do not fit the network
            it describes. The message names the file and what to pass instead.
    """
    path = Path(path)
    where = f"pass the {MODEL_FILE} of a finished training run"
    payload = _read(path, device, "model file", where, where)
    config = _check_model_payload(path, payload)
    arch, widths = config["arch"], config["widths"]
    options = payload.get("arch_options", {})
    try:
        model = build_model(arch, payload["in_channels"], widths, config["dropout"], config["norm"], options=options)
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the weights do not fit a {ARCH_LABELS[arch]} with widths {list(widths)} "
            f"({_first_line(exc)}); the file is damaged or was not written by hie_core"
        ) from None
    model.to(device).eval()
    old = "config" not in payload
    meta = {**config, "loss": None if old and payload.get("loss") is None else config["loss"],
            "in_channels": payload["in_channels"], "arch_options": options, "epoch": payload.get("epoch"),
            "config_version": payload.get("config_version", 1), "config": dict(config)}  # fmt: skip
    return model, meta


def load_training_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """Load a ``checkpoint_last.pt`` to resume a run.

    Args:
        path: the training checkpoint of a run folder.
        device: where its tensors go.

    Returns:
        dict: what the trainer saved: the ``model``, ``optimizer`` and ``scheduler`` state
        dicts, ``epoch`` (the last finished epoch, >= 0) and the rest of its state.

    Raises:
        CheckpointError: the file is missing, empty, truncated, corrupt, a model file or
            not ours; the message names the file and says how to restart the run.
    """
    path = Path(path)
    remedy = f"delete {path} to restart this run from epoch 0, or delete the run folder"
    payload = _read(
        path, device, "training checkpoint", remedy, f"it is written after each epoch into {path.parent}"
    )
    if "state_dict" in payload and "model" not in payload:
        raise CheckpointError(
            f"{path}: this is a model file ({MODEL_FILE}), not a training checkpoint; {remedy}"
        )
    missing = [k for k in TRAINING_KEYS if k not in payload]
    if missing:
        raise CheckpointError(
            f"{path}: not a training checkpoint written by hie_core (missing {', '.join(missing)}); {remedy}"
        )
    epoch = payload["epoch"]
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise CheckpointError(f"{path}: training checkpoint has an invalid epoch {epoch!r}; {remedy}")
    return payload
