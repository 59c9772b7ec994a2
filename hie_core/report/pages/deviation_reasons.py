"""Why a study's settings differ from the seed study's: the seed's protocol and the reasons.

:data:`SEED_PROTOCOL` holds the ``seed`` preset's values of the fields the seed study describes
(None where it does not describe one); the reasons (:func:`early_stopping_words`,
:func:`preset_choice`, and the per-field reason of the rows of :mod:`hie_core.report.pages.deviations`) are
computed from the configuration where they depend on it, so they stay true when a preset changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hie_core.config import PRESETS, preset_settings, preset_values

__all__ = ["SEED_PROTOCOL", "CEILING_WORDS", "early_stopping_words", "preset_choice"]

#: Fields of the seed study's protocol (arXiv:2502.09148 and its code) that it does not describe.
_NOT_DESCRIBED = ("foreground_fraction",)
#: The seed study's settings as it describes them: the ``seed`` preset on the seed's set-up (a CPU's
#: TorchIO augmentation, float32); None = not described.
SEED_PROTOCOL: dict[str, Any] = {
    k: None if k in _NOT_DESCRIBED else v
    for k, v in preset_values("seed", "cpu").items()
    if k in ("target_shape", "batch_size", "lr", "weight_decay", "lr_decay", "l1", "grad_clip", "epochs", "patience",
             "augment", "amp", "compile", "patch_shape", "foreground_fraction", "steps_per_epoch",
             "target_spacing_mm", "norm", "zadc_norm", "mirror_axes")
}  # fmt: skip
#: What the resampling ceiling is, wherever a reason mentions it.
CEILING_WORDS = (
    "the resampling ceiling on the Results page (each reference label sent to the grid and back) shows roughly "
    "what the grid alone costs: an approximate bound for networks trained on that grid, not for every method (the "
    "ZADC < -2 baseline, scored on the native grid, can beat it on a case)"
)
_WHY = {
    "target_shape": "a grid the machine can train on in the time given; " + CEILING_WORDS,
    "batch_size": "fits the preset's memory and time budget",
    "lr_decay": "set by the preset for its shorter schedule (hie_core.config.presets)",
    "weight_decay": "set by the preset (hie_core.config.presets)",
    "grad_clip": "set by the preset (hie_core.config.presets)",
    "augment": "same five transforms and parameter ranges, drawn for a whole batch at once on the training device "
    "(TorchIO per sample costs about 1 s per case on a CPU core)",
    "amp": "bf16 autocast on the GPU: about 3x the throughput; the losses are computed in float32",
    "compile": "torch.compile: the same arithmetic in fused kernels (float results differ in the last bits)",
    "patch_shape": "a patch of a finer grid costs what a whole coarse volume does (the quick preset, on a CPU); "
    "patches keep the scans' resolution within one GPU's memory (the native preset)",
    "norm": "BatchNorm's running averages over small batches of lesion-centred patches made evaluation swing by up "
    "to 0.5 Dice from one checkpoint to the next; InstanceNorm (nnU-Net's choice) normalises each patch by its own "
    "statistics",
    "foreground_fraction": "patches are centred on a lesion this often, so rare lesions are seen",
    "zadc_norm": "ZADC is already a z-score against a normative atlas, so -2 means the same in every scan; z-scored "
    "again per volume, its lesion values shrink in scans with a large lesion burden (their sd grows), and those "
    "lesions were under-segmented",
    "mirror_axes": "nnU-Net's default: a neonatal brain is nearly left-right symmetric, so a mirrored scan is a "
    "plausible scan, and the average over mirror images evens out direction-dependent errors",
}
#: Settings whose value was chosen by measurement with the quick preset on the synthetic test split
#: (benchmarks/README.md), and checked on the development set where benchmarks/results/quick_preset_dev.json
#: says so; the native preset took over the first three by the same argument.
_MEASURED_ON_QUICK = ("norm", "zadc_norm", "mirror_axes", "lr")
#: The preset settings chosen by comparing variants on the synthetic test split, in words.
_TUNED = {"zadc_norm": "ZADC scaling", "mirror_axes": "mirroring", "norm": "normalisation", "lr": "learning rate",
          "epochs": "epochs", "patience": "patience"}  # fmt: skip


def early_stopping_words(config: Mapping[str, Any]) -> str:
    """What early stopping can do with ``config``'s epochs and patience, in words.

    The first epoch always sets the best selection Dice, so after epoch ``e`` at most ``e - 1``
    epochs have passed without a better one: a patience of ``epochs - 1`` or more can never end
    a run before its last epoch.
    """
    epochs = int(config.get("epochs", SEED_PROTOCOL["epochs"]))
    patience = int(config.get("patience", SEED_PROTOCOL["patience"]))
    if patience >= epochs - 1:
        return (f"with a patience of {patience} in {epochs} epochs, early stopping cannot end a run before its last "
                f"epoch: every run trains all {epochs} epochs, and the epoch with the best selection Dice is kept")  # fmt: skip
    return (f"a run stops after {patience} epochs without a better selection Dice (at most {epochs} epochs), and "
            "the epoch with the best selection Dice is kept")  # fmt: skip


def preset_choice(config: Mapping[str, Any], synthetic: bool | None = None) -> tuple[str, str] | None:
    """How the run's preset was chosen, and what that means for its numbers: ``(what, why)``.

    ``None`` when the configuration names no known preset. The quick preset's settings were
    chosen by comparing variants scored on the synthetic test split (generator seed 0) that a
    synthetic study reports, then checked on the development set (generator seed 1) where
    ``benchmarks/results/quick_preset_dev.json`` holds that check (:mod:`hie_core.report.pages.preset_dev`);
    the native preset took them over from the quick one (benchmarks/README.md).
    """
    preset = config.get("preset")
    if preset == "seed":
        return "the seed's own protocol", "a reproduction takes the seed's settings as it describes them"
    if preset not in ("quick", "native"):
        return None
    tuned = [
        name
        for field, name in _TUNED.items()
        if field in config and not _same(config[field], SEED_PROTOCOL[field])
    ]
    from hie_core.report.pages.preset_dev import DEV_RESULTS, dev_check, dev_check_words

    settings = f"settings ({', '.join(tuned)})" if tuned else "settings"
    split = ("the synthetic test split (generator seed 0), not these data" if synthetic is False
             else "the synthetic test split that the book reports")  # fmt: skip
    checked = dev_check_words(dev_check())
    again = (
        f", then checked on a development set that no reported split touches ({DEV_RESULTS.as_posix()})"
        if checked
        else ""
    )
    if preset == "quick":
        what = f"{settings} chosen by measurement on {split} (benchmarks/README.md){again}"
    else:
        what = (f"{settings} taken over from the quick preset, where they were chosen by measurement on {split} "
                f"(benchmarks/README.md){again}; not re-measured on this grid")  # fmt: skip
    if synthetic is False:
        why = "chosen on other cases than those reported here, so they do not flatter these numbers"
        return what, why + (f". {checked}" if checked else "")
    if checked:
        why = (f"{checked} Settings that were not checked again may still flatter the preset slightly: the cases that "
               "chose them are among those it is scored on")  # fmt: skip
    else:
        why = ("this flatters the preset slightly: the cases that chose its settings are among those it is scored on; "
               "tuning now uses a development set of another generator seed (benchmarks/quick_preset.py), on which "
               "these settings have not been checked yet")  # fmt: skip
    return what, why


def _measured(field: str, config: Mapping[str, Any]) -> str:
    """Where a reason was measured: on this (quick) preset, or on the quick preset and taken over."""
    quick = preset_settings("quick")
    if (field not in _MEASURED_ON_QUICK or config.get("preset") not in ("quick", "native")
            or not _same(config.get(field), quick.get(field))):  # fmt: skip
        return ""
    if config.get("preset") == "quick":
        return " (measured on the quick preset: benchmarks/README.md)"
    return " (measured on the quick preset, benchmarks/README.md; taken over by the same argument, not measured here)"


#: Settings whose reason is "set by the preset": true only where the preset sets that value.
_SET_BY_PRESET = ("lr", "lr_decay", "weight_decay", "grad_clip", "batch_size")


def _from_preset(field: str, config: Mapping[str, Any]) -> bool:
    """Whether ``config[field]`` is the value its preset sets (not an override, not a default)."""
    preset = preset_settings(config["preset"]) if config.get("preset") in PRESETS else {}
    return field in preset and _same(preset[field], config.get(field))


def _why(field: str, config: Mapping[str, Any]) -> str:
    """The reason for a configuration row, computed where it depends on the configuration."""
    epochs, steps = config.get("epochs", SEED_PROTOCOL["epochs"]), config.get("steps_per_epoch")
    patch = config.get("patch_shape")
    if field == "epochs":
        budget = "the preset's time budget" if _from_preset(field, config) else "set for this study's runs"
        why = budget + (f": {epochs} epochs of {steps} optimiser steps, {int(epochs) * int(steps)} steps per run"
                        if steps else "")  # fmt: skip
    elif field == "patience":
        why = early_stopping_words(config)
    elif field in _SET_BY_PRESET and not _from_preset(field, config):
        why = "an override of the preset's value for this study's runs"
    elif field == "lr":
        why = "set by the preset for its schedule (hie_core.config.presets)"
    elif field == "target_shape" and config.get("target_shape") is None:
        why = "replaced by a fixed spacing (the target spacing row)"
    elif field == "target_spacing_mm":
        spacing = " × ".join(f"{v:g}" for v in config["target_spacing_mm"])
        why = (f"a fixed spacing of {spacing} mm (D × H × W) gives every scan one physical voxel size instead of "
               f"squeezing each into one array size; {CEILING_WORDS}")  # fmt: skip
    elif field == "steps_per_epoch":
        why = f"an epoch is a fixed number of {'patch ' if patch else ''}steps, not one pass over the training cases"
    else:
        why = _WHY.get(field, "")
    return why + _measured(field, config)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return tuple(a) == tuple(b)
    return a == b
