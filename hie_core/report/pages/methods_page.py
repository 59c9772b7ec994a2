"""The Methods chapter (``notebooks/methods.ipynb``): what was run, read from the code and the study.

One function per table or figure, computed from the configuration of the study's runs
(:func:`study_config`) and the code's constants, never typed by hand: the grids
(:func:`preprocessing_table`), the augmentations, the U-Net's blocks and cost, the metric rules
on toy masks and the training protocol. The diagrams are in :mod:`hie_core.report.pages.diagrams`,
the before/after preprocessing and augmentation montages in :mod:`hie_core.report.pages.methods_figures`,
the deviations from the seed study in :mod:`hie_core.report.pages.deviations`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hie_core.io import ImageGeometry
from hie_core.metrics import case_metrics
from hie_core.model import ARCH_LABELS
from hie_core.preprocess import Grid
from hie_core.report.analysis.runs import run_grid, seed_grid
from hie_core.report.analysis.study_model import load_study
from hie_core.report.pages.methods_figures import augmentation_figure, preprocessing_figure

if TYPE_CHECKING:
    from hie_core.augment import AugmentConfig
    from hie_core.preprocess import PreprocessedCase

__all__ = [
    "architectures_table", "augmentation_examples", "augmentation_figure", "augmentation_table", "metric_rules_table",
    "mirroring_text", "network_input", "preprocessing_figure", "preprocessing_table", "preprocessing_text", "protocol_table",
    "selection_text", "study_config",
    "study_grids", "unet_blocks", "unet_kwargs", "unet_summary", "unet_table",
]  # fmt: skip


def study_config(study_dir: str = "", preset: str = "seed") -> dict[str, Any]:
    """The training configuration of a study (``TrainConfig`` fields, as in ``config.json``).

    Args:
        study_dir: A study folder: :attr:`hie_core.report.analysis.study_model.Study.run_settings` (its
            ``results/study.json``, else its first trained run's ``config.json``). ``""``: the
            preset's configuration.
        preset: The preset used when ``study_dir`` is empty.
    """
    if study_dir:
        return load_study(study_dir).run_settings
    from hie_core.config import jsonable, preset_values

    return jsonable({**preset_values(preset, "cpu"), "device": "cpu"})  # as config.json holds it


def study_archs(study_dir: str = "") -> tuple[str, ...]:
    """The networks a study trained (``--archs``), from its runs' ``config.json``; ``()`` without a study."""
    if not study_dir:
        return ()
    return load_study(study_dir).archs


def study_grids(config: Mapping[str, Any]) -> dict[str, Grid]:
    """The seed's preprocessing grid, plus the study's own grid where it differs."""
    grids = {"seed protocol": seed_grid()}
    ours = run_grid(config)
    if ours != grids["seed protocol"]:
        grids["this study"] = ours
    return grids


def network_input(config: Mapping[str, Any]) -> tuple[int, int, int]:
    """What the U-Net sees in training (D, H, W): the patch, or the whole fixed-shape volume."""
    shape = config.get("patch_shape") or config["target_shape"]  # a spacing grid always has a patch
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def preprocessing_text(config: Mapping[str, Any]) -> str:
    """The preprocessing paragraph: this study's grid, intensity scaling and patches (Markdown)."""
    seed, ours = seed_grid(), run_grid(config)
    if ours.shape is not None:
        text = (f"Both maps are resampled with SimpleITK (linear) to an array of **{ours.describe()}** (D × H × W), "
                "the spacing rescaled so that the physical extent of each scan is kept.")  # fmt: skip
    else:
        text = (f"Both maps are resampled with SimpleITK (linear) to **{ours.describe()}** (D × H × W): each scan "
                "keeps its extent and its resolution, so array sizes differ from case to case.")  # fmt: skip
    if config["zadc_norm"] == "atlas":
        text += (" ADC is then z-scored with the mean and standard deviation of its whole resampled volume; ZADC is "
                 "kept as it is, a z-score against the normative atlas already (the seed z-scored it again per "
                 "volume, which makes its scale depend on the lesion burden).")  # fmt: skip
    else:
        text += (
            " Each map is then z-scored with the mean and standard deviation of its whole resampled volume."
        )
    text += " ADC and ZADC are stacked as two channels."
    patch = config.get("patch_shape")
    if patch:
        fraction = config.get("foreground_fraction")
        centred = f", {fraction:.0%} of them centred on a lesion voxel" if isinstance(fraction, float) else ""
        text += (f" Training draws patches of {' × '.join(map(str, patch))} voxels{centred}; prediction slides a "
                 "window of that size over the whole volume.")  # fmt: skip
    if ours != seed:
        text += (f" The seed study resampled every scan to {seed.describe()}; this study's "
                 f"*{config.get('preset', '')}* preset does not (see the deviations below, and the resampling "
                 "ceiling on the Results page, an approximate bound for networks trained on this grid).")  # fmt: skip
    return text


def preprocessing_table(native: ImageGeometry, grids: Mapping[str, Grid | Sequence[int]]) -> pd.DataFrame:
    """Geometry of one case before (native) and after resampling to each grid (D, H, W)."""
    from hie_core.preprocess import as_grid

    rows = [("native", native)] + [
        (f"{n}: {as_grid(g).describe()}", as_grid(g).geometry(native)) for n, g in grids.items()
    ]
    fmt = lambda v, p: " × ".join(f"{x:.{p}f}" if p else str(x) for x in v)  # noqa: E731
    return pd.DataFrame(
        [{"grid": name, "shape (D × H × W)": fmt(g.shape, 0), "spacing mm (D × H × W)": fmt(g.spacing_mm, 3),
          "extent mm (D × H × W)": fmt(g.extent_mm, 1), "voxel volume (mm3)": 1000 * g.voxel_volume_ml}
         for name, g in rows]
    )  # fmt: skip


_TIO_CLASS = {
    "noise": ("RandomNoise", ("noise_std",)),
    "anisotropy": ("RandomAnisotropy", ("anisotropy_downsampling",)),
    "blur": ("RandomBlur", ("blur_std_mm",)),
    "gamma": ("RandomGamma", ("log_gamma",)),
    "elastic": ("RandomElasticDeformation", ("elastic_control_points", "elastic_max_displacement_mm",
                                             "elastic_locked_borders")),
}  # fmt: skip


def mirroring_text(config: Mapping[str, Any]) -> str:
    """What the study adds to the five transforms: random flips and mirrored prediction (Markdown)."""
    from hie_core.report.pages.deviations import mirroring_words

    axes = config.get("mirror_axes") or ()
    if not axes:
        return "The study's runs add no other transform, and predict each volume once."
    return (f"The study's *{config.get('preset', '')}* preset adds nnU-Net's mirroring: {mirroring_words(axes)}. "
            "The seed did not mirror.")  # fmt: skip


def selection_text(config: Mapping[str, Any], synthetic: bool | None = None) -> str:
    """What picks the model and what picked the preset's settings (Markdown), from the configuration.

    Args:
        config: The runs' ``TrainConfig`` fields.
        synthetic: Whether the study's data are synthetic; None = unknown (read as synthetic, the default data).
    """
    from hie_core.report.pages.deviations import early_stopping_words, preset_choice

    fraction = config.get("selection_fraction")
    share = f" ({fraction:.0%} of it)" if isinstance(fraction, float) else ""
    text = (f"After every epoch the network is scored on a seeded selection set held out of the training "
            f"split{share}: {early_stopping_words(config)}. No reported validation or test case picks that epoch.")  # fmt: skip
    preset, choice = config.get("preset", ""), preset_choice(config, synthetic)
    if choice and preset != "seed":
        what, why = choice
        joint = ". " if why[:1].isupper() else "; "  # the development-set check is a sentence of its own
        text += (f" The *{preset}* preset's own settings are another matter: {what}{joint}{why}. The deviations "
                 "below say so setting by setting.")  # fmt: skip
    elif choice:
        text += " The *seed* preset takes its settings from the seed study's own protocol."
    return text


def augmentation_table(config: AugmentConfig) -> pd.DataFrame:
    """Each transform in the order applied, its TorchIO class, probability and parameters.

    The ``parameters`` column is HTML (``hie_core.augment.AugmentConfig`` field names as code):
    show it with ``display.table(..., html_columns=["parameters"])``.
    """
    from hie_core.augment import TRANSFORM_NAMES

    return pd.DataFrame(
        [{"transform": name, "TorchIO": _TIO_CLASS[name][0], "probability": config.probability(name),
          "parameters": "; ".join(f"<code>{f}</code> {_range_text(getattr(config, f))}" for f in _TIO_CLASS[name][1])}
         for name in TRANSFORM_NAMES]
    )  # fmt: skip


def _range_text(value: Any) -> str:
    """An augmentation parameter for a reader: a (low, high) pair as "low to high", booleans in words."""
    if isinstance(value, tuple | list) and len(value) == 2:
        return f"{value[0]:g} to {value[1]:g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def augmentation_examples(
    pre: PreprocessedCase, config: AugmentConfig, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each transform applied alone (probability 1, others 0) to a preprocessed case.

    Args:
        pre: the case on its training grid (image (2, D, H, W), label (1, D, H, W)).
        config: the transform parameters (its probabilities are overridden).
        seed: seed of every call (the same for each transform).

    Returns:
        Transform name -> augmented image (2, D, H, W) float32, in the order applied.
    """
    import torch

    from hie_core.augment import TRANSFORM_NAMES, TorchioAugmenter

    image = torch.from_numpy(np.ascontiguousarray(pre.image, dtype=np.float32))
    label = torch.from_numpy(np.zeros((1, *pre.image.shape[1:]), np.float32) if pre.label is None
                             else pre.label.astype(np.float32))  # fmt: skip
    out = {}
    for name in TRANSFORM_NAMES:
        alone = dataclasses.replace(config, p=0.0, **{f"p_{n}": float(n == name) for n in TRANSFORM_NAMES})
        out[name] = TorchioAugmenter(alone)(image, label, pre.geometry.spacing_mm, seed=seed)[0].numpy()
    return out


def unet_kwargs(config: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`hie_core.model.UNet3D` arguments of a run configuration: its widths, dropout and norm."""
    return {"widths": tuple(config["widths"]), "dropout": tuple(config["dropout"]), "norm": config["norm"]}


def unet_blocks(model_kwargs: Mapping[str, Any], shape: Sequence[int]) -> tuple[Any, list[dict]]:
    """The built model and one row per block (see :func:`unet_table`)."""
    from hie_core.model import UNet3D, count_parameters

    model = UNet3D(**model_kwargs)
    w, p = model.widths, model.dropout
    specs = [
        (f"encoder {i + 1}", enc[0].in_channels, w[i], i, p[i], enc) for i, enc in enumerate(model.encoders)
    ]
    specs.append(("bottleneck", w[2], w[3], 3, p[3], model.bottleneck))
    specs += [
        (f"decoder {3 - j}", w[3 - j], w[2 - j], 2 - j, 0.0, dec) for j, dec in enumerate(model.decoders)
    ]
    specs.append(("output 1×1×1", w[0], model.out_channels, 0, 0.0, model.head))
    keys = ("block", "in ch", "out ch", "feature map (D × H × W)", "dropout", "parameters")
    rows = [
        dict(zip(keys, (name, c_in, c_out, "×".join(str(int(s) // 2**lvl) for s in shape), drop,
                        count_parameters(module)), strict=True))
        for name, c_in, c_out, lvl, drop, module in specs
    ]  # fmt: skip
    return model, rows


def unet_table(model_kwargs: Mapping[str, Any], shape: Sequence[int]) -> pd.DataFrame:
    """Per block of :class:`hie_core.model.UNet3D` (:func:`unet_kwargs`): channels, feature-map size, dropout, parameters."""
    return pd.DataFrame(unet_blocks(model_kwargs, shape)[1])


def unet_summary(model_kwargs: Mapping[str, Any], shape: Sequence[int]) -> pd.DataFrame:
    """One row: widths, parameters and forward GFLOP per volume (batch 1) on ``shape`` (D, H, W)."""
    from hie_core.model import count_parameters, forward_flops

    model, _ = unet_blocks(model_kwargs, shape)
    flops = forward_flops(model, (1, model.in_channels, *shape))
    return pd.DataFrame([{"input (C × D × H × W)": "×".join(map(str, (model.in_channels, *shape))),
                          "widths": "-".join(map(str, model.widths)), "parameters": count_parameters(model),
                          "forward GFLOP / volume": flops / 1e9}])  # fmt: skip


def _arch_size(arch: str, widths: Sequence[int], options: Mapping[str, Any]) -> str:
    """How the configuration's widths size ``arch`` (see :func:`hie_core.model.build_model`)."""
    if arch == "segresnet":
        return f"{widths[0]} initial filters, doubling at 3 downsamplings"
    if arch == "dynunet":
        strides = " ".join("×".join(map(str, st)) for st in options["strides"][1:])
        return f"filters {'-'.join(map(str, widths[: len(options['strides'])]))}; strides {strides}"
    if arch == "swinunetr":
        return f"feature size {options['feature_size']}, attention window 7"
    return f"widths {'-'.join(map(str, widths))}"


def architectures_table(config: Mapping[str, Any], study_archs: Sequence[str] = ()) -> pd.DataFrame:
    """Every network ``arch`` can name: its size, parameters and forward cost on this study's window.

    One row per :data:`hie_core.model.ARCHS`, built as a run of this configuration would build
    it (:func:`hie_core.model.build_model`: the same widths, norm and window); FLOPs (a
    multiply-add counted as 2, convolutions and matrix products) of one forward pass of batch
    1 on the training window, counted on the meta device. A network whose rule the window
    breaks (SwinUNETR needs sides divisible by 32) has no FLOPs and says why. ``this study``
    marks the networks the study trained.

    Args:
        config: ``TrainConfig`` fields of the study (``widths``, ``norm``, ``arch``, the grid).
        study_archs: The networks the study trained (a study of several); empty: ``config["arch"]``.
    """
    from hie_core.errors import ConfigError
    from hie_core.model import (
        ARCH_LABELS,
        ARCHS,
        arch_divisors,
        arch_options,
        build_model,
        check_arch,
        count_parameters,
        forward_flops,
    )

    window = network_input(config)
    widths = tuple(int(w) for w in config["widths"])
    spacing, norm = config.get("target_spacing_mm"), config["norm"]
    trained, rows = set(study_archs) or {config["arch"]}, []
    for arch in ARCHS:
        options = arch_options(arch, widths, window, spacing)
        model = build_model(arch, 2, widths, config["dropout"], norm, options=options)
        divisors = arch_divisors(arch, widths, window, spacing)
        try:
            check_arch(arch, widths, window, spacing, norm)
            flops, fits = forward_flops(model, (1, 2, *window)) / 1e9, "yes"
        except ConfigError:
            broken = any(s % d for s, d in zip(window, divisors, strict=True))
            fits = (f"no: sides must be multiples of {'/'.join(map(str, sorted(set(divisors))))}" if broken else
                    f"no: a 1-voxel bottleneck with {norm} norm")  # fmt: skip
            flops = float("nan")
        rows.append({"network": ARCH_LABELS[arch], "arch": arch,
                     "this study": "yes" if arch in trained else "",
                     "size": _arch_size(arch, widths, options), "parameters": count_parameters(model),
                     f"forward GFLOP / {'×'.join(map(str, window))} window": flops, "fits the window": fits})  # fmt: skip
    return pd.DataFrame(rows)


def metric_rules_table(
    spacing_mm: Sequence[float] = (3.0, 1.0, 1.0), tolerance_mm: float = 2.0
) -> pd.DataFrame:
    """The official metrics on five tiny cases, computed by :func:`hie_core.metrics.case_metrics`.

    A 2x6x6-voxel cube in a (6, 16, 16) grid: identical, shifted by 1 and by 3 voxels along W
    (1 and 3 mm at the default spacing), and the three empty-mask rules.
    """
    ref = np.zeros((6, 16, 16), bool)
    ref[2:4, 5:11, 5:11] = True
    empty = np.zeros_like(ref)
    cases = {"identical": (ref, ref), "shifted 1 voxel in W": (np.roll(ref, 1, axis=2), ref),
             "shifted 3 voxels in W": (np.roll(ref, 3, axis=2), ref), "both empty": (empty, empty),
             "prediction empty": (empty, ref), "reference empty": (ref, empty)}  # fmt: skip
    rows = []
    for name, (pred, gt) in cases.items():
        m = case_metrics(pred, gt, spacing_mm, tolerance_mm)
        rows.append({"case": name, **{k: m[k] for k in ("n_pred", "n_ref", "dice", "masd_mm", "nsd")}})
    return pd.DataFrame(rows)


_PROTOCOL = (
    ("epochs", "maximum epochs"), ("patience", "early-stopping patience (epochs)"), ("batch_size", "batch size"),
    ("steps_per_epoch", "optimiser steps per epoch"), ("lr", "AdamW learning rate"),
    ("weight_decay", "AdamW weight decay"), ("lr_decay", "exponential LR decay per epoch"),
    ("l1", "L1 penalty on weights"), ("grad_clip", "gradient-norm clip"), ("target_shape", "grid shape (D, H, W)"),
    ("target_spacing_mm", "grid spacing (D, H, W) mm"), ("patch_shape", "training patch (D, H, W)"),
    ("foreground_fraction", "patches centred on a lesion"), ("augment", "augmentation back end"),
    ("mirror_axes", "mirrored axes"),
    ("widths", "U-Net widths"), ("arch", "network"), ("selection_fraction", "training cases held out for early stopping"),
    ("synthetic_preset", "synthetic set when no data_dir"), ("seed", "seed"),
)  # fmt: skip


_AXIS_NAMES = ("D", "H", "W")


def setting_text(field: str, value: Any) -> str:
    """A run setting as a reader reads it: sizes joined by " × ", axes by name, no Python reprs.

    ``None`` is said in words for the fields where it has a meaning (one pass per epoch, whole
    volumes, the other grid kind), an empty tuple is "none", numbers keep their significant digits.
    """
    if value is None:
        return {"steps_per_epoch": "one pass over the cases", "patch_shape": "whole volume",
                "target_shape": "(set by spacing)", "target_spacing_mm": "(set by shape)"}.get(field, "-")  # fmt: skip
    if field == "arch":
        return ARCH_LABELS.get(str(value), str(value))
    if field == "mirror_axes":
        return (
            " and ".join(f"{_AXIS_NAMES[a]} (left-right)" if a == 2 else _AXIS_NAMES[a] for a in value)
            or "none"
        )
    if field in ("widths", "dropout") and value:
        return ", ".join(f"{v:g}" for v in value)
    if isinstance(value, tuple | list):
        return " × ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) if value else "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def protocol_table(device: str = "cpu") -> pd.DataFrame:
    """Every preset's settings as :func:`hie_core.config.preset_values` resolves them on ``device``.

    Rows are the protocol's settings that the configuration has; ``from`` says whether a preset
    sets the value or it is the ``TrainConfig`` default (or chosen for the device).
    """
    from hie_core.config import FIELD_NAMES, PRESETS, preset_settings, preset_values

    configs = {name: preset_values(name, device) for name in PRESETS}
    fields = set(FIELD_NAMES)
    rows = []
    for field, meaning in [(f, m) for f, m in _PROTOCOL if f in fields]:
        row = {"setting": meaning, "parameter": f"<code>{field}</code>"}
        row.update({name: setting_text(field, cfg[field]) for name, cfg in configs.items()})
        row["from"] = "preset" if any(field in preset_settings(n) for n in PRESETS) else "TrainConfig default"
        rows.append(row)
    return pd.DataFrame(rows)
