"""Exact Euclidean distance transforms on the data's own device.

``distance_transform_edt(mask, spacing_mm)`` returns, for every ``True`` voxel, the
distance in mm to the nearest ``False`` voxel (0 on ``False`` voxels), like
``scipy.ndimage.distance_transform_edt(mask, sampling=spacing_mm)``.

Back ends, picked from the input:

- ``torch.Tensor`` on CUDA: CuPy's ``cupyx.scipy.ndimage.distance_transform_edt``,
  sharing memory with the tensor through DLPack (no host round trip).
- ``numpy.ndarray`` or CPU tensor: the multithreaded ``edt`` package (about 3-6x faster
  than SciPy), SciPy as the fallback when ``edt`` is not installed.

A mask with no ``False`` voxel has no defined distance; like SciPy's result it is not
meaningful, so callers (the Hausdorff loss, the metrics) must treat all-foreground and
all-background masks themselves. Here such a mask returns ``inf`` everywhere it is
``True`` so that the misuse cannot go unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["distance_transform_edt", "available_backends", "cpu_threads"]


def cpu_threads() -> int:
    """Threads for CPU distance transforms: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def available_backends() -> list[str]:
    """Names of the distance-transform back ends importable here."""
    out = []
    for name in ("cupy", "edt", "scipy"):
        try:
            __import__(name)
            out.append(name)
        except ImportError:
            pass
    return out


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
                host = _edt_numpy(bool_mask.cpu().numpy(), spacing)
                return torch.from_numpy(host).to(mask.device)
        return torch.from_numpy(_edt_numpy(bool_mask.numpy(), spacing))
    mask = np.asarray(mask)
    spacing = _spacing(spacing_mm, mask.ndim)
    return _edt_numpy(mask != 0 if mask.dtype != bool else mask, spacing).astype(np.float32, copy=False)
