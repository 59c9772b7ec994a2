"""A device-resident training pipeline: data, augmentation, step and epoch without host round trips.

The default pipeline (:func:`hie_core.training.fit.fit`) copies every batch from host memory, and
reads each step's loss back to the host (``float(loss)``), which waits for the GPU. On a
GPU the whole preprocessed training set fits in memory (85 cases of 2x32x192x192 float32
are about 0.9 GB), so this module keeps it there and runs an epoch as a queue of device
work with one synchronisation at its end:

- :class:`DeviceDataset`: images ``(N, 2, D, H, W)`` and labels ``(N, 1, D, H, W)`` stacked
  once on the device; batches are gathered there by index. Spacings stay on the host,
  where the batched augmenter reads them without a synchronisation.
- :class:`TrainStep` (:func:`make_train_step`): forward under bf16 autocast, loss in
  float32, the L1 penalty, backward, gradient clipping and the optimiser step, optionally
  with ``torch.compile`` and the ``channels_last_3d`` memory format; it returns the loss as
  a device tensor and never calls ``.item()``.
- :func:`train_epoch_fast`: one epoch of batches in a given order, augmented on the device
  with :class:`hie_core.augment.batched.BatchAugmenter`, returning the mean loss with a single
  host synchronisation.

In float32, without compilation and in the default memory format, a step is bit-identical
to :func:`hie_core.training.fit.fit`'s eager step (same seed, same batches; see ``tests/test_fast.py``).
bf16 autocast, ``channels_last_3d`` (other convolution kernels) and ``torch.compile`` (fused
kernels, its own dropout random stream) change the results within floating-point tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from hie_core.training.fit import TrainItem

__all__ = ["DeviceDataset", "FastOptions", "TrainStep", "make_train_step", "train_epoch_fast", "l1_weights"]

#: ``torch.compile`` modes accepted by :func:`make_train_step`.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class FastOptions:
    """Speed settings of :func:`make_train_step`; :meth:`for_device` gives the defaults.

    Attributes:
        amp: bf16 autocast for the forward pass (the loss is always computed in float32).
        channels_last: ``torch.channels_last_3d`` memory format for the model and its inputs.
        compile: ``torch.compile`` the model: ``False``, ``True`` (mode ``"default"``) or a
            mode name such as ``"max-autotune-no-cudagraphs"``.
    """

    amp: bool = False
    channels_last: bool = False
    compile: bool | str = False

    @classmethod
    def for_device(cls, device: str | torch.device) -> FastOptions:
        """All three on CUDA; none on the CPU (compilation is slow there and bf16 not faster)."""
        cuda = torch.device(device).type == "cuda"
        return cls(amp=cuda, channels_last=cuda, compile=cuda)


class DeviceDataset:
    """A preprocessed training set stacked once on the device, batched there by index.

    Args:
        items: the cases (:class:`hie_core.training.fit.TrainItem`: image ``(2, D, H, W)``, label
            ``(1, D, H, W)``, ``spacing_mm`` (D, H, W)), all of the same shape.
        device: where images and labels live.
        image_dtype: storage type of the images, ``torch.float32`` or ``torch.bfloat16``
            (half the memory; batches are returned in float32 either way, so augmentation
            and the loss see float32, though the stored values are rounded to bf16).

    Attributes:
        images: ``(N, C, D, H, W)`` tensor on ``device``.
        labels: ``(N, 1, D, H, W)`` uint8 tensor on ``device`` (values 0 and 1).
        spacing_mm: ``(N, 3)`` float32 tensor on the CPU, (D, H, W) order.
    """

    def __init__(
        self,
        items: Sequence[TrainItem],
        device: str | torch.device,
        image_dtype: torch.dtype = torch.float32,
    ) -> None:
        if not items:
            raise ValueError("items must hold at least one case, got an empty sequence")
        if image_dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"image_dtype must be torch.float32 or torch.bfloat16, got {image_dtype}")
        shapes = {(item.image.shape, item.label.shape) for item in items}
        if len(shapes) != 1:
            raise ValueError(f"all items must share one image and label shape, got {sorted(shapes)}")
        self.device = torch.device(device)
        images = np.stack([np.asarray(item.image, dtype=np.float32) for item in items])
        labels = np.stack([np.asarray(item.label) > 0.5 for item in items]).astype(np.uint8)
        self.images = torch.from_numpy(images).to(self.device, dtype=image_dtype)
        self.labels = torch.from_numpy(labels).to(self.device)
        self.spacing_mm = torch.tensor([item.spacing_mm for item in items], dtype=torch.float32)
        self.case_ids = [item.case_id for item in items]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def nbytes(self) -> int:
        """Device memory held by images and labels, in bytes."""
        return self.images.nbytes + self.labels.nbytes

    def batches(
        self, order: Sequence[int], batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Batches in ``order``, the last one possibly smaller (like ``drop_last=False``).

        Args:
            order: case indices, e.g. a permutation of ``range(len(self))``.
            batch_size: cases per batch (>= 1).

        Yields:
            ``(image (B, C, D, H, W) float32, label (B, 1, D, H, W) float32`` on the device,
            ``spacing_mm (B, 3)`` float32 on the CPU``)``. The index is copied to the device
            once per call, not per batch.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        index = torch.as_tensor(list(order), dtype=torch.long)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise ValueError(f"order holds indices outside [0, {len(self)})")
        if self.device.type == "cuda":
            index = index.pin_memory()  # so that the copy below does not wait for the GPU
        index_dev = index.to(self.device, non_blocking=True)
        for start in range(0, index.numel(), batch_size):
            chunk = index_dev[start : start + batch_size]
            image = self.images.index_select(0, chunk).float()
            label = self.labels.index_select(0, chunk).float()
            yield image, label, self.spacing_mm.index_select(0, index[start : start + batch_size])


def l1_weights(model: nn.Module) -> list[nn.Parameter]:
    """Parameters under the L1 penalty: those with ``ndim > 1`` (convolution weights)."""
    return [p for p in model.parameters() if p.ndim > 1]


class TrainStep:
    """One optimisation step on a device batch; see :func:`make_train_step`.

    Attributes:
        model: the eager module (its weights are the ones trained; use it for evaluation
            and checkpoints).
        forward: what the step calls, ``model`` or its ``torch.compile`` wrapper.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        l1: float,
        grad_clip: float | None,
        options: FastOptions,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.l1 = float(l1)
        self.grad_clip = grad_clip
        self.options = options
        self.memory_format = torch.channels_last_3d if options.channels_last else torch.contiguous_format
        if options.channels_last:
            model.to(memory_format=torch.channels_last_3d)
        self.forward: Callable[[torch.Tensor], torch.Tensor] = model
        if options.compile:
            mode = "default" if options.compile is True else options.compile
            # dynamic=False: one static graph per batch size (at most two per epoch).
            self.forward = torch.compile(model, mode=mode, dynamic=False)
        self._penalised = l1_weights(model)
        self._params = [p for p in model.parameters() if p.requires_grad]

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Train on one batch and return its loss (without the L1 term) as a 0-d device tensor.

        Args:
            image: ``(B, C, D, H, W)`` float tensor on the model's device.
            label: ``(B, 1, D, H, W)`` binary float tensor on the same device.

        The L1 penalty ``l1 * sum(|w|)`` is not built as a graph: its gradient
        ``l1 * sign(w)`` is added to the gradients after the backward pass (one fused
        ``_foreach`` call instead of dozens of small kernels). ``l1 * sign(w)`` is exact in
        floating point and a sum of two terms does not depend on their order, so the
        gradients equal autograd's for ``loss + l1 * sum(|w|)`` bit for bit.
        """
        image = image.contiguous(memory_format=self.memory_format)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=self.options.amp):
            logits = self.forward(image)
        loss = self.loss_fn(logits.float(), label)
        loss.backward()
        if self.l1:
            with torch.no_grad():
                weights = [p for p in self._penalised if p.grad is not None]
                grads = [p.grad for p in weights]
                torch._foreach_add_(grads, torch._foreach_mul(torch._foreach_sign(weights), self.l1))
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self._params, self.grad_clip)
        self.optimizer.step()
        return loss.detach()


def make_train_step(
    model: nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    l1: float,
    grad_clip: float | None,
    amp: bool,
    channels_last: bool,
    compile: bool | str,
) -> TrainStep:
    """Build the training step of the fast pipeline.

    Args:
        model: the network, already on its device (converted in place to
            ``channels_last_3d`` when asked; state dicts are unaffected).
        loss_fn: ``loss(logits, target) -> scalar`` (a :func:`hie_core.losses.get_loss` module).
        optimizer: the optimiser over ``model``'s parameters (e.g. AdamW).
        l1: weight of the L1 penalty on the weights with ``ndim > 1`` (0 disables it).
        grad_clip: maximum total gradient norm; ``None`` disables clipping.
        amp: bf16 autocast for the forward pass (CPU or CUDA).
        channels_last: use ``torch.channels_last_3d`` for the model and its inputs.
        compile: ``False``, ``True`` or a ``torch.compile`` mode (:data:`COMPILE_MODES`).

    Returns:
        A :class:`TrainStep`; ``step(image, label)`` returns the batch loss as a device tensor.
    """
    if l1 < 0:
        raise ValueError(f"l1 must be >= 0, got {l1}")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip}")
    if isinstance(compile, str) and compile not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {COMPILE_MODES}, got {compile!r}")
    options = FastOptions(amp=bool(amp), channels_last=bool(channels_last), compile=compile)
    return TrainStep(model, loss_fn, optimizer, l1=l1, grad_clip=grad_clip, options=options)


def train_epoch_fast(
    step: TrainStep,
    dataset: DeviceDataset,
    augmenter: Callable | None,
    order: Sequence[int],
    batch_size: int,
    generator: torch.Generator | None,
) -> float:
    """One training epoch on the device; the mean loss is read back once, at the end.

    Args:
        step: the training step (its model is put in training mode).
        dataset: the device-resident cases.
        augmenter: a batched augmenter called as ``augmenter(image, label, spacing_mm, generator)``
            (:class:`hie_core.augment.batched.BatchAugmenter`), or ``None`` for no augmentation.
        order: case indices of this epoch, in batch order.
        batch_size: cases per batch.
        generator: ``torch.Generator`` on the dataset's device for the augmentation draws
            (:func:`hie_core.training.fit.fit` seeds it with ``epoch_seed(seed, epoch, 1)``).

    Returns:
        The mean over cases of the batch losses (each weighted by its batch size), as
        :func:`hie_core.training.fit.fit` reports it; accumulated in float64 like its Python sum.
    """
    if augmenter is not None and generator is None:
        raise ValueError("a generator is required when an augmenter is given, got None")
    step.model.train()
    total = torch.zeros((), dtype=torch.float64, device=dataset.device)
    count = 0
    for image, label, spacing_mm in dataset.batches(order, batch_size):
        if augmenter is not None:
            image, label = augmenter(image, label, spacing_mm, generator)
        loss = step(image, label)
        total += loss.double() * image.shape[0]
        count += image.shape[0]
    return float(total) / max(count, 1)
