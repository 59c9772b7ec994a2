"""Whole training pipeline: what a user assembles today against ``hie_core.training.step``, in one process.

Baseline ("as shipped"): the same U-Net, eager PyTorch in float32 (``--baseline-amp`` for
bf16), MONAI's losses as shipped (``monai.losses.HausdorffDTLoss`` with its host SciPy
distance transforms; hybrids ``0.9 * X + 0.1 * log(1 + HDT)``), the seed's five TorchIO
augmentations (p=0.5) in ``--workers`` DataLoader workers, a host-to-device copy and a
``float(loss)`` per step. Ours: :mod:`hie_core.training.step` with its defaults (device-resident
data, the ``batched`` augmentation back end, on-device distance transforms, and on CUDA
bf16 autocast, ``channels_last_3d`` and ``torch.compile``).

Both pipelines run on one device in one process, on the same synthetic cases (random
2-channel images with random lesion blobs) and the same initial weights, so the ratios are
trustworthy. Measured per loss: training volumes/s (augmentation included), ms/step,
ratio to Dice, peak GPU memory, achieved TFLOP/s; per pipeline: augmentation alone,
inference per volume, metrics per native-grid case, and the projected seed-protocol study.

Examples::

    python benchmarks/bench_pipeline.py --small                      # CI smoke run, < 1 min on CPU
    python benchmarks/bench_pipeline.py --device cpu --shape 16 96 96 --widths 8 16 32 64 --batch 2 --steps 3
    python benchmarks/bench_pipeline.py --losses all --json benchmarks/results/h100.json   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from _cli import model_parser  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from hie_core.config import preset_values  # noqa: E402
from hie_core.losses import LOSS_NAMES, get_loss  # noqa: E402
from hie_core.model import UNet3D, count_parameters, forward_flops  # noqa: E402
from hie_core.training.batches import TrainItem  # noqa: E402
from hie_core.training.config import provenance  # noqa: E402

BASE_LOSSES = ("dice", "tversky_hdt")
SMALL = {"shape": (16, 32, 32), "widths": (4, 8, 16, 32), "batch": 2, "steps": 2, "warmup": 1, "cases": 4,
         "workers": 1, "metric_shape": (16, 64, 64), "infer_repeats": 2}  # fmt: skip
SPACING_MM = (2.8, 0.9, 0.9)  # a typical resampled BONBID-HIE volume, (D, H, W)
METRIC_SPACING_MM = (2.2, 0.7, 0.7)

#: The seed protocol's configuration (its dropout and norm build the U-Net).
SEED = preset_values("seed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = model_parser(__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=16, help="synthetic cases held by both pipelines")
    p.add_argument("--steps", type=int, default=10, help="timed training steps per loss")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per loss (compilation included)")
    p.add_argument(
        "--workers",
        type=int,
        default=max(1, min(16, len(os.sched_getaffinity(0)) - 1)),
        help="baseline DataLoader workers (default: one fewer than the cores, at most 16)",
    )
    p.add_argument("--losses", nargs="+", default=list(BASE_LOSSES), help=f"'all' or names of {LOSS_NAMES}")
    p.add_argument(
        "--pipelines",
        nargs="+",
        choices=("baseline", "ours"),
        default=["baseline", "ours"],
        help="which to run (the baseline needs TorchIO, hence SimpleITK, and MONAI)",
    )
    p.add_argument("--baseline-amp", action="store_true", help="bf16 autocast in the baseline too")
    p.add_argument("--no-compile", action="store_true", help="ours without torch.compile on CUDA")
    p.add_argument("--compile-mode", default="default", help="torch.compile mode of ours")
    p.add_argument("--metric-shape", type=int, nargs=3, default=(64, 256, 256), help="native-grid case")
    p.add_argument("--infer-repeats", type=int, default=5)
    p.add_argument("--peak-tflops", type=float, default=None, help="default 989 (bf16 dense) on H100/H200")
    p.add_argument("--study", type=int, nargs=4, default=(100, 85, 17, 48), metavar=("EPOCHS", "TRAIN", "VAL", "EVAL"),
                   help="projected study: epochs, training and selection cases per epoch, final evaluation cases")  # fmt: skip
    p.add_argument("--small", action="store_true", help="CI smoke preset: " + str(SMALL))
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (1 is steadier on a busy CPU)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--json", type=Path, default=None, help="write the report here (e.g. benchmarks/results/x.json)"
    )
    args = p.parse_args(argv)
    if args.small:
        for key, value in SMALL.items():
            setattr(args, key, value)
    args.losses = list(LOSS_NAMES) if args.losses == ["all"] else args.losses
    bad = [n for n in args.losses if n not in LOSS_NAMES]
    if bad:
        p.error(f"unknown loss(es) {bad}; valid: all, {', '.join(LOSS_NAMES)}")
    if "dice" not in args.losses:
        args.losses.insert(0, "dice")  # every ratio is to Dice
    if min(args.steps, args.batch, args.cases, args.infer_repeats) < 1 or args.warmup < 0 or args.workers < 0:
        p.error("--steps, --batch, --cases, --infer-repeats must be >= 1; --warmup, --workers >= 0")
    if args.cases < args.batch:
        p.error(f"--cases ({args.cases}) must be at least --batch ({args.batch})")
    return args


def synthetic_items(n: int, shape: tuple[int, int, int], seed: int) -> list[TrainItem]:
    """Random z-scored-like 2-channel images with smooth random lesion blobs (a few % of voxels)."""
    gen = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        image = torch.randn((2, *shape), generator=gen)
        smooth = torch.nn.functional.avg_pool3d(torch.randn((1, 1, *shape), generator=gen), 5, 1, 2)
        label = (smooth > 2.0 * smooth.std()).float()[0]
        spacing = tuple(s * (1.0 + 0.1 * float(torch.rand((), generator=gen))) for s in SPACING_MM)
        items.append(TrainItem(f"synthetic{i}", image.numpy(), label.numpy(), spacing))
    return items


def monai_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The study's loss built from MONAI's shipped classes (host SciPy EDT in HausdorffDTLoss)."""
    from monai.losses import DiceFocalLoss, DiceLoss, HausdorffDTLoss, TverskyLoss

    base = {
        "dice": DiceLoss(sigmoid=True),
        "dice_focal": DiceFocalLoss(sigmoid=True, gamma=2.0, lambda_dice=1.0, lambda_focal=1.0),
        "tversky": TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7),
        "hdt": HausdorffDTLoss(sigmoid=True, alpha=2.0),
    }
    if not name.endswith("_hdt"):
        return base[name]
    region, hdt = base[name.removesuffix("_hdt")], base["hdt"]
    return lambda logits, target: 0.9 * region(logits, target) + 0.1 * torch.log1p(hdt(logits, target))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _UserDataset(torch.utils.data.Dataset):
    """A per-sample Dataset as users write it: TorchIO augments each case in a worker."""

    def __init__(self, items, augmenter, seed: int) -> None:
        self.items, self.augmenter, self.seed = items, augmenter, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        image, label = torch.from_numpy(item.image), torch.from_numpy(item.label).float()
        return self.augmenter(image, label, item.spacing_mm, seed=self.seed + index)


def baseline_batches(items, args, device: torch.device) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless TorchIO-augmented batches from DataLoader workers (random cases, with replacement)."""
    from hie_core.augment import AugmentConfig, TorchioAugmenter

    dataset = _UserDataset(items, TorchioAugmenter(AugmentConfig()), args.seed)
    sampler = torch.utils.data.RandomSampler(
        dataset, replacement=True, num_samples=10**9, generator=torch.Generator().manual_seed(args.seed)
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, sampler=sampler, num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    return iter(loader)


def stop_workers(batches: Iterator) -> None:
    """Shut down a DataLoader iterator's workers so they stop competing for the CPU."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def ours_batches(source, items, args) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless batches of ``hie_core.training.batches.DeviceBatches``, augmented on the device."""
    from hie_core.training.batches import plan_epoch

    epoch = 0
    while True:
        epoch += 1
        plan = plan_epoch(items, args.batch, args.seed, epoch)
        full = [b for b in plan if len(b) == args.batch]  # a static shape for torch.compile
        yield from source(full, args.seed + epoch)


def _l1_penalty(model: torch.nn.Module) -> torch.Tensor:
    return torch.stack([p.abs().sum() for p in model.parameters() if p.ndim > 1]).sum()


def baseline_step(model, loss_fn, optimizer, device: torch.device, amp: bool) -> Callable[..., float]:
    """The eager step of ``hie_core.training.fit`` as a user writes it: copy in, ``float(loss)`` out."""

    def step(image: torch.Tensor, label: torch.Tensor) -> float:
        image, label = image.to(device, non_blocking=True), label.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(image)
        loss = loss_fn(logits.float(), label)
        objective = loss + 1e-4 * _l1_penalty(model)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return float(loss.detach())

    return step


def time_training(
    run_step: Callable[[], object], args, device: torch.device, drain: Callable[[], None]
) -> dict:
    """Warm up, ``drain()`` any prefetched batches, then time ``args.steps`` steps between two synchronisations."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for i in range(args.warmup):
        run_step()
        if i == 0:
            sync(device)
            first_s = time.perf_counter() - start
    drain()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        run_step()
    sync(device)
    ms = 1e3 * (time.perf_counter() - start) / args.steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"ms_per_step": ms, "vol_per_s": args.batch / (ms / 1e3), "peak_mem_gib": peak,
            "first_step_s": first_s if args.warmup else None}  # fmt: skip


def time_augment(
    next_batch: Callable[[], object], n: int, batch: int, device: torch.device, drain: Callable[[], None]
) -> float:
    """Volumes/s of ``n`` batches of augmentation alone (after one untimed batch and ``drain()``)."""
    next_batch()
    drain()
    sync(device)
    start = time.perf_counter()
    for _ in range(n):
        next_batch()
    sync(device)
    return n * batch / (time.perf_counter() - start)


@torch.no_grad()
def time_inference(model, device: torch.device, shape, amp: bool, channels_last: bool, repeats: int) -> float:
    """Milliseconds per volume of an eval-mode forward at batch 1 (median of ``repeats``)."""
    model.eval()
    x = torch.randn((1, 2, *shape), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(x)
        sync(device)
        times.append(time.perf_counter() - start)
    model.train()
    return 1e3 * float(np.median(times[1:]))


def metric_case(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A native-grid (pred, ref) pair: an ellipsoidal brain with smooth random lesions."""
    gen = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, n) for n in shape], indexing="ij"))
    brain = (grid**2).sum(0) <= 0.9**2

    def field() -> torch.Tensor:
        f = torch.nn.functional.avg_pool3d(
            torch.randn((1, 1, *shape), generator=gen), (3, 9, 9), 1, (1, 4, 4)
        )[0, 0]
        return f / f.std()

    lesions, noise = field(), field()
    return (brain & (lesions + 0.5 * noise > 2.1)).numpy(), (brain & (lesions > 2.0)).numpy()


def time_metrics(shape, device: torch.device, on_device: bool, repeats: int) -> float:
    """Milliseconds per case of ``hie_core.metrics.case_metrics`` (NumPy, or tensors on ``device``)."""
    from hie_core.metrics import case_metrics

    pred, ref = metric_case(shape, 0)
    if on_device:
        pred, ref = torch.from_numpy(pred).to(device), torch.from_numpy(ref).to(device)
    times = []
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        case_metrics(pred, ref, METRIC_SPACING_MM)
        sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[1:]))


def project_study_hours(rates: dict[str, float], inference_ms: float, metric_ms: float, study) -> float:
    """Seed-protocol study hours: 6 losses x epochs x (training + selection passes) + final scoring.

    Losses not measured take the rate of their kind: the region losses Dice's, the Hausdorff
    ones ``tversky_hdt``'s (or ``hdt``'s) when measured, else Dice's.
    """
    epochs, n_train, n_val, n_eval = study
    hdt_rate = rates.get("tversky_hdt", rates.get("hdt", rates.get("dice_focal_hdt", rates["dice"])))
    seconds = 0.0
    for name in LOSS_NAMES:
        rate = rates.get(name, hdt_rate if "hdt" in name else rates["dice"])
        seconds += epochs * (n_train / rate + n_val * inference_ms / 1e3)
        seconds += n_eval * (inference_ms + metric_ms) / 1e3
    return seconds / 3600


def run_pipeline(name: str, items, model, init_state, args, device, flops_fwd: float) -> tuple[list, dict]:
    """Time one pipeline's training per loss, its augmentation, inference and metrics."""
    from hie_core.augment import AugmentConfig, BatchAugmenter
    from hie_core.training.batches import DeviceBatches
    from hie_core.training.step import FastOptions, make_train_step

    cuda = device.type == "cuda"
    options = FastOptions.for_device(device)
    if options.compile and args.no_compile:
        options = FastOptions(options.amp, options.channels_last, False)
    elif options.compile:
        options = FastOptions(options.amp, options.channels_last, args.compile_mode)
    amp = args.baseline_amp if name == "baseline" else options.amp
    drain = lambda: None  # noqa: E731
    if name == "baseline":
        batches = baseline_batches(items, args, device)
        next_batch = lambda: next(batches)  # noqa: E731
        # Batches the workers prepared while the main process was busy would flatter the rates.
        drain = lambda: [next(batches) for _ in range(2 * args.workers)]  # noqa: E731
    else:
        source = DeviceBatches(items, None, BatchAugmenter(AugmentConfig()), device)
        batches = ours_batches(source, items, args)
        next_batch = lambda: next(batches)  # noqa: E731
    rows, step = [], None
    for loss_name in args.losses:
        model.load_state_dict(init_state)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
        if name == "baseline":
            step = baseline_step(model, monai_loss(loss_name), optimizer, device, amp)
            run = lambda s=step: s(*next_batch())  # noqa: E731
        else:
            step = make_train_step(
                model, get_loss(loss_name), optimizer, l1=SEED["l1"], grad_clip=SEED["grad_clip"], amp=options.amp,
                channels_last=options.channels_last, compile=options.compile,
            )  # fmt: skip
            run = lambda s=step: s(*next_batch())  # noqa: E731
        row = {"pipeline": name, "loss": loss_name, **time_training(run, args, device, drain)}
        row["tflops"] = 3 * flops_fwd * row["vol_per_s"] / 1e12
        row.update(precision="bf16" if amp else "fp32", compiled=bool(name == "ours" and options.compile))
        rows.append(row)
        print(
            f"  {name:<8} {loss_name:<15} {row['ms_per_step']:9.1f} ms/step {row['vol_per_s']:8.2f} vol/s",
            flush=True,
        )
    dice_ms = rows[0]["ms_per_step"]
    for row in rows:
        row["ratio_to_dice"] = row["ms_per_step"] / dice_ms
    channels_last = name == "ours" and options.channels_last
    summary = {"augment_vol_per_s": time_augment(next_batch, max(args.steps, 2), args.batch, device, drain)}
    if name == "baseline":
        stop_workers(batches)
    summary |= {
        "inference_ms_per_volume": time_inference(
            model, device, tuple(args.shape), amp, channels_last, args.infer_repeats
        ),
        "metric_ms_per_case": time_metrics(
            tuple(args.metric_shape), device, name == "ours" and cuda, args.infer_repeats
        ),
        "precision": "bf16" if amp else "fp32",
        "compile": options.compile if name == "ours" else False,
        "channels_last": channels_last,
        "augmentation": f"torchio, {args.workers} workers"
        if name == "baseline"
        else "batched back end, on the device",
        "hdt_distance": "MONAI HausdorffDTLoss (SciPy, host)"
        if name == "baseline"
        else "hie_core (CuPy/edt)",
    }
    hdt_rows = [r for r in rows if "hdt" in r["loss"]]
    summary["hdt_over_dice"] = max(r["ratio_to_dice"] for r in hdt_rows) if hdt_rows else None
    rates = {r["loss"]: r["vol_per_s"] for r in rows}
    summary["study_hours"] = project_study_hours(
        rates, summary["inference_ms_per_volume"], summary["metric_ms_per_case"], args.study
    )
    if cuda:
        torch.cuda.empty_cache()
    return rows, summary


def device_info(device: torch.device, args) -> dict:
    info = {
        "type": device.type,
        "name": provenance(str(device))["device_name"],
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(memory_gib=props.total_memory / 2**30, capability=f"{props.major}.{props.minor}")
    peak = args.peak_tflops
    if peak is None and any(chip in info["name"] for chip in ("H100", "H200")):
        peak = 989.0  # bf16 dense tensor-core peak of an H100/H200 SXM
    info["peak_tflops"] = peak
    return info


def print_table(rows: list[dict], summaries: dict, peak: float | None) -> None:
    print(f"\n{'pipeline':<9}{'loss':<16}{'prec':>5}{'ms/step':>10}{'vol/s':>9}{'x dice':>8}{'TFLOP/s':>9}"
          f"{'MFU':>7}{'peak GiB':>10}")  # fmt: skip
    for r in rows:
        mfu = f"{100 * r['tflops'] / peak:6.1f}%" if peak else "    n/a"
        mem = f"{r['peak_mem_gib']:10.2f}" if r["peak_mem_gib"] is not None else "       n/a"
        print(f"{r['pipeline']:<9}{r['loss']:<16}{r['precision']:>5}{r['ms_per_step']:10.1f}{r['vol_per_s']:9.2f}"
              f"{r['ratio_to_dice']:8.2f}{r['tflops']:9.3g}{mfu}{mem}")  # fmt: skip
    print(f"\n{'pipeline':<9}{'augment vol/s':>14}{'infer ms/vol':>14}{'metric ms/case':>16}{'study h':>9}")
    for name, s in summaries.items():
        print(f"{name:<9}{s['augment_vol_per_s']:14.2f}{s['inference_ms_per_volume']:14.1f}"
              f"{s['metric_ms_per_case']:16.1f}{s['study_hours']:9.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message="single channel prediction")
    warnings.filterwarnings("ignore", message="The maximum displacement is larger")
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    torch.manual_seed(args.seed)
    model = UNet3D(widths=tuple(args.widths), dropout=SEED["dropout"], norm=SEED["norm"])
    model = model.to(device)  # default init: both EDTs run from step 1
    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    flops_fwd = forward_flops(model, (1, 2, *shape))
    info = device_info(device, args)
    prov = provenance(str(device))
    versions = dict(prov["versions"])
    try:
        import cupy

        versions["cupy"] = cupy.__version__
    except ImportError:
        versions["cupy"] = None
    print(f"device {info['name']}; torch {torch.__version__}; U-Net {tuple(args.widths)} "
          f"({count_parameters(model):,} parameters, {flops_fwd / 1e9:.2f} GFLOP/volume forward); "
          f"batch {args.batch} x (2, {shape[0]}, {shape[1]}, {shape[2]})")  # fmt: skip
    items = synthetic_items(args.cases, shape, args.seed)
    rows, summaries = [], {}
    for name in [n for n in ("baseline", "ours") if n in args.pipelines]:
        pipeline_rows, summaries[name] = run_pipeline(name, items, model, init_state, args, device, flops_fwd)
        rows += pipeline_rows
    for r in rows:
        r["mfu"] = r["tflops"] / info["peak_tflops"] if info["peak_tflops"] else None
    print_table(rows, summaries, info["peak_tflops"])
    if len(summaries) == 2:
        base = {r["loss"]: r for r in rows if r["pipeline"] == "baseline"}
        summaries["speedup"] = {
            **{f"train_{r['loss']}": r["vol_per_s"] / base[r["loss"]]["vol_per_s"] for r in rows if r["pipeline"] == "ours"},
            "augment": summaries["ours"]["augment_vol_per_s"] / summaries["baseline"]["augment_vol_per_s"],
            "study": summaries["baseline"]["study_hours"] / summaries["ours"]["study_hours"],
        }  # fmt: skip
        print(
            "\nspeed-up, ours over baseline: "
            + ", ".join(f"{k} {v:.1f}x" for k, v in summaries["speedup"].items())
        )
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items() if k != "json"}
    settings.update(parameters=count_parameters(model), gflop_per_volume_forward=flops_fwd / 1e9)
    report = {"device": info, "settings": settings, "versions": versions, "git_commit": prov["git_commit"],
              "python": prov["python"], "rows": rows, "summary": summaries}  # fmt: skip
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
