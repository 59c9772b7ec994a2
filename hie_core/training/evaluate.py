"""Prediction on native scans and evaluation with the official BONBID-HIE semantics.

A prediction is made on the preprocessing grid (one pass, or a sliding window for a network
trained on patches: :mod:`hie_core.training.inference`), its probabilities are resampled
back onto the case's native grid (linear) and thresholded at 0.5, and the metrics are
computed there, in mm, from the native spacing, as the challenge's evaluation does. Two reference methods
are evaluated the same way, so every table has them as rows:

- the organisers' demo baseline, ``ZADC < -2`` inside the brain (:func:`evaluate_baseline`);
- the *resampling ceiling* (:func:`evaluate_ceiling`): the reference label itself sent
  through the training grid and back, exactly as a prediction travels. No network on that
  grid can beat it; it tells how much Dice the grid alone costs.

Every scored case also gets the lesion-wise columns of :mod:`hie_core.lesions` (connected
components, detection, lesion-wise Dice, volume error in mL), and each evaluation that writes
its masks writes one row per reference and predicted lesion to ``<out_dir>/lesions.csv``
(:data:`hie_core.lesions.LESION_ROW_COLUMNS`), from which the study's lesion tables are made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hie_core.config import DEFAULTS
from hie_core.data import Case
from hie_core.io import read_image, write_image
from hie_core.lesions import LESION_COLUMNS, lesion_metrics
from hie_core.metrics import SCORE_COLUMNS, burden_stratum, case_metrics
from hie_core.preprocess import Grid, PreprocessedCase, probabilities_to_native_mask, resample_to_geometry
from hie_core.run_folder import LESIONS_FILE, prediction_path, write_lesions  # noqa: F401 (re-exported for older imports)
from hie_core.training.inference import predict_probabilities

__all__ = [
    "METRIC_COLUMNS",
    "predict_probabilities",
    "predict_native",
    "threshold_baseline",
    "ceiling_mask",
    "evaluate_model",
    "evaluate_baseline",
    "evaluate_ceiling",
    "score_case",
]

#: Columns of ``metrics.csv``, one row per evaluated case: the scores, the volumes, the lesion-wise columns.
METRIC_COLUMNS = (*SCORE_COLUMNS, "pred_volume_ml", "ref_volume_ml", *LESION_COLUMNS)


def predict_native(
    model,
    pre: PreprocessedCase,
    device: str = "cpu",
    amp: bool = False,
    settings: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """A binary lesion mask (D, H, W) on the case's native grid.

    Args:
        settings: the run's configuration, every field of the schema (``dataclasses.asdict`` of a
            ``TrainConfig``, or the ``meta`` of :func:`hie_core.training.checkpoints.load_model_file`);
            the options of prediction (``patch_shape``, ``sw_overlap``, ``mirror_axes``) are read here,
            so a new one is read where it is used. None or a missing field: the schema's default.
    """
    options = {**DEFAULTS, **(settings or {})}
    prob = predict_probabilities(model, pre.image, device, amp, options["patch_shape"], options["sw_overlap"],
                                 options["mirror_axes"])  # fmt: skip
    return probabilities_to_native_mask(prob, pre.geometry, pre.native_geometry)


def threshold_baseline(zadc: np.ndarray, adc: np.ndarray, threshold: float = -2.0) -> np.ndarray:
    """The organisers' demo baseline: ``ZADC < threshold`` inside the brain (ADC > 0)."""
    return (np.asarray(zadc) < threshold) & (np.asarray(adc) > 0)


def ceiling_mask(label: np.ndarray, native, grid: Grid) -> np.ndarray:
    """The reference label after the round trip a prediction makes: native -> grid -> native.

    Down as the training labels go (linear interpolation of the mask, kept at >= 0.5), back
    as predictions go (linear, >= 0.5): a network that predicted the resampled label exactly
    would score this.
    """
    target = grid.geometry(native)
    on_grid = resample_to_geometry(np.asarray(label) > 0, native, target, "linear") >= 0.5
    return probabilities_to_native_mask(on_grid.astype(np.float32), target, native)


def score_case(case: Case, pred: np.ndarray, adc: np.ndarray, spacing_mm) -> tuple[dict, list[dict]]:
    """One case's ``metrics.csv`` row (:data:`METRIC_COLUMNS`) and its ``lesions.csv`` rows.

    Args:
        case: The case (its label is read; without one only ``case_id`` and ``split`` are set).
        pred: Predicted boolean mask (D, H, W) on the case's native grid.
        adc: The case's ADC map (D, H, W); the brain (ADC > 0) gives the lesion burden.
        spacing_mm: Native voxel size in array axis order (mm).
    """
    row: dict = {"case_id": case.case_id, "split": case.split}
    if case.label is None:
        return row, []
    ref = read_image(case.label)[0] > 0
    brain = int(np.count_nonzero(adc > 0))
    burden = 100.0 * np.count_nonzero(ref) / brain if brain else float("nan")
    row.update(burden_percent=burden, stratum=burden_stratum(burden) if brain else None)
    row.update(case_metrics(pred.astype(bool), ref, spacing_mm))
    lesions = lesion_metrics(pred.astype(bool), ref, spacing_mm)
    row.update(lesions.columns)
    return row, lesions.rows(case.case_id, case.split)


def _score(case: Case, pred: np.ndarray, out_dir: Path | None, adc_image: tuple | None = None,
           lesions: list[dict] | None = None) -> dict:  # fmt: skip
    adc, geometry = adc_image if adc_image is not None else read_image(case.adc)
    if out_dir is not None:
        write_image(pred.astype(np.uint8), geometry, prediction_path(out_dir, case))
    row, lesion_rows = score_case(case, pred, adc, geometry.spacing_mm)
    if lesions is not None:
        lesions += lesion_rows
    return row


def evaluate_model(
    model: torch.nn.Module,
    cases: Iterable[tuple[Case, PreprocessedCase]],
    out_dir: Path | None = None,
    device: str = "cpu",
    amp: bool = False,
    progress: bool = True,
    settings: Mapping[str, Any] | None = None,
) -> list[dict]:
    """Predict each case, write the native-grid mask, and score it (with ``out_dir``: masks and ``lesions.csv``).

    ``settings``: the run's configuration, as :func:`predict_native` takes it.

    Returns:
        One dict per case with :data:`METRIC_COLUMNS` (metrics only where a label exists).
    """
    from tqdm.auto import tqdm

    rows, lesions = [], []
    bar = tqdm(list(cases), desc="evaluate", unit="case", disable=not progress)
    for case, pre in bar:
        pred = predict_native(model, pre, device, amp, settings)
        rows.append(_score(case, pred, out_dir, lesions=lesions))
        if "dice" in rows[-1]:
            bar.set_postfix(dice=f"{rows[-1]['dice']:.3f}")
    if out_dir is not None:
        write_lesions(lesions, out_dir)
    return rows


def evaluate_baseline(
    cases: Iterable[Case], out_dir: Path | None = None, threshold: float = -2.0
) -> list[dict]:
    """Score the ``ZADC < threshold`` baseline on each case's native grid."""
    rows, lesions = [], []
    for case in cases:
        adc_image = read_image(case.adc)
        zadc = read_image(case.zadc)[0]
        pred = threshold_baseline(zadc, adc_image[0], threshold)
        rows.append(_score(case, pred, out_dir, adc_image, lesions))
    if out_dir is not None:
        write_lesions(lesions, out_dir)
    return rows


def evaluate_ceiling(cases: Iterable[Case], grid: Grid, out_dir: Path | None = None) -> list[dict]:
    """Score the resampling ceiling (:func:`ceiling_mask`) of ``grid`` on each labelled case."""
    rows, lesions = [], []
    for case in cases:
        if case.label is None:
            continue
        label, native = read_image(case.label)
        rows.append(_score(case, ceiling_mask(label, native, grid), out_dir, lesions=lesions))
    if out_dir is not None:
        write_lesions(lesions, out_dir)
    return rows
