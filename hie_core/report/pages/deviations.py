"""Every way a study's runs differ from the seed study's description, and why.

:func:`deviations_table` compares a run configuration (``TrainConfig`` fields, as in
``config.json`` or ``results/study.json``) and the code's constants with :data:`~hie_core.report.pages.deviation_reasons.SEED_PROTOCOL`,
the ``seed`` preset's values of the fields the seed describes (:mod:`hie_core.config.presets`), with
None where it does not describe one: the seed's own description (Usman et al. 2025, arXiv:2502.09148, and its code, hase3b/BONBID-HIE-Segmentation). Rows come from the comparison, so a preset
that changes a setting gets its row, and a configuration field this module has no reason for
still gets one ("differs from the seed preset"): nothing that changes results is left out.
Reasons that depend on the configuration (what early stopping can do with the preset's epochs
and patience, which widths, whether a setting was measured on this preset or taken over from
another, how the preset itself was chosen) are computed from it, so they stay true when a
preset changes.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import pandas as pd

from hie_core.config import DEFAULTS, LOSS_SETTINGS, preset_values
from hie_core.report.analysis.study_model import load_study
from hie_core.report.pages.deviation_reasons import (  # noqa: F401 (re-exported: their home before the split)
    CEILING_WORDS,
    SEED_PROTOCOL,
    _same,
    _why,
    early_stopping_words,
    preset_choice,
)
from hie_core.report.viewers.display import plural

__all__ = ["deviations_table", "mirroring_words", "study_deviations"]

#: Fields that describe where or how a run executes, not what it computes.
_NOT_PROTOCOL = {"loss", "data_dir", "output_dir", "device", "seed", "num_workers", "synthetic_preset", "preset",
                 "fingerprint", "fold", "synthetic_test_cases"}  # fmt: skip
#: Readable names of settings whose field name or values say little to a reader.
_ASPECT = {"zadc_norm": "ZADC scaling", "mirror_axes": "mirroring"}
_VALUE = {("zadc_norm", "volume"): "z-scored with its volume's mean and sd, like ADC",
          ("zadc_norm", "atlas"): "as given: the z-score against the normative atlas"}  # fmt: skip


def _fmt(value: Any, missing: str = "not described") -> str:
    """A setting for the table: shapes as "D × H × W", spacings in mm, None as ``missing``."""
    if value is None:
        return missing
    if isinstance(value, (list, tuple)):
        if len(value) == 3 and all(isinstance(v, int) for v in value):
            return " × ".join(map(str, value)) + " voxels (D × H × W)"
        if len(value) == 3:
            return " × ".join(f"{v:g}" for v in value) + " mm (D × H × W)"
        return " - ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def mirroring_words(axes: Any) -> str:
    """``mirror_axes`` in words: which flips training draws and how predictions are averaged."""
    names = [("depth (D)", "front-back (H)", "left-right (W)")[int(a)] for a in axes or ()]
    if not names:
        return "none"
    averaged = ("with that of the mirrored volume" if len(names) == 1
                else f"over the {2 ** len(names)} mirror images of the volume (itself included)")  # fmt: skip
    return f"random {' and '.join(names)} flips in training (each with probability 0.5); each prediction averaged {averaged}"


#: The seed's setting in words where its field's value (None) would say too little.
_SEED_WORDS = {"target_spacing_mm": "none: each scan's spacing rescaled so that it fills the fixed shape"}


def _setting(field: str, value: Any, missing: str) -> str:
    """A setting in words: :data:`_VALUE`'s text, the mirroring axes named, or :func:`_fmt`."""
    if field == "mirror_axes":
        return mirroring_words(value)
    if field == "target_shape" and value is None:
        return "none: a fixed spacing instead"
    return (
        _VALUE.get((field, value), _fmt(value, missing)) if isinstance(value, str) else _fmt(value, missing)
    )


def _row(aspect: str, seed: str, ours: str, why: str) -> dict[str, str]:
    return {"aspect": aspect, "seed study": seed, "this study": ours, "why": why}


def _widths_why(widths: Any) -> str:
    """Why the U-Net has these widths, from how they compare with the seed preset's."""
    seed = tuple(preset_values("seed")["widths"])
    widths = tuple(widths or ())
    if widths == seed:
        return "the classic 3D U-Net doubling from 32 (the seed preset's)"
    if len(widths) == len(seed) and all(4 * w == s for w, s in zip(widths, seed, strict=True)):
        return f"a quarter of the seed preset's {_fmt(seed)}, for CPU runs"
    return f"set for this study (the seed preset has {_fmt(seed)})"


def _selection_row(config: Mapping[str, Any], n_cases: Mapping[str, Any] | None) -> dict[str, str]:
    """Which epoch is kept, and what the selection set does and does not protect."""
    why = "no reported case picks the epoch that is kept; " + early_stopping_words(config)
    if config.get("preset") in ("quick", "native"):
        why += " (the preset's own settings are another matter: see how the preset was chosen)"
    return _row("model selection", "early stopping on the 4 official validation cases, which were also reported",
                f"the epoch with the best mean Dice (on the preprocessing grid) of a seeded selection set, "
                f"{_selection(config, n_cases)}", why)  # fmt: skip


def _code_rows(
    config: Mapping[str, Any], n_cases: Mapping[str, Any] | None, synthetic: bool | None = None
) -> list[dict[str, str]]:
    """Deviations fixed in the code, whatever the preset (read from its constants)."""
    from hie_core.model import UNet3D
    from hie_core.preprocess import preprocess_case
    from hie_core.protocol import l1_weights

    label = (
        config.get("label_interpolation")
        or inspect.signature(preprocess_case).parameters["label_interpolation"].default
    )
    settings = {**DEFAULTS, **config}  # a partial configuration: the schema's defaults for the rest
    model = UNet3D(widths=tuple(settings["widths"]), dropout=tuple(settings["dropout"]), norm=settings["norm"])
    n_l1, n_all = len(l1_weights(model)), len(list(model.parameters()))
    seed_w = LOSS_SETTINGS["hybrid_weight"].default
    w = float(config.get("hybrid_weight", seed_w))
    choice = preset_choice(config, synthetic)
    rows = [
        _row("label resampling", "nearest neighbour", "linear, kept where the fraction is >= 0.5" if label == "linear"
             else str(label), "closer to the native label for lesions of about 50 voxels and more (Dice +0.01 to "
             "+0.04 on a coarse grid); benchmarks/label_roundtrip.py"),
        _row("U-Net widths", "not published", _fmt(config.get("widths")), _widths_why(config.get("widths"))),
        _row("dropout", "rising with depth, values not published", f"{_fmt(config.get('dropout', DEFAULTS['dropout']))} (encoder 1-3, "
             "bottleneck)", "hie_core.model.UNet3D docstring: none at full resolution, most at the bottleneck"),
        _row("output-bias prior", "not described (zero bias: p = 0.5 everywhere at start)",
             f"bias = logit({_fmt(config.get('prior_probability'))})", "lesions are about 1% of the brain; "
             "Dice-type losses started at p = 0.5 need many more steps (Lin et al. 2017's prior)"),
        _row("L1 penalty", f"{_fmt(SEED_PROTOCOL['l1'])} on the weights", f"{_fmt(config.get('l1'))} on the "
             f"{n_l1} weight tensors with ndim > 1 (of {n_all} parameter tensors)", "biases and normalisation scales "
             "are not weights of a connection; penalising them shifts activations, not sparsity"),
        _row("hybrid losses", f"{1 - seed_w:g} × base + {seed_w:g} × log(HDT)", f"{1 - w:g} × base + {w:g} × log(1 + HDT)",
             "log(HDT) is minus infinity for a perfect prediction and negative below 1; log(1 + HDT) is 0 there"),
        _selection_row(config, n_cases),
        *([_row("how the preset was chosen", "not described", *choice)] if choice else []),
        _row("metrics", "on the resampled grid, in voxels", "on each scan's native grid, distances in mm, "
             "surfel-area weighted (the official evaluation)", "the challenge scores native grids in mm"),
        _row("undefined MASD", "an Inf averaged into the mean (MSD = Inf for HDT)", "skipped in means and counted",
             "an Inf makes a mean meaningless"),
    ]  # fmt: skip
    return rows


def _selection(config: Mapping[str, Any], n_cases: Mapping[str, Any] | None) -> str:
    """ "20% of the training split (3 of 16 cases)", counts where the study recorded them."""
    fraction = config.get("selection_fraction")
    text = (
        f"{fraction:.0%} of the training split"
        if isinstance(fraction, float)
        else "part of the training split"
    )
    n_cases = n_cases or {}
    if n_cases.get("selection") and n_cases.get("train"):
        text += f" ({n_cases['selection']} of {n_cases['train']} cases)"
    return text


def _config_rows(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """A row per setting that differs from the seed's description, or else from the resolved seed preset."""
    from hie_core.config import jsonable, preset_values

    rows = []
    unused = set() if config.get("patch_shape") else {"foreground_fraction"}  # no patches, nothing to centre
    for field in [f for f in SEED_PROTOCOL if f in config and f != "l1" and f not in unused]:
        seed, ours = SEED_PROTOCOL[field], config[field]
        if not _same(seed, ours) and not (field == "augment" and ours == "torchio"):
            rows.append(_row(_ASPECT.get(field, field.replace("_", " ")), _SEED_WORDS.get(field) or
                             _setting(field, seed, "not described"), _setting(field, ours, "none"), _why(field, config)))  # fmt: skip
    if config.get("patch_shape") and "sw_overlap" in config:
        from hie_core.protocol import SELECTION_OVERLAP

        rows.append(_row("prediction", "the whole resampled volume at once", f"sliding window, overlap "
                         f"{_fmt(config['sw_overlap'])}", "patches cover any volume size"))  # fmt: skip
        mirrored = ", not mirrored" if config.get("mirror_axes") else ""
        rows.append(_row("selection-set scoring", "the whole resampled volume at once", f"sliding window, overlap "
                         f"{_fmt(SELECTION_OVERLAP)}{mirrored}", "it only ranks epochs; overlapping windows every epoch "
                         "cost about a third of a quick run"))  # fmt: skip
    if int(config.get("folds") or 0) >= 2:
        rows.append(_row("cross-validation", "none: 4 validation cases", f"{config['folds']} folds over the training "
                         "and validation cases, each case scored by the fold model that did not see it; the test split "
                         "by every fold model", "scores every case once per run: the cases × runs a comparison needs"))  # fmt: skip
    rows += _loss_rows(config)
    handled = set(SEED_PROTOCOL) | _NOT_PROTOCOL | set(LOSS_SETTINGS) | {"widths", "prior_probability", "l1", "arch",
              "selection_fraction", "label_interpolation", "sw_overlap", "dropout", "folds"}  # fmt: skip
    seed_preset = jsonable({**preset_values("seed", "cpu"), "device": "cpu"})
    for field in sorted(set(config) - handled):
        if field in seed_preset and not _same(config[field], seed_preset[field]):
            rows.append(_row(field.replace("_", " "), f"seed preset: {_fmt(seed_preset[field], 'none')}",
                             _fmt(config[field], "none"), "differs from the seed preset (hie_core.config.presets)"))  # fmt: skip
    return rows




def _loss_rows(config: Mapping[str, Any]) -> list[dict[str, str]]:
    """A row per loss setting that differs from the seed's, a row for a researcher's own loss, one for the network."""
    from hie_core.losses import LOSS_LABELS, is_custom_loss, load_loss_class, loss_label
    from hie_core.model import ARCH_LABELS

    rows, aspects = [], {}
    for key, field in LOSS_SETTINGS.items():  # one row per group of the schema's loss settings
        aspects.setdefault(field.group, []).append((key, field.short))
    for aspect, keys in aspects.items():
        seeds = [LOSS_SETTINGS[k].default for k, _ in keys]
        ours = [float(config.get(k, d)) for (k, _), d in zip(keys, seeds, strict=True)]
        if all(abs(a - b) <= 1e-12 for a, b in zip(ours, seeds, strict=True)):
            continue

        def words(values: list[float], keys: list = keys) -> str:
            return " / ".join(f"{short} {v:g}" for (_, short), v in zip(keys, values, strict=True))

        users = ", ".join(LOSS_LABELS[n] for n in LOSS_SETTINGS[keys[0][0]].readers)
        params = ", ".join(k for k, _ in keys)
        why = f"a parameter of this study's runs ({params}); it changes {users}"
        if aspect == "hybrid weight":
            why += " (the region loss gets 1 - w)"
        rows.append(_row(aspect, words(seeds), words(ours), why))
    name = str(config.get("loss", ""))
    if is_custom_loss(name):
        try:
            doc = (load_loss_class(name).__doc__ or "").strip().splitlines()
        except Exception:  # a module that no longer imports still gets its row
            doc = []
        rows.append(_row("loss", "six losses: " + ", ".join(LOSS_LABELS.values()),
                         f"{loss_label(config)} ({name}): a researcher's own loss, not in the seed",
                         doc[0].replace("``", "") if doc else "a loss class given by the study (hie_core.losses: your own loss)"))  # fmt: skip
    arch = config.get("arch") or DEFAULTS["arch"]
    if arch != DEFAULTS["arch"]:  # the seed's network has no row
        rows.append(
            _row("network", "3D U-Net", ARCH_LABELS.get(arch, arch), "set for this study's runs (arch)")
        )
    return rows


def _study_rows(
    synthetic: bool | None, n_seeds: int | None, n_cases: Mapping[str, Any] | None
) -> list[dict[str, str]]:
    rows = []
    if synthetic:
        rows.append(_row("data", "BONBID-HIE 2023 (85 training, 4 validation, 44 test cases)",
                         "synthetic BONBID-like data (hie_core.synthetic)", "runs anywhere without patient "
                         "data; checks the pipeline, not clinical performance"))  # fmt: skip
    if n_cases:
        names = {"test": "test", "cv": "out-of-fold (cross-validation)", "val": "official validation"}
        shown = [
            f"{names[k]} ({plural(int(n_cases[k]), 'case')})" for k in names if n_cases.get(k) is not None
        ]
        rows.append(_row("reported splits", "4 validation cases", ", ".join(shown),
                         "4 cases cannot support a comparison"))  # fmt: skip
    if n_seeds is not None:
        rows.append(_row("repeated runs", "one run per loss", f"{plural(n_seeds, 'seed')} per loss, per-case scores averaged",
                         "measures the run-to-run spread"))  # fmt: skip
    from hie_core.report.analysis.plan import PLAN_DATE, PLAN_VERSION

    rows.append(_row("statistics", "none", f"the seed's claims as hypotheses of the analysis plan (version {PLAN_VERSION}, "
                     f"{PLAN_DATE}; fixed after pilot runs on the synthetic data, see its history), with verdicts, "
                     "'not testable here' where the design cannot reach one; cases and runs crossed: 95% CIs from the "
                     "pigeonhole bootstrap (cases and runs resampled independently), t tests and equivalence tests (TOST) "
                     "on the mean difference from the case, run and case × run variance components (Satterthwaite df), "
                     "Wilcoxon as a sensitivity analysis; Holm within each family (primary, secondary, exploratory); the "
                     "detectable difference beside each comparison; challenge ranks",
                     "uncertainty on every number, with the trained model as the unit of replication; a claim only where "
                     "the design can detect it"))  # fmt: skip
    return rows


def deviations_table(
    config: Mapping[str, Any],
    synthetic: bool | None = None,
    n_seeds: int | None = None,
    n_cases: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Every difference between a study and the seed's description, with the reason.

    Args:
        config: The runs' ``TrainConfig`` fields (``results/study.json`` ``run_config``).
        synthetic: Whether the data are synthetic (a row when true); None = unknown.
        n_seeds: Seeds per loss; None = not a study (no row).
        n_cases: Cases per split (``test``, ``val``; ``train`` and ``selection`` where known); None = not a study.

    Returns:
        Columns ``aspect``, ``seed study``, ``this study``, ``why``.
    """
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}  # JSON lists as tuples
    rows = (
        _study_rows(synthetic, n_seeds, n_cases)
        + _config_rows(config)
        + _code_rows(config, n_cases, synthetic)
    )
    return pd.DataFrame(rows, columns=["aspect", "seed study", "this study", "why"])


def study_deviations(study_dir: str = "", preset: str = "seed") -> pd.DataFrame:
    """:func:`deviations_table` of a study (from ``results/study.json``), or of a preset when ``study_dir`` is empty."""
    if not study_dir:
        from hie_core.config import jsonable, preset_values

        return deviations_table(jsonable({**preset_values(preset, "cpu"), "device": "cpu"}))
    info = load_study(study_dir).require_results().config
    return deviations_table(dict(info.run_config), info.synthetic, len(info.seeds), dict(info.n_cases))
