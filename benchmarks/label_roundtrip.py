"""Label round trip native -> resampled (32x192x192) -> native: Dice by lesion size.

The seed resampled labels with nearest neighbour and evaluated on the resampled grid; we
evaluate on the native grid, so a label (or a perfect prediction of it) goes down and back.
This prints, per native geometry, lesion shape and size (native voxels), the mean Dice of the
round-tripped mask against the original and the share of lesions that vanish on the
resampled grid, for four ways of going down / back up:

- ``nearest/nearest``: the seed's label resampling, mask mapped back with nearest.
- ``nearest/linear``: nearest label; back as a probability map, linear, >= 0.5
  (what :func:`hie_core.preprocess.probabilities_to_native_mask` does to a prediction).
- ``linear/linear``: label as a fraction, linear, >= 0.5 (binary, the default); back linear.
- ``soft/linear``: label kept as the linear fraction (a soft target, not binary); back linear.

Usage: ``python benchmarks/label_roundtrip.py [--trials 10] [--seed 0]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from hie_core.config import preset_values  # noqa: E402
from hie_core.io import ImageGeometry  # noqa: E402
from hie_core.preprocess import (  # noqa: E402
    probabilities_to_native_mask,
    resample,
    resampled_geometry,
    to_native,
)

#: The seed protocol's grid, an array shape (D, H, W), and its ZADC scaling.
SEED = preset_values("seed")
SEED_GRID = tuple(SEED["target_shape"])
SIZES_VOXELS = (5, 20, 50, 100, 300, 1000, 5000)
GEOMETRIES = {
    "160x160x40 @ 1.1x1.1x2.75 mm": ImageGeometry((40, 160, 160), (2.75, 1.1, 1.1), (-88.0, -88.0, -55.0)),
    "256x256x56 @ 0.7x0.7x2.2 mm": ImageGeometry((56, 256, 256), (2.2, 0.7, 0.7), (-89.6, -89.6, -61.6)),
    "128x128x24 @ 1.5x1.5x3.0 mm": ImageGeometry((24, 128, 128), (3.0, 1.5, 1.5), (-96.0, -96.0, -36.0)),
}
METHODS = ("nearest/nearest", "nearest/linear", "linear/linear", "soft/linear")


def _physical_grid(geometry: ImageGeometry, centre_index: np.ndarray) -> np.ndarray:
    """(D, H, W, 3) offsets in mm of every voxel centre from a continuous index."""
    axes = [
        (np.arange(n) - c) * s
        for n, c, s in zip(geometry.shape, centre_index, geometry.spacing_mm, strict=True)
    ]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def sphere(geometry: ImageGeometry, n_voxels: int, rng: np.random.Generator) -> np.ndarray:
    """A ball of about ``n_voxels`` native voxels (at least one) at a random sub-voxel centre."""
    radius_mm = (3.0 * n_voxels * geometry.voxel_volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    while True:
        centre = np.asarray(geometry.shape) / 2.0 + rng.uniform(-2.0, 2.0, size=3)
        mask = np.linalg.norm(_physical_grid(geometry, centre), axis=-1) <= radius_mm
        if mask.any():
            return mask


def blob(geometry: ImageGeometry, n_voxels: int, rng: np.random.Generator) -> np.ndarray:
    """An irregular lesion of exactly ``n_voxels`` voxels: smoothed noise minus a radial
    penalty, thresholded at its ``n_voxels``-th largest value."""
    radius_mm = (3.0 * n_voxels * geometry.voxel_volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    centre = np.asarray(geometry.shape) / 2.0 + rng.uniform(-2.0, 2.0, size=3)
    distance_mm = np.linalg.norm(_physical_grid(geometry, centre), axis=-1)
    sigma_vox = [max(radius_mm / 2.0 / s, 0.5) for s in geometry.spacing_mm]
    noise = ndimage.gaussian_filter(rng.standard_normal(geometry.shape), sigma_vox)
    score = noise / noise.std() - (distance_mm / radius_mm) ** 2
    threshold = np.partition(score.ravel(), -n_voxels)[-n_voxels]
    return score >= threshold


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def round_trip(mask: np.ndarray, native: ImageGeometry, method: str) -> tuple[np.ndarray, bool]:
    """(native mask after the round trip, whether the resampled label is empty)."""
    target = resampled_geometry(native, SEED_GRID)
    down, up = method.split("/")
    if down == "nearest":
        small = resample(mask.astype(np.uint8), native, SEED_GRID, "nearest")[0].astype(np.float32)
    else:
        small = resample(mask, native, SEED_GRID, "linear")[0]
        if down == "linear":
            small = (small >= 0.5).astype(np.float32)
    empty = not (small >= 0.5).any()
    if up == "nearest":
        return to_native(small >= 0.5, target, native, "nearest"), empty
    return probabilities_to_native_mask(small, target, native), empty


def run(trials: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, native in GEOMETRIES.items():
        print(f"\n## native {name} -> {SEED_GRID} (D, H, W); mean Dice (% lesions lost)\n")
        print("| shape | voxels | " + " | ".join(METHODS) + " |")
        print("|---|---:|" + "---:|" * len(METHODS))
        for make in (sphere, blob):
            for size in SIZES_VOXELS:
                scores = {m: [] for m in METHODS}
                lost = {m: 0 for m in METHODS}
                counts = []
                for _ in range(trials):
                    mask = make(native, size, rng)
                    counts.append(int(mask.sum()))
                    for method in METHODS:
                        back, empty = round_trip(mask, native, method)
                        scores[method].append(dice(mask, back))
                        lost[method] += empty
                cells = [f"{np.mean(scores[m]):.3f} ({100 * lost[m] / trials:.0f}%)" for m in METHODS]
                print(f"| {make.__name__} | {np.mean(counts):.0f} | " + " | ".join(cells) + " |")


def time_preprocessing() -> None:
    """Time preprocessing a 256x256x64 case from .mha files and loading it from the cache."""
    import tempfile
    from dataclasses import dataclass

    from hie_core.io import write_image
    from hie_core.preprocess import PreprocessCache, preprocess_case

    @dataclass(frozen=True)
    class _Case:  # same attributes as hie_core.data.Case
        case_id: str
        split: str | None
        adc: Path
        zadc: Path
        label: Path | None

    rng = np.random.default_rng(0)
    native = ImageGeometry((64, 256, 256), (2.0, 0.7, 0.7))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        adc = (rng.normal(1350, 430, native.shape)).clip(0).astype(np.float32)
        zadc = rng.normal(0, 2, native.shape).clip(-10, 10).astype(np.float32)
        label = blob(native, 5000, rng).astype(np.uint8)
        paths = [
            write_image(a, native, root / "data" / f"{n}.mha")
            for n, a in (("a", adc), ("z", zadc), ("l", label))
        ]
        case = _Case("timing", None, *paths)
        t0 = time.perf_counter()
        preprocess_case(case, SEED_GRID, SEED["zadc_norm"])
        t1 = time.perf_counter()
        cache = PreprocessCache(root / "cache")
        cache.get(case, SEED_GRID, SEED["zadc_norm"])
        t2 = time.perf_counter()
        loads = []
        for _ in range(5):
            t = time.perf_counter()
            PreprocessCache(root / "cache").get(case, SEED_GRID, SEED["zadc_norm"])  # fresh instance: hashes come from disk records
            loads.append(time.perf_counter() - t)
        size_mb = sum(p.stat().st_size for p in (root / "cache").glob("*.npz")) / 1e6
    print(
        f"\npreprocess 256x256x64 from .mha: {t1 - t0:.2f} s; first cache.get (hash + compute + write): "
        f"{t2 - t1:.2f} s; cache hit: {1000 * np.median(loads):.0f} ms (median of 5); entry {size_mb:.1f} MB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="lesions per shape and size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.trials, args.seed)
    time_preprocessing()
