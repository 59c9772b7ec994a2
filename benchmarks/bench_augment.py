"""Time the seed augmentations per volume: TorchIO one sample at a time vs the batched back end.

Usage::

    python benchmarks/bench_augment.py                         # 32x192x192, CUDA if available
    python benchmarks/bench_augment.py --shape 32 192 192 --n 4 --device cpu

Each transform is timed alone (forced on, the others off), then the whole pipeline with every
transform on (``all, p=1``) and with the seed's probabilities (``seed, p=0.5``). Times are
milliseconds per volume: TorchIO per call on a (2, D, H, W) sample; the batched back end per
batch divided by the batch size, after one warm-up call, with CUDA synchronised.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from hie_core.augment import TRANSFORM_NAMES, AugmentConfig, BatchAugmenter, TorchioAugmenter  # noqa: E402
from hie_core.config import preset_values  # noqa: E402

SPACING_MM = (2.8, 0.9, 0.9)  # a typical resampled BONBID-HIE volume, (D, H, W)


def _configs() -> dict[str, AugmentConfig]:
    configs = {
        name: AugmentConfig(**{f"p_{n}": float(n == name) for n in TRANSFORM_NAMES})
        for name in TRANSFORM_NAMES
    }
    configs["all, p=1"] = AugmentConfig(p=1.0)
    configs["seed, p=0.5"] = AugmentConfig(p=0.5)
    return configs


def _sample(
    shape: tuple[int, int, int], batch: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    image = torch.randn((batch, 2, *shape), generator=generator)
    label = (torch.rand((batch, 1, *shape), generator=generator) > 0.99).float()
    return image.to(device), label.to(device)


def _time_ms(fn: Callable[[int], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of ``fn(i)`` over ``repeats`` calls, in ms, after one warm-up call."""
    fn(-1)
    sync()
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_torchio(shape: tuple[int, int, int], repeats: int) -> dict[str, float]:
    """Median ms per volume of each configuration on the TorchIO back end (CPU)."""
    image, label = _sample(shape, 1, torch.device("cpu"))
    results = {}
    for name, config in _configs().items():
        augmenter = TorchioAugmenter(config)
        results[name] = _time_ms(
            lambda i, a=augmenter: a(image[0], label[0], SPACING_MM, seed=i + 1), repeats, lambda: None
        )
    return results


def bench_batched(
    shape: tuple[int, int, int], batch: int, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median ms per volume of each configuration on the batched back end at ``batch``."""
    image, label = _sample(shape, batch, device)
    spacing = torch.tensor([SPACING_MM] * batch)
    generator = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    results = {}
    for name, config in _configs().items():
        augmenter = BatchAugmenter(config)
        ms = _time_ms(lambda i, a=augmenter: a(image, label, spacing, generator), repeats, sync)
        results[name] = ms / batch
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", type=int, nargs=3, default=preset_values("seed")["target_shape"], metavar=("D", "H", "W"))
    parser.add_argument("--n", type=int, default=10, help="timed repeats per configuration (median reported)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=(4, 8))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--skip-torchio", action="store_true", help="time the batched back end only")
    args = parser.parse_args()
    shape, device = tuple(args.shape), torch.device(args.device)
    warnings.filterwarnings("ignore", message="The maximum displacement is larger", category=RuntimeWarning)
    print(
        f"shape (2, {shape[0]}, {shape[1]}, {shape[2]}), spacing_mm {SPACING_MM}, device {device}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}; median of {args.n}, ms per volume"
    )
    columns: dict[str, dict[str, float]] = {}
    if not args.skip_torchio:
        columns["torchio (cpu, 1)"] = bench_torchio(shape, args.n)
    for batch in args.batch_sizes:
        columns[f"gpu-backend ({device.type}, {batch})"] = bench_batched(shape, batch, args.n, device)
    rows = list(_configs())
    print(f"{'transform':<14}" + "".join(f"{c:>26}" for c in columns))
    for row in rows:
        print(f"{row:<14}" + "".join(f"{columns[c][row]:>26.2f}" for c in columns))


if __name__ == "__main__":
    main()
