"""The parameters of the seed's five augmentations, shared by every back end.

See :mod:`hie_core.augment` for what each transform does and how the back ends relate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["TRANSFORM_NAMES", "BACKENDS", "AugmentConfig", "derive_seed"]

#: The five augmentations, in the order they are applied (the seed's).
TRANSFORM_NAMES = ("noise", "anisotropy", "blur", "gamma", "elastic")
#: The augmentation back ends, TorchIO per sample (the reference), batched on the device, and none.
BACKENDS = ("torchio", "batched", "none")


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
        backend: ``"torchio"`` (CPU, per sample), ``"batched"`` (on the batch's device) or ``"none"``.
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

    backend: Literal["torchio", "batched", "none"] = "torchio"
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
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
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
        """Probability of transform ``name`` (one of ``TRANSFORM_NAMES``)."""
        if name not in TRANSFORM_NAMES:
            raise ValueError(f"unknown transform {name!r}; expected one of {TRANSFORM_NAMES}")
        override = getattr(self, f"p_{name}")
        return self.p if override is None else override


def derive_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 31-bit seed for sample ``index`` of ``epoch`` in a run seeded with ``seed``."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF
