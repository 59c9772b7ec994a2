"""Lesion-wise metrics (hie_core.lesions): closed-form answers on tiny hand-made masks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hie_core.lesions import (
    LESION_COLUMNS,
    LESION_ROW_COLUMNS,
    SIZE_BANDS,
    case_columns,
    columns_from_rows,
    label_lesions,
    lesion_metrics,
    lesion_status,
    size_band,
)

MM1 = (1.0, 1.0, 1.0)  # 1 voxel = 0.001 mL


def _empty(shape=(8, 12, 12)) -> np.ndarray:
    return np.zeros(shape, bool)


def _two_lesions() -> np.ndarray:
    ref = _empty()
    ref[1:3, 1:3, 1:3] = True  # lesion A, 8 voxels
    ref[5:7, 8:10, 8:10] = True  # lesion B, 8 voxels, far from A
    return ref


def test_two_reference_lesions_one_found():
    ref = _two_lesions()
    pred = _empty()
    pred[1:3, 1:3, 1:4] = True  # A plus one layer: 12 voxels, Dice with A = 2*8/(8+12) = 0.8
    c = lesion_metrics(pred, ref, MM1).columns
    assert (c["n_ref_lesions"], c["n_pred_lesions"], c["n_detected_lesions"], c["n_fp_lesions"]) == (
        2,
        1,
        1,
        0,
    )
    assert c["lesion_sensitivity"] == 0.5
    assert c["lesion_f1"] == pytest.approx(2 / 3)  # 2 TP / (2 TP + FN + FP) = 2 / 3
    assert c["lesion_dice"] == pytest.approx((0.8 + 0.0) / 2)  # B missed scores 0; no FP lesion
    assert c["volume_error_ml"] == pytest.approx((12 - 16) * 0.001)
    assert c["abs_volume_error_ml"] == pytest.approx(0.004)
    assert c["fp_lesion_volume_ml"] == 0.0


def test_split_prediction_detects_once_and_adds_no_false_positive():
    ref = _empty()
    ref[4, 5, 2:8] = True  # a 6-voxel line
    pred = _empty()
    pred[4, 5, 2:4] = True  # two pieces, two voxels apart: two components under any connectivity
    pred[4, 5, 6:8] = True
    c = lesion_metrics(pred, ref, MM1).columns
    assert (c["n_ref_lesions"], c["n_pred_lesions"], c["n_detected_lesions"], c["n_fp_lesions"]) == (
        1,
        2,
        1,
        0,
    )
    assert c["lesion_sensitivity"] == 1.0 and c["lesion_f1"] == 1.0
    assert c["lesion_dice"] == pytest.approx(2 * 4 / (6 + 4))  # against the union of both pieces


def test_false_positive_blob():
    ref = _empty()
    ref[1:3, 1:3, 1:3] = True
    pred = ref.copy()
    pred[6, 9:11, 8:11] = True  # 6 voxels far away
    result = lesion_metrics(pred, ref, MM1)
    c = result.columns
    assert (c["n_detected_lesions"], c["n_fp_lesions"]) == (1, 1)
    assert c["lesion_sensitivity"] == 1.0
    assert c["lesion_f1"] == pytest.approx(2 / 3)  # 2 / (2 + 0 + 1)
    assert c["lesion_dice"] == pytest.approx(0.5)  # (1 + 0) / (1 reference + 1 false positive)
    assert c["fp_lesion_volume_ml"] == pytest.approx(0.006)
    predicted = [r for r in result.lesions if r["kind"] == "predicted"]
    assert sorted(r["matched"] for r in predicted) == [False, True]


def test_bridging_prediction_detects_both_lesions():
    ref = _empty()
    ref[4, 5, 1:3] = True
    ref[4, 5, 5:7] = True
    pred = _empty()
    pred[4, 5, 1:7] = True  # one blob over both and the gap
    c = lesion_metrics(pred, ref, MM1).columns
    assert (c["n_ref_lesions"], c["n_pred_lesions"], c["n_detected_lesions"], c["n_fp_lesions"]) == (
        2,
        1,
        2,
        0,
    )
    assert c["lesion_dice"] == pytest.approx(2 * 2 / (2 + 6))  # each lesion against the whole blob


def test_both_empty():
    c = lesion_metrics(_empty(), _empty(), MM1).columns
    assert (c["n_ref_lesions"], c["n_pred_lesions"], c["n_fp_lesions"]) == (0, 0, 0)
    assert math.isnan(c["lesion_sensitivity"])
    assert c["lesion_f1"] == 1.0 and c["lesion_dice"] == 1.0
    assert c["volume_error_ml"] == 0.0


def test_empty_reference_with_a_prediction():
    pred = _empty()
    pred[2, 2, 2:5] = True
    c = lesion_metrics(pred, _empty(), MM1).columns
    assert math.isnan(c["lesion_sensitivity"])
    assert (c["n_fp_lesions"], c["lesion_f1"], c["lesion_dice"]) == (1, 0.0, 0.0)
    assert c["fp_lesion_volume_ml"] == pytest.approx(0.003)
    assert c["volume_error_ml"] == pytest.approx(0.003)


def test_empty_prediction():
    c = lesion_metrics(_empty(), _two_lesions(), MM1).columns
    assert (c["lesion_sensitivity"], c["lesion_f1"], c["lesion_dice"], c["n_fp_lesions"]) == (
        0.0,
        0.0,
        0.0,
        0,
    )
    assert c["volume_error_ml"] == pytest.approx(-0.016)


def test_touching_lesions_under_the_stated_connectivity():
    ref = _empty()
    ref[2, 2, 2] = True
    ref[3, 3, 3] = True  # touches the first only at a corner
    pred = _empty()
    pred[2, 2, 2] = True
    assert label_lesions(ref)[1] == 1  # 26-connectivity, the default: one lesion
    assert label_lesions(ref, 18)[1] == 2 and label_lesions(ref, 6)[1] == 2
    assert lesion_metrics(pred, ref, MM1).columns["lesion_sensitivity"] == 1.0
    c6 = lesion_metrics(pred, ref, MM1, connectivity=6).columns
    assert (c6["n_ref_lesions"], c6["lesion_sensitivity"]) == (2, 0.5)
    edge = _empty()
    edge[2, 2, 2] = edge[2, 3, 3] = True  # an edge shared: joined under 18 and 26, not 6
    assert (label_lesions(edge, 26)[1], label_lesions(edge, 18)[1], label_lesions(edge, 6)[1]) == (1, 1, 2)
    with pytest.raises(ValueError, match="connectivity"):
        label_lesions(edge, 8)


def test_anisotropic_spacing_volumes_bands_and_minimum_size():
    spacing = (3.0, 0.5, 0.7)  # one voxel: 1.05 mm^3 = 0.00105 mL
    ref = _empty((4, 30, 30))
    ref[1, 0:10, 0:10] = True  # 100 voxels: 0.105 mL
    ref[2, 20:25, 20:28] = True  # 40 voxels: 0.042 mL
    result = lesion_metrics(ref.copy(), ref, spacing)
    volumes = sorted(r["volume_ml"] for r in result.lesions if r["kind"] == "reference")
    assert volumes == pytest.approx([0.042, 0.105])
    assert sorted(r["size_band"] for r in result.lesions if r["kind"] == "reference") == [
        "0.1-1 mL",
        "<0.1 mL",
    ]
    pred = _empty((4, 30, 30))
    pred[1, 0:10, 0:5] = True  # half of the large lesion, 50 voxels
    c = lesion_metrics(pred, ref, spacing).columns
    assert c["volume_error_ml"] == pytest.approx((50 - 140) * 0.00105)
    kept = lesion_metrics(pred, ref, spacing, min_volume_ml=0.05).columns  # drops the 0.042 mL lesion
    assert (kept["n_ref_lesions"], kept["lesion_sensitivity"]) == (1, 1.0)
    assert kept["volume_error_ml"] == pytest.approx((50 - 100) * 0.00105)


def test_size_bands_edges():
    assert [size_band(v) for v in (0.0, 0.0999, 0.1, 1.0, 1.0001)] == [
        SIZE_BANDS[0], SIZE_BANDS[0], SIZE_BANDS[1], SIZE_BANDS[1], SIZE_BANDS[2]]  # fmt: skip
    with pytest.raises(ValueError, match="volume_ml"):
        size_band(math.nan)


def test_rows_reproduce_the_case_columns():
    ref = _two_lesions()
    pred = _empty()
    pred[1:3, 1:3, 1:4] = True
    pred[7, 0, 0] = True  # a one-voxel false positive
    a = lesion_metrics(pred, ref, MM1)
    b = lesion_metrics(_empty(), _empty(), MM1)
    rows = pd.DataFrame(a.rows("c1", "test") + b.rows("c2", "test"), columns=list(LESION_ROW_COLUMNS))
    cases = pd.DataFrame({"split": ["test", "test"], "case_id": ["c1", "c2"]})
    frame = columns_from_rows(rows, cases)
    assert list(frame.columns) == ["split", "case_id", *LESION_COLUMNS]
    for got, want in zip(frame.to_dict("records"), (a.columns, b.columns), strict=True):
        for key in LESION_COLUMNS:
            assert got[key] == pytest.approx(want[key], nan_ok=True), key


def test_case_columns_checks_lengths():
    with pytest.raises(ValueError, match="one length"):
        case_columns([0.1], [True, False], [1.0], [], [])


def test_lesion_status_masks_and_counts():
    ref = _two_lesions()
    pred = _empty()
    pred[1:3, 1:3, 1:3] = True
    pred[7, 0, 0] = True
    s = lesion_status(pred, ref)
    assert (s.n_reference, s.n_missed, s.n_false_positive) == (2, 1, 1)
    assert s.missed.sum() == 8 and s.missed[5:7, 8:10, 8:10].all()
    assert s.false_positive.sum() == 1 and s.false_positive[7, 0, 0]


def test_bad_inputs():
    with pytest.raises(ValueError, match="boolean"):
        lesion_metrics(np.zeros((2, 2, 2)), _empty((2, 2, 2)), MM1)
    with pytest.raises(ValueError, match="spacing_mm"):
        lesion_metrics(_empty((2, 2, 2)), _empty((2, 2, 2)), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="min_volume_ml"):
        lesion_metrics(_empty((2, 2, 2)), _empty((2, 2, 2)), MM1, min_volume_ml=-1.0)


def test_evaluation_writes_lesion_columns_and_rows_that_agree(tiny_release, tmp_path):
    from hie_core.data import discover_cases
    from hie_core.training.evaluate import LESIONS_FILE, METRIC_COLUMNS, evaluate_baseline

    cases = discover_cases(tiny_release, splits=["train", "test"])
    metrics = pd.DataFrame(evaluate_baseline(cases, tmp_path)).reindex(columns=list(METRIC_COLUMNS))
    lesions = pd.read_csv(tmp_path / LESIONS_FILE)
    assert list(lesions.columns) == list(LESION_ROW_COLUMNS)
    assert set(lesions["kind"]) <= {"reference", "predicted"}
    again = columns_from_rows(lesions, metrics)
    for key in LESION_COLUMNS:
        np.testing.assert_allclose(again[key].to_numpy(float), metrics[key].to_numpy(float), equal_nan=True)
    empty = metrics[metrics["n_ref"] == 0]  # the empty label of the tiny release: its false positives
    assert len(empty) == 1 and np.isnan(empty["lesion_sensitivity"].iloc[0])
    assert empty["n_fp_lesions"].iloc[0] == empty["n_pred_lesions"].iloc[0]
