"""Run configuration: the seed protocol, the CPU preset, the native-resolution preset, provenance.

A run is fully described by a frozen :class:`TrainConfig`, written to ``config.json``
beside its results. :func:`make_config` builds one from the notebook's parameters:
``preset="auto"`` means ``"seed"`` where CUDA is available and ``"quick"`` otherwise,
and every explicitly given parameter overrides the preset. Every field is type-checked
when the configuration is built, so a wrong notebook parameter (``-p lr abc``,
``-p epochs 1.5``) fails at once with a :class:`~hie_core.errors.ConfigError` that names it.

Presets (:data:`PRESETS`):

- ``seed``: the seed study's protocol (Usman et al. 2025, arXiv:2502.09148): whole 32 x 192 x 192 volumes,
  batch 4, at most 100 epochs of one pass over the training cases, patience 10.
- ``quick``: a CPU run of about a minute and a half per loss and seed, on one core: patches
  of 16 x 48 x 48 voxels of the scans resampled to a fixed 4 x 2 x 2 mm grid, two thirds of
  them centred on a lesion, a small U-Net with InstanceNorm and ``channels_last_3d``, the
  batched augmentation back end on the CPU plus random left-right flips (predictions averaged
  with those of the mirrored volume), 15 epochs of 20 steps, the best epoch kept by
  the selection Dice (patience 15: with 8 selection cases that Dice is noisy, and a patience
  of 6 stopped one run at epoch 10 after a best at epoch 4). Chosen by measurement
  (``benchmarks/quick_preset.py``; the numbers are in ``benchmarks/README.md``).
- ``native``: for GPUs: patches at a fixed spacing near the scans' own (2.5 x 1 x 1 mm),
  sliding-window prediction, left-right mirroring as in ``quick``; it removes the ceiling
  that the seed's coarse grid puts on small lesions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hie_core.augment.config import BACKENDS
from hie_core.errors import ConfigError
from hie_core.losses import check_loss_name, custom_loss_digest, is_custom_loss
from hie_core.model import ARCHS, DEFAULT_DROPOUT, DEFAULT_WIDTHS, DIVISOR
from hie_core.preprocess import DEFAULT_TARGET_SHAPE, PREPROCESS_VERSION, ZADC_NORMS, Grid

__all__ = [
    "PRESETS",
    "PRESET_NAMES",
    "TrainConfig",
    "make_config",
    "resolve_device",
    "provenance",
    "code_fingerprint",
    "run_fingerprint",
    "axes_tuple",
    "ADDED_FIELD_DEFAULTS",
]

#: The seed study's protocol (arXiv:2502.09148), a CPU-sized preset and a native-resolution one.
PRESETS: dict[str, dict[str, Any]] = {
    "seed": {
        "epochs": 100,
        "patience": 10,
        "batch_size": 4,
        "target_shape": DEFAULT_TARGET_SHAPE,
        "widths": DEFAULT_WIDTHS,
        "synthetic_preset": "full",
    },
    "quick": {
        "epochs": 15,
        "patience": 15,
        "batch_size": 4,
        "target_shape": None,
        "target_spacing_mm": (4.0, 2.0, 2.0),
        "patch_shape": (16, 48, 48),
        "foreground_fraction": 0.67,
        "steps_per_epoch": 20,
        "widths": (8, 16, 32, 64),
        "norm": "instance",
        "zadc_norm": "atlas",
        "mirror_axes": (2,),
        "lr": 3e-3,
        "lr_decay": 0.9,
        "synthetic_preset": "small",
    },
    "native": {
        "epochs": 100,
        "patience": 10,
        "batch_size": 4,
        "target_shape": None,
        "target_spacing_mm": (2.5, 1.0, 1.0),
        "patch_shape": (32, 128, 128),
        "foreground_fraction": 0.33,
        "steps_per_epoch": 50,
        "widths": DEFAULT_WIDTHS,
        "norm": "instance",
        "zadc_norm": "atlas",
        "mirror_axes": (2,),
        "synthetic_preset": "full",
    },
}
PRESET_NAMES = ("auto", *PRESETS)

#: Fields that may be None; the text "none" sets them to None in :func:`make_config`.
_OPTIONAL = ("target_shape", "target_spacing_mm", "patch_shape", "steps_per_epoch")
_STR_FIELDS = ("loss", "data_dir", "synthetic_preset", "output_dir", "preset", "augment", "device", "norm",
               "zadc_norm", "arch")  # fmt: skip
_INT_FIELDS = (
    "epochs",
    "patience",
    "batch_size",
    "seed",
    "num_workers",
    "folds",
    "fold",
    "synthetic_test_cases",
)
_FLOAT_FIELDS = ("lr", "weight_decay", "lr_decay", "l1", "grad_clip", "selection_fraction", "prior_probability",
                 "foreground_fraction", "sw_overlap", "tversky_alpha", "tversky_beta", "focal_gamma", "hdt_alpha",
                 "hybrid_weight")  # fmt: skip
_CHOICES = {
    "augment": BACKENDS,
    "preset": tuple(PRESETS),
    "synthetic_preset": ("small", "full"),
    "zadc_norm": ZADC_NORMS,
    "arch": ARCHS,  # the network's own checks (hie_core.model.check_arch, the model's owner) go here
}
#: Fields added after runs were first written, each with the value every older run had; a
#: ``config.json`` without them, and the fingerprint, treat them as at this value (so adding
#: them changed no existing run's configuration hash).
ADDED_FIELD_DEFAULTS: dict[str, Any] = {"folds": 0, "fold": 0, "synthetic_test_cases": 0, "arch": "unet3d",
                                        "tversky_alpha": 0.3, "tversky_beta": 0.7, "focal_gamma": 2.0,
                                        "hdt_alpha": 2.0, "hybrid_weight": 0.1}  # fmt: skip
#: Most synthetic test cases (the generator's id range of the test split).
MAX_SYNTHETIC_TEST_CASES = 499


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (units in the names where they have one).

    Attributes:
        loss: one of :data:`hie_core.losses.LOSS_NAMES`, or a researcher's own loss class as
            ``package.module:Name`` (the contract: :mod:`hie_core.losses`).
        data_dir: a BONBID-HIE folder; ``""`` means the embedded synthetic dataset.
        synthetic_preset: which synthetic set (``"small"`` or ``"full"``) when ``data_dir`` is empty.
        output_dir: the run folder.
        preset: the resolved preset name (``"seed"``, ``"quick"`` or ``"native"``).
        epochs, patience: at most ``epochs``; stop after ``patience`` epochs without a
            better selection-set Dice.
        batch_size, lr, weight_decay: AdamW settings (seed: 4, 1e-3, 1e-3).
        lr_decay: exponential learning-rate decay per epoch (0.9).
        l1: weight of the L1 penalty on the weights with ``ndim > 1`` (sum of absolute values).
        grad_clip: gradient-norm clipping threshold.
        augment: augmentation back end ``"torchio"``, ``"batched"`` or ``"none"``.
        seed: seeds the selection split, the weights, the batch order, patches and augmentation.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (``"auto"`` is resolved before this).
        target_shape: preprocessing grid as a fixed array shape (D, H, W), or None.
        target_spacing_mm: preprocessing grid as a fixed voxel size (D, H, W) in mm, or None;
            exactly one of ``target_shape`` and ``target_spacing_mm`` is set.
        patch_shape: training patch (D, H, W); None trains on whole volumes (the seed's way).
            With a patch, prediction runs by sliding window over the whole volume.
        foreground_fraction: share of patches centred on a random lesion voxel (nnU-Net's
            oversampling); the rest are placed uniformly at random.
        steps_per_epoch: optimiser steps per epoch; None = one pass over the training cases.
        sw_overlap: overlap of neighbouring sliding windows at prediction (0 <= x < 1).
        widths: U-Net channel widths.
        dropout: U-Net dropout rates at encoder levels 1-3 and the bottleneck.
        norm: U-Net normalisation, ``"batch"`` (the seed's) or ``"instance"`` (for patches:
            BatchNorm's running averages over small batches of lesion-centred patches made
            evaluation swing from one epoch to the next; see ``benchmarks/quick_preset.py``).
        zadc_norm: ZADC channel scaling, ``"volume"`` (z-scored with the volume's mean and sd,
            the seed's) or ``"atlas"`` (kept as it is: a z-score against the normative atlas
            already); see :data:`hie_core.preprocess.ZADC_NORMS`.
        mirror_axes: spatial axes (0 = D, 1 = H, 2 = W) along which each training sample is
            flipped with probability 1/2, and over whose flips every reported prediction is
            averaged (nnU-Net's mirroring; W is left-right in BONBID-HIE's arrays). Empty: none
            (the seed's).
        selection_fraction: share of the training split held out for early stopping.
        num_workers: DataLoader workers (the TorchIO back end augments there).
        amp: bf16 autocast (on CUDA).
        compile: ``torch.compile`` the training step's model (on CUDA).
        prior_probability: initial lesion probability of the untrained network (output
            bias ``logit(p)``, Lin et al. 2017); lesions are about 1% of the brain. Without
            it the Dice-type losses start from "lesion everywhere" and need many more steps.
        folds, fold: cross-validation over the training and validation cases (the pool):
            ``folds`` 0 trains on the training split and reports validation and test (the
            seed's way); ``folds`` K >= 2 trains on the pool less fold ``fold`` (0 <= fold < K,
            ``hie_core.training.experiment.cv_folds``) and reports that fold (split
            ``"cv"``) and the test split.
        synthetic_test_cases: test cases of the synthetic set (``data_dir`` empty); 0 keeps
            the synthetic preset's own count. Case ``i`` does not depend on the count, so a
            larger test split starts with the default one's cases.
        arch: the network, one of :data:`hie_core.model.ARCHS` (``"unet3d"``, the seed's).
        tversky_alpha, tversky_beta: Tversky weights of false positives and false negatives
            (MONAI's ``alpha`` and ``beta``; the seed's 0.3 and 0.7).
        focal_gamma: focal loss exponent of DiceFocal (2).
        hdt_alpha: exponent of the distance fields in the Hausdorff loss (2).
        hybrid_weight: weight of the ``log(1 + HDT)`` term in the hybrid losses (0.1); the
            region loss gets ``1 - hybrid_weight``.
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
    target_shape: tuple[int, int, int] | None = DEFAULT_TARGET_SHAPE
    target_spacing_mm: tuple[float, float, float] | None = None
    patch_shape: tuple[int, int, int] | None = None
    foreground_fraction: float = 0.0
    steps_per_epoch: int | None = None
    sw_overlap: float = 0.5
    widths: tuple[int, ...] = DEFAULT_WIDTHS
    dropout: tuple[float, ...] = DEFAULT_DROPOUT
    norm: str = "batch"
    zadc_norm: str = "volume"
    selection_fraction: float = 0.2
    num_workers: int = 0
    amp: bool = False
    compile: bool = False
    prior_probability: float = 0.01
    mirror_axes: tuple[int, ...] = ()
    folds: int = 0
    fold: int = 0
    synthetic_test_cases: int = 0
    arch: str = "unet3d"
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7
    focal_gamma: float = 2.0
    hdt_alpha: float = 2.0
    hybrid_weight: float = 0.1

    def __post_init__(self) -> None:
        for name in _STR_FIELDS:
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be text, got {getattr(self, name)!r}")
        for name in _INT_FIELDS:
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        for name in ("amp", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {getattr(self, name)!r}")
        self._check_loss()
        if self.steps_per_epoch is not None:
            object.__setattr__(self, "steps_per_epoch", _as_int("steps_per_epoch", self.steps_per_epoch))
        object.__setattr__(self, "widths", _int_tuple("widths", self.widths, 4))
        object.__setattr__(self, "mirror_axes", axes_tuple("mirror_axes", self.mirror_axes))
        object.__setattr__(
            self, "dropout", _float_tuple("dropout", self.dropout, 4, "rates in [0, 1)", low=0.0, high=1.0)
        )
        for name in ("target_shape", "patch_shape"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _int_tuple(name, getattr(self, name), 3))
        if self.target_spacing_mm is not None:
            object.__setattr__(
                self, "target_spacing_mm", _float_tuple("target_spacing_mm", self.target_spacing_mm)
            )
        self._check_ranges()

    def _check_ranges(self) -> None:
        for name in ("epochs", "patience", "batch_size") + (
            ("steps_per_epoch",) if self.steps_per_epoch else ()
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps_per_epoch == 0:
            raise ConfigError("steps_per_epoch must be at least 1 (or None: one pass over the cases), got 0")
        for name in ("lr", "grad_clip", "lr_decay", "prior_probability"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("weight_decay", "l1", "num_workers", "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name, high in (("selection_fraction", 1.0), ("prior_probability", 1.0), ("sw_overlap", 1.0)):
            if not 0.0 <= getattr(self, name) < high:
                raise ConfigError(f"{name} must be in [0, {high:g}), got {getattr(self, name)}")
        self._check_design()
        if not 0.0 <= self.foreground_fraction <= 1.0:
            raise ConfigError(f"foreground_fraction must be in [0, 1], got {self.foreground_fraction}")
        if (self.target_shape is None) == (self.target_spacing_mm is None):
            raise ConfigError(
                "give exactly one of target_shape and target_spacing_mm (the preprocessing grid)"
            )
        multiple = [
            n
            for n in ("target_shape", "patch_shape")
            if getattr(self, n) and any(s % DIVISOR for s in getattr(self, n))
        ]
        if multiple:
            raise ConfigError(
                f"{multiple[0]} {getattr(self, multiple[0])} must be divisible by {DIVISOR} (three 2x poolings)"
            )
        if self.target_spacing_mm is not None and self.patch_shape is None:
            raise ConfigError(
                "a fixed-spacing grid (target_spacing_mm) needs a patch_shape: its volumes differ in shape"
            )
        window = self.patch_shape or self.target_shape
        if self.arch != "unet3d":  # the U-Net's rule is the DIVISOR check above; the others' sizes differ
            from hie_core.model import check_arch

            check_arch(self.arch, window, self.target_spacing_mm, self.norm)
        if self.norm == "instance" and window and math.prod(s // DIVISOR for s in window) < 2:
            raise ConfigError(f"norm 'instance' needs a bottleneck of at least 2 voxels; {window} / {DIVISOR} "
                              "leaves one: use a larger patch_shape, or norm='batch'")  # fmt: skip
        if (
            self.patch_shape
            and self.target_shape
            and any(p > s for p, s in zip(self.patch_shape, self.target_shape, strict=True))
        ):
            raise ConfigError(
                f"patch_shape {self.patch_shape} is larger than target_shape {self.target_shape}"
            )

    def _check_loss(self) -> None:
        """The loss name (one of the six, or a loadable ``package.module:Name``) and its settings' ranges."""
        check_loss_name(self.loss)
        if self.tversky_alpha < 0 or self.tversky_beta < 0 or self.tversky_alpha == self.tversky_beta == 0:
            raise ConfigError(f"tversky_alpha and tversky_beta must be >= 0 and not both 0, got "
                              f"{self.tversky_alpha:g} and {self.tversky_beta:g}")  # fmt: skip
        if self.focal_gamma < 0:
            raise ConfigError(f"focal_gamma must be >= 0, got {self.focal_gamma:g}")
        if not self.hdt_alpha > 0:
            raise ConfigError(f"hdt_alpha must be > 0, got {self.hdt_alpha:g}")
        if not 0.0 <= self.hybrid_weight <= 1.0:
            raise ConfigError(f"hybrid_weight must be in [0, 1] (the log(1 + HDT) term's weight), got "
                              f"{self.hybrid_weight:g}")  # fmt: skip

    def _check_design(self) -> None:
        """Cross-validation fold and synthetic test count (see the class docstring)."""
        if self.folds == 1 or self.folds < 0:
            raise ConfigError(f"folds must be 0 (no cross-validation) or at least 2, got {self.folds}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise ConfigError(f"fold must be in 0..{self.folds - 1} with folds {self.folds}, got {self.fold}")
        if not self.folds and self.fold != 0:
            raise ConfigError(f"fold {self.fold} needs folds (cross-validation); with folds 0 it must be 0")
        if not 0 <= self.synthetic_test_cases <= MAX_SYNTHETIC_TEST_CASES:
            raise ConfigError(f"synthetic_test_cases must be in 0..{MAX_SYNTHETIC_TEST_CASES} (0: the synthetic "
                              f"preset's count), got {self.synthetic_test_cases}")  # fmt: skip
        if self.synthetic_test_cases and self.data_dir:
            raise ConfigError("synthetic_test_cases applies to the synthetic dataset only (data_dir empty), "
                              f"not to data_dir {self.data_dir!r}")  # fmt: skip

    @property
    def grid(self) -> Grid:
        """The preprocessing grid (:class:`hie_core.preprocess.Grid`)."""
        return Grid(shape=self.target_shape, spacing_mm=self.target_spacing_mm)

    @property
    def synthetic(self) -> bool:
        """True when ``data_dir`` is empty (the embedded synthetic set); see also ``is_synthetic_dir``."""
        return not self.data_dir

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names})


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _parse_sequence(name: str, value: Any) -> list:
    """A list from a list/tuple, or from a string such as ``"16,64,64"``, ``"16x64x64"``, ``"[16, 64, 64]"``."""
    if isinstance(value, str):
        text = value.strip().strip("[]()").replace("x", ",").replace(" ", ",")
        return [v for v in text.split(",") if v]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{name} must be a sequence of numbers such as '16,64,64', got {value!r}")


def _int_tuple(name: str, value: Any, n: int) -> tuple[int, ...]:
    items = _parse_sequence(name, value)
    try:
        numbers_ = [float(v) if isinstance(v, str) else v for v in items]
        out = tuple(_as_int(name, v) for v in numbers_)
    except (ValueError, ConfigError):
        out = ()
    if len(out) != n or any(v < 1 for v in out):
        raise ConfigError(f"{name} must be {n} positive whole numbers, got {value!r}")
    return out


def axes_tuple(name: str, value: Any) -> tuple[int, ...]:
    """Distinct spatial axes (0 = D, 1 = H, 2 = W) in increasing order; ``""`` or ``"none"`` = none.

    Raises:
        hie_core.errors.ConfigError: anything else, naming ``name``.
    """
    if isinstance(value, str) and value.strip().lower() == "none":
        return ()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        out = tuple(
            _as_int(name, float(v) if isinstance(v, str) else v) for v in _parse_sequence(name, value)
        )
    except (ValueError, ConfigError):
        out = (-1,)
    if any(v not in (0, 1, 2) for v in out) or len(set(out)) != len(out):
        raise ConfigError(
            f"{name} must be distinct spatial axes among 0 (D), 1 (H), 2 (W), e.g. '2', got {value!r}"
        )
    return tuple(sorted(out))


def _float_tuple(
    name: str,
    value: Any,
    n: int = 3,
    what: str = "positive numbers in mm (D, H, W)",
    low: float = 0.0,
    high: float | None = None,
) -> tuple[float, ...]:
    items = _parse_sequence(name, value)
    try:
        out = tuple(_as_float(name, float(v)) for v in items)
    except (ValueError, TypeError, ConfigError):
        out = ()
    inside = all((v >= low if high is not None else v > low) and (high is None or v < high) for v in out)
    if len(out) != n or not inside:
        raise ConfigError(f"{name} must be {n} {what}, got {value!r}")
    return out


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; other values are checked."""
    import torch

    if not isinstance(device, str):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} requested but CUDA is not available; use device='cpu' or 'auto'"
        )
    return device


def make_config(preset: str = "auto", device: str = "auto", **overrides: Any) -> TrainConfig:
    """Build a run configuration from a preset plus explicit overrides.

    Args:
        preset: ``"seed"``, ``"quick"``, ``"native"`` or ``"auto"`` (seed with CUDA, quick without).
        device: ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
        **overrides: any :class:`TrainConfig` field; ``None`` values mean "use the preset",
            the text ``"none"`` sets a field to None (``patch_shape="none"``: whole volumes;
            ``steps_per_epoch="none"``: one pass over the cases per epoch).
            Setting ``target_shape`` clears the preset's ``target_spacing_mm`` and vice versa.

    Returns:
        The frozen configuration, with ``preset`` and ``device`` resolved.

    Raises:
        hie_core.errors.ConfigError: an unknown preset or field, or a value of the wrong type.
    """
    device = resolve_device(device)
    if preset not in PRESET_NAMES:
        raise ConfigError(f"preset must be one of {', '.join(PRESET_NAMES)}; got {preset!r}")
    if preset == "auto":
        preset = "seed" if device.startswith("cuda") else "quick"
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    values: dict[str, Any] = dict(PRESETS[preset])
    cuda = device.startswith("cuda")
    values.update(amp=cuda, compile=cuda, num_workers=0)
    values.setdefault("augment", "batched" if cuda else "torchio")
    given = {k: (None if k in _OPTIONAL and isinstance(v, str) and v.strip().lower() == "none" else v)
             for k, v in overrides.items() if v is not None}  # fmt: skip
    if "target_shape" in given:
        values["target_spacing_mm"] = None
    if "target_spacing_mm" in given:
        values["target_shape"] = None
    values.update(given)
    if preset == "quick" and "augment" not in given:
        values["augment"] = "batched"  # measured: TorchIO's elastic warp alone is ~1 s per case on a CPU
    return TrainConfig(preset=preset, device=device, **values)


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


#: Package modules that cannot change a trained run's numbers (reporting, the study runner,
#: the prediction command); the code fingerprint leaves them out, so editing the book does
#: not retrain every run.
_NOT_RESULTS = ("report/", "study/", "training/predict.py", "errors.py")


def code_fingerprint() -> str:
    """SHA-256 (16 hex digits) of the package sources that produce a run's numbers."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.startswith(_NOT_RESULTS):
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def run_fingerprint(config: TrainConfig) -> dict[str, Any]:
    """What must match for a finished run to be reused: code, preprocessing version, configuration.

    The configuration part leaves out where the run is written and on which device (neither
    changes what is trained, within floating point on one device type), the data folder's path
    (the data are compared by their fingerprint, ``config.json``'s ``data_fingerprint``), and the fields of
    ``ADDED_FIELD_DEFAULTS`` at their default (so runs written before they existed keep
    their hash). With a researcher's own loss (``package.module:Name``) it includes its
    module's source (:func:`hie_core.losses.custom_loss_digest`), which ``hie_core`` does not hold.
    """
    settings = {k: v for k, v in config.to_dict().items() if k not in ("output_dir", "device", "num_workers", "data_dir")
                and not (k in ADDED_FIELD_DEFAULTS and v == ADDED_FIELD_DEFAULTS[k])}  # fmt: skip  # data: by fingerprint
    settings["device_type"] = config.device.split(":")[0]
    if is_custom_loss(config.loss):  # a researcher's own loss: its module's source, as code_fingerprint's
        settings["loss_source"] = custom_loss_digest(config.loss)
    blob = json.dumps(settings, sort_keys=True).encode()
    return {"code": code_fingerprint(), "preprocess_version": PREPROCESS_VERSION,
            "config": hashlib.sha256(blob).hexdigest()[:16]}  # fmt: skip


def provenance(device: str) -> dict[str, Any]:
    """Where and with what a run ran: git commit, package versions, device, distance back end."""
    import importlib.metadata as md

    import torch

    from hie_core.distance import backend_name

    versions = {}
    for pkg in ("torch", "monai", "torchio", "numpy", "scipy", "SimpleITK", "edt", "cupy", "hie-core"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    if device.startswith("cuda"):
        device_name = torch.cuda.get_device_name(torch.device(device))
    else:
        threads = torch.get_num_threads()
        device_name = (
            f"CPU ({platform.processor() or platform.machine()}, {threads} thread{'s' * (threads != 1)})"
        )
    return {
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "device_name": device_name,
        "distance_backend": backend_name(device),
    }
