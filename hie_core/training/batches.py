"""Where training batches come from: one epoch plan, two batch sources.

An epoch is planned once, on the host, from ``(seed, epoch)`` alone (:func:`plan_epoch`):
which case fills each sample slot and where its patch starts. Two sources then turn a plan
into ``(image, label)`` batches on the training device; only this part differs:

- :class:`LoaderBatches` (the ``"torchio"`` back end): a ``DataLoader`` whose workers crop
  and augment one sample at a time with TorchIO, the seed's reference pipeline.
- :class:`DeviceBatches` (``"batched"`` and ``"none"``): the cases live on the device (GPU
  memory, or plain tensors on a CPU); a batch is cropped there and augmented as a whole by
  :class:`hie_core.augment.batched.BatchAugmenter`, with no host round trip.

Without augmentation both give the same batches, bit for bit (tested), so the training
step (:mod:`hie_core.training.step`) and loop (:mod:`hie_core.training.fit`) are one for
every back end and device.

Patches (``patch_shape``): a sample is a patch of its case, centred on a random lesion voxel
with probability ``foreground_fraction`` (nnU-Net's oversampling; a case without lesion gets
a random patch), placed uniformly at random otherwise; volumes smaller than the patch are
padded once, when the source is built (image with each channel's minimum, label with 0).
Without a patch the sample is the whole volume (all volumes then share one shape).

Mirroring (``mirror_axes``, nnU-Net's default augmentation): each listed spatial axis of a
sample is flipped with probability 1/2, drawn in the plan, so both sources flip the same
samples. With no axis listed nothing is drawn and the plans are those of the seed protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hie_core.augment.config import derive_seed

__all__ = ["TrainItem", "Sample", "plan_epoch", "pad_to", "lesion_voxels", "LoaderBatches", "DeviceBatches"]

#: Streams of ``derive_seed(seed, epoch, stream)`` used per epoch (one definition each).
STREAM_PLAN, STREAM_AUGMENT, STREAM_DROPOUT = 1, 2, 3


@dataclass(frozen=True)
class TrainItem:
    """One preprocessed training case.

    Attributes:
        case_id: the case's id.
        image: ``(2, D, H, W)`` float32, z-scored ADC and ZADC.
        label: ``(1, D, H, W)`` uint8 in {0, 1}.
        spacing_mm: voxel size (D, H, W) of the preprocessed grid.
    """

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing_mm: tuple[float, float, float]


@dataclass(frozen=True)
class Sample:
    """One slot of an epoch: case ``index``, its patch's first voxel ``start`` (D, H, W), the
    augmentation ``seed``, and the spatial axes (0 = D, 1 = H, 2 = W) it is mirrored along."""

    index: int
    start: tuple[int, int, int]
    seed: int
    flip: tuple[int, ...] = ()


def pad_to(item: TrainItem, shape: Sequence[int] | None) -> TrainItem:
    """``item`` padded at the far end of each axis to at least ``shape`` (no copy if it fits)."""
    if shape is None:
        return item
    pad = [(0, max(0, int(p) - s)) for p, s in zip(shape, item.image.shape[1:], strict=True)]
    if not any(after for _, after in pad):
        return item
    fill = item.image.reshape(item.image.shape[0], -1).min(axis=1)
    image = np.stack([np.pad(c, pad, constant_values=f) for c, f in zip(item.image, fill, strict=True)])
    label = np.pad(item.label, [(0, 0), *pad])
    return TrainItem(item.case_id, image.astype(np.float32), label, item.spacing_mm)


def lesion_voxels(items: Sequence[TrainItem]) -> list[np.ndarray]:
    """Per item, the (D, H, W) coordinates of its lesion voxels (where patches may centre)."""
    return [np.argwhere(item.label[0] > 0).astype(np.int32) for item in items]


def _start(shape: Sequence[int], patch: Sequence[int], centre: np.ndarray | None, rng: np.random.Generator):
    """First voxel of a patch inside ``shape``: around ``centre``, or uniform when None."""
    if centre is None:
        return tuple(int(rng.integers(0, s - p + 1)) for s, p in zip(shape, patch, strict=True))
    return tuple(int(np.clip(c - p // 2, 0, s - p)) for c, s, p in zip(centre, shape, patch, strict=True))


def plan_epoch(
    items: Sequence[TrainItem],
    batch_size: int,
    seed: int,
    epoch: int,
    patch_shape: Sequence[int] | None = None,
    foreground_fraction: float = 0.0,
    steps_per_epoch: int | None = None,
    lesions: list[np.ndarray] | None = None,
    mirror_axes: Sequence[int] = (),
) -> list[list[Sample]]:
    """The batches of one epoch: which case, which patch, which augmentation seed per slot.

    Cases are drawn as a permutation per pass (so each appears equally often), passes
    concatenated until ``steps_per_epoch * batch_size`` samples; without ``steps_per_epoch``,
    one pass with a smaller last batch (``drop_last=False``). Depends only on the arguments.

    Args:
        items: the (padded) training cases.
        batch_size: samples per batch.
        seed, epoch: the run seed and the 1-based epoch.
        patch_shape: patch (D, H, W), or None for whole volumes (start (0, 0, 0)).
        foreground_fraction: probability that a patch is centred on a lesion voxel.
        steps_per_epoch: batches per epoch, or None for one pass over ``items``.
        lesions: per item, its lesion voxel coordinates (computed if None).
        mirror_axes: spatial axes (0 = D, 1 = H, 2 = W) each flipped with probability 1/2.

    Returns:
        A list of batches, each a list of :class:`Sample`.
    """
    rng = np.random.default_rng(derive_seed(seed, epoch, STREAM_PLAN))
    n = len(items)
    total = n if steps_per_epoch is None else steps_per_epoch * batch_size
    order = np.concatenate([rng.permutation(n) for _ in range(-(-total // n))])[:total]
    if patch_shape is not None and lesions is None:
        lesions = lesion_voxels(items)
    samples = []
    for slot, index in enumerate(order.tolist()):
        start = (0, 0, 0)
        if patch_shape is not None:
            shape = items[index].image.shape[1:]
            voxels = lesions[index]
            centre = None
            if len(voxels) and rng.random() < foreground_fraction:
                centre = voxels[rng.integers(len(voxels))]
            start = _start(shape, patch_shape, centre, rng)
        flip = tuple(int(axis) for axis in mirror_axes if rng.random() < 0.5)
        samples.append(Sample(index, start, derive_seed(seed, epoch, 1000 + slot), flip))
    return [samples[i : i + batch_size] for i in range(0, total, batch_size)]


def _crop(volume, start: Sequence[int], patch: Sequence[int] | None):
    """``volume[:, start : start + patch]`` for a (C, D, H, W) array or tensor (a view)."""
    if patch is None:
        return volume
    d, h, w = start
    pd, ph, pw = patch
    return volume[:, d : d + pd, h : h + ph, w : w + pw]


def _sample_tensor(volume, sample: Sample, patch: Sequence[int] | None) -> torch.Tensor:
    """The sample's patch of a (C, D, H, W) array or tensor, mirrored along ``sample.flip``."""
    crop = _crop(volume, sample.start, patch)
    if not isinstance(crop, torch.Tensor):
        crop = torch.from_numpy(np.ascontiguousarray(crop))
    return torch.flip(crop, [1 + axis for axis in sample.flip]) if sample.flip else crop


class _SampleSet(torch.utils.data.Dataset):
    """The samples of one epoch, cropped and augmented one at a time (DataLoader workers)."""

    def __init__(self, items, samples: Sequence[Sample], patch_shape, augmenter) -> None:
        self.items, self.samples, self.patch_shape, self.augmenter = (
            items,
            list(samples),
            patch_shape,
            augmenter,
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, position: int):
        sample = self.samples[position]
        item = self.items[sample.index]
        image = _sample_tensor(item.image, sample, self.patch_shape)
        label = _sample_tensor(item.label, sample, self.patch_shape)
        if self.augmenter is not None:
            image, label = self.augmenter(image, label, item.spacing_mm, seed=sample.seed)
        return image.float(), label.float()


class LoaderBatches:
    """Batches from a ``DataLoader`` that crops and augments per sample (the TorchIO back end).

    Args:
        items: the training cases (already padded to the patch).
        patch_shape: patch (D, H, W) or None.
        augmenter: per-sample augmenter called as ``augmenter(image, label, spacing_mm, seed=...)``
            (:class:`hie_core.augment.TorchioAugmenter`), or None.
        device: where batches are delivered.
        num_workers: DataLoader worker processes (0 = in this process).
    """

    def __init__(self, items, patch_shape, augmenter, device, num_workers: int = 0) -> None:
        self.items, self.patch_shape, self.augmenter = list(items), patch_shape, augmenter
        self.device, self.num_workers = torch.device(device), num_workers

    def __call__(
        self, plan: list[list[Sample]], epoch_seed: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        flat = [s for batch in plan for s in batch]
        positions, start = [], 0
        for batch in plan:
            positions.append(list(range(start, start + len(batch))))
            start += len(batch)
        loader = torch.utils.data.DataLoader(
            _SampleSet(self.items, flat, self.patch_shape, self.augmenter), batch_sampler=positions,
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(epoch_seed),  # its base-seed draw leaves the global RNG alone
        )  # fmt: skip
        for image, label in loader:
            yield image.to(self.device, non_blocking=True), label.to(self.device, non_blocking=True)


class DeviceBatches:
    """Batches cropped and augmented on the device from cases stored there once.

    Args:
        items: the training cases (already padded to the patch).
        patch_shape: patch (D, H, W) or None.
        augmenter: a batched augmenter called as ``augmenter(image, label, spacing_mm, generator)``
            (:class:`hie_core.augment.batched.BatchAugmenter`), or None.
        device: where the cases are stored and batches built.
    """

    def __init__(self, items, patch_shape, augmenter: Callable | None, device) -> None:
        self.device = torch.device(device)
        self.images = [
            torch.from_numpy(np.ascontiguousarray(i.image, np.float32)).to(self.device) for i in items
        ]
        self.labels = [
            torch.from_numpy((np.asarray(i.label) > 0).astype(np.uint8)).to(self.device) for i in items
        ]
        self.spacing_mm = torch.tensor(
            [i.spacing_mm for i in items], dtype=torch.float32
        )  # stays on the host
        self.patch_shape, self.augmenter = patch_shape, augmenter

    @property
    def nbytes(self) -> int:
        """Device memory held by the stored cases, in bytes."""
        return sum(t.nbytes for t in self.images) + sum(t.nbytes for t in self.labels)

    def __call__(
        self, plan: list[list[Sample]], epoch_seed: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = None
        if self.augmenter is not None:
            generator = torch.Generator(device=self.device).manual_seed(epoch_seed)
        for batch in plan:
            image = torch.stack([_sample_tensor(self.images[s.index], s, self.patch_shape) for s in batch])
            label = torch.stack(
                [_sample_tensor(self.labels[s.index], s, self.patch_shape) for s in batch]
            ).float()
            if self.augmenter is not None:
                spacing = self.spacing_mm[[s.index for s in batch]]
                image, label = self.augmenter(image, label, spacing, generator)
            yield image, label
