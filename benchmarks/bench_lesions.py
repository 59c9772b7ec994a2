"""Time ``hie_core.lesions.lesion_metrics`` on a native-sized case with many small lesions.

A 64 x 512 x 512 grid (the largest BONBID-HIE-like case) holding ``--lesions`` random
ellipsoidal lesions of 1 to 5000 voxels, and a prediction that shifts, shrinks, drops some of
them and adds false-positive blobs. Prints the median seconds of ``--repeat`` calls, and the same
for ``hie_core.metrics.case_metrics`` for scale.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_lesions.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _case(shape: tuple[int, int, int], n_lesions: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref, pred = np.zeros(shape, bool), np.zeros(shape, bool)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for k in range(n_lesions):
        centre = rng.uniform([4, 40, 40], [shape[0] - 4, shape[1] - 40, shape[2] - 40])
        radii = rng.uniform([0.6, 1.0, 1.0], [3.0, 14.0, 14.0])
        box = tuple(slice(max(int(c - r) - 1, 0), int(c + r) + 2) for c, r in zip(centre, radii, strict=True))
        inside = (((zz[box[0]] - centre[0]) / radii[0]) ** 2 + ((yy[:, box[1]] - centre[1]) / radii[1]) ** 2
                  + ((xx[:, :, box[2]] - centre[2]) / radii[2]) ** 2) <= 1  # fmt: skip
        ref[box] |= inside
        if k % 4:  # three in four lesions predicted, shifted by one voxel in-plane
            pred[box[0], box[1], slice(box[2].start + 1, box[2].stop + 1)] |= inside
    for _ in range(n_lesions // 4):  # false-positive blobs
        z, y, x = rng.integers([2, 40, 40], [shape[0] - 2, shape[1] - 40, shape[2] - 40])
        pred[z - 1 : z + 1, y - 2 : y + 2, x - 2 : x + 2] = True
    return pred, ref


def _median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 512, 512))
    parser.add_argument("--lesions", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from hie_core.lesions import lesion_metrics
    from hie_core.metrics import case_metrics

    pred, ref = _case(tuple(args.shape), args.lesions, seed=0)
    spacing = (2.0, 0.5, 0.5)
    result = lesion_metrics(pred, ref, spacing)
    print(f"case {tuple(args.shape)}: {result.columns['n_ref_lesions']} reference and "
          f"{result.columns['n_pred_lesions']} predicted lesions, sensitivity "
          f"{result.columns['lesion_sensitivity']:.3f}, {result.columns['n_fp_lesions']} false-positive lesions")  # fmt: skip
    lesion_s = _median_seconds(lambda: lesion_metrics(pred, ref, spacing), args.repeat)
    metric_s = _median_seconds(lambda: case_metrics(pred, ref, spacing), args.repeat)
    print(f"lesion_metrics: {lesion_s:.3f} s (median of {args.repeat})")
    print(f"case_metrics (Dice, MASD, NSD), for scale: {metric_s:.3f} s")


if __name__ == "__main__":
    main()
