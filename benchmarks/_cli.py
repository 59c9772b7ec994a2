"""Command-line options shared by the training benchmarks."""

from __future__ import annotations

import argparse


def model_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the device, volume shape, batch and U-Net widths options (default: the seed protocol's)."""
    from hie_core.config import preset_values

    seed = preset_values("seed", "cuda")
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--shape", type=int, nargs=3, metavar=("D", "H", "W"), default=seed["target_shape"])
    p.add_argument("--batch", type=int, default=seed["batch_size"])
    p.add_argument("--widths", type=int, nargs=4, default=seed["widths"])
    return p
