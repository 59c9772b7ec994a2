"""Is a run bit-identical when repeated? Train the start of one run three times and compare.

Runs ``a`` and ``b`` use the same thread count, run ``c`` another; each is a fresh process
that trains the first ``--epochs`` epochs of a quick-preset run (Dice loss, seed 0, on the
synthetic set the study reports) with ``hie_core.training.experiment.run_experiment`` and
stops there, as a killed run would (no evaluation: the scores are a function of the weights).
Compared, ``a`` with ``b`` and ``a`` with ``c``: every value of ``history.csv`` but the seconds
and every tensor of the saved training state (``checkpoint_last.pt``: weights and optimiser),
bit for bit, and the largest differences. Prints one JSON object (``--json`` also writes it)::

    python benchmarks/repeat_run.py --epochs 3 --threads 1 2 --json benchmarks/results/repeat_cpu.json

Each run costs about ``epochs`` x 5 s on one idle core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_TRAIN = """
import sys, torch
from hie_core.training.config import make_config
from hie_core.training.experiment import run_experiment
torch.set_num_threads(int(sys.argv[3]))
run_experiment(make_config(preset="quick", device="cpu", loss=sys.argv[4], seed=0, output_dir=sys.argv[1]),
               stop_after_epochs=int(sys.argv[2]))
"""


def train(out: Path, epochs: int, threads: int, loss: str) -> None:
    """One run in a fresh process with ``threads`` threads (OpenMP, BLAS and torch's intra-op)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}  # fmt: skip
    subprocess.run([sys.executable, "-c", _TRAIN, str(out), str(epochs), str(threads), loss], env=env, cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip


def _tensors(obj, prefix: str = "") -> dict:
    """Every tensor in a nested checkpoint (dicts and lists), keyed by its path."""
    import torch

    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    out = {}
    for key, value in items:
        out.update(_tensors(value, f"{prefix}/{key}"))
    return out


def compare(a: Path, b: Path) -> dict:
    """Bitwise comparison of two run folders' history (without seconds) and saved training state."""
    import pandas as pd
    import torch

    out: dict = {}
    ha, hb = (pd.read_csv(p / "history.csv").drop(columns=["seconds"], errors="ignore") for p in (a, b))
    same_rows = (ha.to_numpy() == hb.to_numpy()) | (ha.isna().to_numpy() & hb.isna().to_numpy())
    differ = [int(e) for e, ok in zip(ha["epoch"], same_rows.all(axis=1), strict=True) if not ok]
    out["epochs"] = len(ha)
    out["history_identical"] = not differ
    out["first_epoch_differing"] = differ[0] if differ else None
    out["train_loss"] = [ha["train_loss"].tolist(), hb["train_loss"].tolist()]
    out["selection_dice"] = [ha["selection_dice"].tolist(), hb["selection_dice"].tolist()]
    ta, tb = (
        _tensors(torch.load(p / "checkpoint_last.pt", map_location="cpu", weights_only=False)) for p in (a, b)
    )
    floats = [k for k in ta if ta[k].is_floating_point()]
    out["state_identical"] = ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    out["max_abs_state_difference"] = (
        max(float((ta[k] - tb[k]).abs().max()) for k in floats) if floats else 0.0
    )
    return out


def _cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next(
        (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.machine()
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, nargs=2, default=[1, 2], metavar=("SAME", "OTHER"))
    p.add_argument("--loss", default="dice")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    same, other = args.threads
    with tempfile.TemporaryDirectory(prefix="repeat-run-") as tmp:
        runs = {name: Path(tmp) / name for name in "abc"}
        for name, threads in (("a", same), ("b", same), ("c", other)):
            train(runs[name], args.epochs, threads, args.loss)
        import torch

        result = {"settings": {"preset": "quick", "loss": args.loss, "seed": 0, "epochs": args.epochs,
                               "threads_same": same, "threads_other": other},
                  "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                              "python": platform.python_version()},
                  f"same_threads_{same}_vs_{same}": compare(runs["a"], runs["b"]),
                  f"threads_{same}_vs_{other}": compare(runs["a"], runs["c"])}  # fmt: skip
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
