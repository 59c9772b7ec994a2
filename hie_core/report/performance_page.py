"""The Performance page: this study's measured training speed and the kept benchmark results.

Timings are read from the run folders (``history.csv`` seconds per epoch, ``config.json``
device and sizes); benchmark results from the JSON files under ``benchmarks/results/``.
Nothing is estimated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hie_core.report import display
from hie_core.report.runs import find_runs, run_grid

__all__ = ["benchmark_results", "show_benchmarks", "study_timings", "timings_table"]


def study_timings(study_dir: str | Path) -> pd.DataFrame:
    """Per loss: device, grid, widths, seeds, epochs and seconds per epoch (median over epochs and seeds).

    ``x dice`` is the ratio of a loss's median epoch time to the Dice loss's on the same study.
    """
    runs = find_runs(study_dir)
    rows = []
    for loss in runs.losses:
        folders = runs.of(loss)
        histories = [f.history() for f in folders]
        seconds = pd.concat([h["seconds"] for h in histories])
        cfg = folders[0].config.get("config", {})
        rows.append({
            "loss": loss, "device": folders[0].config.get("device_name"),
            "grid": run_grid(cfg).describe(), "widths": "-".join(map(str, cfg.get("widths", []))),
            "seeds": len(folders), "epochs (per seed)": "/".join(str(len(h)) for h in histories),
            "median s/epoch": float(seconds.median()), "total train s": float(seconds.sum()),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if "dice" in set(table["loss"]):
        ref = float(table.loc[table["loss"] == "dice", "median s/epoch"].iloc[0])
        table["x dice"] = table["median s/epoch"] / ref
    return table


def timings_table(study_dir: str | Path):
    """:func:`study_timings` for the page: settings shared by every loss go into the note, not the columns."""
    table = study_timings(study_dir)
    shared = [c for c in ("device", "grid", "widths") if table[c].nunique() == 1]
    note = "; ".join(f"{c}: {table[c].iloc[0]}" for c in shared)
    return display.table(
        table.drop(columns=shared), precision=2, note=note + "." if note else "", scroll=True
    )


def benchmark_results(root: Path | None = None) -> list[tuple[str, object, pd.DataFrame]]:
    """Every benchmark JSON kept under ``benchmarks/results/``, as (name, device, table) triples."""
    from hie_core.training.experiment import project_root

    folder = (root or project_root()) / "benchmarks" / "results"
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = json.loads(path.read_text())
        rows = data.get("rows") or data.get("results") or []
        out.append((path.name, data.get("device", {}), pd.DataFrame(rows)))
    return out


def show_benchmarks(root: Path | None = None) -> None:
    """Display the kept benchmark results, each with its device, or say that there are none."""
    from IPython.display import display as show

    results = benchmark_results(root)
    if not results:
        show(display.markdown("No benchmark result is kept under `benchmarks/results/` yet: run "
                              "`python benchmarks/bench_pipeline.py` on a GPU to add one."))  # fmt: skip
    for name, device, table in results:
        label = device.get("name", device) if isinstance(device, dict) else device
        show(display.table(table, precision=3, note=f"{name}; device: {label}", scroll=True))
