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


# ---- the study's lesion tables (hie_core.report.analysis.lesion_tables) ----


def _lesion_rows(method: str, seed: int, case: str, rows: list[tuple[str, float, bool]]) -> list[dict]:
    return [{"method": method, "seed": seed, "fold": None, "case_id": case, "split": "test", "kind": kind,
             "lesion": i + 1, "n_voxels": 1, "volume_ml": v, "size_band": size_band(v), "matched": m,
             "dice": math.nan} for i, (kind, v, m) in enumerate(rows)]  # fmt: skip


def _runs_frame(cases: list[str], seeds: list[int], method: str = "dice") -> pd.DataFrame:
    return pd.DataFrame([{"method": method, "split": "test", "case_id": c, "seed": s, "n_ref": 10, "n_models": 1}
                         for c in cases for s in seeds])  # fmt: skip


def test_ratio_ci_resamples_numerator_and_denominator_together(monkeypatch):
    from hie_core.report.analysis.lesion_tables import ratio_ci

    monkeypatch.setenv("HIE_BOOTSTRAP_RESAMPLES", "199")
    total = np.array([[4.0, 4.0], [2.0, 2.0], [6.0, 6.0]])
    assert ratio_ci(total / 2, total) == (0.5, 0.5)  # the same draws: every resample's ratio is 0.5
    low, high = ratio_ci(np.array([[4.0, 4.0], [0.0, 0.0], [6.0, 6.0]]), total)
    assert 0 <= low < 10 / 12 < high <= 1
    assert all(math.isnan(v) for v in ratio_ci(np.ones((1, 2)), np.ones((1, 2))))


def test_lesion_bands_pool_the_lesions_of_every_case_and_run(monkeypatch):
    from hie_core.report.analysis.lesion_tables import ALL_SIZES, band_counts, lesion_bands

    monkeypatch.setenv("HIE_BOOTSTRAP_RESAMPLES", "199")
    rows = (_lesion_rows("dice", 0, "A", [("reference", 0.05, True), ("reference", 0.5, True),
                                          ("predicted", 0.02, False)])
            + _lesion_rows("dice", 1, "A", [("reference", 0.05, False), ("reference", 0.5, True)])
            + _lesion_rows("dice", 0, "B", [("reference", 0.05, False), ("reference", 2.0, True)])
            + _lesion_rows("dice", 1, "B", [("reference", 0.05, False), ("reference", 2.0, True)]))  # fmt: skip
    counts = band_counts(pd.DataFrame(rows), _runs_frame(["A", "B"], [0, 1]))
    table = lesion_bands(counts, "test", ["dice", "tversky"]).set_index("size_band")
    assert table.loc[SIZE_BANDS[0], "sensitivity"] == 0.25  # 1 of 4 small lesion-runs detected
    assert table.loc[SIZE_BANDS[0], ["n_cases", "n_lesions", "n_runs"]].tolist() == [2, 2, 2]
    assert table.loc[SIZE_BANDS[0], "fp_lesions_per_case"] == 0.25  # one in 2 cases x 2 runs
    assert (
        table.loc[SIZE_BANDS[1], "sensitivity"] == 1.0
        and table.loc[SIZE_BANDS[1], "note"] == "one case: no interval"
    )
    assert table.loc[ALL_SIZES, "sensitivity"] == 5 / 8 and table.loc[ALL_SIZES, "detected_mean"] == 2.5
    assert table.loc[ALL_SIZES, "ci_low"] <= 5 / 8 <= table.loc[ALL_SIZES, "ci_high"]


def test_table1b_means_over_cases_with_a_lesion_and_the_empty_label_endpoint(monkeypatch):
    from hie_core.report.analysis.lesion_tables import TABLE1B_COLUMNS, lesion_run_scores, table1b

    monkeypatch.setenv("HIE_BOOTSTRAP_RESAMPLES", "199")
    base = {"method": "dice", "split": "test", "fold": None, "n_pred": 5, "pred_volume_ml": 0.1,
            "ref_volume_ml": 0.2, "lesion_f1": 0.5, "lesion_dice": 0.4, "volume_error_ml": -0.1,
            "abs_volume_error_ml": 0.1, "n_pred_lesions": 2}  # fmt: skip
    scores = pd.DataFrame([
        {**base, "case_id": "A", "seed": 0, "n_ref": 9, "n_ref_lesions": 2, "lesion_sensitivity": 0.5,
         "n_fp_lesions": 1, "fp_lesion_volume_ml": 0.01},
        {**base, "case_id": "A", "seed": 1, "n_ref": 9, "n_ref_lesions": 2, "lesion_sensitivity": 1.0,
         "n_fp_lesions": 0, "fp_lesion_volume_ml": 0.0},
        {**base, "case_id": "B", "seed": 0, "n_ref": 4, "n_ref_lesions": 1, "lesion_sensitivity": 0.0,
         "n_fp_lesions": 3, "fp_lesion_volume_ml": 0.03},
        {**base, "case_id": "B", "seed": 1, "n_ref": 4, "n_ref_lesions": 1, "lesion_sensitivity": 1.0,
         "n_fp_lesions": 1, "fp_lesion_volume_ml": 0.01},
        {**base, "case_id": "E", "seed": 0, "n_ref": 0, "n_ref_lesions": 0, "lesion_sensitivity": math.nan,
         "n_fp_lesions": 2, "fp_lesion_volume_ml": 0.2},
        {**base, "case_id": "E", "seed": 1, "n_ref": 0, "n_ref_lesions": 0, "lesion_sensitivity": math.nan,
         "n_fp_lesions": 4, "fp_lesion_volume_ml": 0.4},
    ])  # fmt: skip
    row = table1b(lesion_run_scores(scores), "test", ["dice", "baseline"]).iloc[0]
    assert list(table1b(lesion_run_scores(scores), "test", ["dice"]).columns) == list(TABLE1B_COLUMNS)
    assert (row["n_cases"], row["n_runs"], row["n_ref_lesions"]) == (2, 2, 3)
    assert row["lesion_sensitivity_mean"] == pytest.approx((0.75 + 0.5) / 2)
    assert row["n_fp_lesions_mean"] == pytest.approx((0.5 + 2) / 2)
    assert row["lesion_sensitivity_ci_low"] <= 0.625 <= row["lesion_sensitivity_ci_high"]
    assert (row["empty_cases"], row["empty_fp_lesions_mean"]) == (1, 3.0)
    assert row["empty_fp_lesion_volume_ml_mean"] == pytest.approx(0.3)


def test_claim_d_on_lesions_pairs_small_and_larger_lesions_within_cases(monkeypatch):
    from hie_core.report.analysis.lesion_tables import band_counts, lesion_claims

    monkeypatch.setenv("HIE_BOOTSTRAP_RESAMPLES", "199")
    rows, cases = [], [f"c{i}" for i in range(6)]
    for i, case in enumerate(cases):
        for seed in (0, 1):  # small lesions: detected in case i >= 3 and seed 0 only; larger ones always
            small = i >= 3 and seed == 0
            rows += _lesion_rows("dice", seed, case, [("reference", 0.01, small), ("reference", 0.02, False),
                                                      ("reference", 0.3, True), ("reference", 3.0, True)])  # fmt: skip
    counts = band_counts(pd.DataFrame(rows), _runs_frame(cases, [0, 1]))
    claims = lesion_claims(counts, "test", ["dice", "tversky"])
    assert len(claims) == 1
    row = claims.iloc[0]
    # small share: 0.5 in 3 cases x seed 0, else 0; larger share 1: mean difference 1.5 / 12 - 1
    assert row["estimate"] == pytest.approx(1.5 / 12 - 1)
    assert (row["hypothesis"], row["family"], row["direction"], row["n_cases"], row["n_seeds"]) == (
        "d", "lesion-wise", -1, 6, 2)  # fmt: skip
    assert row["p_holm"] == pytest.approx(row["p"]) and row["mdd"] > 0  # a family of one test
    assert row["verdict"] == ("supported" if row["p_holm"] < 0.05 else "inconclusive")


def test_lesion_files_for_a_run_folder_from_before_the_lesion_metrics(tiny_release, tmp_path, capsys):
    import json

    from hie_core.data import discover_cases
    from hie_core.io import read_image, write_image
    from hie_core.report.analysis.lesion_tables import add_lesion_files, main
    from hie_core.report.analysis.runs import StudyFolderError, find_runs
    from hie_core.training.evaluate import prediction_path

    run = tmp_path / "study" / "dice" / "seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"data_dir_resolved": str(tiny_release), "config": {}}))
    (run / "summary.json").write_text("{}")
    cases = discover_cases(tiny_release, splits=["test"])
    lines = ["case_id,split,burden_percent,stratum,dice,masd_mm,nsd,n_pred,n_ref"]  # an old metrics.csv
    for case in cases:
        label, geometry = read_image(case.label)
        pred = label.copy()
        pred[0, 0, 0] = 1  # one false-positive voxel, away from the label
        write_image(pred, geometry, prediction_path(run, case))
        lines.append(f"{case.case_id},test,1.0,1-5%,0.9,0.5,0.9,{int(pred.sum())},{int(label.sum())}")
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    before = find_runs(tmp_path / "study").scores()
    assert before["lesion_sensitivity"].isna().all()  # the old folder still loads, with NaN
    done = add_lesion_files(tmp_path / "study")
    assert (done["folders"], done["cases"], done["skipped"]) == (1, 2, 0)
    after = find_runs(tmp_path / "study").scores()
    assert after["lesion_sensitivity"].tolist() == [1.0, 1.0] and after["n_fp_lesions"].tolist() == [1, 1]
    assert add_lesion_files(tmp_path / "study")["folders"] == 0  # written once
    assert main([str(tmp_path / "study"), "--force"]) == 0
    assert "1 run folder(s): 2 case(s)" in capsys.readouterr().out
    prediction_path(run, cases[0]).unlink()
    with pytest.raises(StudyFolderError, match="_lesion.mha: missing"):
        add_lesion_files(tmp_path / "study", force=True)
    assert main([str(tmp_path / "study"), "--force"]) == 2  # one line, exit 2
    done = add_lesion_files(
        tmp_path / "study", force=True, skip_unscorable=True
    )  # what the results step does
    assert (done["folders"], done["skipped"]) == (0, 1)
    assert "hie-lesions: error:" in capsys.readouterr().err


def test_bland_altman_and_detection_charts():
    from hie_core.report.pages.lesion_figures import bland_altman_chart, bland_altman_stats, detection_chart

    s = bland_altman_stats([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])  # differences 1, 0, 2: mean 1, SD 1
    assert (s["bias"], s["sd"], s["n"]) == (1.0, 1.0, 3)
    assert (s["low"], s["high"]) == pytest.approx((1 - 1.96, 1 + 1.96))
    per_case = pd.DataFrame({"method": ["dice"] * 3 + ["baseline"] * 3, "case_id": list("abc") * 2,
                             "n_ref": [5, 5, 0] * 2, "ref_volume_ml": [1.0, 2.0, 0.0] * 2,
                             "pred_volume_ml": [2.0, 2.0, 0.4, 1.0, 1.0, 0.0]})  # fmt: skip
    fig = bland_altman_chart(per_case, {"dice": "Dice", "baseline": "ZADC < -2", "absent": "x"})
    points = [t for t in fig.data if t.mode == "markers"]
    assert [len(t.x) for t in points] == [2, 2]  # the empty label (c) is not a volume pair
    np.testing.assert_allclose(points[0].y, [1.0, 0.0])
    assert [a.text for a in fig.layout.annotations][:2] == ["Dice", "ZADC < -2"]
    bands = pd.DataFrame({"method": ["dice"] * 3, "size_band": list(SIZE_BANDS), "sensitivity": [0.2, 0.5, 1.0],
                          "ci_low": [0.1, 0.4, 1.0], "ci_high": [0.3, 0.6, 1.0], "n_lesions": [10, 5, 2]})  # fmt: skip
    chart = detection_chart(bands, {"dice": "Dice", "baseline": "ZADC < -2"})
    assert len(chart.data) == 1 and list(chart.data[0].y) == [0.2, 0.5, 1.0]  # no band rows, no line
    np.testing.assert_allclose(chart.data[0].error_y.arrayminus, [0.1, 0.1, 0.0])
    assert list(chart.layout.xaxis.ticktext) == list(SIZE_BANDS)
