"""Run configuration: the seed protocol, the quick CPU preset, and provenance.

A run is fully described by a frozen :class:`TrainConfig`, written to ``config.json``
beside its results. :func:`make_config` builds one from the notebook's parameters:
``preset="auto"`` means ``"seed"`` where CUDA is available and ``"quick"`` otherwise,
and every explicitly given parameter overrides the preset.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hie_core.losses import LOSS_NAMES

__all__ = ["PRESETS", "TrainConfig", "make_config", "resolve_device", "provenance"]

#: The seed study's protocol (DESIGN §2) and a CPU-sized variant of it.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {
        "epochs": 100,
        "patience": 10,
        "batch_size": 4,
        "target_shape": (32, 192, 192),
        "widths": (32, 64, 128, 256),
        "synthetic_preset": "full",
    },
    # A CPU run of a minute or two: a quarter of the channels on a coarser grid, on the
    # small synthetic set. Same optimiser, schedule, augmentations and losses.
    "quick": {
        "epochs": 15,
        "patience": 6,
        "batch_size": 2,
        "target_shape": (16, 64, 64),
        "widths": (8, 16, 32, 64),
        "synthetic_preset": "small",
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (units in the names where they have one).

    Attributes:
        loss: one of :data:`hie_core.losses.LOSS_NAMES`.
        data_dir: a BONBID-HIE folder; ``""`` means the embedded synthetic dataset.
        synthetic_preset: which synthetic set (``"small"`` or ``"full"``) when ``data_dir`` is empty.
        output_dir: the run folder.
        preset: the resolved preset name (``"seed"`` or ``"quick"``).
        epochs, patience: at most ``epochs``; stop after ``patience`` epochs without a
            better selection-set Dice.
        batch_size, lr, weight_decay: AdamW settings (seed: 4, 1e-3, 1e-3).
        lr_decay: exponential learning-rate decay per epoch (0.9).
        l1: weight of the L1 penalty on the convolution weights (sum of absolute values).
        grad_clip: gradient-norm clipping threshold.
        augment: augmentation back end ``"torchio"``, ``"gpu"`` or ``"none"``.
        seed: seeds the selection split, the weights, the batch order and augmentation.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (``"auto"`` is resolved before this).
        target_shape: preprocessing grid (D, H, W).
        widths: U-Net channel widths.
        selection_fraction: share of the training split held out for early stopping.
        num_workers: DataLoader workers (TorchIO augmentation runs there).
        amp: bf16 autocast (on CUDA).
        compile: ``torch.compile`` the model in the device-resident training path
            (:mod:`hie_core.training.step`, used when ``augment`` is ``"gpu"`` or ``"none"``).
        prior_probability: initial lesion probability of the untrained network (output
            bias ``logit(p)``, Lin et al. 2017); lesions are about 1% of the brain. Without
            it the Dice-type losses start from "lesion everywhere" and need many more steps.
    """

    loss: str = "tversky_hdt"
    data_dir: str = ""
    synthetic_preset: str = "small"
    output_dir: str = "runs/default"
    preset: str = "quick"
    epochs: int = 100
    patience: int = 10
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-3
    lr_decay: float = 0.9
    l1: float = 1e-4
    grad_clip: float = 1.0
    augment: str = "torchio"
    seed: int = 0
    device: str = "cpu"
    target_shape: tuple[int, int, int] = (32, 192, 192)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    selection_fraction: float = 0.2
    num_workers: int = 0
    amp: bool = False
    compile: bool = False
    prior_probability: float = 0.01

    def __post_init__(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss {self.loss!r}; valid: {', '.join(LOSS_NAMES)}")
        if self.augment not in ("torchio", "gpu", "none"):
            raise ValueError(f"augment must be 'torchio', 'gpu' or 'none', got {self.augment!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        for name in ("epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if any(s % 8 for s in self.target_shape):
            raise ValueError(f"target_shape {self.target_shape} must be divisible by 8 (three 2x poolings)")
        object.__setattr__(self, "target_shape", tuple(int(s) for s in self.target_shape))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))

    @property
    def synthetic(self) -> bool:
        return not self.data_dir

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["target_shape"] = list(self.target_shape)
        d["widths"] = list(self.widths)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; other values are checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return device


def make_config(preset: str = "auto", device: str = "auto", **overrides: Any) -> TrainConfig:
    """Build a run configuration from a preset plus explicit overrides.

    Args:
        preset: ``"seed"``, ``"quick"`` or ``"auto"`` (seed with CUDA, quick without).
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        **overrides: any :class:`TrainConfig` field; ``None`` values mean "use the preset".

    Returns:
        The frozen configuration, with ``preset`` and ``device`` resolved.
    """
    device = resolve_device(device)
    if preset == "auto":
        preset = "seed" if device.startswith("cuda") else "quick"
    if preset not in PRESETS:
        raise ValueError(f"preset must be 'auto', 'seed' or 'quick', got {preset!r}")
    values: dict[str, Any] = dict(PRESETS[preset])
    cuda = device.startswith("cuda")
    values.update(amp=cuda, compile=cuda, num_workers=0)
    values["augment"] = "gpu" if cuda else "torchio"
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(preset=preset, device=device, **values)


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: str) -> dict[str, Any]:
    """Where and with what a run ran: git commit, package versions, device name."""
    import importlib.metadata as md

    import torch

    versions = {}
    for pkg in ("torch", "monai", "torchio", "numpy", "scipy", "SimpleITK", "edt", "hie-core"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    if device.startswith("cuda"):
        device_name = torch.cuda.get_device_name(torch.device(device))
    else:
        device_name = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "device_name": device_name,
    }
