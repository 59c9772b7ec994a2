"""hie_core.metrics against DeepMind's surface-distance, SimpleITK, SciPy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import surface_distance as deepmind
import torch
from scipy import ndimage
from surface_distance import lookup_tables

from hie_core.metrics import (
    BURDEN_STRATA,
    MetricAccumulator,
    burden_stratum,
    case_metrics,
    lesion_burden_percent,
    summarize,
    surface_distances,
    surfel_area_table,
)

SPACING = (3.0, 0.8, 0.7)
SHAPE = (12, 40, 36)


def _blobs(seed: int, shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random reference and a perturbed prediction (every third seed: speckle)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=shape), (0.7, 2, 2))
    ref = field > 0.25
    noise = ndimage.gaussian_filter(rng.normal(size=shape), (0.7, 2, 2))
    pred = rng.random(shape) < 0.05 if seed % 3 == 0 else (field + 0.4 * noise) > 0.3
    return pred, ref


def _reference(
    pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...], tolerance_mm: float = 2.0
) -> dict:
    """The official formulation: DeepMind's surface-distance, and SimpleITK's Dice."""
    surf = deepmind.compute_surface_distances(ref, pred, spacing)
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    images = []
    for mask in (ref, pred):
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        image.SetSpacing(tuple(reversed(spacing)))
        images.append(image)
    overlap.Execute(*images)
    return {
        "dice": overlap.GetDiceCoefficient(1),
        "masd_mm": float(np.mean(deepmind.compute_average_surface_distance(surf))),
        "nsd": float(deepmind.compute_surface_dice_at_tolerance(surf, tolerance_mm)),
    }


def _assert_matches_reference(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> None:
    ours, theirs = case_metrics(pred, ref, spacing), _reference(pred, ref, spacing)
    assert ours["dice"] == pytest.approx(theirs["dice"], abs=1e-12)
    assert ours["masd_mm"] == pytest.approx(theirs["masd_mm"], rel=1e-6, abs=1e-6)
    assert ours["nsd"] == pytest.approx(theirs["nsd"], abs=1e-12)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), SPACING, (0.5, 2.0, 1.3)])
def test_surfel_area_table_equals_deepmind(spacing: tuple[float, ...]) -> None:
    expected = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
    np.testing.assert_allclose(surfel_area_table(spacing), expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", range(9))
def test_random_anisotropic_cases_match_deepmind(seed: int) -> None:
    pred, ref = _blobs(seed)
    assert pred.any() and ref.any() and (pred != ref).any()
    _assert_matches_reference(pred, ref, SPACING)


def test_surfel_arrays_match_deepmind() -> None:
    pred, ref = _blobs(1)
    ours = surface_distances(pred, ref, SPACING)
    theirs = deepmind.compute_surface_distances(ref, pred, SPACING)
    for mine, dist_key, area_key in [
        ((ours.ref_to_pred_mm, ours.ref_areas_mm2), "distances_gt_to_pred", "surfel_areas_gt"),
        ((ours.pred_to_ref_mm, ours.pred_areas_mm2), "distances_pred_to_gt", "surfel_areas_pred"),
    ]:
        np.testing.assert_allclose(np.sort(mine[0]), theirs[dist_key], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(np.sort(mine[1]), np.sort(theirs[area_key]), rtol=1e-12)


def _structures() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    z = np.zeros(SHAPE, bool)
    out = {}
    plane, line, dot = z.copy(), z.copy(), z.copy()
    plane[5, 3:30, 4:20] = True
    line[2:10, 20, 7] = True
    dot[6, 10, 10] = True
    thin = z.copy()
    thin[5, 3:30, 5:21] = True
    out["plane_vs_shifted_plane"] = (thin, plane)
    out["line_vs_plane"] = (line, plane)
    out["voxel_vs_line"] = (dot, line)
    corner = z.copy()
    corner[:4, :9, :7] = True  # touches three volume faces
    far_corner = z.copy()
    far_corner[-3:, -12:, -5:] = True
    out["border_boxes"] = (corner | far_corner, ndimage.binary_dilation(corner))
    out["all_true_vs_blob"] = (np.ones(SHAPE, bool), _blobs(2)[1])
    return out


@pytest.mark.parametrize("name", list(_structures()))
def test_thin_single_voxel_and_border_structures_match_deepmind(name: str) -> None:
    pred, ref = _structures()[name]
    _assert_matches_reference(pred, ref, SPACING)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3])
def test_single_voxel_shift_closed_form(axis: int, k: int) -> None:
    """A voxel and its copy k voxels away: half the 8 corner surfels lie at (k-1)*s, half at k*s."""
    ref = np.zeros((9, 9, 9), bool)
    ref[2, 2, 2] = True
    pred = np.roll(ref, k, axis=axis)
    s = SPACING[axis]
    assert case_metrics(pred, ref, SPACING)["masd_mm"] == pytest.approx((k - 0.5) * s, rel=1e-6)
    assert case_metrics(pred, ref, SPACING)["dice"] == 0.0
    assert case_metrics(pred, ref, SPACING, tolerance_mm=k * s * 1.01)["nsd"] == pytest.approx(1.0)
    assert case_metrics(pred, ref, SPACING, tolerance_mm=k * s * 0.99)["nsd"] == pytest.approx(0.5)
    tie = case_metrics(pred, ref, SPACING, tolerance_mm=k * s)["nsd"]
    assert (
        tie == pytest.approx(1.0) == _reference(pred, ref, SPACING, tolerance_mm=k * s)["nsd"]
    )  # ties count
    if k > 1:
        assert case_metrics(pred, ref, SPACING, tolerance_mm=(k - 1) * s * 0.99)["nsd"] == 0.0


def test_identical_masks_score_perfectly() -> None:
    _, ref = _blobs(4)
    out = case_metrics(ref, ref, SPACING)
    assert (out["dice"], out["masd_mm"], out["nsd"]) == (1.0, 0.0, 1.0)


def test_empty_rules() -> None:
    empty, (_, ref) = np.zeros(SHAPE, bool), _blobs(5)
    both = case_metrics(empty, empty, SPACING)
    assert (both["dice"], both["masd_mm"], both["nsd"], both["n_pred"], both["n_ref"]) == (
        1.0,
        0.0,
        1.0,
        0,
        0,
    )
    for pred, gt in [(empty, ref), (ref, empty)]:
        out = case_metrics(pred, gt, SPACING)
        assert out["dice"] == 0.0 and out["nsd"] == 0.0 and math.isnan(out["masd_mm"])
    with pytest.raises(ValueError, match="non-empty"):
        surface_distances(empty, ref, SPACING)


def test_counts_and_volumes() -> None:
    pred, ref = _blobs(7)
    out = case_metrics(pred, ref, SPACING)
    voxel_ml = np.prod(SPACING) / 1000
    assert (out["n_pred"], out["n_ref"]) == (int(pred.sum()), int(ref.sum()))
    assert out["pred_volume_ml"] == pytest.approx(pred.sum() * voxel_ml)
    assert out["ref_volume_ml"] == pytest.approx(ref.sum() * voxel_ml)
    assert list(out) == ["dice", "masd_mm", "nsd", "n_pred", "n_ref", "pred_volume_ml", "ref_volume_ml"]


@pytest.mark.parametrize("seed", [1, 3])
def test_torch_path_equals_numpy_path(seed: int) -> None:
    pred, ref = _blobs(seed)
    expected = case_metrics(pred, ref, SPACING)
    for args in [(torch.from_numpy(pred), torch.from_numpy(ref)), (torch.from_numpy(pred), ref)]:
        got = case_metrics(*args, SPACING)
        assert got.keys() == expected.keys()
        for key in expected:
            assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key
    surf = surface_distances(torch.from_numpy(pred), torch.from_numpy(ref), SPACING)
    assert isinstance(surf.ref_to_pred_mm, torch.Tensor) and surf.ref_to_pred_mm.dtype == torch.float64


def test_torch_empty_rules() -> None:
    empty, ref = torch.zeros(SHAPE, dtype=torch.bool), torch.from_numpy(_blobs(5)[1])
    assert case_metrics(empty, empty, SPACING)["nsd"] == 1.0
    assert math.isnan(case_metrics(empty, ref, SPACING)["masd_mm"])


@pytest.mark.parametrize(
    "spacing",
    [(1.0, 1.0), (1.0, 1.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, -1.0, 1.0), (1.0, math.nan, 1.0), None, 1.0],
)
def test_bad_spacing_raises(spacing: object) -> None:
    pred, ref = _blobs(1)
    with pytest.raises(ValueError, match="spacing_mm"):
        case_metrics(pred, ref, spacing)  # type: ignore[arg-type]


def test_bad_masks_and_tolerance_raise() -> None:
    pred, ref = _blobs(1)
    with pytest.raises(ValueError, match="boolean"):
        case_metrics(pred.astype(np.uint8), ref, SPACING)
    with pytest.raises(ValueError, match="shape"):
        case_metrics(pred[:-1], ref, SPACING)
    with pytest.raises(ValueError, match="3D"):
        case_metrics(pred[0], ref[0], SPACING[1:])
    with pytest.raises(ValueError, match="tolerance_mm"):
        case_metrics(pred, ref, SPACING, tolerance_mm=-1.0)


def test_summarize_skips_nan_and_bootstraps() -> None:
    rng = np.random.default_rng(0)
    rows = [
        {"dice": float(d), "masd_mm": float(m), "nsd": 0.5}
        for d, m in zip(rng.random(30), rng.random(30) * 5, strict=True)
    ]
    rows[3]["masd_mm"] = rows[11]["masd_mm"] = math.nan
    out = summarize(rows)
    masd = np.array([r["masd_mm"] for r in rows])
    kept = masd[~np.isnan(masd)]
    assert (out["masd_mm"]["n"], out["masd_mm"]["n_skipped"]) == (28, 2)
    assert out["masd_mm"]["mean"] == pytest.approx(kept.mean())
    assert out["masd_mm"]["sd"] == pytest.approx(kept.std(ddof=1))
    assert out["masd_mm"]["median"] == pytest.approx(np.median(kept))
    for stat in out.values():
        assert stat["ci_low"] <= stat["mean"] <= stat["ci_high"]
    assert out["dice"]["ci_low"] < out["dice"]["mean"] < out["dice"]["ci_high"]
    assert out["nsd"]["ci_low"] == out["nsd"]["ci_high"] == 0.5  # no variance, no interval
    assert summarize(rows, seed=0) == out
    assert summarize(rows, seed=1)["dice"]["ci_low"] != out["dice"]["ci_low"]
    assert summarize(pd.DataFrame(rows)) == out
    wide = summarize(rows, ci=0.99)["dice"]
    assert wide["ci_low"] < out["dice"]["ci_low"] and wide["ci_high"] > out["dice"]["ci_high"]


def test_summarize_refuses_inf_and_handles_empty() -> None:
    with pytest.raises(ValueError, match="masd_mm"):
        summarize([{"dice": 0.5, "masd_mm": math.inf, "nsd": 0.5}])
    with pytest.raises(ValueError, match="nsd"):
        summarize([{"dice": 0.5}], metrics=("nsd",))
    out = summarize([{"masd_mm": math.nan}], metrics=("masd_mm",))["masd_mm"]
    assert (out["n"], out["n_skipped"]) == (0, 1) and math.isnan(out["mean"])
    one = summarize([{"dice": 0.7}], metrics=("dice",))["dice"]
    assert one["mean"] == 0.7 and math.isnan(one["sd"])
    assert math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])  # one case: no interval
    with pytest.raises(ValueError, match="ci"):
        summarize([{"dice": 0.7}], metrics=("dice",), ci=1.0)


@pytest.mark.parametrize(
    "burden, stratum",
    [
        (0.0, "<1%"),
        (0.999, "<1%"),
        (1.0, "1-5%"),
        (3.0, "1-5%"),
        (5.0, "1-5%"),
        (5.001, ">5%"),
        (100.0, ">5%"),
    ],
)
def test_burden_strata_boundaries(burden: float, stratum: str) -> None:
    assert burden_stratum(burden) == stratum
    assert stratum in BURDEN_STRATA


@pytest.mark.parametrize("burden", [-0.1, 100.1, math.nan])
def test_burden_stratum_rejects_out_of_range(burden: float) -> None:
    with pytest.raises(ValueError, match="burden_percent"):
        burden_stratum(burden)


def test_lesion_burden_percent() -> None:
    brain = np.zeros(SHAPE, bool)
    brain[2:10, 5:35, 5:30] = True  # 8 * 30 * 25 = 6000 voxels
    label = np.zeros(SHAPE, bool)
    label[4:6, 10:13, 10:20] = True  # 60 voxels
    assert lesion_burden_percent(label, brain) == pytest.approx(1.0)
    assert burden_stratum(lesion_burden_percent(label, brain)) == "1-5%"
    with pytest.raises(ValueError, match="brain_mask"):
        lesion_burden_percent(label, np.zeros(SHAPE, bool))


def test_metric_accumulator() -> None:
    acc = MetricAccumulator(tolerance_mm=2.0)
    for seed in (1, 2):
        pred, ref = _blobs(seed)
        acc.add(f"case_{seed}", pred, ref, SPACING)
    acc.add("empty_pred", np.zeros(SHAPE, bool), _blobs(4)[1], SPACING)
    frame = acc.to_frame()
    assert list(frame.index) == ["case_1", "case_2", "empty_pred"]
    assert frame.loc["case_2", "nsd"] == case_metrics(*_blobs(2), SPACING)["nsd"]
    assert acc.summary()["masd_mm"]["n_skipped"] == 1
    with pytest.raises(ValueError, match="case_1"):
        acc.add("case_1", *_blobs(1), SPACING)
