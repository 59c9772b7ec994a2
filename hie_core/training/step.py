"""The training step and epoch, one implementation for every augmentation back end and device.

- :class:`TrainStep` (:func:`make_train_step`): forward (optionally under bf16 autocast, in
  ``channels_last_3d`` and through ``torch.compile``), the loss in float32, the L1 penalty,
  backward, gradient clipping and the optimiser step. It returns the loss as a device tensor
  and never reads a value back to the host.
- :func:`train_epoch`: the steps of one epoch over any iterable of device batches (from
  :class:`hie_core.training.batches.LoaderBatches` or
  :class:`~hie_core.training.batches.DeviceBatches`), with a single host synchronisation,
  at its end, to read the mean loss.

Finiteness: every step checks its loss and its gradient norm (the norm clipping computes
anyway). On the CPU the check reads the flag at once (a host read costs nothing there), so a
non-finite step raises :class:`NonFiniteStep` *before* the optimiser step touches the weights.
On CUDA, where a read per step would stall the queue, the first non-finite step of the epoch
(its index, loss and norm) is recorded on the device with ``torch.where`` and read back in the
epoch's one synchronisation; the epoch's remaining steps run on, and :func:`train_epoch` then
raises. Either way the run stops within the epoch it diverged in.

In float32, without compilation and in the default memory format, the step is deterministic
on the CPU (the resume-after-kill tests rely on it). bf16 autocast, ``channels_last_3d``
(other convolution kernels) and ``torch.compile`` (fused kernels, its own dropout stream)
change the results within floating-point tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from hie_core.losses import hausdorff_distance_field
from hie_core.protocol import l1_weights

__all__ = [
    "FastOptions",
    "NonFiniteStep",
    "TrainStep",
    "make_train_step",
    "train_epoch",
    "COMPILE_MODES",
]

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
        """All three on CUDA; on the CPU only ``channels_last_3d``.

        On a CPU, oneDNN's convolutions run 1.3-1.5x faster in ``channels_last_3d`` for these
        networks (measured: 8-16-32-64 widths, 4 x 16 x 48 x 48 patches, 216 -> 162 ms per
        step on one thread). Compilation is slow there and bf16 autocast not faster.
        """
        cuda = torch.device(device).type == "cuda"
        return cls(amp=cuda, channels_last=True, compile=cuda)


class NonFiniteStep(ArithmeticError):
    """A training step's loss or gradient norm was not finite.

    Attributes:
        step: the step of the epoch (1-based).
        what: ``"training loss"`` or ``"gradient norm"``.
        value: the value (nan or +-inf).
    """

    def __init__(self, step: int, what: str, value: float) -> None:
        super().__init__(f"step {step}: the {what} is {value}")
        self.step, self.what, self.value = step, what, value


def _nonfinite(step: int, loss: float, norm: float) -> NonFiniteStep:
    if not math.isfinite(loss):
        return NonFiniteStep(step, "training loss", loss)
    return NonFiniteStep(step, "gradient norm", norm)


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
        #: Read each step's finiteness at once (the CPU), or record it on the device (CUDA).
        self.check_every_step = next(iter(self._params), torch.empty(0)).device.type == "cpu"
        self.begin_epoch()

    def begin_epoch(self) -> None:
        """Reset the step count and the record of the first non-finite step (at each epoch's start)."""
        self.steps = 0
        self._first_bad: torch.Tensor | None = None  # (step, loss, norm) of the first bad step, on the device

    def first_nonfinite(self) -> torch.Tensor | None:
        """``(step, loss, norm)`` of the epoch's first non-finite step as a float64 device tensor
        (step 0: none), or None when no step ran; reading it is the caller's synchronisation."""
        return self._first_bad

    def _record(self, loss: torch.Tensor, norm: torch.Tensor) -> None:
        """Check (CPU) or record (CUDA) whether this step's loss and gradient norm are finite."""
        loss, norm = loss.detach().double(), norm.detach().double()
        finite = torch.isfinite(loss) & torch.isfinite(norm)
        if self.check_every_step:
            if not bool(finite):
                raise _nonfinite(self.steps, float(loss), float(norm))
            return
        here = torch.stack([torch.full_like(loss, self.steps), loss, norm])
        if self._first_bad is None:
            self._first_bad = torch.where(finite, torch.zeros_like(here), here)
        else:  # keep the first: replace only while none is recorded
            self._first_bad = torch.where(~finite & (self._first_bad[0] == 0), here, self._first_bad)

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
        if getattr(self.loss_fn, "needs_distance", False):  # the target's distance field, once per batch
            target_dt = hausdorff_distance_field(label, getattr(self.loss_fn, "spacing_mm", None))
            loss = self.loss_fn(logits.float(), label, target_dt)
        else:
            loss = self.loss_fn(logits.float(), label)
        loss.backward()
        if self.l1:
            with torch.no_grad():
                weights = [p for p in self._penalised if p.grad is not None]
                grads = [p.grad for p in weights]
                torch._foreach_add_(grads, torch._foreach_mul(torch._foreach_sign(weights), self.l1))
        self.steps += 1
        if self.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(self._params, self.grad_clip)
        else:
            grads = [p.grad for p in self._params if p.grad is not None]
            norm = (
                torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
                if grads
                else loss.new_zeros(())
            )
        self._record(loss, norm)  # before the optimiser step: on the CPU, bad weights are never written
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
        loss_fn: ``loss(logits, target, target_dt=None) -> scalar`` (a :func:`hie_core.losses.get_loss`
            module); with a true ``needs_distance`` attribute it gets ``target_dt``, the target's
            :func:`hie_core.losses.hausdorff_distance_field` (in mm where the loss has a
            ``spacing_mm`` attribute that is not None, else in voxels).
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


def train_epoch(step: TrainStep, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """One training epoch; the mean loss is read back once, at the end.

    Args:
        step: the training step (its model is put in training mode).
        batches: ``(image (B, C, D, H, W), label (B, 1, D, H, W))`` float tensors on the
            model's device, already augmented.

    Returns:
        The mean over samples of the batch losses (each weighted by its batch size),
        accumulated in float64 on the device.

    Raises:
        NonFiniteStep: a step's loss or gradient norm was not finite (the first such step;
            see the module docstring for when it is noticed).
    """
    step.model.train()
    step.begin_epoch()
    total, count = None, 0
    for image, label in batches:
        loss = step(image, label).double() * image.shape[0]
        total = loss if total is None else total + loss
        count += image.shape[0]
    if not count:
        return float("nan")
    bad = step.first_nonfinite()
    mean, *first = torch.cat([total.reshape(1), bad if bad is not None else total.new_zeros(3)]).tolist()
    if first[0]:  # a step was recorded (CUDA): the one read of this epoch told us
        raise _nonfinite(int(first[0]), first[1], first[2])
    return mean / count
