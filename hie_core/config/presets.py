"""Presets as data: named sets of configuration values that inherit from one another.

A preset lists only what it changes from its parent (``inherits``), as nnU-Net's plans do;
``seed`` changes the schema's defaults (the seed study's protocol, arXiv:2502.09148) only in
the synthetic dataset's size. :func:`~hie_core.config.preset_values` resolves the chain. The values a device
brings (``DEVICE_VALUES``: bf16 autocast, ``torch.compile`` and the batched augmentation
on CUDA) come before the preset's, a user's overrides after.

- ``seed``: whole 32 x 192 x 192 volumes, batch 4, at most 100 epochs of one pass over the
  training cases, patience 10.
- ``quick`` (from ``seed``): a CPU run of about a minute and a half per loss and seed, on one
  core: patches of 16 x 48 x 48 voxels of the scans resampled to a fixed 4 x 2 x 2 mm grid, two
  thirds of them centred on a lesion, a small U-Net with InstanceNorm, the batched augmentation
  back end (measured: TorchIO's elastic warp alone is about 1 s per case on a CPU) plus random
  left-right flips (predictions averaged with those of the mirrored volume), 15 epochs of 20
  steps, the best epoch kept by the selection Dice (patience 15: with 8 selection cases that
  Dice is noisy, and a patience of 6 stopped one run at epoch 10 after a best at epoch 4).
  Chosen by measurement (``benchmarks/quick_preset.py``; the numbers are in
  ``benchmarks/README.md``).
- ``native`` (from ``seed``): for GPUs: patches at a fixed spacing near the scans' own
  (2.5 x 1 x 1 mm), sliding-window prediction, left-right mirroring as in ``quick``; it removes
  the ceiling that the seed's coarse grid puts on small lesions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hie_core.config.schema import DEFAULTS, check_value
from hie_core.errors import ConfigError

__all__ = [
    "Preset",
    "PRESETS",
    "PRESET_NAMES",
    "DEVICE_VALUES",
    "preset_settings",
    "preset_values",
    "resolve_preset_name",
]


@dataclass(frozen=True)
class Preset:
    """A named set of values: its parent's (or the schema's defaults) with ``values`` changed."""

    name: str
    values: dict[str, Any] = field(default_factory=dict)
    inherits: str | None = None
    meant_for: str = ""


_PRESETS = (
    Preset("seed", {"synthetic_preset": "full"}, meant_for="a GPU: the seed study's protocol"),
    Preset(
        "quick",
        {
            "epochs": 15,
            "patience": 15,
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
            "augment": "batched",
            "synthetic_preset": "small",
        },
        inherits="seed",
        meant_for="a CPU",
    ),
    Preset(
        "native",
        {
            "target_shape": None,
            "target_spacing_mm": (2.5, 1.0, 1.0),
            "patch_shape": (32, 128, 128),
            "foreground_fraction": 0.33,
            "steps_per_epoch": 50,
            "norm": "instance",
            "zadc_norm": "atlas",
            "mirror_axes": (2,),
        },
        inherits="seed",
        meant_for="a GPU, at about the scans' own resolution",
    ),
)
#: The presets by name.
PRESETS: dict[str, Preset] = {p.name: p for p in _PRESETS}
#: What ``preset`` may be: a preset, or ``auto`` (``seed`` with CUDA, ``quick`` without).
PRESET_NAMES = ("auto", *PRESETS)
#: Values a device type brings, before the preset's (a preset or the user may change them).
DEVICE_VALUES: dict[str, dict[str, Any]] = {
    "cuda": {"amp": True, "compile": True, "augment": "batched"},
    "cpu": {},
}


def resolve_preset_name(preset: str, device: str) -> str:
    """``auto`` -> ``seed`` on CUDA, ``quick`` otherwise; another name is checked.

    Raises:
        hie_core.errors.ConfigError: not one of ``PRESET_NAMES``.
    """
    if not isinstance(preset, str) or preset not in PRESET_NAMES:
        raise ConfigError(f"preset must be one of {', '.join(PRESET_NAMES)}; got {preset!r}")
    if preset == "auto":
        return "seed" if device.startswith("cuda") else "quick"
    return preset


def _chain(name: str) -> list[Preset]:
    """The preset and its ancestors, the preset first."""
    chain, current = [], PRESETS[name]
    while True:
        chain.append(current)
        if current.inherits is None:
            return chain
        current = PRESETS[current.inherits]


def preset_settings(name: str) -> dict[str, Any]:
    """The values preset ``name`` sets itself or inherits from its parents (not the schema's defaults), checked."""
    values: dict[str, Any] = {}
    for preset in reversed(_chain(name)):
        values.update({k: check_value(k, v) for k, v in preset.values.items()})
    return values


def preset_values(name: str, device: str = "cpu") -> dict[str, Any]:
    """Every field's value under preset ``name`` on ``device``: defaults, device values, then the chain.

    Args:
        name: one of ``PRESETS`` (``auto`` is resolved first: :func:`~hie_core.config.resolve_preset_name`).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Returns:
        ``{field: value}`` for every field of the schema, ``preset`` set to ``name``.
    """
    resolved = resolve_preset_name(name, device)
    values = {**DEFAULTS, **DEVICE_VALUES["cuda" if device.startswith("cuda") else "cpu"]}
    values.update(preset_settings(resolved), preset=resolved)
    return values
