"""Outside predictions: checked (every problem in one error), scored like our runs, added to a study."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hie_core.data import load_dataset
from hie_core.io import ImageGeometry, read_image, write_image
from hie_core.study.external import (
    ExternalPredictionError,
    ExternalPredictionWarning,
    add_external,
    check_predictions,
    load_and_check,
    score_predictions,
)
from hie_core.study.score import main
from hie_core.training.evaluate import METRIC_COLUMNS
from tests.report_fixtures import write_study

TEST_IDS = ["MGHNICU_200-VISIT_01", "MGHNICU_201-VISIT_01"]


def _labels(release: Path) -> dict[str, Path]:
    return {
        p.name.removesuffix("_lesion.mha"): p for p in (release / "BONBID2023_Test" / "3LABEL").glob("*.mha")
    }


def _perfect(release: Path, folder: Path) -> Path:
    """Copies of the test labels: a perfect prediction."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in _labels(release).values():
        shutil.copy(path, folder / path.name)
    return folder


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _test_cases(release: Path):
    cases, _ = load_dataset(release, require_labels=False)
    return [c for c in cases if c.split == "test"], {c.case_id for c in cases}


def test_perfect_predictions_score_like_a_run(tiny_release, tmp_path):
    preds = _perfect(tiny_release, tmp_path / "preds")
    label = read_image(next(iter(_labels(tiny_release).values())))
    write_image(label[0], label[1], preds / f"{TEST_IDS[1]}_lesion.nii.gz")  # NIfTI is read too
    (preds / f"{TEST_IDS[1]}_lesion.mha").unlink()
    cases, known = _test_cases(tiny_release)
    masks = check_predictions(preds, cases, known)
    assert [m.case.case_id for m in masks] == TEST_IDS
    metrics = score_predictions(masks)
    assert list(metrics.columns) == list(METRIC_COLUMNS)
    assert metrics["dice"].tolist() == [1.0, 1.0]
    assert metrics["masd_mm"].tolist() == [0.0, 0.0]
    assert metrics["nsd"].tolist() == [1.0, 1.0]
    assert (metrics["n_pred"] == metrics["n_ref"]).all() and (metrics["n_ref"] == 18).all()
    assert metrics["split"].tolist() == ["test", "test"]
    assert metrics["stratum"].notna().all() and (metrics["burden_percent"] > 0).all()


def test_a_runs_own_predictions_score_as_the_run_scored_them(tiny_release, tmp_path):
    from hie_core.training.evaluate import evaluate_baseline

    cases, _ = _test_cases(tiny_release)
    ours = pd.DataFrame(evaluate_baseline(cases, tmp_path / "run")).reindex(columns=list(METRIC_COLUMNS))
    masks, _ = load_and_check(tmp_path / "run" / "predictions" / "test", tiny_release, "test")
    pd.testing.assert_frame_equal(score_predictions(masks), ours)


def test_3label_subfolder_and_an_empty_prediction(tiny_release, tmp_path):
    preds = _perfect(tiny_release, tmp_path / "preds" / "3LABEL")
    geometry = read_image(preds / f"{TEST_IDS[0]}_lesion.mha")[1]
    write_image(np.zeros(geometry.shape, np.uint8), geometry, preds / f"{TEST_IDS[0]}_lesion.mha")
    masks, _ = load_and_check(tmp_path / "preds", tiny_release, "test")
    row = score_predictions(masks).iloc[0]
    assert (row["dice"], row["nsd"], row["n_pred"]) == (0.0, 0.0, 0) and np.isnan(row["masd_mm"])


def test_missing_case_and_wrong_grid_are_one_error(tiny_release, tmp_path):
    preds = _perfect(tiny_release, tmp_path / "preds")
    (preds / f"{TEST_IDS[0]}_lesion.mha").unlink()
    array, geometry = read_image(preds / f"{TEST_IDS[1]}_lesion.mha")
    shifted = ImageGeometry(geometry.shape, (3.0, 1.0, 1.0), geometry.origin_mm)
    write_image(array, shifted, preds / f"{TEST_IDS[1]}_lesion.mha")
    before = _snapshot(preds)
    cases, known = _test_cases(tiny_release)
    with pytest.raises(ExternalPredictionError) as err:
        check_predictions(preds, cases, known)
    message = str(err.value)
    assert len(err.value.problems) == 2
    assert f"{TEST_IDS[0]}_lesion.mha: missing" in message
    assert f"{TEST_IDS[1]}_lesion.mha: not on the grid" in message and "spacing_mm" in message
    assert _snapshot(preds) == before  # the user's folder is only read


def test_the_study_checks_every_mask_before_any_run(tiny_release, tmp_path, monkeypatch):
    """``--external`` with a missing case and a mask off its grid: one error naming both, nothing written."""
    from hie_core import study

    monkeypatch.setenv("HIE_CACHE_DIR", str(tmp_path / "cache"))
    preds = _perfect(tiny_release, tmp_path / "preds")
    (preds / f"{TEST_IDS[0]}_lesion.mha").unlink()
    array, geometry = read_image(preds / f"{TEST_IDS[1]}_lesion.mha")
    write_image(
        array,
        ImageGeometry(geometry.shape, (3.0, 1.0, 1.0), geometry.origin_mm),
        preds / f"{TEST_IDS[1]}_lesion.mha",
    )
    with pytest.raises(ExternalPredictionError) as err:
        study.plan_study(
            tmp_path / "runs",
            "s",
            ["dice"],
            1,
            data_dir=str(tiny_release),
            preset="quick",
            device="cpu",
            overrides={"target_shape": (8, 16, 16), "patch_shape": "none"},
            externals=[f"mine={preds}"],
        )
    assert (
        len(err.value.problems) == 2 and "missing" in str(err.value) and "not on the grid" in str(err.value)
    )
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (np.float32(0.7), "probability map"),
        (np.uint8(255), r"save \(mask > 0\) as uint8"),
        (np.uint8(2), "multi-label"),
    ],
)
def test_non_binary_masks_are_refused(tiny_release, tmp_path, values, expected):
    preds = _perfect(tiny_release, tmp_path / "preds")
    array, geometry = read_image(preds / f"{TEST_IDS[0]}_lesion.mha")
    soft = array.astype(values.dtype)
    soft[array > 0] = values
    if values != 255:
        soft[0, 0, 0] = 1  # 0, 1 and another value
    write_image(soft, geometry, preds / f"{TEST_IDS[0]}_lesion.mha")
    with pytest.raises(ExternalPredictionError, match=expected):
        load_and_check(preds, tiny_release)


def test_misnamed_and_unknown_masks(tiny_release, tmp_path):
    preds = _perfect(tiny_release, tmp_path / "preds")
    shutil.copy(preds / f"{TEST_IDS[0]}_lesion.mha", preds / "OTHER_999-VISIT_01_lesion.mha")
    shutil.copy(preds / f"{TEST_IDS[0]}_lesion.mha", preds / "MGHNICU_100-VISIT_01_lesion.mha")  # a val case
    (preds / "notes.txt").write_text("not a mask")
    with pytest.warns(ExternalPredictionWarning, match="OTHER_999"):
        masks, _ = load_and_check(preds, tiny_release)
    assert len(masks) == 2
    shutil.copy(preds / f"{TEST_IDS[0]}_lesion.mha", preds / "prediction.mha")
    with pytest.raises(ExternalPredictionError) as err:
        load_and_check(preds, tiny_release)
    assert "prediction.mha: not named like a predicted mask" in str(err.value)
    assert "OTHER_999-VISIT_01_lesion.mha" in str(err.value)  # listed with the problems, not only warned
    assert "MGHNICU_100" not in str(err.value)


def _study(tmp_path: Path, release: Path, **kwargs) -> Path:
    ids = {"test": TEST_IDS, "val": ["MGHNICU_100-VISIT_01"]}
    return write_study(tmp_path / "study", {"dice": [[0.5, 0.6]], "tversky": [[0.4, 0.7]]}, data_dir=release,
                       synthetic=False, ids=ids, n_val=1, **kwargs)  # fmt: skip


def test_add_external_writes_a_run_folder_find_runs_reads(tiny_release, tmp_path):
    from hie_core.fingerprint import edited_results
    from hie_core.report.analysis.runs import find_runs

    study = _study(tmp_path, tiny_release)
    preds = _perfect(tiny_release, tmp_path / "preds")
    before = _snapshot(preds)
    run = add_external(study, "mine", preds)
    assert run == study / "mine" / "seed0"
    assert sorted(p.name for p in study.iterdir()) == ["dice", "mine", "tversky"]  # no temporary folder left
    assert _snapshot(preds) == before
    config = json.loads((run / "config.json").read_text())
    assert config["external"] is True and config["label"] == "mine" and config["loss"] == "external"
    assert config["data_dir_resolved"] == str(tiny_release) and config["config"]["preset"] == "quick"
    assert config["source_folder"] == str(preds.resolve())
    summary = json.loads((run / "summary.json").read_text())
    assert edited_results(run, summary) == [] and set(summary["checksums"]) == {"config.json", "metrics.csv"}
    assert summary["splits"]["test"]["dice"]["mean"] == 1.0
    assert sorted(p.name for p in (run / "predictions" / "test").iterdir()) == [
        f"{i}_lesion.mha" for i in TEST_IDS
    ]
    runs = find_runs(study)
    assert [r.method for r in runs.runs if r.seed is not None] == ["dice", "tversky", "mine"]
    mine = runs.of("mine")[0]
    assert mine.metrics["dice"].tolist() == [1.0, 1.0] and mine.metrics["case_id"].tolist() == TEST_IDS
    assert list(pd.read_csv(run / "metrics.csv").columns) == list(METRIC_COLUMNS)


def test_add_external_same_name_refused_unless_overwrite(tiny_release, tmp_path):
    study = _study(tmp_path, tiny_release)
    first = _perfect(tiny_release, tmp_path / "first")
    run = add_external(study, "mine", first)
    written = (run / "metrics.csv").stat().st_mtime_ns
    assert add_external(study, "mine", first) == run  # the same masks again: left as it is
    assert (run / "metrics.csv").stat().st_mtime_ns == written
    second = _perfect(tiny_release, tmp_path / "second")
    geometry = read_image(second / f"{TEST_IDS[0]}_lesion.mha")[1]
    write_image(np.zeros(geometry.shape, np.uint8), geometry, second / f"{TEST_IDS[0]}_lesion.mha")
    with pytest.raises(ExternalPredictionError, match="already in this study"):
        add_external(study, "mine", second)
    assert pd.read_csv(run / "metrics.csv")["dice"].tolist() == [1.0, 1.0]
    add_external(study, "mine", second, overwrite=True)
    assert pd.read_csv(run / "metrics.csv")["dice"].tolist() == [0.0, 1.0]
    assert sorted(p.name for p in study.iterdir()) == ["dice", "mine", "tversky"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("dice", "one of the study's own"), ("baseline", "one of the study's own"), ("book", "one of the study's own"),
     ("my method", "give a letter or digit"), ("a+b", "give a letter or digit"), ("../x", "give a letter or digit")],
)  # fmt: skip
def test_add_external_refuses_bad_names(tiny_release, tmp_path, name, expected):
    study = _study(tmp_path, tiny_release)
    with pytest.raises(ExternalPredictionError, match=expected):
        add_external(study, name, _perfect(tiny_release, tmp_path / "preds"))


def test_add_external_refuses_other_data_and_bad_masks_before_writing(tiny_release, tmp_path):
    study = _study(tmp_path, tiny_release)
    preds = _perfect(tiny_release, tmp_path / "preds")
    with pytest.raises(ExternalPredictionError, match="the study's runs were scored on"):
        add_external(study, "mine", preds, data_dir=tmp_path)
    (preds / f"{TEST_IDS[0]}_lesion.mha").unlink()
    with pytest.raises(ExternalPredictionError, match="missing"):
        add_external(study, "mine", preds)
    assert sorted(p.name for p in study.iterdir()) == ["dice", "tversky"]


def test_add_external_refuses_changed_data(tiny_release, tmp_path):
    study = _study(tmp_path, tiny_release)
    config_path = study / "dice" / "seed0" / "config.json"
    config = json.loads(config_path.read_text())
    config["data_fingerprint"] = {"digest": "0" * 64, "files": {"BONBID2023_Test/3LABEL/x_lesion.mha": "0"}}
    config_path.write_text(json.dumps(config))
    with pytest.raises(ExternalPredictionError, match="data changed"):
        add_external(study, "mine", _perfect(tiny_release, tmp_path / "preds"))


def test_cli_prints_scores_and_writes_csv(tiny_release, tmp_path, capsys):
    preds = _perfect(tiny_release, tmp_path / "preds")
    out = tmp_path / "scores.csv"
    assert main([str(preds), "--data-dir", str(tiny_release), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        TEST_IDS[0] in printed
        and "test: 2 case(s) with a lesion, mean [95% bootstrap CI]: Dice 1.000" in printed
    )
    assert pd.read_csv(out)["dice"].tolist() == [1.0, 1.0]
    record = json.loads((tmp_path / "scores.csv.hie-score.json").read_text())
    assert record["command"] == "hie-score" and record["cases"] == 2 and record["pred_folder"] == str(preds)


def _release_with_an_empty_label(tmp_path: Path) -> Path:
    """A test split of three cases, the last one with an empty label."""
    from tests.conftest import TINY_GEOMETRY, write_tiny_case

    root = tmp_path / "release"
    for i in range(3):
        label = np.zeros(TINY_GEOMETRY.shape, np.uint8) if i == 2 else True
        write_tiny_case(root / "BONBID2023_Test", f"MGHNICU_2{i:02d}-VISIT_01", seed=200 + i, label=label)
    return root


def test_the_endpoint_is_table_1s_empty_labels_apart(tmp_path, capsys):
    """Perfect masks on the two lesion cases, a 1-voxel false positive on the empty one: Dice 1 over 2 cases
    (as Table 1), not 0.667 over 3; the empty case is in the stratum "empty label", as in per_case_<split>.csv."""
    from hie_core.report.analysis.tables import EMPTY_STRATUM
    from hie_core.study.score import endpoint

    release = _release_with_an_empty_label(tmp_path)
    preds = _perfect(release, tmp_path / "preds")
    empty = preds / "MGHNICU_202-VISIT_01_lesion.mha"
    array, geometry = read_image(empty)
    array[0, 5, 5] = 1
    write_image(array, geometry, empty)
    masks, _ = load_and_check(preds, release)
    row = endpoint(score_predictions(masks)).iloc[0]
    assert (row["split"], row["n_cases"], row["dice_mean"], row["nsd_mean"]) == ("test", 2, 1.0, 1.0)
    assert (row["empty_cases"], row["fp_cases"]) == (1, 1)
    assert row["fp_volume_ml_mean"] == pytest.approx(geometry.voxel_volume_ml)
    out = tmp_path / "scores.csv"
    assert main([str(preds), "--data-dir", str(release), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test: 2 case(s) with a lesion, mean [95% bootstrap CI]: Dice 1.000 [1.000, 1.000]" in printed
    assert (
        "1 case(s) with an empty label, reported apart (not in the means, as in Table 1): 1 with a false positive"
        in printed
    )
    assert "<1%" not in printed and f"test {EMPTY_STRATUM}" in printed
    assert pd.read_csv(out)["stratum"].tolist()[2] == EMPTY_STRATUM


def test_top_level_masks_and_3label_give_a_notice(tiny_release, tmp_path, capsys):
    preds = _perfect(tiny_release, tmp_path / "preds")
    _perfect(tiny_release, preds / "3LABEL")
    with pytest.warns(
        ExternalPredictionWarning, match=r"scoring the 2 mask\(s\) in the folder itself.*3LABEL/ \(2\)"
    ):
        load_and_check(preds, tiny_release)
    assert main([str(preds), "--data-dir", str(tiny_release)]) == 0
    err = capsys.readouterr().err
    assert f"hie-score: note: {preds}: scoring the 2 mask(s) in the folder itself" in err
    assert f"give {preds / '3LABEL'}" in err


def test_a_runs_predictions_folder_is_scored_by_split(tiny_release, tmp_path, capsys):
    """``hie-score <run>/predictions`` reads predictions/<split>/ (the run's layout) for the split scored."""
    preds = tmp_path / "run" / "predictions"
    _perfect(tiny_release, preds / "test")
    (preds / "val").mkdir()
    shutil.copy(next(iter(_labels(tiny_release).values())), preds / "val" / "MGHNICU_100-VISIT_01_lesion.mha")
    assert main([str(preds), "--data-dir", str(tiny_release)]) == 0
    captured = capsys.readouterr()
    assert "test: 2 case(s) with a lesion" in captured.out and "note" not in captured.err
    (preds / "test" / f"{TEST_IDS[0]}_lesion.mha").unlink()
    assert main([str(preds), "--data-dir", str(tiny_release)]) == 2
    assert f"{preds / 'test' / TEST_IDS[0]}_lesion.mha: missing" in capsys.readouterr().err


def test_progress_lines_on_stderr(tiny_release, tmp_path, capsys):
    preds = _perfect(tiny_release, tmp_path / "preds")
    assert main([str(preds), "--data-dir", str(tiny_release)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hie-score: [")]
    assert [line.split(";")[0] for line in lines] == [
        f"hie-score: [1/2] {TEST_IDS[0]}",
        f"hie-score: [2/2] {TEST_IDS[1]}",
    ]
    assert "elapsed, about" in lines[0] and "left" not in lines[1]


def test_a_closed_pipe_ends_quietly(tiny_release, tmp_path):
    """``hie-score ... | head -1``: the reader is gone before the table is printed (closed here at once, so
    that the test does not depend on timing); no BrokenPipeError, exit 0, and --out is still written."""
    preds = _perfect(tiny_release, tmp_path / "preds")
    out = tmp_path / "scores.csv"
    proc = subprocess.Popen([sys.executable, "-m", "hie_core.study.score", str(preds), "--data-dir", str(tiny_release),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "BrokenPipe" not in err and "Traceback" not in err and "Exception ignored" not in err
    assert pd.read_csv(out)["dice"].tolist() == [1.0, 1.0]


def test_add_external_follows_a_moved_dataset_with_the_same_files(tiny_release, tmp_path):
    from hie_core.data import discover_cases
    from hie_core.fingerprint import data_fingerprint

    study = _study(tmp_path, tiny_release)
    config_path = study / "dice" / "seed0" / "config.json"
    config = json.loads(config_path.read_text())
    config["data_fingerprint"] = data_fingerprint(tiny_release, discover_cases(tiny_release)).to_dict()
    config_path.write_text(json.dumps(config))
    preds = _perfect(tiny_release, tmp_path / "preds")
    moved = Path(shutil.move(tiny_release, tmp_path / "moved"))
    with pytest.raises(
        ExternalPredictionError, match="data folder is gone; restore it, or give its new place"
    ):
        add_external(study, "mine", preds)
    run = add_external(study, "mine", preds, data_dir=str(moved) + "/")
    assert pd.read_csv(run / "metrics.csv")["dice"].tolist() == [1.0, 1.0]
    label = next((moved / "BONBID2023_Test" / "3LABEL").glob("*.mha"))
    label.write_bytes(label.read_bytes()[:-1] + b"\1")  # other files: not the study's data
    with pytest.raises(ExternalPredictionError, match="does not hold the same files"):
        add_external(study, "other", preds, data_dir=moved)
