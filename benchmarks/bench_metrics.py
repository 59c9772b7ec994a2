"""Time ``hie_core.metrics.case_metrics`` on one random native-grid case (64x256x256, with lesions).

The case: an ellipsoidal "brain" with smooth random lesions scattered through it (a few
percent of the brain, spread so that the joint bounding box covers most of the volume, the
slow case); the prediction is the lesion field re-thresholded with added smooth noise.
Prints the median wall and CPU time of the NumPy path on one core and with the default threads, and
of the torch path on CPU tensors.

    python benchmarks/bench_metrics.py [--repeats 7]   # hie_core importable (pip install -e . or PYTHONPATH=.)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import ndimage

from hie_core.metrics import case_metrics

SHAPE = (64, 256, 256)
SPACING_MM = (2.2, 0.7, 0.7)


def make_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (pred, ref) pair of boolean (D, H, W) masks with scattered lesions."""
    rng = np.random.default_rng(seed)
    grid = np.indices(SHAPE, dtype=np.float32)
    centre = (np.array(SHAPE, dtype=np.float32) - 1) / 2
    radius = np.array(SHAPE, dtype=np.float32) * 0.45
    brain = (((grid - centre[:, None, None, None]) / radius[:, None, None, None]) ** 2).sum(0) <= 1
    sigma = (1.0, 4.0, 4.0)
    field = ndimage.gaussian_filter(rng.normal(size=SHAPE).astype(np.float32), sigma)
    field /= field.std()
    noise = ndimage.gaussian_filter(rng.normal(size=SHAPE).astype(np.float32), sigma)
    noise /= noise.std()
    ref = brain & (field > 2.0)
    pred = brain & (field + 0.5 * noise > 2.1)
    return pred, ref


def _median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall and process CPU seconds of ``fn()`` (CPU time is steadier on a busy machine)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)), float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per setting")
    args = parser.parse_args()
    pred, ref = make_case()
    brain_fraction = 100 * ref.sum() / ref.size
    print(f"case {SHAPE} spacing {SPACING_MM} mm: ref {ref.sum()} voxels ({brain_fraction:.2f}% of volume)")
    print("metrics:", {k: round(v, 4) for k, v in case_metrics(pred, ref, SPACING_MM).items()})

    import torch

    cores = os.sched_getaffinity(0)
    threads = torch.get_num_threads()
    settings = [("numpy, default threads", cores, threads), ("numpy, one core", {min(cores)}, 1)]
    for name, affinity, n_threads in settings:
        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(n_threads)
        wall, cpu = _median_time(lambda: case_metrics(pred, ref, SPACING_MM), args.repeats)
        print(f"{name:<28} {len(affinity)} core(s): wall {1000 * wall:7.1f} ms, CPU {1000 * cpu:7.1f} ms")
    pred_t, ref_t = torch.from_numpy(pred), torch.from_numpy(ref)
    wall, cpu = _median_time(lambda: case_metrics(pred_t, ref_t, SPACING_MM), args.repeats)
    print(
        f"{'torch CPU tensors, one core':<28} 1 core(s): wall {1000 * wall:7.1f} ms, CPU {1000 * cpu:7.1f} ms"
    )
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
