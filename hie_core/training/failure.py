"""A run that fails says so: divergence, the loss contract, and the failed status of a run folder.

- :class:`TrainingDivergedError`: a non-finite training loss or gradient norm (or selection
  loss) stopped the run; its message is one line naming the epoch, the step, the value and
  what to try (a lower learning rate; the loss's contract).
- :func:`check_loss_contract`: one forward and backward pass of a loss on a tiny tensor before
  training, so that a loss returning a non-scalar, a non-finite value or no gradient is refused
  with the contract (:mod:`hie_core.losses`), not with torch's internal error mid-run.
- :data:`hie_core.run_folder.FAILED_FILE` (``failed.json`` in the run folder): written atomically when a run stops
  on such an error; a run folder holding it is failed, never finished, and never enters a
  results table (:func:`hie_core.report.analysis.runs.find_runs` lists it with the runs that did not
  finish). Started again, the run is trained from scratch (:func:`hie_core.run_folder.read_failure`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hie_core.errors import ConfigError, UserError
from hie_core.io import atomic_write_text

# the failed status of a run folder (JSON: ``status``, ``message`` and, for a divergence,
# ``epoch``, ``step``, ``what``, ``value``) is the run folder's: its name and its reader live there
from hie_core.run_folder import FAILED_FILE, read_failure  # noqa: F401 (read_failure: re-exported for older imports)

if TYPE_CHECKING:
    import torch

__all__ = ["LOSS_CONTRACT", "TrainingDivergedError", "check_loss_contract", "write_failure"]

#: The loss contract in one line (the full text: :mod:`hie_core.losses`).
LOSS_CONTRACT = (
    "forward(logits, target, target_dt=None) must return a finite scalar tensor with a gradient "
    "with respect to logits (the contract in hie_core.losses)"
)


class TrainingDivergedError(UserError):
    """A non-finite value stopped training.

    Attributes:
        epoch: the epoch (1-based) it happened in.
        step: the optimiser step within that epoch (1-based), or None for the selection set.
        what: ``"training loss"``, ``"gradient norm"`` or ``"selection loss"``.
        value: the value (nan, inf or -inf).
        lr: the learning rate of that epoch.
    """

    def __init__(self, epoch: int, step: int | None, what: str, value: float, lr: float, loss: str) -> None:
        self.epoch, self.step, self.what, self.value, self.lr, self.loss = epoch, step, what, value, lr, loss
        where = f"epoch {epoch}, step {step}" if step is not None else f"epoch {epoch}, selection set"
        super().__init__(
            f"training diverged at {where}: the {what} is {value} (loss {loss}, learning rate {lr:g} in that "
            f"epoch); try a lower "
            f"learning rate (--set lr=..., -p lr ...), or check that the loss keeps the contract: {LOSS_CONTRACT}"
        )

    def to_dict(self) -> dict[str, Any]:
        """What :func:`write_failure` records (non-finite values as text, so the JSON stays valid)."""
        return {"epoch": self.epoch, "step": self.step, "what": self.what, "value": str(self.value),
                "lr": self.lr, "loss": self.loss}  # fmt: skip


def write_failure(run_dir: str | Path, error: BaseException) -> Path:
    """Record ``error`` as the run folder's failed status (:data:`hie_core.run_folder.FAILED_FILE`, written atomically)."""
    path = Path(run_dir) / FAILED_FILE
    record = {"status": "failed", "message": str(error).strip().splitlines()[0] if str(error).strip() else
              type(error).__name__, "error": type(error).__name__}  # fmt: skip
    if isinstance(error, TrainingDivergedError):
        record.update(error.to_dict())
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def _tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (2, 1, 4, 8, 8) that require a gradient and a target with a small lesion in one item."""
    import torch

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn((2, 1, 4, 8, 8), generator=generator).requires_grad_(True)
    target = torch.zeros((2, 1, 4, 8, 8))
    target[0, 0, 1:3, 2:5, 3:6] = 1.0
    return logits, target


def _check_value(name: str, value: Any, logits: torch.Tensor, call: str) -> None:
    import torch

    if not isinstance(value, torch.Tensor):
        raise ConfigError(
            f"loss {name!r}: {call} returned {type(value).__name__}, not a tensor; {LOSS_CONTRACT}"
        )
    if value.numel() != 1:
        raise ConfigError(f"loss {name!r}: {call} returned a tensor of shape {tuple(value.shape)}, not a scalar; "
                          f"{LOSS_CONTRACT}")  # fmt: skip
    if not value.requires_grad or value.grad_fn is None:
        raise ConfigError(f"loss {name!r}: {call} returned a value without a gradient (detached, or not computed "
                          f"from logits); {LOSS_CONTRACT}")  # fmt: skip
    number = float(value.detach())
    if not math.isfinite(number):
        raise ConfigError(f"loss {name!r}: {call} returned {number} on a small test batch; {LOSS_CONTRACT}")
    (grad,) = torch.autograd.grad(value.reshape(()), logits, allow_unused=True)
    if grad is None:
        raise ConfigError(f"loss {name!r}: {call} does not depend on logits (no gradient reaches them); "
                          f"{LOSS_CONTRACT}")  # fmt: skip
    if not bool(torch.isfinite(grad).all()):
        raise ConfigError(
            f"loss {name!r}: {call} gives a non-finite gradient on a small test batch; {LOSS_CONTRACT}"
        )


def check_loss_contract(loss_fn: torch.nn.Module, name: str) -> None:
    """Refuse a loss that breaks the contract, with one forward and backward pass on a tiny CPU batch.

    Both ways the training calls a loss are tried: with the target's distance field when the loss
    has a true ``needs_distance`` (as a training step calls it) and without it (as the selection set
    is scored). The loss module is moved to the CPU for the check and back afterwards.

    Args:
        loss_fn: the built loss (:func:`hie_core.losses.loss_from_config`).
        name: the run's ``loss`` (named in the message).

    Raises:
        hie_core.errors.ConfigError: the loss raised, or returned something that is not a finite
            scalar tensor with a finite gradient with respect to ``logits``; the message names the
            loss and states the contract.
    """
    from hie_core.losses import hausdorff_distance_field

    devices = {p.device for p in loss_fn.parameters()} | {b.device for b in loss_fn.buffers()}
    calls = [("forward(logits, target)", False)]
    if getattr(loss_fn, "needs_distance", False):
        calls.insert(0, ("forward(logits, target, target_dt)", True))
    try:
        loss_fn.to("cpu")
        for call, with_dt in calls:
            logits, target = _tiny_batch()
            try:
                if with_dt:
                    field = hausdorff_distance_field(target, getattr(loss_fn, "spacing_mm", None))
                    value = loss_fn(logits, target, field)
                else:
                    value = loss_fn(logits, target)
            except Exception as exc:  # the loss's own code failed on a valid batch
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ConfigError(f"loss {name!r}: {call} raised {type(exc).__name__}: {first} (on a test batch of "
                                  f"shape {tuple(logits.shape)}); {LOSS_CONTRACT}") from None  # fmt: skip
            _check_value(name, value, logits, call)
    finally:
        if len(devices) == 1:
            loss_fn.to(devices.pop())
