"""Exact Euclidean distance transforms on the data's own device.

``distance_transform_edt(mask, spacing_mm)`` returns, for every ``True`` voxel, the
distance in mm to the nearest ``False`` voxel (0 on ``False`` voxels), like
``scipy.ndimage.distance_transform_edt(mask, sampling=spacing_mm)``.

Back ends, picked from the input:

- ``torch.Tensor`` on CUDA: CuPy's ``cupyx.scipy.ndimage.distance_transform_edt``,
  sharing memory with the tensor through DLPack (no host round trip).
- ``numpy.ndarray`` or CPU tensor: the multithreaded ``edt`` package (about 3-6x faster
  than SciPy), SciPy as the fallback when ``edt`` is not installed.
- ``torch.Tensor`` on CUDA without CuPy: the mask is copied to the host and transformed
  there (``edt`` or SciPy), which makes a Hausdorff training step many times slower. The
  first such call in a process warns (:class:`HostCopyWarning`), once.

:func:`backend_name` names the back end that a device gets here, for a run's provenance.

A mask with no ``False`` voxel has no defined distance; like SciPy's result it is not
meaningful, so callers (the Hausdorff loss, the metrics) must treat all-foreground and
all-background masks themselves. Here such a mask returns ``inf`` everywhere it is
``True`` so that the misuse cannot go unnoticed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["distance_transform_edt", "available_backends", "backend_name", "cpu_threads", "HostCopyWarning"]


class HostCopyWarning(RuntimeWarning):
    """CUDA masks are transformed on the host because CuPy is not installed."""


_host_copy_warned = False


def cpu_threads() -> int:
    """Threads for CPU distance transforms: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """Names of the distance-transform back ends importable here."""
    return [name for name in ("cupy", "edt", "scipy") if _importable(name)]


def _version(name: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(name)
    except md.PackageNotFoundError:  # imported from a folder without metadata
        return str(getattr(__import__(name), "__version__", "?"))


def backend_name(device: str | torch.device) -> str:
    """The distance-transform back end that masks on ``device`` get in this process.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.

    Returns:
        ``"cupy <version>"`` on CUDA with CuPy; ``"edt <version> (host copy, N threads)"`` or
        ``"scipy <version> (host copy)"`` on CUDA without it; ``"edt <version> (CPU, N
        threads)"`` or ``"scipy <version> (CPU)"`` on the CPU. For ``config.json``'s provenance.
    """
    kind = str(getattr(device, "type", device)).split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if kind == "cuda" and _importable("cupy"):
        return f"cupy {_version('cupy')}"
    where = "host copy" if kind == "cuda" else "CPU"
    if _importable("edt"):
        return f"edt {_version('edt')} ({where}, {cpu_threads()} threads)"
    return f"scipy {_version('scipy')} ({where})"


def _warn_host_copy() -> None:
    """Warn, once per process, that CUDA masks go through the host (no CuPy)."""
    global _host_copy_warned
    if _host_copy_warned:
        return
    _host_copy_warned = True
    try:
        import torch

        cuda = torch.version.cuda or "?"
    except ImportError:  # pragma: no cover - CUDA tensors imply torch
        cuda = "?"
    major = cuda.split(".")[0]
    wheel = f"cupy-cuda{major}x" if major.isdigit() else "the cupy-cudaNNx wheel of your CUDA"
    warnings.warn(
        f"CuPy is not installed: every distance transform of a CUDA tensor (the Hausdorff losses, "
        f"metrics on CUDA tensors) is copied to the host and computed with "
        f"{backend_name('cpu')}, which makes a Hausdorff training step many times slower. "
        f"PyTorch here uses CUDA {cuda}: `pip install {wheel}` (scripts/setup_env.sh does this). "
        "This warning is shown once per process.",
        HostCopyWarning,
        stacklevel=3,
    )


def _spacing(spacing_mm: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing_mm is None:
        return (1.0,) * ndim
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != ndim:
        raise ValueError(f"spacing_mm has {len(spacing)} entries for a {ndim}D mask")
    if any(not s > 0 for s in spacing):
        raise ValueError(f"spacing_mm must be positive, got {spacing}")
    return spacing


def _edt_numpy(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    mask = np.ascontiguousarray(mask, dtype=bool)
    if mask.all():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    try:
        import edt
    except ImportError:
        from scipy import ndimage

        return ndimage.distance_transform_edt(mask, sampling=spacing).astype(np.float32)
    return edt.edt(mask.view(np.uint8), anisotropy=spacing, black_border=False, parallel=cpu_threads())


def _edt_cuda(mask: torch.Tensor, spacing: tuple[float, ...]) -> torch.Tensor:
    import cupy
    import torch
    from cupyx.scipy import ndimage as cndi

    mask = mask.contiguous()
    with cupy.cuda.ExternalStream(torch.cuda.current_stream(mask.device).cuda_stream):
        cmask = cupy.from_dlpack(mask)
        dist = torch.from_dlpack(
            cndi.distance_transform_edt(cmask, sampling=spacing, float64_distances=False)
        )
    # an all-True mask has no distance: inf, chosen on the device (no host synchronisation)
    return torch.where(mask.all(), torch.full((), float("inf"), device=mask.device), dist)


def distance_transform_edt(mask, spacing_mm: Sequence[float] | None = None):
    """Distance of every ``True`` voxel to the nearest ``False`` voxel.

    Args:
        mask: boolean array or tensor of any dimensionality (a 3D (D, H, W) mask in
            practice). Non-boolean input is taken as ``mask != 0``.
        spacing_mm: voxel size along each axis in mm, in the mask's axis order;
            ``None`` means 1 along every axis (distances in voxels).

    Returns:
        float32 distances of the same type, shape and device as ``mask``.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - numpy-only install
        torch = None
    if torch is not None and isinstance(mask, torch.Tensor):
        spacing = _spacing(spacing_mm, mask.ndim)
        bool_mask = mask if mask.dtype == torch.bool else mask != 0
        if bool_mask.is_cuda:
            try:
                return _edt_cuda(bool_mask, spacing).to(torch.float32)
            except ImportError:
                _warn_host_copy()
                host = _edt_numpy(bool_mask.cpu().numpy(), spacing)
                return torch.from_numpy(host).to(mask.device)
        return torch.from_numpy(_edt_numpy(bool_mask.numpy(), spacing))
    mask = np.asarray(mask)
    spacing = _spacing(spacing_mm, mask.ndim)
    return _edt_numpy(mask != 0 if mask.dtype != bool else mask, spacing).astype(np.float32, copy=False)
