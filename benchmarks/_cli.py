"""Command-line options shared by the training benchmarks."""

from __future__ import annotations

import argparse


def model_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the device, volume shape, batch and U-Net widths options."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--shape", type=int, nargs=3, metavar=("D", "H", "W"), default=(32, 192, 192))
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--widths", type=int, nargs=4, default=(32, 64, 128, 256))
    return p
