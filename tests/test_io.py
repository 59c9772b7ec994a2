from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from hie_core.io import ImageGeometry, ImageReadError, read_geometry, read_image, write_image

GEOM = ImageGeometry(
    shape=(5, 6, 7),
    spacing_mm=(3.0, 0.8, 0.7),
    origin_mm=(1.0, -2.0, 3.5),
    direction=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0),
)


def test_array_order_matches_simpleitk_index_order(tmp_path):
    image = sitk.Image(7, 6, 5, sitk.sitkFloat32)  # size in (x, y, z)
    image.SetSpacing((0.7, 0.8, 3.0))
    image.SetPixel(6, 1, 4, 42.0)  # index (x, y, z)
    sitk.WriteImage(image, str(tmp_path / "a.mha"))
    array, geometry = read_image(tmp_path / "a.mha")
    assert array.shape == (5, 6, 7)
    assert array[4, 1, 6] == 42.0  # (D, H, W) = (z, y, x)
    assert geometry.spacing_mm == pytest.approx((3.0, 0.8, 0.7))


@pytest.mark.parametrize("suffix", [".mha", ".nii.gz", ".nrrd"])
def test_round_trip_keeps_values_and_geometry(tmp_path, suffix):
    array = np.random.default_rng(0).normal(size=GEOM.shape).astype(np.float32)
    path = write_image(array, GEOM, tmp_path / f"img{suffix}")
    back, geometry = read_image(path)
    np.testing.assert_array_equal(back, array)
    assert geometry.same_grid(GEOM)
    assert read_geometry(path).same_grid(GEOM)


def test_mha_and_nifti_agree_on_physical_points(tmp_path):
    array = np.zeros(GEOM.shape, np.uint8)
    array[1, 2, 3] = 1
    write_image(array, GEOM, tmp_path / "a.mha")
    write_image(array, GEOM, tmp_path / "a.nii.gz")
    a = sitk.ReadImage(str(tmp_path / "a.mha"))
    b = sitk.ReadImage(str(tmp_path / "a.nii.gz"))  # ITK's own NIfTI reader as the referee
    np.testing.assert_allclose(
        a.TransformIndexToPhysicalPoint((3, 2, 1)), b.TransformIndexToPhysicalPoint((3, 2, 1)), atol=1e-4
    )


def test_bool_written_as_uint8_and_geometry_properties(tmp_path):
    mask = np.ones(GEOM.shape, bool)
    back, _ = read_image(write_image(mask, GEOM, tmp_path / "m.mha"))
    assert back.dtype == np.uint8 and back.sum() == mask.size
    assert GEOM.voxel_volume_ml == pytest.approx(3.0 * 0.8 * 0.7 / 1000)
    assert GEOM.extent_mm == pytest.approx((15.0, 4.8, 4.9))
    assert ImageGeometry.from_dict(GEOM.to_dict()) == GEOM


def test_write_is_atomic_and_checks_shape(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        write_image(np.zeros((2, 2, 2)), GEOM, tmp_path / "x.mha")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_files_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.mha"
    bad.write_bytes(b"ObjectType = Image\nNDims = 3\nthis is not an image")
    with pytest.raises(ImageReadError, match="corrupt.mha"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="missing.mha: file not found"):
        read_image(tmp_path / "missing.mha")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_image(tmp_path / "x.png")


def test_geometry_validation():
    with pytest.raises(ValueError, match="spacing_mm"):
        ImageGeometry(shape=(1, 2, 3), spacing_mm=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        ImageGeometry(shape=(1, 2), spacing_mm=(1.0, 1.0, 1.0))
    other = ImageGeometry(
        shape=(5, 6, 7), spacing_mm=(3.0, 0.8, 0.9), origin_mm=GEOM.origin_mm, direction=GEOM.direction
    )
    diffs = GEOM.grid_differences(other)
    assert len(diffs) == 1 and diffs[0].startswith("spacing_mm")


def test_zero_spacing_is_named_as_a_wrong_header_not_a_damaged_copy(tmp_path) -> None:
    path = tmp_path / "zero.mha"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.float32)), str(path))
    text = path.read_bytes()
    assert b"ElementSpacing = 1 1 1" in text
    path.write_bytes(text.replace(b"ElementSpacing = 1 1 1", b"ElementSpacing = 0 1 1"))
    for read in (read_image, read_geometry):
        with pytest.raises(
            ImageReadError, match=r"voxel spacing of 0 x 1 x 1 mm .* the header is wrong"
        ) as err:
            read(path)
        assert "copy it again" not in str(err.value) and str(path) in str(err.value)


def test_a_full_disk_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch) -> None:
    import errno
    import os

    from hie_core.io import WriteError, atomic_write_text

    target = tmp_path / "results" / "table1_test.csv"
    atomic_write_text(target, "old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(
        WriteError, match=r"table1_test.csv: cannot write \(No space left on device\); the disk"
    ) as err:
        atomic_write_text(target, "new")
    assert (
        isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    )  # callers catching OSError still do
    assert str(err.value).startswith(str(target)) and target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["table1_test.csv"]  # no temporary file left
