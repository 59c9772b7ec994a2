"""Batched, on-device twins of the five seed augmentations (back end ``"batched"``).

Every transform is a deterministic function of explicit per-sample parameters (tensors on
the data's device), so it can be checked against TorchIO's own deterministic transforms
(``tio.Noise``, ``tio.Blur``, ``tio.Gamma``, ``tio.Resample`` pairs, ``tio.ElasticDeformation``);
:class:`BatchAugmenter` samples those parameters on the device with a ``torch.Generator``
and applies them to the whole batch at once. No step reads a value back to the host
(the blur kernel radius comes from ``spacing_mm``, which the caller should pass on the
CPU as the DataLoader yields it; a CUDA ``spacing_mm`` costs one synchronisation).

Tensors are ``(B, C, D, H, W)``; ``spacing_mm`` is ``(B, 3)`` in (D, H, W) order;
displacements are in mm, components in (D, H, W) order, positive = content moves from
the higher index (the output at ``i`` samples the input at ``i + d / spacing``).
See :mod:`hie_core.augment` for how each twin relates to TorchIO.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # pragma: no cover
    from hie_core.augment.config import AugmentConfig

__all__ = [
    "BatchAugmenter",
    "add_noise",
    "simulate_anisotropy",
    "gaussian_blur",
    "gamma_transform",
    "bspline_weights",
    "elastic_displacement_mm",
    "elastic_warp",
]

_BLUR_TRUNCATE = 4.0  # scipy.ndimage.gaussian_filter's default truncation, in standard deviations


def _per_sample(values: torch.Tensor, ndim: int) -> torch.Tensor:
    """Reshape ``(B, ...)`` per-sample values so they broadcast against an ``ndim`` tensor."""
    return values.reshape(values.shape + (1,) * (ndim - values.dim()))


def add_noise(image: torch.Tensor, std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Add standard-normal ``noise`` (same shape as ``image``) scaled by per-sample ``std`` ``(B,)``."""
    return image + noise * _per_sample(std.to(image.dtype), image.dim())


def gamma_transform(image: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """TorchIO's sign-aware gamma, ``sign(x) * |x| ** gamma``, with ``gamma`` of shape ``(B, C)``.

    TorchIO uses ``x ** gamma`` for a channel with no negative value and ``sign(x) |x| ** gamma``
    otherwise; both agree on non-negative values, so the sign-aware form is used throughout.
    """
    g = _per_sample(gamma.to(image.dtype), image.dim())
    return image.sign() * image.abs().pow(g)


def _reflect_index(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map integer indices into ``[0, size)`` like SciPy's ``mode='reflect'`` (d c b a | a b c d)."""
    period = index.remainder(2 * size)
    return torch.where(period >= size, 2 * size - 1 - period, period)


def gaussian_blur(image: torch.Tensor, sigma_vox: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with per-sample, per-axis standard deviations in voxels.

    Reproduces ``scipy.ndimage.gaussian_filter(x, sigma_vox)`` (what ``tio.Blur`` calls):
    kernel ``exp(-t^2 / 2 sigma^2)`` cut at ``int(4 sigma + 0.5)`` voxels and normalised,
    ``mode='reflect'`` borders, ``sigma = 0`` leaves the axis unchanged.

    Args:
        image: ``(B, C, D, H, W)`` float tensor.
        sigma_vox: ``(B, 3)`` standard deviations in voxels, (D, H, W) order.
        radius: Common kernel half-width in voxels, at least ``int(4 * sigma_vox.max() + 0.5)``.

    Returns:
        The blurred tensor, same shape and dtype.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    taps = torch.arange(-radius, radius + 1, device=image.device, dtype=torch.float64)
    out = image
    for axis in range(3):
        sigma = sigma_vox[:, axis].to(device=image.device, dtype=torch.float64)[:, None]  # (B, 1)
        cut = torch.floor(_BLUR_TRUNCATE * sigma + 0.5)
        weights = torch.exp(-0.5 * taps**2 / sigma.clamp_min(1e-30) ** 2) * (taps.abs() <= cut)
        weights = (weights / weights.sum(dim=1, keepdim=True)).to(image.dtype)  # (B, 2R+1)
        dim = axis + 2
        size = out.shape[dim]
        index = _reflect_index(torch.arange(-radius, size + radius, device=image.device), size)
        padded = out.index_select(dim, index)
        acc = torch.zeros_like(out)
        for k in range(2 * radius + 1):
            acc = acc + _per_sample(weights[:, k], out.dim()) * padded.narrow(dim, k, size)
        out = acc
    return out


def _anisotropy_operator(
    size: int, factor: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample 1-D nearest-down / linear-up operator along an axis of ``size`` voxels.

    Mirrors ``tio.RandomAnisotropy``: a centred grid of ``floor(size / factor)`` voxels at
    ``factor`` times the spacing is filled by nearest neighbour, then resampled back with
    linear interpolation (clamped in the outer half voxel, 0 beyond it, as ITK does).

    Returns:
        ``(index0, index1, weight1, inside)``, each ``(B, size)``: output ``i`` is
        ``(1 - weight1) x[index0] + weight1 x[index1]`` where ``inside``, else 0.
    """
    m = factor.to(torch.float64)[:, None]
    n_low = torch.floor(size / m)
    centre, centre_low = (size - 1) / 2.0, (n_low - 1) / 2.0
    i = torch.arange(size, device=factor.device, dtype=torch.float64)[None, :]
    u = centre_low + (i - centre) / m  # continuous index on the low-resolution grid
    inside = (u >= -0.5) & (u < n_low - 0.5)
    floor_u = torch.floor(u)
    weight1 = u - floor_u
    j0 = torch.minimum(floor_u.clamp_min(0), n_low - 1)
    j1 = torch.minimum((floor_u + 1).clamp_min(0), n_low - 1)

    def source(j: torch.Tensor) -> torch.Tensor:  # nearest original voxel of low-res voxel j
        return torch.floor(centre + (j - centre_low) * m + 0.5).clamp(0, size - 1).long()

    return source(j0), source(j1), weight1, inside


def simulate_anisotropy(image: torch.Tensor, axis: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Downsample each sample along its own axis by ``factor`` (nearest) and upsample back (linear).

    Args:
        image: ``(B, C, D, H, W)`` float tensor.
        axis: ``(B,)`` integer axis per sample, 0 = D, 1 = H, 2 = W.
        factor: ``(B,)`` downsampling factors >= 1.

    Returns:
        The transformed tensor. Samples are processed in one pass per axis (3 passes), a
        sample whose axis is not the current one passes through unchanged.
    """
    out = image
    for a in range(3):
        dim = a + 2
        size = out.shape[dim]
        idx0, idx1, w1, inside = _anisotropy_operator(size, factor)
        view = [out.shape[0], 1, 1, 1, 1]
        view[dim] = size
        g0 = torch.take_along_dim(out, idx0.reshape(view), dim)
        g1 = torch.take_along_dim(out, idx1.reshape(view), dim)
        w = w1.to(out.dtype).reshape(view)
        # A Python 0, not a host tensor: a CPU tensor here would be copied to the device each step.
        resampled = torch.where(inside.reshape(view), g0 + w * (g1 - g0), 0.0)
        out = torch.where(_per_sample(axis == a, out.dim()), resampled, out)
    return out


def bspline_weights(n_voxels: int, n_control: int, device: torch.device | None = None) -> torch.Tensor:
    """Cubic B-spline weights ``(n_voxels, n_control)`` of an ITK ``BSplineTransformInitializer`` grid.

    ITK (what TorchIO calls) spreads ``n_control - 3`` mesh cells over the image's extent
    padded by 1/8 voxel on each side, with one control point outside each end; voxel ``i``
    then sits at control index ``u = 1 + (i + 0.625)(n_control - 3) / (n_voxels + 0.25)`` and
    its displacement is ``sum_k c_k beta3(u - k)``. The grid is the same in every spacing.
    """
    i = torch.arange(n_voxels, device=device, dtype=torch.float64)[:, None]
    u = 1.0 + (i + 0.625) * (n_control - 3) / (n_voxels + 0.25)
    t = (u - torch.arange(n_control, device=device, dtype=torch.float64)[None, :]).abs()
    near = (4.0 - 6.0 * t**2 + 3.0 * t**3) / 6.0
    far = (2.0 - t).clamp_min(0) ** 3 / 6.0
    return torch.where(t < 1.0, near, far)


def elastic_displacement_mm(
    coefficients_mm: torch.Tensor, spatial_shape: tuple[int, int, int]
) -> torch.Tensor:
    """Dense displacement ``(B, 3, D, H, W)`` in mm from control-point coefficients ``(B, 3, kD, kH, kW)``."""
    depth, height, width = spatial_shape
    device = coefficients_mm.device
    wd, wh, ww = (
        bspline_weights(n, k, device).to(coefficients_mm.dtype)
        for n, k in zip(spatial_shape, coefficients_mm.shape[2:], strict=True)
    )
    field = torch.einsum("bcklm,wm->bcklw", coefficients_mm, ww)
    field = torch.einsum("bcklw,hl->bckhw", field, wh)
    field = torch.einsum("bckhw,dk->bcdhw", field, wd)
    return field.reshape(coefficients_mm.shape[:2] + (depth, height, width))


def elastic_warp(
    volume: torch.Tensor, displacement_mm: torch.Tensor, spacing_mm: torch.Tensor, mode: str
) -> torch.Tensor:
    """Resample ``volume`` at ``x + displacement`` like ITK's ``ResampleImageFilter``.

    Args:
        volume: ``(B, C, D, H, W)`` float tensor.
        displacement_mm: ``(B, 3, D, H, W)`` displacement in mm, (D, H, W) components.
        spacing_mm: ``(B, 3)`` voxel spacing in mm, (D, H, W) order.
        mode: ``"bilinear"`` (trilinear) for images, ``"nearest"`` for labels.

    Returns:
        The warped tensor. Points up to half a voxel outside the volume take the edge value;
        points further out take each channel's minimum (TorchIO's default pixel value).
    """
    shape = volume.shape[2:]
    spacing = spacing_mm.to(device=volume.device, dtype=volume.dtype)
    coords = []
    for a, n in enumerate(shape):
        base = torch.arange(n, device=volume.device, dtype=volume.dtype).reshape(
            [1] + [n if k == a else 1 for k in range(3)]
        )
        index = base + displacement_mm[:, a] / _per_sample(spacing[:, a], 4)
        coords.append(index)
    inside = torch.ones_like(coords[0], dtype=torch.bool)
    for index, n in zip(coords, shape, strict=True):
        inside &= (index >= -0.5) & (index < n - 0.5)
    grid = torch.stack([(2.0 * c + 1.0) / n - 1.0 for c, n in zip(coords, shape, strict=True)][::-1], dim=-1)
    warped = F.grid_sample(volume, grid, mode=mode, padding_mode="border", align_corners=False)
    fill = volume.amin(dim=(2, 3, 4), keepdim=True)
    return torch.where(inside[:, None], warped, fill)


class BatchAugmenter:
    """The five seed augmentations on a whole batch, sampled and applied on the batch's device.

    Each transform is applied to each sample independently with its probability; parameters
    are drawn with the caller's ``torch.Generator`` (on the batch's device), so a run is
    reproducible from the generator's seed. Order as in the seed: noise, anisotropy, blur,
    gamma, elastic. Labels follow the elastic warp (nearest neighbour) only, as in TorchIO.

    Args:
        config: An :class:`hie_core.augment.AugmentConfig` (its ``backend`` is not consulted).
    """

    per_batch = True

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def _mask(self, name: str, batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        draw = torch.rand(batch, generator=generator, device=device)
        return draw < self.config.probability(name)

    def _uniform(
        self,
        low_high: tuple[float, float],
        shape: tuple[int, ...],
        generator: torch.Generator,
        device: torch.device,
    ) -> torch.Tensor:
        low, high = low_high
        return low + (high - low) * torch.rand(shape, generator=generator, device=device)

    def sample_elastic_coefficients_mm(
        self, batch: int, generator: torch.Generator, device: torch.device
    ) -> torch.Tensor:
        """Control-point displacements ``(B, 3, k, k, k)`` in mm, ``U(-max, max)``, borders locked.

        Locking mirrors TorchIO 1.2: the outer ``locked_borders`` control points are zeroed
        along the first two TorchIO grid axes (x, y = our W, H) only; the slice axis D is
        never locked there, and neither is it here.
        """
        k = self.config.elastic_control_points
        limit = self.config.elastic_max_displacement_mm
        coeffs = (2.0 * torch.rand((batch, 3, k, k, k), generator=generator, device=device) - 1.0) * limit
        keep = torch.ones(k, device=device)
        lock = self.config.elastic_locked_borders
        if lock:
            keep[:lock] = 0.0
            keep[k - lock :] = 0.0
        return coeffs * keep[None, None, None, :, None] * keep[None, None, None, None, :]

    def __call__(
        self,
        image: torch.Tensor,
        label: torch.Tensor,
        spacing_mm: torch.Tensor,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch.

        Args:
            image: ``(B, C, D, H, W)`` float tensor (z-scored ADC and ZADC).
            label: ``(B, 1, D, H, W)`` binary float tensor on the same device.
            spacing_mm: ``(B, 3)`` voxel spacing in mm, (D, H, W) order; best on the CPU.
            generator: ``torch.Generator`` on ``image.device``.

        Returns:
            ``(image, label)`` with the input shapes, dtypes and device; labels stay binary.
        """
        if image.dim() != 5 or label.dim() != 5 or image.shape[2:] != label.shape[2:]:
            raise ValueError(
                f"image/label must be (B, C, D, H, W) alike, got {tuple(image.shape)}, {tuple(label.shape)}"
            )
        if spacing_mm.shape != (image.shape[0], 3):
            raise ValueError(f"spacing_mm must be (B, 3), got {tuple(spacing_mm.shape)}")
        if image.is_cuda and not spacing_mm.is_cuda:  # pinned + non_blocking: no sync per step
            spacing_dev = spacing_mm.float().pin_memory().to(image.device, non_blocking=True)
        else:
            spacing_dev = spacing_mm.to(device=image.device, dtype=torch.float32)
        for name in ("noise", "anisotropy", "blur", "gamma"):
            if self.config.probability(name) > 0:
                mask = self._mask(name, image.shape[0], generator, image.device)
                new = getattr(self, f"_{name}")(image, spacing_mm, spacing_dev, generator)
                image = torch.where(_per_sample(mask, image.dim()), new, image)
        if self.config.probability("elastic") > 0 and self.config.elastic_max_displacement_mm > 0:
            mask = _per_sample(self._mask("elastic", image.shape[0], generator, image.device), image.dim())
            coeffs = self.sample_elastic_coefficients_mm(image.shape[0], generator, image.device)
            field = elastic_displacement_mm(coeffs, tuple(image.shape[2:])).to(image.dtype)
            image = torch.where(mask, elastic_warp(image, field, spacing_dev, "bilinear"), image)
            warped_label = elastic_warp(label.to(image.dtype), field, spacing_dev, "nearest").to(label.dtype)
            label = torch.where(mask, warped_label, label)
        return image, label

    def _noise(
        self, image: torch.Tensor, spacing_mm: torch.Tensor, spacing_dev: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        std = self._uniform((0.0, self.config.noise_std), (image.shape[0],), gen, image.device)
        noise = torch.randn(image.shape, generator=gen, device=image.device, dtype=image.dtype)
        return add_noise(image, std, noise)

    def _anisotropy(
        self, image: torch.Tensor, spacing_mm: torch.Tensor, spacing_dev: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        axis = torch.randint(0, 3, (image.shape[0],), generator=gen, device=image.device)
        factor = self._uniform(self.config.anisotropy_downsampling, (image.shape[0],), gen, image.device)
        return simulate_anisotropy(image, axis, factor)

    def _blur(
        self, image: torch.Tensor, spacing_mm: torch.Tensor, spacing_dev: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        sigma_vox = (
            self._uniform(self.config.blur_std_mm, (image.shape[0], 3), gen, image.device) / spacing_dev
        )
        radius = int(_BLUR_TRUNCATE * self.config.blur_std_mm[1] / float(spacing_mm.min()) + 0.5)
        return gaussian_blur(image, sigma_vox, radius)

    def _gamma(
        self, image: torch.Tensor, spacing_mm: torch.Tensor, spacing_dev: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        log_gamma = self._uniform(self.config.log_gamma, tuple(image.shape[:2]), gen, image.device)
        return gamma_transform(image, torch.exp(log_gamma))
