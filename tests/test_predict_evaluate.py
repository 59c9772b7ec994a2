"""The threshold baseline on native scans and the study's failure path (hie-predict: test_predict.py)."""

from __future__ import annotations

import numpy as np

from hie_core.data import discover_cases
from hie_core.io import read_image
from hie_core.training.evaluate import evaluate_baseline, prediction_path, threshold_baseline


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


def test_study_reports_a_failed_run_and_exits_non_zero(tmp_path, capsys):
    from hie_core import study

    code = study.main(["--losses", "dice", "--data-dir", str(tmp_path / "no-such-folder"), "--study", "broken",
                       "--runs-dir", str(tmp_path), "--no-book", "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "dice" in out and "FAILED - see" in out and str(tmp_path / "broken" / "dice" / "train.ipynb") in out
    )
    assert (tmp_path / "broken" / "dice" / "train.ipynb").is_file()
    assert "baseline" in out and "data folder not found" in out
