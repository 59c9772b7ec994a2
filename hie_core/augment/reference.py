"""The reference back end: the seed's TorchIO pipeline, one sample at a time (CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from hie_core.augment.config import AugmentConfig

if TYPE_CHECKING:  # pragma: no cover
    import torchio as tio

__all__ = ["build_torchio_compose", "TorchioAugmenter"]


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
    ``seed`` (see :func:`hie_core.augment.derive_seed`), so results do not depend on the worker's RNG state.

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
