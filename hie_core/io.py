"""Reading and writing medical images with their geometry.

This is the only module that knows SimpleITK's (x, y, z) index order. Everything it
returns is in array order (D, H, W) = (z, y, x): ``array[d, h, w]`` is the voxel at
SimpleITK index ``(w, h, d)``, and ``ImageGeometry.spacing_mm`` is ``(sz, sy, sx)`` so
that it matches the array's axes. Origin and direction stay in physical (x, y, z)
order, as every scanner and viewer reports them.

MHA/MHD/NRRD are read and written with SimpleITK (the reader TorchIO uses); NIfTI
(``.nii``, ``.nii.gz``) with nibabel. SimpleITK and nibabel are imported lazily so that
the training step can run on machines that only have PyTorch.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hie_core.errors import UserError

__all__ = [
    "ImageGeometry",
    "ImageReadError",
    "read_image",
    "read_geometry",
    "write_image",
    "read_writer",
    "WRITER_KEY",
    "atomic_write_bytes",
    "atomic_write_text",
]

_ITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone gives 0600
_NIFTI_SUFFIXES = (".nii", ".nii.gz")


class ImageReadError(UserError, RuntimeError):
    """An image file could not be read; the message names the file and the cause."""


@dataclass(frozen=True)
class ImageGeometry:
    """Where an array sits in physical space.

    Attributes:
        shape: array shape (D, H, W).
        spacing_mm: voxel size in mm along (D, H, W), i.e. SimpleITK's spacing reversed.
        origin_mm: physical position of voxel (0, 0, 0) in (x, y, z) mm (LPS, as ITK).
        direction: 3x3 direction cosines, row-major, in ITK's (x, y, z) convention.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        if len(self.shape) != 3 or any(int(s) <= 0 for s in self.shape):
            raise ValueError(f"shape must be three positive sizes, got {self.shape}")
        if len(self.spacing_mm) != 3 or any(not float(s) > 0 for s in self.spacing_mm):
            raise ValueError(f"spacing_mm must be three positive values, got {self.spacing_mm}")
        if len(self.direction) != 9:
            raise ValueError(f"direction must have 9 entries, got {len(self.direction)}")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing_mm", tuple(float(s) for s in self.spacing_mm))
        object.__setattr__(self, "origin_mm", tuple(float(s) for s in self.origin_mm))
        object.__setattr__(self, "direction", tuple(float(s) for s in self.direction))

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 ml = 1000 mm^3)."""
        sz, sy, sx = self.spacing_mm
        return sz * sy * sx / 1000.0

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical extent (size * spacing) along (D, H, W) in mm."""
        return tuple(n * s for n, s in zip(self.shape, self.spacing_mm, strict=True))  # type: ignore[return-value]

    def same_grid(self, other: ImageGeometry, tol: float = 1e-4) -> bool:
        """True when both describe the same voxel grid (within a relative tolerance)."""
        return not self.grid_differences(other, tol)

    def grid_differences(self, other: ImageGeometry, tol: float = 1e-4) -> list[str]:
        """Human-readable list of how ``other``'s grid differs from this one."""
        out = []
        if self.shape != other.shape:
            out.append(f"size {other.shape} != {self.shape}")
        for name in ("spacing_mm", "origin_mm", "direction"):
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            if not np.allclose(a, b, rtol=tol, atol=tol):
                theirs, ours = (", ".join(f"{v:.4g}" for v in x) for x in (b, a))
                out.append(f"{name} ({theirs}) != ({ours})")
        return out

    def to_dict(self) -> dict:
        return {
            "shape": list(self.shape),
            "spacing_mm": list(self.spacing_mm),
            "origin_mm": list(self.origin_mm),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ImageGeometry:
        return cls(
            shape=tuple(d["shape"]),
            spacing_mm=tuple(d["spacing_mm"]),
            origin_mm=tuple(d["origin_mm"]),
            direction=tuple(d["direction"]),
        )


def _is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def _check_suffix(path: Path) -> None:
    name = path.name.lower()
    if not name.endswith(_ITK_SUFFIXES + _NIFTI_SUFFIXES):
        raise ImageReadError(
            f"{path}: unsupported file type (expected one of {', '.join(_ITK_SUFFIXES + _NIFTI_SUFFIXES)})"
        )


_REMEDY = "the file is damaged or incomplete: copy it again from the source"
#: Lines of an ITK exception that say where in ITK, not what went wrong.
_ITK_NOISE = re.compile(r"^(Exception thrown in SimpleITK|.*\.(cxx|h|hxx):\d+:?$|itk::ERROR:?$)")


def _cause(exc: BaseException) -> str:
    """The informative line of a reader's exception (ITK puts its source location first)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    for line in lines:
        if not _ITK_NOISE.match(line):
            line = re.sub(r"^(ITK ERROR|itk::ERROR|sitk::ERROR):\s*(\w+\(0x[0-9a-f]+\):\s*)?", "", line)
            return line[:200]
    return type(exc).__name__


def read_image(path: str | os.PathLike, dtype: np.dtype | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """Read a 3D image into a (D, H, W) array and its geometry.

    Args:
        path: an MHA/MHD/NRRD or NIfTI file.
        dtype: convert the array to this dtype (default: keep the file's type).

    Returns:
        ``(array, geometry)`` with ``array.shape == geometry.shape``.

    Raises:
        ImageReadError: the file is missing, unreadable, corrupt or not 3D; the message
            names the file.
    """
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    try:
        array, geometry = _read_nifti(path) if _is_nifti(path) else _read_itk(path)
    except ImageReadError:
        raise
    except Exception as exc:  # SimpleITK/nibabel raise many types; name the file once
        if not _is_nifti(
            path
        ):  # ITK refuses some headers (zero spacing) while reading: name the header's fault
            read_geometry(path)
        raise ImageReadError(f"{path}: cannot read image ({_cause(exc)}); {_REMEDY}") from None
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array, geometry


def read_geometry(path: str | os.PathLike) -> ImageGeometry:
    """Read only the header of an image (cheap: no voxel data for MHA/NIfTI)."""
    path = Path(path)
    _check_suffix(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    try:
        if _is_nifti(path):
            return _read_nifti(path, header_only=True)[1]
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        if reader.GetDimension() != 3:
            raise ImageReadError(f"{path}: expected a 3D image, got {reader.GetDimension()}D")
        return _geometry_from_itk(
            reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection(), path
        )
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{path}: cannot read image header ({_cause(exc)}); {_REMEDY}") from None


def _check_spacing(path: Path, spacing_xyz) -> None:
    """A header whose spacing is not positive: the header is wrong, not the copy (say so, with the values)."""
    values = [float(s) for s in spacing_xyz]
    if not all(np.isfinite(v) and v > 0 for v in values):
        shown = " x ".join(f"{v:g}" for v in values)
        raise ImageReadError(f"{path}: its header gives a voxel spacing of {shown} mm (x, y, z), and a spacing must be "
                             "positive; the header is wrong: fix it where the file was made (for example with "
                             "SimpleITK's SetSpacing) or ask its provider")  # fmt: skip


def _geometry_from_itk(size, spacing, origin, direction, path: Path | None = None) -> ImageGeometry:
    if path is not None:
        _check_spacing(path, spacing)
    return ImageGeometry(
        shape=tuple(int(s) for s in reversed(size)),
        spacing_mm=tuple(float(s) for s in reversed(spacing)),
        origin_mm=tuple(origin),
        direction=tuple(direction),
    )


def _read_itk(path: Path) -> tuple[np.ndarray, ImageGeometry]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    if image.GetDimension() != 3:
        raise ImageReadError(f"{path}: expected a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError(
            f"{path}: expected a scalar image, got {image.GetNumberOfComponentsPerPixel()} components"
        )
    array = sitk.GetArrayFromImage(image)  # already (z, y, x) = (D, H, W)
    geometry = _geometry_from_itk(
        image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection(), path
    )
    return array, geometry


# NIfTI stores RAS; ITK uses LPS. Flip the first two axes of the affine, as ITK does.
_LPS = np.diag([-1.0, -1.0, 1.0])


def _read_nifti(path: Path, header_only: bool = False) -> tuple[np.ndarray | None, ImageGeometry]:
    import nibabel as nib

    img = nib.load(str(path))
    if len(img.shape) != 3:
        raise ImageReadError(f"{path}: expected a 3D image, got shape {img.shape}")
    affine = np.asarray(img.affine, dtype=float)
    linear = _LPS @ affine[:3, :3]
    spacing_xyz = np.linalg.norm(linear, axis=0)
    _check_spacing(path, spacing_xyz)
    direction = linear / spacing_xyz
    origin = _LPS @ affine[:3, 3]
    geometry = ImageGeometry(
        shape=tuple(reversed(img.shape)),
        spacing_mm=tuple(reversed(spacing_xyz.tolist())),
        origin_mm=tuple(origin.tolist()),
        direction=tuple(direction.ravel().tolist()),
    )
    if header_only:
        return None, geometry
    data = np.asanyarray(img.dataobj)
    return np.ascontiguousarray(np.transpose(data, (2, 1, 0))), geometry


#: The header field naming the command that wrote an image (MetaImage/NRRD key; NIfTI: ``descrip``).
WRITER_KEY = "HIE_Writer"


def write_image(
    array: np.ndarray, geometry: ImageGeometry, path: str | os.PathLike, compress: bool = True,
    writer: str | None = None,
) -> Path:  # fmt: skip
    """Write a (D, H, W) array with its geometry, atomically.

    The file appears complete or not at all: it is written to a temporary name in the
    same folder and renamed. Parent folders are created.

    Args:
        array: (D, H, W) array; bool arrays are written as uint8.
        geometry: its geometry; ``geometry.shape`` must equal ``array.shape``.
        path: destination (.mha/.nrrd/.nii/.nii.gz; .mhd is refused as it is two files).
        compress: compress the voxel data.
        writer: the command that writes it (e.g. ``"hie-predict"``), recorded in the header
            (:data:`WRITER_KEY`; NIfTI: ``descrip``) and read back by :func:`read_writer`.
    """
    path = Path(path)
    _check_suffix(path)
    if path.name.lower().endswith((".mhd", ".nhdr")):
        raise ValueError(f"{path}: write a single-file format (.mha, .nrrd, .nii.gz), not a detached header")
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.shape != geometry.shape:
        raise ValueError(f"{path}: array shape {array.shape} does not match geometry shape {geometry.shape}")
    with _atomic_target(path) as tmp:
        if _is_nifti(path):
            _write_nifti(array, geometry, tmp, writer)
        else:
            _write_itk(array, geometry, tmp, compress, writer)
    return path


def read_writer(path: str | os.PathLike) -> str | None:
    """The command recorded by ``write_image(..., writer=...)`` in an image's header; None when none (or unreadable)."""
    path = Path(path)
    try:
        if _is_nifti(path):
            import nibabel as nib

            text = nib.load(str(path)).header["descrip"].item().decode("ascii", "replace").strip()
            return text.removeprefix(WRITER_KEY + "=") if text.startswith(WRITER_KEY + "=") else None
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        return reader.GetMetaData(WRITER_KEY) if reader.HasMetaDataKey(WRITER_KEY) else None
    except Exception:  # not an image we can read: certainly not ours
        return None


class WriteError(UserError, OSError):
    """A file could not be written (full disk, no permission); the message names it and what to do."""


def _write_error(path: Path, exc: OSError) -> WriteError:
    import errno

    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"the disk (or quota) holding {path.parent} is full: free space there and run the same command again"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"{path.parent} cannot be written: choose a writable folder"
    else:
        fix = "check the folder and run the same command again"
    err = WriteError(f"{path}: cannot write ({reason}); {fix}; the previous file, if any, is unchanged")
    err.errno = exc.errno
    return err


@contextlib.contextmanager
def _atomic_target(path: Path):
    """Yield a temporary path beside ``path`` (same suffix); rename it over ``path`` on success.

    Raises:
        WriteError: the folder or the file cannot be written (a full disk, no permission);
            nothing half-written is left and an existing ``path`` is unchanged.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".tmp-", suffix="-" + path.name, dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except WriteError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_itk(
    array: np.ndarray, geometry: ImageGeometry, path: Path, compress: bool, writer: str | None
) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(reversed(geometry.spacing_mm)))
    image.SetOrigin(geometry.origin_mm)
    image.SetDirection(geometry.direction)
    if writer:
        image.SetMetaData(WRITER_KEY, writer)
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(path))
    writer.SetUseCompression(compress)
    # the temporary name ends in the real suffix, so SimpleITK picks the right writer
    writer.Execute(image)


def _write_nifti(array: np.ndarray, geometry: ImageGeometry, path: Path, writer: str | None) -> None:
    import nibabel as nib

    spacing_xyz = np.asarray(list(reversed(geometry.spacing_mm)))
    direction = np.asarray(geometry.direction).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = _LPS @ (direction * spacing_xyz)
    affine[:3, 3] = _LPS @ np.asarray(geometry.origin_mm)
    img = nib.Nifti1Image(np.transpose(array, (2, 1, 0)), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if writer:
        img.header["descrip"] = f"{WRITER_KEY}={writer}"[:79]
    nib.save(img, str(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    with _atomic_target(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))
