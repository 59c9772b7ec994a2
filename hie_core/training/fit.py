"""Training: the seed protocol, deterministic, resumable, atomically checkpointed.

:func:`fit` trains the configuration's network (``arch``: the seed's
:class:`~hie_core.model.UNet3D` or one of MONAI's, :func:`hie_core.model.build_model`) with
one of the losses on preprocessed cases, with early stopping on a *selection set* carved out
of the training split (never on reported validation or test cases). One loop serves every augmentation back
end and device; only the batch source differs (:mod:`hie_core.training.batches`). Every
epoch ends with an atomic ``checkpoint_last.pt``; a run killed at any point resumes from it
and, on a CPU, ends with the same weights and metrics as an uninterrupted run, because each
epoch re-seeds its plan (cases, patches), dropout and augmentation from ``(seed, epoch)``.

Protocol (the seed study's, arXiv:2502.09148): AdamW, exponential learning-rate decay per epoch, L1 penalty
on the convolution weights, gradient clipping, early stopping on the selection Dice.

A run that fails says so: the loss is checked against its contract on a tiny batch before the
first step (:func:`hie_core.training.failure.check_loss_contract`), and a non-finite training
loss, gradient norm or selection loss stops training with a
:class:`~hie_core.training.failure.TrainingDivergedError` naming the epoch, the step and the value
(the epochs before it stay in ``state.history`` and in ``checkpoint_last.pt``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from hie_core import model as networks
from hie_core.augment.config import derive_seed
from hie_core.losses import loss_from_config
from hie_core.protocol import SELECTION_OVERLAP
from hie_core.training.batches import (
    STREAM_AUGMENT,
    STREAM_DROPOUT,
    DeviceBatches,
    LoaderBatches,
    TrainItem,
    lesion_voxels,
    pad_to,
    plan_epoch,
)
from hie_core.training.checkpoints import (
    MODEL_FILE,
    TRAINING_CHECKPOINT,
    load_model_file,
    load_training_checkpoint,
    model_file_payload,
    save_checkpoint,
)
from hie_core.training.config import TrainConfig
from hie_core.training.failure import TrainingDivergedError, check_loss_contract
from hie_core.training.inference import predict_logits
from hie_core.training.step import FastOptions, NonFiniteStep, make_train_step, train_epoch

__all__ = ["TrainItem", "TrainState", "fit", "build_model", "load_best_model", "HISTORY_COLUMNS"]

CHECKPOINT = TRAINING_CHECKPOINT
BEST = MODEL_FILE
#: Columns of ``history.csv``: the selection set is held out of the training split.
HISTORY_COLUMNS = ("epoch", "train_loss", "selection_loss", "selection_dice", "lr", "seconds")


@dataclass
class TrainState:
    """Where training stands after ``epoch`` finished epochs (saved in every checkpoint).

    Attributes:
        epoch: finished epochs.
        best_dice: best selection Dice so far (-inf before the first epoch).
        best_epoch: the epoch that reached it (its weights are ``model_best.pt``).
        bad_epochs: epochs since then without a better selection Dice.
        history: one row per epoch with :data:`HISTORY_COLUMNS`.
    """

    epoch: int = 0
    best_dice: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)

    def finished(self, config: TrainConfig) -> bool:
        """True once ``epochs`` ran or ``patience`` epochs passed without a better Dice."""
        return self.epoch >= config.epochs or self.bad_epochs >= config.patience

    def record(self, row: dict) -> bool:
        """Add an epoch's row; True when its selection Dice is a new best."""
        self.epoch = row["epoch"]
        self.history.append(row)
        if row["selection_dice"] > self.best_dice:
            self.best_dice, self.best_epoch, self.bad_epochs = row["selection_dice"], row["epoch"], 0
            return True
        self.bad_epochs += 1
        return False


def _arch_options(config: TrainConfig) -> dict:
    """The network's settings derived from ``config`` (:func:`hie_core.model.arch_options`)."""
    window = config.patch_shape or config.target_shape
    return networks.arch_options(config.arch, config.widths, window, config.target_spacing_mm)


def build_model(config: TrainConfig, in_channels: int = 2) -> torch.nn.Module:
    """The run's network (``config.arch``): ``in_channels`` maps in, one lesion logit out."""
    return networks.build_model(config.arch, in_channels, config.widths, config.dropout, config.norm,
                                config.prior_probability, options=_arch_options(config))  # fmt: skip


def load_best_model(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Load ``model_best.pt`` -> (model in eval mode, metadata); see :mod:`hie_core.training.checkpoints`."""
    return load_model_file(path, device)


def _dice_per_case(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred, ref = logits > 0, target > 0.5
    inter = (pred & ref).flatten(1).sum(1).float()
    total = pred.flatten(1).sum(1).float() + ref.flatten(1).sum(1).float()
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))


class Selection:
    """The selection set on the device, scored on whole volumes (sliding window with patches).

    Windows do not overlap here (``overlap=0``): the selection Dice only ranks epochs, and
    overlapping windows cost 3-4x the forward passes every epoch (about a third of a quick
    run). Predictions of the reported splits blend overlapping windows (``sw_overlap``).
    """

    #: Overlap of the selection set's sliding windows (:data:`hie_core.protocol.SELECTION_OVERLAP`).
    OVERLAP = SELECTION_OVERLAP

    def __init__(self, items: Sequence[TrainItem], config: TrainConfig) -> None:
        device = torch.device(config.device)
        self.volumes = [(torch.from_numpy(i.image)[None].to(device), torch.from_numpy(i.label)[None].float().to(device))
                        for i in items]  # fmt: skip
        self.config = config

    @torch.no_grad()
    def scores(self, model: torch.nn.Module, loss_fn) -> tuple[float, float]:
        """Mean loss and mean per-case Dice (on the preprocessing grid)."""
        losses, dices = [], []
        for image, label in self.volumes:
            logits = predict_logits(model, image, self.config.patch_shape, self.OVERLAP, self.config.amp)
            losses.append(loss_fn(logits, label))
            dices.append(_dice_per_case(logits, label))
        if not losses:
            return math.nan, math.nan
        return float(torch.stack(losses).mean()), float(torch.cat(dices).mean())


def _batch_source(items: Sequence[TrainItem], config: TrainConfig):
    from hie_core.augment import AugmentConfig, make_augmenter

    augmenter = None if config.augment == "none" else make_augmenter(AugmentConfig(backend=config.augment))
    if config.augment == "torchio":
        return LoaderBatches(items, config.patch_shape, augmenter, config.device, config.num_workers)
    return DeviceBatches(items, config.patch_shape, augmenter, config.device)


def _save_best(run_dir: Path, model: torch.nn.Module, config: TrainConfig, epoch: int) -> None:
    save_checkpoint(run_dir / BEST, model_file_payload(model.state_dict(), config.to_dict(), _arch_options(config), epoch))


def _progress(config: TrainConfig, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=config.epochs, initial=initial, desc=f"train {config.loss}", unit="epoch", leave=True)


def _diverged(state: TrainState, epoch: int, step: int | None, what: str, value: float, lr: float,
              config: TrainConfig) -> TrainingDivergedError:  # fmt: skip
    """The error that stops a diverged run, carrying the state of the epochs before it."""
    error = TrainingDivergedError(epoch, step, what, value, lr, config.loss)
    error.state = state
    return error


def fit(
    config: TrainConfig,
    fit_items: Sequence[TrainItem],
    selection_items: Sequence[TrainItem],
    run_dir: str | Path,
    stop_after_epochs: int | None = None,
) -> TrainState:
    """Train (or resume training) and keep the best weights by selection-set Dice.

    Args:
        config: the run configuration.
        fit_items: cases the weights are fitted on.
        selection_items: cases for early stopping (carved out of the training split).
        run_dir: where ``checkpoint_last.pt`` and ``model_best.pt`` are written.
        stop_after_epochs: stop (as if killed) after this many epochs of this call;
            for tests of resumption.

    Returns:
        TrainState: its ``history`` (rows with :data:`HISTORY_COLUMNS`), the best epoch, and
        :meth:`TrainState.finished`.

    Raises:
        hie_core.training.checkpoints.CheckpointError: ``checkpoint_last.pt`` is damaged
            (the message names it and says how to restart).
        hie_core.errors.ConfigError: the loss breaks its contract (before any training).
        hie_core.training.failure.TrainingDivergedError: a non-finite loss or gradient; the
            ``state`` reached so far is its ``state`` attribute.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    loss_fn = loss_from_config(config)
    check_loss_contract(loss_fn, config.loss)  # a broken loss is refused before the first step
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    state = TrainState()
    if (run_dir / CHECKPOINT).exists():
        payload = load_training_checkpoint(run_dir / CHECKPOINT, device)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        state = TrainState(**payload["state"])
    items = [pad_to(item, config.patch_shape) for item in fit_items]
    source = _batch_source(items, config)
    options = FastOptions.for_device(device)
    step = make_train_step(model, loss_fn, optimizer, l1=config.l1, grad_clip=config.grad_clip, amp=config.amp,
                           channels_last=options.channels_last, compile=config.compile and options.compile)  # fmt: skip
    selection = Selection(selection_items, config)
    lesions = lesion_voxels(items) if config.patch_shape else None
    bar, done = _progress(config, state.epoch), 0
    while not state.finished(config) and (stop_after_epochs is None or done < stop_after_epochs):
        epoch, start = state.epoch + 1, time.perf_counter()
        plan = plan_epoch(items, config.batch_size, config.seed, epoch, config.patch_shape,
                          config.foreground_fraction, config.steps_per_epoch, lesions, config.mirror_axes)  # fmt: skip
        torch.manual_seed(derive_seed(config.seed, epoch, STREAM_DROPOUT))
        lr = optimizer.param_groups[0]["lr"]
        try:
            train_loss = train_epoch(step, source(plan, derive_seed(config.seed, epoch, STREAM_AUGMENT)))
        except NonFiniteStep as bad:
            bar.close()
            raise _diverged(state, epoch, bad.step, bad.what, bad.value, lr, config) from None
        selection_loss, selection_dice = selection.scores(model, loss_fn)
        if not math.isfinite(selection_loss) and selection.volumes:
            bar.close()
            raise _diverged(state, epoch, None, "selection loss", selection_loss, lr, config)
        scheduler.step()
        row = {"epoch": epoch, "train_loss": train_loss, "selection_loss": selection_loss,
               "selection_dice": selection_dice, "lr": lr, "seconds": time.perf_counter() - start}  # fmt: skip
        if state.record(row):
            _save_best(run_dir, model, config, epoch)
        save_checkpoint(run_dir / CHECKPOINT, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": state.epoch, "state": asdict(state)})  # fmt: skip
        bar.update(1)
        bar.set_postfix(
            loss=f"{train_loss:.3f}", selection_dice=f"{selection_dice:.3f}", best=state.best_epoch
        )
        done += 1
    bar.close()
    return state
