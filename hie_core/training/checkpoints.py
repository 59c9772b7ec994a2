"""The two checkpoint files of a training run: saved atomically, loaded with clear errors.

A run folder holds two kinds of PyTorch file:

- ``model_best.pt``, the *model file*: the weights with the best selection Dice and what
  is needed to rebuild the network, ``{"state_dict", "widths", "in_channels",
  "target_shape", "loss", "epoch"}`` (newer runs add ``"patch_shape"`` and
  ``"target_spacing_mm"``, which may be ``None`` or absent, and ``"arch"`` with
  ``"arch_options"``, the network and its derived settings
  (:func:`hie_core.model.arch_options`); a file without ``"arch"`` holds the seed's U-Net).
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from hie_core.errors import ConfigError, UserError
from hie_core.io import atomic_write_bytes
from hie_core.model import ARCH_LABELS, ARCHS, NORMS, build_model
from hie_core.preprocess import ZADC_NORMS
from hie_core.training.config import axes_tuple

__all__ = [
    "MODEL_FILE",
    "TRAINING_CHECKPOINT",
    "MODEL_KEYS",
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
#: keys every model file has (``loss``, ``epoch``, ``patch_shape``, ``target_spacing_mm`` are optional)
MODEL_KEYS = ("state_dict", "widths", "in_channels", "target_shape")
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


def _positive_ints(value: Any, n: int | None = None) -> bool:
    if not isinstance(value, Sequence) or isinstance(value, str) or (n is not None and len(value) != n):
        return False
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def _check_model_payload(path: Path, payload: dict) -> None:
    if all(k in payload for k in ("model", "optimizer")):
        sibling = path.with_name(MODEL_FILE)
        hint = f"pass {sibling}" if sibling != path and sibling.is_file() else f"pass the run's {MODEL_FILE}"
        raise CheckpointError(f"{path}: this is a training checkpoint ({TRAINING_CHECKPOINT}); {hint}")
    missing = [k for k in MODEL_KEYS if k not in payload]
    if missing:
        raise CheckpointError(
            f"{path}: not a model file written by hie_core (missing {', '.join(missing)}); "
            f"pass the {MODEL_FILE} of a training run"
        )
    bad = []
    if not _positive_ints(payload["widths"], 4):
        bad.append(f"widths {payload['widths']!r}")
    if not _positive_ints([payload["in_channels"]]):
        bad.append(f"in_channels {payload['in_channels']!r}")
    spacing = payload.get("target_spacing_mm")
    if spacing is None and not _positive_ints(payload["target_shape"], 3):
        bad.append(f"target_shape {payload['target_shape']!r}")
    if spacing is not None and not (
        isinstance(spacing, Sequence)
        and len(spacing) == 3
        and all(isinstance(s, (int, float)) and s > 0 for s in spacing)
    ):
        bad.append(f"target_spacing_mm {spacing!r}")
    if payload.get("patch_shape") is not None and not _positive_ints(payload["patch_shape"], 3):
        bad.append(f"patch_shape {payload['patch_shape']!r}")
    if not isinstance(payload.get("arch_options", {}), dict):
        bad.append(f"arch_options {payload['arch_options']!r}")
    if not isinstance(payload["state_dict"], dict):
        bad.append(f"state_dict of type {type(payload['state_dict']).__name__}")
    if bad:
        raise CheckpointError(
            f"{path}: model file has invalid {'; '.join(bad)}; pass the {MODEL_FILE} of a training run"
        )


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Load a ``model_best.pt`` (weights only) and rebuild its network.

    Args:
        path: the model file of a training run.
        device: where the weights go (``"cpu"``, ``"cuda"``, ...).

    Returns:
        ``(model, meta)``: the network of the file's ``arch`` (:func:`hie_core.model.build_model`;
        ``"unet3d"`` for files from before the option) ``(in_channels -> 1 logit)`` in
        eval mode on ``device``, and the file's other entries (``arch``, ``widths``, ``in_channels``,
        ``target_shape``, and ``loss``, ``epoch``, ``patch_shape``, ``target_spacing_mm``
        where present; absent optional keys are ``None``). Shapes are (D, H, W) tuples.

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupt, a training
            checkpoint, not written by hie_core, or its weights do not fit the network
            it describes. The message names the file and what to pass instead.
    """
    path = Path(path)
    where = f"pass the {MODEL_FILE} of a finished training run"
    payload = _read(path, device, "model file", where, where)
    _check_model_payload(path, payload)
    widths = tuple(payload["widths"])
    # Files from before an option get its default (the seed's choice).
    options = {"norm": (NORMS, "batch"), "zadc_norm": (ZADC_NORMS, "volume"), "arch": (ARCHS, "unet3d")}
    for key, (choices, default) in options.items():
        value = payload.setdefault(key, default)
        if value not in choices:
            raise CheckpointError(
                f"{path}: model file has an unknown {key} {value!r}; pass the {MODEL_FILE} of a training run"
            )
    arch = payload["arch"]
    try:
        model = build_model(arch, payload["in_channels"], widths, norm=payload["norm"],
                            options=payload.setdefault("arch_options", {}))  # fmt: skip
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: the weights do not fit a {ARCH_LABELS[arch]} with widths {list(widths)} "
            f"({_first_line(exc)}); the file is damaged or was not written by hie_core"
        ) from None
    model.to(device).eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    for key in ("loss", "epoch", "patch_shape", "target_spacing_mm"):
        meta.setdefault(key, None)
    meta.setdefault("sw_overlap", 0.5)
    try:  # files from before the option: no mirroring, as they were made
        meta["mirror_axes"] = axes_tuple("mirror_axes", meta.setdefault("mirror_axes", []))
    except ConfigError:
        raise CheckpointError(
            f"{path}: model file has invalid mirror_axes {meta['mirror_axes']!r}; pass the {MODEL_FILE} of a "
            "training run"
        ) from None
    for key in ("widths", "target_shape", "patch_shape", "target_spacing_mm"):
        if meta[key] is not None:
            meta[key] = tuple(meta[key])
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
