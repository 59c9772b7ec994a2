"""Time one full training step (forward, loss, backward, AdamW) for each of the six losses.

Also times MONAI's shipped ``HausdorffDTLoss`` (distance transforms by SciPy on the host)
inside the ``tversky_hdt`` hybrid, the baseline our on-device Hausdorff loss replaces.

Examples::

    python benchmarks/bench_step.py --device cpu --shape 16 96 96 --batch 2 --steps 3
    python benchmarks/bench_step.py --device cuda --amp --json bench.json

Prints the parameter count, forward GFLOP per volume at the chosen shape, and a table of
ms/step, volumes/s and the ratio to ``dice`` (median over the timed steps).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _cli import model_parser  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from hie_core.config import preset_values  # noqa: E402
from hie_core.losses import LOSS_NAMES, get_loss  # noqa: E402
from hie_core.model import UNet3D, count_parameters, forward_flops  # noqa: E402

MONAI_BASELINE = "tversky_hdt[monai]"

#: The seed protocol's configuration (its dropout and norm build the U-Net).
SEED = preset_values("seed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = model_parser(__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per loss")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per loss")
    p.add_argument("--amp", action="store_true", help="bf16 autocast for the forward (CUDA only)")
    p.add_argument("--losses", nargs="+", default=[*LOSS_NAMES, MONAI_BASELINE], help="subset to time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    args = p.parse_args(argv)
    bad = [name for name in args.losses if name not in (*LOSS_NAMES, MONAI_BASELINE)]
    if bad:
        p.error(f"unknown loss(es) {bad}; valid: {', '.join((*LOSS_NAMES, MONAI_BASELINE))}")
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        p.error("--steps and --batch must be >= 1, --warmup >= 0")
    return args


def monai_tversky_hdt() -> Callable[..., torch.Tensor]:
    """``0.9 * Tversky + 0.1 * log(1 + HausdorffDT)`` with MONAI's shipped classes."""
    from monai.losses import HausdorffDTLoss, TverskyLoss

    tversky = TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)
    hdt = HausdorffDTLoss(sigmoid=True, alpha=2.0)

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return 0.9 * tversky(logits, target) + 0.1 * torch.log(1 + hdt(logits, target))

    return loss


def make_batch(
    batch: int, shape: tuple[int, int, int], device: torch.device, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 2-channel input and a blobby binary target with a few % foreground."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, 2, *shape), generator=gen)
    noise = torch.randn((batch, 1, *shape), generator=gen)
    smooth = torch.nn.functional.avg_pool3d(noise, 5, 1, 2)
    target = (smooth > 2.0 * smooth.std()).float()
    return x.to(device), target.to(device)


def make_step(
    model: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    target: torch.Tensor,
    amp: bool,
) -> Callable[[], None]:
    """One training step (forward, loss, backward, AdamW step, CUDA sync) as a closure."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    cuda = x.device.type == "cuda"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp and cuda):
            logits = model(x)
        loss = loss_fn(logits, target)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()

    return step


def time_loss_only(loss_fn: Callable[..., torch.Tensor], target: torch.Tensor, repeats: int = 5) -> float:
    """Median seconds of the loss forward + backward alone, on fixed random logits."""
    gen = torch.Generator().manual_seed(1)
    logits = (2.0 * torch.randn(target.shape, generator=gen)).to(target.device).requires_grad_(True)
    loss_fn(logits, target).backward()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss_fn(logits, target).backward()
        if target.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_steps(steps: dict[str, Callable[[], None]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per step of every closure, interleaved round-robin so load drift hits all alike."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message="single channel prediction")
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    shape = tuple(args.shape)
    torch.manual_seed(args.seed)
    model = UNet3D(widths=tuple(args.widths), dropout=SEED["dropout"], norm=SEED["norm"]).to(device)
    n_params = count_parameters(model)
    gflop = forward_flops(model, (1, 2, *shape)) / 1e9
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"UNet3D widths {tuple(args.widths)}: {n_params:,} parameters, {gflop:.1f} GFLOP/volume forward")
    print(
        f"input ({args.batch}, 2, {shape[0]}, {shape[1]}, {shape[2]}), amp={args.amp and device.type == 'cuda'}"
    )
    x, target = make_batch(args.batch, shape, device, args.seed)
    loss_fns = {
        n: monai_tversky_hdt() if n == MONAI_BASELINE else get_loss(n).to(device) for n in args.losses
    }
    # One model per loss, all with the same initial weights.
    models = {n: copy.deepcopy(model) for n in args.losses}
    steps = {n: make_step(models[n], loss_fns[n], x, target, args.amp) for n in args.losses}
    times = time_steps(steps, args.warmup, args.steps)
    results = {}
    for loss_name in args.losses:
        ms = 1e3 * statistics.median(times[loss_name])
        results[loss_name] = {
            "ms_per_step": ms,
            "volumes_per_s": args.batch / (ms / 1e3),
            "loss_only_ms": 1e3 * time_loss_only(loss_fns[loss_name], target),
            "all_ms": [1e3 * t for t in times[loss_name]],
        }
    print(f"\n{'loss':<20s} {'ms/step':>10s} {'vol/s':>8s} {'x dice':>7s} {'loss fwd+bwd ms':>16s}")
    ref = results.get("dice", {}).get("ms_per_step")
    for loss_name, r in results.items():
        ratio = f"{r['ms_per_step'] / ref:7.2f}" if ref else "    n/a"
        print(
            f"{loss_name:<20s} {r['ms_per_step']:10.1f} {r['volumes_per_s']:8.2f} {ratio} {r['loss_only_ms']:16.1f}"
        )
    report = {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "shape": shape,
        "batch": args.batch,
        "widths": tuple(args.widths),
        "amp": bool(args.amp and device.type == "cuda"),
        "steps": args.steps,
        "warmup": args.warmup,
        "parameters": n_params,
        "gflop_per_volume_forward": gflop,
        "results": results,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
