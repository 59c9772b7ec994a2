"""The seed study's five augmentations, on the CPU with TorchIO or batched on the GPU.

The seed applied, each with probability 0.5 and in this order, ``RandomNoise(mean=0,
std=0.01)``, ``RandomAnisotropy(downsampling=(1.2, 2.0))``, ``RandomBlur(std=(0, 0.5))``,
``RandomGamma(log_gamma=(-0.1, 0.1))`` and ``RandomElasticDeformation()`` (TorchIO 1.2).
:class:`AugmentConfig` holds those parameters; three back ends share it:

- ``"torchio"`` (:class:`TorchioAugmenter`, the reference): the ``tio.Compose`` itself,
  called on one sample at a time in DataLoader workers, seeded per call.
- ``"batched"`` (:class:`hie_core.augment.batched.BatchAugmenter`): the same transforms written as
  batched tensor code, sampled with a ``torch.Generator`` on the batch's device (CUDA or CPU: on a CPU it avoids TorchIO's
  per-sample elastic warp, about 1 s per case, and is the quick preset's choice).
- ``"none"``: identity.

What TorchIO 1.2 actually does (read from its sources), mirrored by the GPU back end:

- Noise: ``std ~ U(0, noise_std)`` once per image (shared by the ADC and ZADC channels,
  which form one 2-channel ``ScalarImage``), then ``N(0, std^2)`` per voxel.
- Anisotropy: axis uniform over the three axes, factor ``m ~ U(1.2, 2.0)``; nearest
  resampling to a centred grid of ``floor(n / m)`` voxels at ``m`` times the spacing, then
  linear resampling back. ITK clamps in the outer half voxel and writes 0 beyond it, so a
  border slice can become 0 when ``floor(n / m) * m < n - 1``. Labels are not touched
  (``scalars_only=True``).
- Blur: ``sigma_mm ~ U(0, 0.5)`` independently per axis (shared by both channels),
  ``scipy.ndimage.gaussian_filter`` with ``sigma_mm / spacing_mm`` voxels (cut at 4 sigma,
  reflecting borders). Images only.
- Gamma: ``log(gamma) ~ U(-0.1, 0.1)`` per channel; z-scored data have negative values, so
  TorchIO applies ``sign(x) |x| ** gamma`` (identical to ``x ** gamma`` where ``x >= 0``).
- Elastic: coefficients ``U(-7.5, 7.5)`` mm per axis on a 7x7x7 cubic B-spline grid laid by
  ITK's ``BSplineTransformInitializer`` (4 mesh cells across the image plus 1/8 voxel per
  side, one control point outside each end). ``locked_borders=2`` zeroes the two outer
  control points on each side, but only along TorchIO's x and y grid axes (our W and H):
  the slice axis D is never locked. Locking does not make the displacement vanish at the
  image border either: the border voxel sits on control point 1, and control point 2 still
  weighs about 1/6 there. The B-spline weights are non-negative and sum to 1, so no voxel
  moves more than 7.5 mm along any axis. Images are resampled linearly, labels with
  nearest neighbour; points more than half a voxel outside take the channel minimum.

Differences between the back ends (the sampled distributions are the same):

- Random streams: TorchIO draws from the CPU global RNG (forked and seeded per call here);
  the GPU back end draws from the caller's device generator. Same seed, different draws.
- Arithmetic: ITK works in float64 physical coordinates, the GPU back end in float64
  operators and float32 sampling; results agree to about 1e-5 except where a coordinate
  lies on a rounding tie (nearest-neighbour labels: ``grid_sample`` rounds half to even,
  ITK half up; anisotropy's nearest step likewise).
- Blur accumulates in float32 (SciPy in float64).
"""

from __future__ import annotations

import torch

from hie_core.augment.batched import BatchAugmenter
from hie_core.augment.config import BACKENDS, TRANSFORM_NAMES, AugmentConfig, derive_seed
from hie_core.augment.reference import TorchioAugmenter, build_torchio_compose

__all__ = [
    "TRANSFORM_NAMES",
    "BACKENDS",
    "AugmentConfig",
    "TorchioAugmenter",
    "BatchAugmenter",
    "IdentityAugmenter",
    "build_torchio_compose",
    "make_augmenter",
    "derive_seed",
]


class IdentityAugmenter:
    """Back end ``"none"``: returns its inputs unchanged (any call signature of the others)."""

    per_batch = False

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def __call__(
        self,
        image: torch.Tensor,
        label: torch.Tensor,
        spacing_mm: object = None,
        *args: object,
        **kwargs: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image, label)`` as given."""
        return image, label


def make_augmenter(config: AugmentConfig) -> TorchioAugmenter | BatchAugmenter | IdentityAugmenter:
    """The augmenter of ``config.backend``.

    Its ``per_batch`` attribute tells the training loop where to call it: ``False``, per
    sample in the Dataset (``augmenter(image, label, spacing_mm, seed=...)``); ``True``, on the
    device batch (``augmenter(images, labels, spacings_mm, generator)``).
    """
    if config.backend == "torchio":
        return TorchioAugmenter(config)
    if config.backend == "batched":
        return BatchAugmenter(config)
    return IdentityAugmenter(config)
