"""Run configuration: the frozen :class:`TrainConfig`, built from a preset, and a run's provenance.

The fields, their defaults, choices and ranges are the schema's (:mod:`hie_core.config.schema`),
and the presets are data (:mod:`hie_core.config.presets`: ``seed``, the seed study's protocol;
``quick``, the CPU preset; ``native``, patches at about the scans' own resolution). This module
adds the rules between fields and the frozen class. :func:`make_config` builds one from the
notebook's parameters: ``preset="auto"`` means ``"seed"`` where CUDA is available and
``"quick"`` otherwise, and every explicitly given parameter overrides the preset. Every field is
checked when the configuration is built, so a wrong notebook parameter (``-p lr abc``,
``-p epochs 1.5``) fails at once with a :class:`~hie_core.errors.ConfigError` that names it.
A stored configuration of any version is read with ``TrainConfig.from_dict``, through the
one loader (:func:`hie_core.config.upgrade_config`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
import subprocess
from pathlib import Path
from typing import Any

from hie_core.config import (
    FIELD_NAMES,
    FIELDS,
    PRESET_NAMES,
    check_value,
    fingerprint_settings,
    jsonable,
    preset_settings,
    preset_values,
    resolve_preset_name,
    section_fields,
    upgrade_config,
)
from hie_core.config import PRESETS as _PRESET_DATA
from hie_core.config.schema import MAX_SYNTHETIC_TEST_CASES, Field
from hie_core.errors import ConfigError
from hie_core.losses import check_loss_name, custom_loss_digest, is_custom_loss
from hie_core.model import DIVISOR, check_arch
from hie_core.preprocess import PREPROCESS_VERSION, Grid

__all__ = [
    "PRESETS",
    "PRESET_NAMES",
    "MAX_SYNTHETIC_TEST_CASES",
    "TrainConfig",
    "make_config",
    "resolve_device",
    "provenance",
    "code_fingerprint",
    "run_fingerprint",
    "axes_tuple",
]

#: Each preset's own values, inherited ones included (:func:`hie_core.config.preset_settings`); the
#: presets themselves are data in :mod:`hie_core.config.presets`.
PRESETS: dict[str, dict[str, Any]] = {name: preset_settings(name) for name in _PRESET_DATA}


class _Rules:
    """The rules between fields and the methods of :class:`TrainConfig` (its fields are the schema's)."""

    def __post_init__(self) -> None:
        for field in FIELDS:
            object.__setattr__(self, field.name, check_value(field.name, getattr(self, field.name)))
        if self.preset not in PRESETS:
            raise ConfigError(f"preset must be one of {', '.join(PRESETS)}; got {self.preset!r}")
        check_loss_name(self.loss)
        if self.tversky_alpha == self.tversky_beta == 0:
            raise ConfigError("tversky_alpha and tversky_beta must not both be 0")
        self._check_design()
        self._check_grid()

    def _check_grid(self) -> None:
        if (self.target_shape is None) == (self.target_spacing_mm is None):
            raise ConfigError(
                "give exactly one of target_shape and target_spacing_mm (the preprocessing grid)"
            )
        multiple = [n for n in ("target_shape", "patch_shape")
                    if getattr(self, n) and any(s % DIVISOR for s in getattr(self, n))]  # fmt: skip
        if multiple:
            raise ConfigError(
                f"{multiple[0]} {getattr(self, multiple[0])} must be divisible by {DIVISOR} (three 2x poolings)"
            )
        if self.target_spacing_mm is not None and self.patch_shape is None:
            raise ConfigError(
                "a fixed-spacing grid (target_spacing_mm) needs a patch_shape: its volumes differ in shape"
            )
        window = self.patch_shape or self.target_shape
        if self.norm == "instance" and window and math.prod(s // DIVISOR for s in window) < 2:
            raise ConfigError(f"norm 'instance' needs a bottleneck of at least 2 voxels; {window} / {DIVISOR} "
                              "leaves one: use a larger patch_shape, or norm='batch'")  # fmt: skip
        check_arch(self.arch, self.widths, window, self.target_spacing_mm, self.norm)  # each network's own sizes
        if (
            self.patch_shape
            and self.target_shape
            and any(p > s for p, s in zip(self.patch_shape, self.target_shape, strict=True))
        ):
            raise ConfigError(
                f"patch_shape {self.patch_shape} is larger than target_shape {self.target_shape}"
            )

    def _check_design(self) -> None:
        """Cross-validation fold and synthetic test count (see the schema's fields)."""
        if self.folds == 1:
            raise ConfigError(f"folds must be 0 (no cross-validation) or at least 2, got {self.folds}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise ConfigError(f"fold must be in 0..{self.folds - 1} with folds {self.folds}, got {self.fold}")
        if not self.folds and self.fold != 0:
            raise ConfigError(f"fold {self.fold} needs folds (cross-validation); with folds 0 it must be 0")
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

    def section(self, name: str) -> dict[str, Any]:
        """The values of one section of the schema (``"loss"``, ``"inference"``, ...)."""
        return {f.name: getattr(self, f.name) for f in section_fields(name)}

    def to_dict(self) -> dict[str, Any]:
        """Every field, tuples as lists (what ``config.json`` holds)."""
        return jsonable(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A stored configuration of any version (:func:`hie_core.config.upgrade_config`)."""
        return cls(**upgrade_config(d))


def _doc_line(field: Field) -> str:
    unit = f", in {field.unit}" if field.unit else ""
    rng = f"; {field.describe_range()}" if field.describe_range() else ""
    return f"    {field.name} ({field.section}): {field.label}{unit}{rng}; default {field.default!r}."


#: Every setting of one training run: the schema's fields (``hie_core.config.FIELDS``), frozen.
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [(f.name, Any, dataclasses.field(default=f.default)) for f in FIELDS],
    bases=(_Rules,),
    frozen=True,
)
TrainConfig.__module__ = __name__
TrainConfig.__doc__ = (
    "Every setting of one training run, checked against the schema (:mod:`hie_core.config.schema`).\n\n"
    "Attributes:\n" + "\n".join("    " + _doc_line(f) for f in FIELDS) + "\n"
)


def axes_tuple(name: str, value: Any) -> tuple[int, ...]:
    """Distinct spatial axes (0 = D, 1 = H, 2 = W) in increasing order; ``""`` or ``"none"`` = none.

    Checked as the schema's ``mirror_axes``; the message names ``name``.

    Raises:
        hie_core.errors.ConfigError: anything else, naming ``name``.
    """
    try:
        return check_value("mirror_axes", value)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("mirror_axes", name, 1)) from None


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
        **overrides: any field of the schema; ``None`` values mean "use the preset",
            the text ``"none"`` sets a field that may be None to None (``patch_shape="none"``: whole
            volumes; ``steps_per_epoch="none"``: one pass over the cases per epoch).
            Setting ``target_shape`` clears the preset's ``target_spacing_mm`` and vice versa.

    Returns:
        The frozen configuration, with ``preset`` and ``device`` resolved.

    Raises:
        hie_core.errors.ConfigError: an unknown preset or field, or a value of the wrong type.
    """
    device = resolve_device(device)
    preset = resolve_preset_name(preset, device)
    unknown = sorted(set(overrides) - set(FIELD_NAMES))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(FIELD_NAMES))}"
        )
    values = preset_values(preset, device)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "target_shape" in given:
        values["target_spacing_mm"] = None
    if "target_spacing_mm" in given:
        values["target_shape"] = None
    values.update(given, preset=preset, device=device)
    return TrainConfig(**values)


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

    The configuration part is :func:`hie_core.config.fingerprint_settings`: it leaves out the
    fields that cannot change results (where the run is written, on which device, the data
    folder's path: the data are compared by their fingerprint, ``config.json``'s
    ``data_fingerprint``) and the fields added to the schema after its first version while at
    their default (so runs written before they existed keep their hash); the device type is
    kept. With a researcher's own loss (``package.module:Name``) it includes its module's source
    (:func:`hie_core.losses.custom_loss_digest`), which ``hie_core`` does not hold.
    """
    settings = fingerprint_settings(config.to_dict())
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
