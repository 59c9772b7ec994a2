"""The seed study's five augmentations, on the CPU with TorchIO or batched on the GPU.

The seed applied, each with probability 0.5 and in this order, ``RandomNoise(mean=0,
std=0.01)``, ``RandomAnisotropy(downsampling=(1.2, 2.0))``, ``RandomBlur(std=(0, 0.5))``,
``RandomGamma(log_gamma=(-0.1, 0.1))`` and ``RandomElasticDeformation()`` (TorchIO 1.2).
:class:`AugmentConfig` holds those parameters; three back ends share it:

- ``"torchio"`` (:class:`TorchioAugmenter`, the reference): the ``tio.Compose`` itself,
  called on one sample at a time in DataLoader workers, seeded per call.
- ``"gpu"`` (:class:`hie_core.augment.batched.BatchAugmenter`): the same transforms written as
  batched tensor code, sampled with a ``torch.Generator`` on the batch's device.
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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from hie_core.augment.batched import BatchAugmenter

if TYPE_CHECKING:  # pragma: no cover
    import torchio as tio

__all__ = [
    "TRANSFORM_NAMES",
    "AugmentConfig",
    "TorchioAugmenter",
    "BatchAugmenter",
    "IdentityAugmenter",
    "make_augmenter",
    "derive_seed",
]

#: The five augmentations, in the order they are applied (the seed's).
TRANSFORM_NAMES = ("noise", "anisotropy", "blur", "gamma", "elastic")
_BACKENDS = ("torchio", "gpu", "none")


def _check_probability(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def _check_range(name: str, value: Sequence[float], minimum: float | None) -> None:
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{name} must be a (low, high) pair with low <= high, got {value}")
    if minimum is not None and value[0] < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class AugmentConfig:
    """Parameters of the five augmentations, shared by every back end (defaults: the seed's).

    Attributes:
        backend: ``"torchio"`` (CPU, per sample), ``"gpu"`` (batched, on device) or ``"none"``.
        p: Probability of each transform; ``p_<name>`` overrides it for one transform.
        noise_std: Upper bound of the noise standard deviation, ``std ~ U(0, noise_std)``
            (intensity units of the z-scored image).
        anisotropy_downsampling: Range of the downsampling factor (>= 1).
        blur_std_mm: Range of the Gaussian standard deviation per axis, in mm.
        log_gamma: Range of ``log(gamma)``.
        elastic_control_points: Control points per axis of the B-spline grid (>= 4).
        elastic_max_displacement_mm: Bound of each control point's displacement per axis, mm.
        elastic_locked_borders: 0, 1 or 2 outer control points per side held at zero.
    """

    backend: Literal["torchio", "gpu", "none"] = "torchio"
    p: float = 0.5
    noise_std: float = 0.01
    anisotropy_downsampling: tuple[float, float] = (1.2, 2.0)
    blur_std_mm: tuple[float, float] = (0.0, 0.5)
    log_gamma: tuple[float, float] = (-0.1, 0.1)
    elastic_control_points: int = 7
    elastic_max_displacement_mm: float = 7.5
    elastic_locked_borders: int = 2
    p_noise: float | None = None
    p_anisotropy: float | None = None
    p_blur: float | None = None
    p_gamma: float | None = None
    p_elastic: float | None = None

    def __post_init__(self) -> None:
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, got {self.backend!r}")
        _check_probability("p", self.p)
        for name in TRANSFORM_NAMES:
            _check_probability(f"p_{name}", getattr(self, f"p_{name}"))
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        _check_range("anisotropy_downsampling", self.anisotropy_downsampling, 1.0)
        _check_range("blur_std_mm", self.blur_std_mm, 0.0)
        _check_range("log_gamma", self.log_gamma, None)
        points = self.elastic_control_points
        if isinstance(points, bool) or not isinstance(points, int) or points < 4:
            raise ValueError(f"elastic_control_points must be an integer >= 4, got {points}")
        if self.elastic_max_displacement_mm < 0:
            raise ValueError(
                f"elastic_max_displacement_mm must be >= 0, got {self.elastic_max_displacement_mm}"
            )
        if self.elastic_locked_borders not in (0, 1, 2):
            raise ValueError(f"elastic_locked_borders must be 0, 1 or 2, got {self.elastic_locked_borders}")
        if self.elastic_locked_borders == 2 and points < 5:
            raise ValueError(f"elastic_locked_borders=2 needs >= 5 control points, got {points}")
        for name in ("anisotropy_downsampling", "blur_std_mm", "log_gamma"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    def probability(self, name: str) -> float:
        """Probability of transform ``name`` (one of :data:`TRANSFORM_NAMES`)."""
        if name not in TRANSFORM_NAMES:
            raise ValueError(f"unknown transform {name!r}; expected one of {TRANSFORM_NAMES}")
        override = getattr(self, f"p_{name}")
        return self.p if override is None else override


def derive_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 31-bit seed for sample ``index`` of ``epoch`` in a run seeded with ``seed``."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


def build_torchio_compose(config: AugmentConfig) -> tio.Compose:
    """The seed's ``tio.Compose`` of the five transforms with ``config``'s parameters."""
    import torchio as tio

    return tio.Compose(
        [
            tio.RandomNoise(mean=0, std=(0.0, config.noise_std), p=config.probability("noise")),
            tio.RandomAnisotropy(
                downsampling=config.anisotropy_downsampling, p=config.probability("anisotropy")
            ),
            tio.RandomBlur(std=config.blur_std_mm, p=config.probability("blur")),
            tio.RandomGamma(log_gamma=config.log_gamma, p=config.probability("gamma")),
            tio.RandomElasticDeformation(
                num_control_points=config.elastic_control_points,
                max_displacement=config.elastic_max_displacement_mm,
                locked_borders=config.elastic_locked_borders,
                p=config.probability("elastic"),
            ),
        ]
    )


class TorchioAugmenter:
    """Reference back end: the seed's TorchIO pipeline applied to one sample.

    Our arrays are ``(C, D, H, W)``; TorchIO's are ``(C, W, H, D)`` in (x, y, z) with the
    spacing on the affine's diagonal, so data are permuted ``(0, 3, 2, 1)`` in and out and the
    spacing is reversed. Randomness: each call forks torch's CPU RNG and seeds it with
    ``seed`` (see :func:`derive_seed`), so results do not depend on the worker's RNG state.

    Args:
        config: The augmentation parameters (its ``backend`` is not consulted).
    """

    per_batch = False

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config
        self.compose = build_torchio_compose(config)

    def to_subject(
        self, image: torch.Tensor, label: torch.Tensor, spacing_mm: Sequence[float]
    ) -> tio.Subject:
        """Wrap ``image (C, D, H, W)``, ``label (1, D, H, W)`` and (D, H, W) spacing as a TorchIO subject."""
        import torchio as tio

        if image.dim() != 4 or label.dim() != 4 or image.shape[1:] != label.shape[1:]:
            raise ValueError(
                f"image/label must be (C, D, H, W) alike, got {tuple(image.shape)}, {tuple(label.shape)}"
            )
        spacing = [float(s) for s in torch.as_tensor(spacing_mm).flatten().tolist()]
        if len(spacing) != 3 or min(spacing) <= 0:
            raise ValueError(f"spacing_mm must be 3 positive values, got {spacing}")
        affine = np.diag(spacing[::-1] + [1.0])
        return tio.Subject(
            image=tio.ScalarImage(tensor=image.permute(0, 3, 2, 1).contiguous(), affine=affine),
            label=tio.LabelMap(tensor=label.permute(0, 3, 2, 1).contiguous(), affine=affine),
        )

    def __call__(
        self,
        image: torch.Tensor,
        label: torch.Tensor,
        spacing_mm: Sequence[float] | torch.Tensor,
        *,
        seed: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment one sample.

        Args:
            image: ``(C, D, H, W)`` float32 CPU tensor (z-scored ADC and ZADC).
            label: ``(1, D, H, W)`` binary CPU tensor.
            spacing_mm: Voxel spacing in mm, (D, H, W) order.
            seed: Seed of this call's draws.

        Returns:
            ``(image, label)`` with the input shapes and dtypes; labels stay binary.
        """
        subject = self.to_subject(image, label, spacing_mm)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.compose(subject)
        new_image = out["image"].data.permute(0, 3, 2, 1).to(image.dtype).contiguous()
        new_label = out["label"].data.permute(0, 3, 2, 1).to(label.dtype).contiguous()
        return new_image, new_label


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
    if config.backend == "gpu":
        return BatchAugmenter(config)
    return IdentityAugmenter(config)
