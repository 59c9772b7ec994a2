"""Prediction on native scans (hie-predict), the threshold baseline, and the study's failure path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hie_core.data import discover_cases
from hie_core.io import ImageGeometry, read_image, write_image
from hie_core.training import predict
from hie_core.training.evaluate import evaluate_baseline, prediction_path, threshold_baseline
from hie_core.training.fit import build_model, load_best_model

from .conftest import write_tiny_case


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model((4, 8, 16, 32), prior_probability=0.3)
    path = tmp_path / "model_best.pt"
    torch.save({"state_dict": model.state_dict(), "widths": [4, 8, 16, 32], "in_channels": 2,
                "target_shape": [8, 16, 16], "loss": "dice", "epoch": 1}, path)  # fmt: skip
    return path


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


def test_predict_single_pair_keeps_native_geometry(tiny_release, checkpoint, tmp_path):
    case = discover_cases(tiny_release, splits=["val"])[0]
    out = tmp_path / "out" / "mask.mha"
    argv = [
        "--checkpoint",
        str(checkpoint),
        "--adc",
        str(case.adc),
        "--zadc",
        str(case.zadc),
        "--output",
        str(out),
    ]
    assert predict.main(argv + ["--device", "cpu"]) == 0
    mask, geometry = read_image(out)
    assert geometry.same_grid(read_image(case.adc)[1]) and set(np.unique(mask)) <= {0, 1}
    model, meta = load_best_model(checkpoint)
    expected, _ = predict.predict_pair(model, meta, case.adc, case.zadc)
    np.testing.assert_array_equal(mask, expected)


def test_predict_folder_and_container_layouts(tiny_release, checkpoint, tmp_path):
    assert predict.main(["--checkpoint", str(checkpoint), "--data-dir", str(tiny_release / "BONBID2023_Test"),
                         "--output-dir", str(tmp_path / "preds")]) == 0  # fmt: skip
    assert len(list((tmp_path / "preds").rglob("*_lesion.mha"))) == 2
    inp = tmp_path / "input"
    case = discover_cases(tiny_release, splits=["test"])[0]
    (inp / "images/skull-stripped-adc-brain-mri").mkdir(parents=True)
    (inp / "images/z-score-adc").mkdir(parents=True)
    adc, g = read_image(case.adc)
    write_image(adc, g, inp / "images/skull-stripped-adc-brain-mri" / "abc-uuid.mha")
    write_image(read_image(case.zadc)[0], g, inp / "images/z-score-adc" / "def-uuid.mha")
    out = tmp_path / "output"
    assert (
        predict.main(
            ["--checkpoint", str(checkpoint), "--container", "--input", str(inp), "--output", str(out)]
        )
        == 0
    )
    mask, geometry = read_image(out / "images/hie-lesion-segmentation/abc-uuid.mha")
    assert geometry.same_grid(g)


def test_predict_reports_bad_inputs_with_the_file(tiny_release, checkpoint, tmp_path, capsys):
    case = discover_cases(tiny_release, splits=["val"])[0]
    other = ImageGeometry((6, 12, 10), (3.0, 1.0, 1.0))
    bad_zadc = write_image(np.zeros(other.shape, np.float32), other, tmp_path / "z.mha")
    code = predict.main(["--checkpoint", str(checkpoint), "--adc", str(case.adc), "--zadc", str(bad_zadc),
                         "--output", str(tmp_path / "m.mha")])  # fmt: skip
    assert code == 2 and f"{bad_zadc}: not on the grid" in capsys.readouterr().err
    broken = tmp_path / "broken.mha"
    broken.write_bytes(b"garbage")
    assert predict.main(["--checkpoint", str(checkpoint), "--adc", str(broken), "--zadc", str(case.zadc),
                         "--output", str(tmp_path / "m.mha")]) == 2  # fmt: skip
    assert "broken.mha: cannot read image" in capsys.readouterr().err
    assert not (tmp_path / "m.mha").exists()
    write_tiny_case(tmp_path / "nolabel", "X_001-VISIT_01", label=None)
    assert predict.main(["--checkpoint", str(tmp_path / "none.pt"), "--data-dir", str(tmp_path / "nolabel"),
                         "--output-dir", str(tmp_path / "p")]) == 2  # fmt: skip
    assert "checkpoint not found" in capsys.readouterr().err


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
