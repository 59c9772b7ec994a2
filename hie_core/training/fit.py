"""Training: the seed protocol, deterministic, resumable, atomically checkpointed.

:func:`fit` trains a :class:`~hie_core.model.UNet3D` with one of the six losses on
preprocessed cases, with early stopping on a *selection set* carved out of the training
split (never on reported validation or test cases). Every epoch ends with an atomic
``checkpoint_last.pt``; a run killed at any point resumes from it and ends with the same
weights and metrics as an uninterrupted run, because each epoch re-seeds its batch order,
dropout and augmentation from ``(seed, epoch)``.

Protocol (DESIGN §2): batch 4, AdamW lr 1e-3 / weight decay 1e-3, exponential decay 0.9
per epoch, L1 penalty 1e-4 on convolution weights, gradient clipping at norm 1, at most
100 epochs, patience 10; bf16 autocast on CUDA.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hie_core.losses import get_loss
from hie_core.model import UNet3D
from hie_core.training.config import TrainConfig
from hie_core.training.step import DeviceDataset, make_train_step, train_epoch_fast

__all__ = [
    "TrainItem",
    "TrainingSet",
    "fit",
    "build_model",
    "load_best_model",
    "epoch_seed",
    "training_finished",
]

CHECKPOINT = "checkpoint_last.pt"
BEST = "model_best.pt"


@dataclass(frozen=True)
class TrainItem:
    """One preprocessed case: image (2, D, H, W) float32, label (1, D, H, W) float32."""

    case_id: str
    image: np.ndarray
    label: np.ndarray
    spacing_mm: tuple[float, float, float]


def epoch_seed(seed: int, epoch: int, index: int = 0) -> int:
    """A 63-bit seed derived from (run seed, epoch, sample index)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class TrainingSet(torch.utils.data.Dataset):
    """In-memory training cases with per-sample seeded augmentation (CPU back ends)."""

    def __init__(self, items: Sequence[TrainItem], augmenter: Callable | None, seed: int) -> None:
        self.items = list(items)
        self.augmenter = augmenter
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        image = torch.from_numpy(item.image)
        label = torch.from_numpy(item.label)
        spacing = torch.tensor(item.spacing_mm, dtype=torch.float32)
        if self.augmenter is not None:
            image, label = self.augmenter(
                image, label, item.spacing_mm, seed=epoch_seed(self.seed, self.epoch, index)
            )
        return image.float(), label.float(), spacing


def build_model(
    widths: Sequence[int], in_channels: int = 2, prior_probability: float | None = None
) -> UNet3D:
    """The study's U-Net: ``in_channels`` maps in, one lesion logit out."""
    return UNet3D(
        in_channels=in_channels, out_channels=1, widths=tuple(widths), prior_probability=prior_probability
    )


def _l1_penalty(model: nn.Module) -> torch.Tensor:
    weights = [p for name, p in model.named_parameters() if p.ndim > 1]
    return torch.stack([w.abs().sum() for w in weights]).sum()


def _atomic_torch_save(obj, path: Path) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _dice_per_case(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred = logits > 0
    ref = target > 0.5
    inter = (pred & ref).flatten(1).sum(1).float()
    total = pred.flatten(1).sum(1).float() + ref.flatten(1).sum(1).float()
    return torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))


def _selection_batches(
    items: Sequence[TrainItem], config: TrainConfig
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The selection set as (image, label) batches on the device, built once per run."""
    device = torch.device(config.device)
    batches = []
    for start in range(0, len(items), config.batch_size):
        chunk = items[start : start + config.batch_size]
        x = torch.from_numpy(np.stack([c.image for c in chunk])).to(device)
        y = torch.from_numpy(np.stack([c.label for c in chunk])).to(device)
        batches.append((x, y))
    return batches


@torch.no_grad()
def _selection_scores(model, batches, loss_fn, config: TrainConfig) -> tuple[float, float]:
    """Mean loss and mean per-case Dice (resampled grid) on the selection set."""
    model.eval()
    device = torch.device(config.device)
    losses, dices = [], []
    for x, y in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
            logits = model(x)
        logits = logits.float()
        losses.append(float(loss_fn(logits, y)) * len(x))
        dices.append(_dice_per_case(logits, y).cpu())
    return sum(losses) / sum(len(x) for x, _ in batches), float(torch.cat(dices).mean())


def _make_augmenter(config: TrainConfig):
    from hie_core.augment import AugmentConfig, make_augmenter

    return make_augmenter(AugmentConfig(backend=config.augment))


def _train_epoch(model, loader, optimizer, loss_fn, config, gpu_augmenter, epoch) -> float:
    model.train()
    device = torch.device(config.device)
    generator = None
    if gpu_augmenter is not None:
        generator = torch.Generator(device=device).manual_seed(epoch_seed(config.seed, epoch, 1))
    total, count = 0.0, 0
    for image, label, spacing in loader:
        image, label = image.to(device, non_blocking=True), label.to(device, non_blocking=True)
        if gpu_augmenter is not None:
            image, label = gpu_augmenter(image, label, spacing, generator)  # spacing stays on the host
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp):
            logits = model(image)
        loss = loss_fn(logits.float(), label)
        objective = loss + config.l1 * _l1_penalty(model) if config.l1 else loss
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        total += float(loss.detach()) * image.shape[0]
        count += image.shape[0]
    return total / max(count, 1)


def _new_state(model, config) -> dict:
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    return {"optimizer": optimizer, "scheduler": scheduler, "epoch": 0, "best_dice": -math.inf,
            "best_epoch": 0, "bad_epochs": 0, "history": []}  # fmt: skip


def _save_checkpoint(run_dir: Path, model, state) -> None:
    payload = {
        "model": model.state_dict(),
        "optimizer": state["optimizer"].state_dict(),
        "scheduler": state["scheduler"].state_dict(),
        **{k: state[k] for k in ("epoch", "best_dice", "best_epoch", "bad_epochs", "history")},
    }
    _atomic_torch_save(payload, run_dir / CHECKPOINT)


def _load_checkpoint(run_dir: Path, model, state, device) -> None:
    payload = torch.load(run_dir / CHECKPOINT, map_location=device, weights_only=True)
    model.load_state_dict(payload["model"])
    state["optimizer"].load_state_dict(payload["optimizer"])
    state["scheduler"].load_state_dict(payload["scheduler"])
    for key in ("epoch", "best_dice", "best_epoch", "bad_epochs", "history"):
        state[key] = payload[key]


def _save_best(run_dir: Path, model, config: TrainConfig, epoch: int) -> None:
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "widths": list(config.widths),
        "in_channels": 2,
        "target_shape": list(config.target_shape),
        "loss": config.loss,
        "epoch": epoch,
    }
    _atomic_torch_save(payload, run_dir / BEST)


def load_best_model(path: str | Path, device: str = "cpu") -> tuple[UNet3D, dict]:
    """Load ``model_best.pt`` (weights only) -> (model in eval mode, metadata)."""
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    model = build_model(payload["widths"], payload["in_channels"]).to(device)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    return model, meta


def training_finished(history: Sequence[dict], config: TrainConfig) -> bool:
    """True when the history reached ``epochs`` or ``patience`` epochs without a better Dice."""
    if not history:
        return False
    best = max(range(len(history)), key=lambda i: history[i]["val_dice"])  # first best, as in fit()
    return len(history) >= config.epochs or len(history) - 1 - best >= config.patience


def _progress(total: int, initial: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="epoch", leave=True)


def fit(
    config: TrainConfig,
    fit_items: Sequence[TrainItem],
    selection_items: Sequence[TrainItem],
    run_dir: str | Path,
    stop_after_epochs: int | None = None,
) -> list[dict]:
    """Train (or resume training) and keep the best weights by selection-set Dice.

    Args:
        config: the run configuration.
        fit_items: cases the weights are fitted on.
        selection_items: cases for early stopping (carved out of the training split).
        run_dir: where ``checkpoint_last.pt`` and ``model_best.pt`` are written.
        stop_after_epochs: stop (as if killed) after this many epochs of this call;
            for tests of resumption.

    Returns:
        list[dict]: the per-epoch history (epoch, train_loss, val_loss, val_dice, lr, seconds).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    model = build_model(config.widths, prior_probability=config.prior_probability).to(device)
    loss_fn = get_loss(config.loss)
    state = _new_state(model, config)
    if (run_dir / CHECKPOINT).exists():
        _load_checkpoint(run_dir, model, state, device)
    augmenter = None if config.augment == "none" else _make_augmenter(config)
    cpu_aug = augmenter if config.augment == "torchio" else None
    gpu_aug = augmenter if config.augment == "gpu" else None
    dataset = TrainingSet(fit_items, cpu_aug, config.seed)
    fast = config.augment != "torchio"  # data and augmentation can live on the device
    if fast:
        cuda = device.type == "cuda"
        device_data = DeviceDataset(fit_items, device)
        step = make_train_step(
            model, loss_fn, state["optimizer"], l1=config.l1, grad_clip=config.grad_clip, amp=config.amp,
            channels_last=cuda, compile=config.compile and cuda,
        )  # fmt: skip
    selection = _selection_batches(selection_items, config)
    done_this_call = 0
    bar = _progress(config.epochs, state["epoch"], f"train {config.loss}")
    while state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
        epoch = state["epoch"] + 1
        start = time.perf_counter()
        torch.manual_seed(epoch_seed(config.seed, epoch, 2))  # dropout
        dataset.epoch = epoch
        order = np.random.default_rng(epoch_seed(config.seed, epoch, 3)).permutation(len(dataset)).tolist()
        lr = state["optimizer"].param_groups[0]["lr"]
        if fast:
            torch.empty(
                (), dtype=torch.int64
            ).random_()  # the DataLoader's base-seed draw: same dropout stream
            generator = None
            if gpu_aug is not None:
                generator = torch.Generator(device=device).manual_seed(epoch_seed(config.seed, epoch, 1))
            train_loss = train_epoch_fast(step, device_data, gpu_aug, order, config.batch_size, generator)
        else:
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=config.batch_size, sampler=order, num_workers=config.num_workers,
                pin_memory=device.type == "cuda", drop_last=False,
            )  # fmt: skip
            train_loss = _train_epoch(model, loader, state["optimizer"], loss_fn, config, gpu_aug, epoch)
        val_loss, val_dice = _selection_scores(model, selection, loss_fn, config)
        state["scheduler"].step()
        state["epoch"] = epoch
        if val_dice > state["best_dice"]:
            state.update(best_dice=val_dice, best_epoch=epoch, bad_epochs=0)
            _save_best(run_dir, model, config, epoch)
        else:
            state["bad_epochs"] += 1
        state["history"].append(
            {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_dice": val_dice,
             "lr": lr, "seconds": time.perf_counter() - start}
        )  # fmt: skip
        _save_checkpoint(run_dir, model, state)
        bar.update(1)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_dice=f"{val_dice:.3f}", best=state["best_epoch"])
        done_this_call += 1
        if stop_after_epochs is not None and done_this_call >= stop_after_epochs:
            break
    bar.close()
    return state["history"]
