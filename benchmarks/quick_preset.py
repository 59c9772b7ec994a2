"""How the quick (CPU) preset was chosen: train variants of it and print time and test Dice.

Each variant is the ``quick`` preset plus ``key=value`` overrides (any ``TrainConfig`` field),
trained with :func:`hie_core.training.experiment.run_experiment` on the synthetic ``small``
set into a temporary folder, on one CPU thread (as one lane of the study runs), and scored
on the test split on each scan's native grid. Printed per variant: optimiser steps, epochs
run and best, seconds per epoch (selection included), optimiser steps per second, training
seconds, and the mean test Dice. Runs are independent, so two can go side by side on two
cores (``--variants`` one each, in two shells), as the study runs them::

    python benchmarks/quick_preset.py --loss dice --variants "" "norm=batch" "augment=torchio"
    python benchmarks/quick_preset.py --variants "patch_shape=24,64,64 batch_size=2" --seeds 0 1

Numbers depend on the machine and on whatever else runs: compare variants measured side by
side. The synthetic data make every Dice a statement about the pipeline, not about patients.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # e.g. a shape written 16,48,48 is parsed by TrainConfig itself


def parse_variant(text: str) -> dict:
    """``"norm=batch lr=0.001"`` -> ``{"norm": "batch", "lr": 0.001}``."""
    pairs = [item.split("=", 1) for item in text.split()]
    bad = [p[0] for p in pairs if len(p) != 2]
    if bad:
        raise SystemExit(f"quick_preset.py: error: variant items must be key=value, got {bad}")
    return {key: _value(value) for key, value in pairs}


def run_variant(overrides: dict, loss: str, seed: int, out: Path) -> dict:
    """Train and evaluate one variant; return its measurements."""
    import torch

    from hie_core.training.config import make_config
    from hie_core.training.experiment import run_experiment

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    config = make_config(preset="quick", device="cpu", loss=loss, seed=seed, output_dir=str(out), **overrides)
    start = time.perf_counter()
    result = run_experiment(config)
    history, summary = result.history, result.summary
    steps_per_epoch = config.steps_per_epoch or -(-len(summary["selection_cases"]) // config.batch_size)
    steps = steps_per_epoch * len(history)
    return {
        "variant": " ".join(f"{k}={v}" for k, v in overrides.items()) or "(quick preset)", "loss": loss, "seed": seed,
        "steps": steps, "epochs": len(history), "best_epoch": summary["best_epoch"],
        "s_per_epoch": float(history["seconds"].median()),
        "steps_per_s": steps / float(history["seconds"].sum()),
        "train_s": summary["train_seconds_this_call"], "total_s": time.perf_counter() - start,
        "test_dice": summary["splits"]["test"]["dice"]["mean"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--variants", nargs="+", default=[""], help='overrides per variant, e.g. "norm=batch lr=0.001"'
    )
    p.add_argument("--loss", default="dice")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="quick-preset-") as tmp:
        for i, text in enumerate(args.variants):
            for seed in args.seeds:
                row = run_variant(parse_variant(text), args.loss, seed, Path(tmp) / f"v{i}-s{seed}")
                rows.append(row)
                print(f"{row['variant']:<40} {row['loss']:<8} seed {seed}: {row['steps']:4d} steps, epochs "
                      f"{row['epochs']} (best {row['best_epoch']}), {row['s_per_epoch']:.2f} s/epoch, "
                      f"{row['steps_per_s']:.2f} steps/s, train {row['train_s']:.0f} s, "
                      f"test Dice {row['test_dice']:.3f} (synthetic)", flush=True)  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"threads": os.environ["OMP_NUM_THREADS"], "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
