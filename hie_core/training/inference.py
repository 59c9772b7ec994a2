"""Lesion logits of whole volumes: one forward pass, or MONAI's sliding window over patches.

A network trained on whole volumes (the seed's way) predicts a volume in one pass. A
network trained on patches predicts by :func:`monai.inferers.sliding_window_inference`:
windows of the patch size, overlapping by ``overlap``, blended with Gaussian weights
(nnU-Net's choice: the window centre, where the network saw the most context, counts most).
Volumes smaller than a window are padded by MONAI and cropped back.

Test-time mirroring (``mirror_axes``, nnU-Net's): the volume is also predicted flipped along
every combination of the listed spatial axes, each prediction flipped back, and the logits
averaged (2^k passes for k axes). A network trained with the same random flips sees each
mirror image as an ordinary input; the average smooths out its direction-dependent errors.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch

from hie_core.model import DIVISOR

__all__ = ["predict_logits", "predict_probabilities"]


@torch.no_grad()
def predict_logits(
    model: torch.nn.Module,
    image: torch.Tensor,
    patch_shape: Sequence[int] | None = None,
    overlap: float = 0.5,
    amp: bool = False,
    sw_batch_size: int = 4,
    mirror_axes: Sequence[int] = (),
) -> torch.Tensor:
    """Logits of whole volumes.

    Args:
        model: a network in eval mode returning logits ``(B, 1, D, H, W)``.
        image: ``(B, C, D, H, W)`` float tensor on the model's device.
        patch_shape: the training patch (D, H, W); None = one forward pass (the spatial
            sizes must then suit the network: :func:`hie_core.model.check_arch`).
        overlap: overlap of neighbouring windows, in [0, 1).
        amp: bf16 autocast for the forward passes (logits returned in float32).
        sw_batch_size: windows per forward pass.
        mirror_axes: spatial axes (0 = D, 1 = H, 2 = W) of test-time mirroring; the logits
            are averaged over all ``2**len(mirror_axes)`` flips. Empty: one pass.

    Returns:
        ``(B, 1, D, H, W)`` float32 logits on the image's device.
    """
    dims = [2 + int(a) for a in mirror_axes]
    flips = [list(c) for r in range(len(dims) + 1) for c in itertools.combinations(dims, r)]
    total = None
    for flip in flips:
        x = torch.flip(image, flip) if flip else image
        logits = _predict_once(model, x, patch_shape, overlap, amp, sw_batch_size)
        logits = torch.flip(logits, flip) if flip else logits
        total = logits if total is None else total + logits
    return total / len(flips) if len(flips) > 1 else total


def _predict_once(model, image, patch_shape, overlap, amp, sw_batch_size) -> torch.Tensor:
    model.eval()
    autocast = torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=amp)
    if patch_shape is None or tuple(patch_shape) == tuple(image.shape[2:]):
        with autocast:
            return model(image).float()
    if any(int(p) % DIVISOR for p in patch_shape):
        raise ValueError(f"patch_shape {tuple(patch_shape)} must be divisible by {DIVISOR}")
    from monai.inferers import sliding_window_inference

    with autocast:
        logits = sliding_window_inference(
            image, roi_size=tuple(int(p) for p in patch_shape), sw_batch_size=sw_batch_size, predictor=model,
            overlap=overlap, mode="gaussian", padding_mode="replicate",
        )  # fmt: skip
    return logits.float()


def predict_probabilities(
    model: torch.nn.Module,
    image: np.ndarray,
    device: str = "cpu",
    amp: bool = False,
    patch_shape: Sequence[int] | None = None,
    overlap: float = 0.5,
    mirror_axes: Sequence[int] = (),
) -> np.ndarray:
    """Lesion probabilities of one preprocessed case on its preprocessing grid.

    Args:
        model: the network, on ``device``, returning logits.
        image: preprocessed input ``(2, D, H, W)`` float32.
        device: where to compute.
        amp: bf16 autocast.
        patch_shape: the training patch, or None for whole-volume inference.
        overlap: sliding-window overlap.
        mirror_axes: test-time mirroring (see ``predict_logits``).

    Returns:
        ``(D, H, W)`` float32 probabilities.
    """
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None].to(device)
    logits = predict_logits(model, x, patch_shape, overlap, amp, mirror_axes=mirror_axes)
    return torch.sigmoid(logits)[0, 0].cpu().numpy()
