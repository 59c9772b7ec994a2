"""The threshold baseline on native scans and the study's failure path (hie-predict: test_predict.py)."""

from __future__ import annotations

import numpy as np

from hie_core.data import discover_cases
from hie_core.io import read_image
from hie_core.training.evaluate import evaluate_baseline, prediction_path, threshold_baseline

from .conftest import tiny_config


def test_threshold_baseline_is_zadc_below_minus_two_inside_the_brain():
    zadc = np.array([[[-3.0, -2.0, -1.0, -5.0]]])
    adc = np.array([[[900.0, 900.0, 900.0, 0.0]]])
    assert threshold_baseline(zadc, adc).tolist() == [[[True, False, False, False]]]


def test_evaluate_baseline_writes_native_masks_and_scores(tiny_release, tmp_path):
    cases = discover_cases(tiny_release, splits=["test"])
    rows = evaluate_baseline(cases, tmp_path)
    assert [r["case_id"] for r in rows] == [c.case_id for c in cases]
    for row, case in zip(rows, cases, strict=True):
        mask, geometry = read_image(prediction_path(tmp_path, case))
        zadc, adc = read_image(case.zadc)[0], read_image(case.adc)[0]
        np.testing.assert_array_equal(mask.astype(bool), (zadc < -2) & (adc > 0))
        assert geometry.same_grid(read_image(case.adc)[1])
        assert 0 <= row["dice"] <= 1 and row["n_pred"] == int(mask.sum())


def test_resampling_ceiling_is_perfect_on_the_native_grid_and_costs_dice_on_a_coarser_one(
    tiny_release, tmp_path
):
    from hie_core.data import discover_cases
    from hie_core.preprocess import Grid
    from hie_core.training.evaluate import evaluate_ceiling
    from hie_core.training.experiment import run_ceiling

    from .conftest import TINY_GEOMETRY

    cases = [c for c in discover_cases(tiny_release) if c.split == "test"]
    same = evaluate_ceiling(cases, Grid(shape=TINY_GEOMETRY.shape))
    assert [r["dice"] for r in same] == [1.0, 1.0] and [r["masd_mm"] for r in same] == [0.0, 0.0]
    coarse = evaluate_ceiling(cases, Grid(spacing_mm=(6.0, 3.6, 3.3)))
    assert all(r["dice"] < 1.0 for r in coarse)
    config = tiny_config(tiny_release, tmp_path / "unused")
    metrics = run_ceiling(tiny_release, tmp_path / "ceiling", config)
    assert sorted(metrics["split"]) == ["test", "test", "val"]
    assert (tmp_path / "ceiling" / "predictions" / "test").is_dir() and (
        tmp_path / "ceiling" / "summary.json"
    ).is_file()
