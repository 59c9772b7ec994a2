from __future__ import annotations

import hashlib

import numpy as np
import pytest

from hie_core.data import (
    DatasetError,
    DataWarning,
    carve_validation,
    discover_cases,
    kfold,
    load_dataset,
    validate_cases,
)
from hie_core.io import ImageGeometry, write_image

from .conftest import TINY_GEOMETRY, write_tiny_case


def _snapshot(root):
    return {
        p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_discover_release_root_pairs_files_and_ignores_extras(tiny_release):
    cases = discover_cases(tiny_release)
    assert [c.split for c in cases] == ["train"] * 3 + ["val"] + ["test"] * 2
    case = cases[0]
    assert case.case_id == "MGHNICU_000-VISIT_01"
    assert case.adc.name == "MGHNICU_000-VISIT_01-ADC_ss.mha"
    assert case.zadc.name == "Zmap_MGHNICU_000-VISIT_01-ADC_smooth2mm_clipped10.mha"
    assert case.label.name == "MGHNICU_000-VISIT_01_lesion.mha"
    assert [c.case_id for c in discover_cases(tiny_release, splits=["test"])] == [
        "MGHNICU_200-VISIT_01",
        "MGHNICU_201-VISIT_01",
    ]


def test_discover_single_split_folder_and_missing_labels(tmp_path, tiny_release):
    cases = discover_cases(tiny_release / "BONBID2023_Val")
    assert len(cases) == 1 and cases[0].split == "val"
    write_tiny_case(tmp_path / "inference", "X_001-VISIT_01", label=None)
    (case,) = discover_cases(tmp_path / "inference")
    assert case.label is None and case.split is None


def test_validate_reports_facts_and_empty_labels(tiny_release):
    cases, report = load_dataset(tiny_release)
    assert len(report.cases) == 6
    assert [r.empty_label for r in report.cases][:3] == [False, False, True]
    assert any("empty label" in n and "MGHNICU_002" in n for n in report.notes)
    first = report.cases[0]
    assert first.lesion_voxels == 2 * 3 * 3
    assert first.brain_voxels == 6 * 10 * 10
    assert first.burden_percent == pytest.approx(100 * 18 / 600)
    assert first.lesion_volume_ml == pytest.approx(18 * TINY_GEOMETRY.voxel_volume_ml)
    table = report.table()
    assert list(table["split"]) == ["train"] * 3 + ["val"] + ["test"] * 2


def test_not_a_bonbid_folder(tmp_path):
    with pytest.raises(DatasetError, match="data folder not found"):
        discover_cases(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        discover_cases(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a BONBID-HIE folder"):
        discover_cases(tmp_path / "other")


def test_missing_partner_and_misnamed_files_are_all_reported(tmp_path):
    split = tmp_path / "BONBID2023_Train"
    paths = write_tiny_case(split, "A_001-VISIT_01")
    paths["zadc"].unlink()
    write_tiny_case(split, "A_002-VISIT_01")
    (split / "1ADC_ss" / "A_003-ADC.mha").write_bytes(b"x")
    with pytest.raises(DatasetError) as err:
        discover_cases(tmp_path)
    message = str(err.value)
    assert "2 problem(s)" in message
    assert "A_001-VISIT_01_lesion.mha" in message or "A_001-VISIT_01-ADC_ss.mha" in message
    assert "missing partner file" in message and "2Z_ADC" in message
    assert "A_003-ADC.mha: file name does not follow" in message


def _bad_release(tmp_path):
    split = tmp_path / "BONBID2023_Train"
    # 1: corrupt ZADC
    p1 = write_tiny_case(split, "B_001-VISIT_01")
    p1["zadc"].write_bytes(b"not an image at all")
    # 2: label on another grid (spacing)
    p2 = write_tiny_case(split, "B_002-VISIT_01")
    other = ImageGeometry(TINY_GEOMETRY.shape, (3.0, 1.0, 1.1), TINY_GEOMETRY.origin_mm)
    write_image(np.zeros(TINY_GEOMETRY.shape, np.uint8), other, p2["label"])
    # 3: NaN in ADC
    p3 = write_tiny_case(split, "B_003-VISIT_01")
    adc = np.full(TINY_GEOMETRY.shape, 1000.0, np.float32)
    adc[0, 0, 0] = np.nan
    write_image(adc, TINY_GEOMETRY, p3["adc"])
    # 4: label values 0/1/2
    p4 = write_tiny_case(split, "B_004-VISIT_01")
    lab = np.zeros(TINY_GEOMETRY.shape, np.uint8)
    lab[0, 0, :3] = [1, 2, 2]
    write_image(lab, TINY_GEOMETRY, p4["label"])
    # 5: ZADC of a different size
    p5 = write_tiny_case(split, "B_005-VISIT_01")
    small = ImageGeometry((6, 12, 9), TINY_GEOMETRY.spacing_mm, TINY_GEOMETRY.origin_mm)
    write_image(np.zeros(small.shape, np.float32), small, p5["zadc"])
    # 6: different origin and direction of the label
    p6 = write_tiny_case(split, "B_006-VISIT_01")
    moved = ImageGeometry(
        TINY_GEOMETRY.shape, TINY_GEOMETRY.spacing_mm, (0.0, 0.0, 0.0), (-1, 0, 0, 0, 1, 0, 0, 0, 1)
    )
    write_image(np.zeros(TINY_GEOMETRY.shape, np.uint8), moved, p6["label"])
    return p1, p2, p3, p4, p5, p6


def test_validation_reports_every_problem_with_its_file_and_writes_nothing(tmp_path):
    p1, p2, p3, p4, p5, p6 = _bad_release(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path)
    message = str(err.value)
    assert f"{p1['zadc']}: cannot read image" in message
    assert f"{p2['label']}: label is not on the ADC grid" in message and "spacing_mm" in message
    assert f"{p3['adc']}: ADC has 1 non-finite voxel(s)" in message
    assert f"{p4['label']}: label values must be 0 or 1, found 2" in message
    assert f"{p5['zadc']}: ZADC is not on the ADC grid" in message and "size" in message
    assert f"{p6['label']}: label is not on the ADC grid" in message
    assert "origin_mm" in message and "direction" in message
    assert message.startswith(f"{tmp_path}: 6 problem(s) in the BONBID-HIE folder")
    assert "Traceback" not in message
    assert _snapshot(tmp_path) == before


def test_discovery_and_content_problems_come_in_one_error(tmp_path):
    """Issue 11: a missing partner and three broken files are four problems, not one per attempt."""
    split = tmp_path / "BONBID2023_Train"
    lone = write_tiny_case(split, "D_001-VISIT_01")
    lone["zadc"].unlink()  # 1: missing partner
    truncated = write_tiny_case(split, "D_002-VISIT_01")["adc"]
    truncated.write_bytes(truncated.read_bytes()[:-40])  # 2: truncated voxel data
    empty = write_tiny_case(split, "D_003-VISIT_01")["zadc"]
    empty.write_bytes(b"")  # 3: empty file
    label = write_tiny_case(split, "D_004-VISIT_01")["label"]
    write_image(np.full(TINY_GEOMETRY.shape, 0.5, np.float32), TINY_GEOMETRY, label)  # 4: not binary
    write_tiny_case(split, "D_005-VISIT_01")  # a good case
    before = _snapshot(tmp_path)
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path)
    message, problems = str(err.value), err.value.problems
    assert len(problems) == 4 and message.startswith(f"{tmp_path}: 4 problem(s)")
    assert any(p.startswith(f"{lone['adc']}: missing partner file") and "2Z_ADC" in p for p in problems)
    assert any(p.startswith(f"{truncated}: cannot read image") for p in problems)
    assert any(p.startswith(f"{empty}: cannot read image") for p in problems)
    assert any(p.startswith(f"{label}: label values must be 0 or 1, found 0.5") for p in problems)
    assert "Traceback" not in message and _snapshot(tmp_path) == before
    with pytest.raises(DatasetError) as err:  # discover_cases alone still sees the names only
        discover_cases(tmp_path)
    assert len(err.value.problems) == 1


def test_files_without_a_partner_are_read_too_and_empty_splits_reported(tmp_path):
    split = tmp_path / "BONBID2023_Train"
    lone = write_tiny_case(split, "E_001-VISIT_01")
    lone["adc"].unlink()
    lone["zadc"].write_bytes(b"garbage")
    (tmp_path / "BONBID2023_Test" / "1ADC_ss").mkdir(parents=True)
    (split / "3LABEL" / "E_002_lesion.mha.bak.mha").write_text("x")
    (split / "1ADC_ss" / "E_009-VISIT_01-ADC_ss.mha").symlink_to(tmp_path / "gone.mha")
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path)
    message = str(err.value)
    assert f"{lone['zadc']}: missing partner file in {split / '1ADC_ss'}" in message
    assert f"{lone['zadc']}: cannot read image" in message
    assert f"{tmp_path / 'BONBID2023_Test'}: no cases found" in message
    assert f"{split / '3LABEL' / 'E_002_lesion.mha.bak.mha'}: file name does not follow" in message
    assert f"{split / '1ADC_ss' / 'E_009-VISIT_01-ADC_ss.mha'}: broken link" in message
    assert len(err.value.problems) == 5


def test_labels_false_ignores_the_label_folder(tmp_path):
    paths = write_tiny_case(tmp_path / "BONBID2023_Test", "F_001-VISIT_01")
    paths["label"].write_bytes(b"broken")
    (paths["label"].parent / "stray.txt").write_text("x")
    cases, report = load_dataset(tmp_path, require_labels=False, labels=False)
    assert cases[0].label is None and report.cases[0].lesion_voxels is None
    assert discover_cases(tmp_path, labels=False)[0].label is None
    with pytest.raises(DatasetError, match="label"):
        load_dataset(tmp_path, require_labels=False)
    with pytest.raises(ValueError, match="needs labels=True"):
        load_dataset(tmp_path, labels=False)


def test_require_labels(tmp_path):
    write_tiny_case(tmp_path / "BONBID2023_Test", "C_001-VISIT_01", label=None)
    cases = discover_cases(tmp_path)
    validate_cases(cases)  # inference data is fine
    with pytest.raises(DatasetError, match="has no label"):
        validate_cases(cases, require_labels=True)


def _fake_cases(n):
    from pathlib import Path

    from hie_core.data import Case

    return [
        Case(f"C_{i:03d}-VISIT_01", "train", Path(f"a{i}"), Path(f"z{i}"), Path(f"l{i}")) for i in range(n)
    ]


def test_carve_validation_is_seeded_disjoint_and_order_independent():
    cases = _fake_cases(20)
    fit, sel = carve_validation(cases, fraction=0.2, seed=3)
    assert len(sel) == 4 and len(fit) == 16
    assert not {c.case_id for c in fit} & {c.case_id for c in sel}
    fit2, sel2 = carve_validation(list(reversed(cases)), fraction=0.2, seed=3)
    assert sel2 == sel and fit2 == fit
    _, sel3 = carve_validation(cases, fraction=0.2, seed=4)
    assert sel3 != sel
    assert len(carve_validation(cases, n_val=5)[1]) == 5
    with pytest.raises(ValueError, match="cannot carve"):
        carve_validation(cases[:1], n_val=1)
    with pytest.raises(ValueError, match="fraction"):
        carve_validation(cases, fraction=1.5)


def test_kfold_partitions_every_case_once():
    cases = _fake_cases(11)
    folds = kfold(cases, k=3, seed=0)
    selected = [c.case_id for _, sel in folds for c in sel]
    assert sorted(selected) == sorted(c.case_id for c in cases)
    assert sorted(len(sel) for _, sel in folds) == [3, 4, 4]
    for fit, sel in folds:
        assert len(fit) + len(sel) == 11
    with pytest.raises(ValueError, match="k must be"):
        kfold(cases, k=1)


def test_stray_non_image_files_are_warned_about_and_skipped(tiny_release):
    """A README or a thumbnail in a map folder must not reject the whole dataset."""
    readme = tiny_release / "BONBID2023_Train" / "1ADC_ss" / "README.md"
    readme.write_text("notes")
    with pytest.warns(DataWarning, match=r"README.md: not an image file .* skipped"):
        cases, _ = load_dataset(tiny_release)
    assert len(cases) == 6


def test_a_folder_of_nifti_files_hears_that_bonbid_is_mha(tmp_path):
    split = tmp_path / "BONBID2023_Test"
    for i in range(3):
        (split / "1ADC_ss").mkdir(parents=True, exist_ok=True)
        (split / "1ADC_ss" / f"case{i}.nii.gz").write_bytes(b"x")
    with pytest.raises(DatasetError) as err:
        discover_cases(tmp_path)
    message = str(err.value)
    assert (
        "holds 3 NIfTI file(s)" in message
        and "MetaImage .mha named like MGHNICU_010-VISIT_01-ADC_ss.mha" in message
    )
    assert "does not follow" not in message  # one line for the folder, not one per file


def test_constant_maps_and_whole_brain_labels_are_warned_about(tmp_path):
    split = tmp_path / "BONBID2023_Train"
    paths = write_tiny_case(split, "G_001-VISIT_01")
    write_image(np.zeros(TINY_GEOMETRY.shape, np.float32), TINY_GEOMETRY, paths["adc"])
    with pytest.warns(DataWarning, match=r"the ADC map is constant \(0 everywhere\)"):
        load_dataset(tmp_path)
    paths = write_tiny_case(split, "G_001-VISIT_01")
    write_image(np.ones(TINY_GEOMETRY.shape, np.uint8), TINY_GEOMETRY, paths["label"])
    with pytest.warns(DataWarning, match=r"the lesion covers \d+% of the brain"):
        load_dataset(tmp_path)
