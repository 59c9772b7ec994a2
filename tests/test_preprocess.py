"""Tests for hie_core.preprocess: grid convention, z-score, labels, round trip, cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import hie_core.preprocess as pp
from hie_core.config import preset_values
from hie_core.io import ImageGeometry, write_image

try:
    from hie_core.data import Case
except ImportError:  # the data module is written in parallel; same attributes

    @dataclass(frozen=True)
    class Case:  # type: ignore[no-redef]
        case_id: str
        split: str | None
        adc: Path
        zadc: Path
        label: Path | None


# an oblique grid: axes permuted and flipped, so (x, y, z) vs (D, H, W) mistakes show
DIRECTION = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
#: The seed protocol's grid (D, H, W).
SEED_GRID = tuple(preset_values("seed")["target_shape"])
NATIVE = ImageGeometry((8, 20, 24), (3.0, 1.2, 1.0), (10.0, -20.0, 5.0), DIRECTION)


def _itk_image(array: np.ndarray, geometry: ImageGeometry) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(reversed(geometry.spacing_mm)))
    image.SetOrigin(geometry.origin_mm)
    image.SetDirection(geometry.direction)
    return image


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def _write_case(root: Path, rng: np.random.Generator, case_id: str = "case-01") -> Case:
    adc = rng.normal(1350.0, 430.0, NATIVE.shape).astype(np.float32)
    zadc = rng.normal(0.0, 2.0, NATIVE.shape).astype(np.float32)
    label = np.zeros(NATIVE.shape, np.uint8)
    label[3:6, 5:12, 8:15] = 1
    paths = [
        write_image(a, NATIVE, root / f"{case_id}-{n}.mha")
        for n, a in (("adc", adc), ("z", zadc), ("l", label))
    ]
    return Case(case_id, "train", *paths)


def test_resampled_geometry_keeps_extent_and_outer_faces() -> None:
    target = pp.resampled_geometry(NATIVE, (5, 30, 16))
    assert target.shape == (5, 30, 16)
    np.testing.assert_allclose(target.extent_mm, NATIVE.extent_mm)
    np.testing.assert_allclose(target.spacing_mm, (3.0 * 8 / 5, 1.2 * 20 / 30, 1.0 * 24 / 16))
    assert target.direction == NATIVE.direction
    for corner in ((-0.5, -0.5, -0.5), (15.5, 29.5, 4.5)):  # outer corners, SimpleITK (x, y, z) index
        scale = np.asarray(NATIVE.shape[::-1]) / np.asarray(target.shape[::-1])
        native_corner = (np.asarray(corner) + 0.5) * scale - 0.5
        new = _itk_image(np.zeros(target.shape, np.float32), target)
        old = _itk_image(np.zeros(NATIVE.shape, np.float32), NATIVE)
        np.testing.assert_allclose(
            new.TransformContinuousIndexToPhysicalPoint(corner),
            old.TransformContinuousIndexToPhysicalPoint(native_corner.tolist()),
            atol=1e-9,
        )


def test_downsampling_by_two_puts_a_block_on_one_voxel() -> None:
    # a 2x2x2 bright block is exactly one voxel of the half-size grid: its centre is that
    # voxel's centre only under the keep-the-extent convention (keeping the origin would
    # sample between blocks and give 0.5s)
    native = np.zeros(NATIVE.shape, np.float32)
    native[2:4, 4:6, 6:8] = 1.0
    small, geometry = pp.resample(native, NATIVE, (4, 10, 12), "linear")
    expected = np.zeros((4, 10, 12), np.float32)
    expected[1, 2, 3] = 1.0
    np.testing.assert_allclose(small, expected, atol=1e-6)
    assert small.dtype == np.float32
    block = _itk_image(native, NATIVE).TransformContinuousIndexToPhysicalPoint((6.5, 4.5, 2.5))
    np.testing.assert_allclose(_itk_image(small, geometry).TransformIndexToPhysicalPoint((3, 2, 1)), block)


def test_bright_voxel_stays_at_its_physical_point_when_upsampled() -> None:
    native = np.zeros(NATIVE.shape, np.float32)
    native[4, 9, 13] = 1.0
    point = np.asarray(_itk_image(native, NATIVE).TransformIndexToPhysicalPoint((13, 9, 4)))
    big, geometry = pp.resample(native, NATIVE, (24, 60, 72), "linear")  # x3 on every axis
    image = _itk_image(big, geometry)
    weights = big[big > 0]
    points = [
        image.TransformIndexToPhysicalPoint(tuple(int(i) for i in idx[::-1])) for idx in np.argwhere(big > 0)
    ]
    centroid = (np.asarray(points) * weights[:, None]).sum(0) / weights.sum()
    assert np.abs(centroid - point).max() < 1e-4  # the origin-keeping error would be 1/3 voxel (>= 0.33 mm)
    assert np.unravel_index(big.argmax(), big.shape) == (13, 28, 40)


def test_preprocess_arrays_shape_dtype_and_zscore() -> None:
    rng = np.random.default_rng(0)
    adc = rng.normal(1350.0, 430.0, NATIVE.shape)
    zadc = rng.normal(-1.0, 3.0, NATIVE.shape)
    label = (rng.random(NATIVE.shape) > 0.7).astype(np.uint8) * 2  # nonzero = lesion
    for mode in ("linear", "nearest"):
        out = pp.preprocess_arrays(
            adc, zadc, NATIVE, label, (6, 16, 30), "volume", label_interpolation=mode, case_id="c"
        )
        assert out.image.shape == (2, 6, 16, 30) and out.image.dtype == np.float32
        assert out.label.shape == (1, 6, 16, 30) and out.label.dtype == np.uint8
        assert set(np.unique(out.label)) == {0, 1}
        np.testing.assert_allclose(out.image.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
        np.testing.assert_allclose(out.image.std(axis=(1, 2, 3)), 1.0, atol=1e-5)
        assert out.geometry.extent_mm == pytest.approx(NATIVE.extent_mm)
        assert out.native_geometry == NATIVE and out.case_id == "c"
        resampled_adc = pp.resample(adc, NATIVE, (6, 16, 30), "linear")[0].astype(np.float64)
        assert out.intensity_mean[0] == pytest.approx(resampled_adc.mean())
        assert out.intensity_std[0] == pytest.approx(resampled_adc.std())


def test_atlas_scaling_keeps_zadc_as_given_and_zscores_adc() -> None:
    rng = np.random.default_rng(1)
    adc = rng.normal(1350.0, 430.0, NATIVE.shape)
    zadc = rng.normal(-1.0, 3.0, NATIVE.shape)
    volume = pp.preprocess_arrays(adc, zadc, NATIVE, None, (6, 16, 30), "volume")
    atlas = pp.preprocess_arrays(adc, zadc, NATIVE, None, (6, 16, 30), "atlas")
    np.testing.assert_array_equal(atlas.image[0], volume.image[0])  # ADC z-scored either way
    resampled_zadc = pp.resample(zadc, NATIVE, (6, 16, 30), "linear")[0]
    np.testing.assert_allclose(atlas.image[1], resampled_zadc, atol=1e-5)  # ZADC on its own scale
    assert atlas.image[1].mean() == pytest.approx(-1.0, abs=0.2) and atlas.image.dtype == np.float32
    assert atlas.intensity_mean == volume.intensity_mean  # the statistics are recorded either way
    # a larger lesion burden moves the z-scored ZADC of the same lesion voxel, not the atlas one
    burdened = zadc.copy()
    burdened[:, :10] = -6.0
    for norm, moves in (("volume", True), ("atlas", False)):
        a = pp.preprocess_arrays(adc, zadc, NATIVE, None, NATIVE.shape, norm).image[1]
        b = pp.preprocess_arrays(adc, burdened, NATIVE, None, NATIVE.shape, norm).image[1]
        assert (abs(a[:, 15:] - b[:, 15:]).max() > 0.1) == moves, norm
    with pytest.raises(ValueError, match="zadc_norm must be one of"):
        pp.preprocess_arrays(adc, zadc, NATIVE, None, (6, 16, 30), "raw")


def test_zscore_of_a_constant_map_is_zero() -> None:
    values, mean, std = pp.zscore(np.full((2, 3, 4), 7.0))
    assert (mean, std) == (7.0, 0.0)
    assert values.dtype == np.float32 and not values.any()


def test_identity_when_target_shape_is_native() -> None:
    rng = np.random.default_rng(1)
    adc = rng.normal(1000.0, 100.0, NATIVE.shape).astype(np.float32)
    zadc = rng.normal(0.0, 1.0, NATIVE.shape).astype(np.float32)
    label = (rng.random(NATIVE.shape) > 0.5).astype(np.uint8)
    out = pp.preprocess_arrays(adc, zadc, NATIVE, label, NATIVE.shape, "volume")
    assert out.geometry == NATIVE
    np.testing.assert_array_equal(out.image[0], pp.zscore(adc)[0])
    np.testing.assert_array_equal(out.label[0], label)


def test_nearest_keeps_the_label_values() -> None:
    labels = np.random.default_rng(2).integers(0, 4, NATIVE.shape).astype(np.uint8)
    out, _ = pp.resample(labels, NATIVE, (11, 13, 37), "nearest")
    assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1, 2, 3}
    mask, _ = pp.resample(labels > 1, NATIVE, (11, 13, 37), "nearest")
    assert mask.dtype == bool


@pytest.mark.parametrize("label_interpolation", ["linear", "nearest"])
def test_round_trip_keeps_few_hundred_voxel_lesions(label_interpolation: str) -> None:
    # typical BONBID native grid: 160x160 at 1.1 mm in-plane, 40 slices at 2.75 mm
    native = ImageGeometry((40, 160, 160), (2.75, 1.1, 1.1), (-88.0, -88.0, -55.0))
    for centre, radius_mm in (((20.3, 70.6, 90.2), 6.0), ((13.8, 101.1, 60.5), 7.0)):
        axes = [
            (np.arange(n) - c) * s for n, c, s in zip(native.shape, centre, native.spacing_mm, strict=True)
        ]
        grid = np.meshgrid(*axes, indexing="ij")
        lesion = np.sqrt(sum(g**2 for g in grid)) <= radius_mm
        assert 200 < lesion.sum() < 500
        out = pp.preprocess_arrays(
            lesion * 1.0, lesion * 1.0, native, lesion, SEED_GRID, "volume", label_interpolation=label_interpolation
        )
        back = pp.probabilities_to_native_mask(out.label[0].astype(np.float32), out.geometry, native)
        assert back.dtype == bool and back.shape == native.shape
        assert _dice(lesion, back) >= 0.9


def test_to_native_and_arguments_are_checked() -> None:
    target = pp.resampled_geometry(NATIVE, (4, 10, 12))
    prob = np.full(target.shape, 0.8, np.float32)
    back = pp.to_native(prob, target, NATIVE)
    assert back.shape == NATIVE.shape and np.allclose(back, 0.8)
    assert pp.probabilities_to_native_mask(prob, target, NATIVE).all()
    with pytest.raises(ValueError, match="volume shape"):
        pp.to_native(np.zeros((4, 10, 11)), target, NATIVE)
    with pytest.raises(ValueError, match="interpolation"):
        pp.resample(prob, target, (2, 2, 2), "cubic")
    with pytest.raises(ValueError, match="target_shape"):
        pp.resampled_geometry(NATIVE, (4, 0, 12))
    with pytest.raises(ValueError, match="threshold"):
        pp.probabilities_to_native_mask(prob, target, NATIVE, threshold=1.0)


def test_preprocess_case_reads_files_and_checks_grids(tmp_path: Path) -> None:
    case = _write_case(tmp_path, np.random.default_rng(3))
    out = pp.preprocess_case(case, (4, 10, 12), "volume")
    assert out.image.shape == (2, 4, 10, 12) and out.label.shape == (1, 4, 10, 12)
    unlabelled = pp.preprocess_case(Case("u", None, case.adc, case.zadc, None), (4, 10, 12), "volume")
    assert unlabelled.label is None
    np.testing.assert_array_equal(unlabelled.image, out.image)
    shifted = ImageGeometry(NATIVE.shape, NATIVE.spacing_mm, (0.0, 0.0, 0.0), DIRECTION)
    write_image(np.zeros(NATIVE.shape, np.uint8), shifted, tmp_path / "bad.mha")
    with pytest.raises(ValueError, match="label grid differs"):
        pp.preprocess_case(Case("b", None, case.adc, case.zadc, tmp_path / "bad.mha"), (4, 10, 12), "volume")


@pytest.fixture()
def counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count calls to the reader, the resampler and the file hasher."""
    calls = {"read_image": 0, "resample_to_geometry": 0, "file_sha256": 0}
    for module in (pp.grid, pp.case, pp.cache):  # each part of the package looks them up itself
        for name in calls:
            if not hasattr(module, name):
                continue
            original = getattr(module, name)

            def wrapper(*args, _original=original, _name=name, **kwargs):
                calls[_name] += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, name, wrapper)
    return calls


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_cache_hit_reads_and_resamples_nothing(tmp_path: Path, counting: dict[str, int]) -> None:
    data = tmp_path / "data"
    case = _write_case(data, np.random.default_rng(4))
    before = _snapshot(data)
    first = pp.PreprocessCache(tmp_path / "cache").get(case, (4, 10, 12), "volume")
    assert (
        counting["read_image"] == 3 and counting["resample_to_geometry"] > 0 and counting["file_sha256"] == 3
    )
    counting.update({k: 0 for k in counting})
    again = pp.PreprocessCache(tmp_path / "cache").get(case, (4, 10, 12), "volume")  # new instance: hashes from disk
    assert counting == {"read_image": 0, "resample_to_geometry": 0, "file_sha256": 0}
    np.testing.assert_array_equal(again.image, first.image)
    np.testing.assert_array_equal(again.label, first.label)
    assert again.geometry == first.geometry and again.native_geometry == NATIVE
    assert again.intensity_mean == first.intensity_mean and again.case_id == case.case_id
    assert _snapshot(data) == before  # nothing written next to the data
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


def test_cache_invalidates_on_input_or_parameter_change(tmp_path: Path, counting: dict[str, int]) -> None:
    case = _write_case(tmp_path / "data", np.random.default_rng(5))
    cache = pp.PreprocessCache(tmp_path / "cache")
    first = cache.get(case, (4, 10, 12), "volume")
    other_shape = cache.get(case, (8, 10, 12), "volume")
    assert other_shape.image.shape == (2, 8, 10, 12)
    other_mode = cache.get(case, (4, 10, 12), "volume", label_interpolation="nearest")
    assert counting["read_image"] == 9
    zadc = np.random.default_rng(6).normal(5.0, 1.0, NATIVE.shape).astype(np.float32)
    write_image(zadc, NATIVE, case.zadc)
    changed = cache.get(case, (4, 10, 12), "volume")
    assert counting["read_image"] == 12
    assert not np.array_equal(changed.image[1], first.image[1])
    np.testing.assert_array_equal(changed.image[0], first.image[0])
    assert other_mode.label is not None and len(list(cache.cache_dir.glob("*.npz"))) == 4
    atlas = cache.get(case, (4, 10, 12), "atlas")  # another scaling: another entry
    assert counting["read_image"] == 15 and len(list(cache.cache_dir.glob("*.npz"))) == 5
    assert not np.array_equal(atlas.image[1], changed.image[1])


def test_corrupt_cache_entry_is_recomputed(tmp_path: Path, counting: dict[str, int]) -> None:
    case = _write_case(tmp_path / "data", np.random.default_rng(7))
    cache = pp.PreprocessCache(tmp_path / "cache")
    first = cache.get(case, (4, 10, 12), "volume")
    entry = cache.path(case, (4, 10, 12), "volume", "linear")
    entry.write_bytes(entry.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        again = cache.get(case, (4, 10, 12), "volume")
    np.testing.assert_array_equal(again.image, first.image)
    assert counting["read_image"] == 6
    cache.get(case, (4, 10, 12), "volume")  # the rewritten entry is good again
    assert counting["read_image"] == 6


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HIE_CACHE_DIR", str(tmp_path))
    assert pp.default_cache_dir() == tmp_path / "preprocessed"
    assert pp.PreprocessCache().cache_dir == tmp_path / "preprocessed"
    monkeypatch.delenv("HIE_CACHE_DIR")
    assert pp.default_cache_dir() == Path.home() / ".cache" / "hie_core" / "preprocessed"


def test_unwritable_cache_only_warns(tmp_path: Path) -> None:
    case = _write_case(tmp_path / "data", np.random.default_rng(8))
    (tmp_path / "a_file").write_text("not a folder")
    cache = pp.PreprocessCache(tmp_path / "a_file" / "cache")
    with pytest.warns(UserWarning, match="cannot write cache file"):
        out = cache.get(case, (4, 10, 12), "volume")
    np.testing.assert_array_equal(out.image, pp.preprocess_case(case, (4, 10, 12), "volume").image)
