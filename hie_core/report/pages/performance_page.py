"""The Performance page: this study's measured training speed and the kept benchmark results.

Timings are read from the run folders (``history.csv`` seconds per epoch, ``config.json``
device and sizes); benchmark results from the JSON files under ``benchmarks/results/``.
Nothing is estimated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hie_core.report.analysis.runs import run_grid
from hie_core.report.analysis.study_model import load_study
from hie_core.report.viewers import display

__all__ = ["benchmark_results", "show_benchmarks", "study_timings", "timings_table"]


def study_timings(study_dir: str | Path) -> pd.DataFrame:
    """Per loss: device, grid, widths, seeds, epochs and seconds per epoch (median over epochs and seeds).

    ``x dice`` is the ratio of a loss's median epoch time to the Dice loss's on the same study.
    """
    study = load_study(study_dir)
    rows = []
    for loss in study.runs.losses:
        folders = study.runs.of(loss)
        histories = [study.history(loss, f.seed, f.fold) for f in folders]
        seconds = pd.concat([h["seconds"] for h in histories])
        config = study.run_config(loss)
        cfg = config.settings
        rows.append({
            "loss": loss, "device": config.device,
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
    labels = load_study(study_dir).labels
    table["loss"] = table["loss"].map(lambda m: labels.get(m, m))
    table = table.rename(columns={"loss": "method", "x dice": "time vs Dice"})
    shared = [c for c in ("device", "grid", "widths") if table[c].nunique() == 1]
    note = "; ".join(f"{c}: {table[c].iloc[0]}" for c in shared)
    return display.table(
        table.drop(columns=shared), precision=2, note=note + "." if note else "", scroll=True
    )


def _result_files(root: Path | None) -> list[tuple[str, dict]]:
    """Every JSON under ``benchmarks/results/`` that reads as an object, as (file name, content)."""
    from hie_core.run_folder import project_root

    folder = (root or project_root()) / "benchmarks" / "results"
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out.append((path.name, data))
    return out


def _is_device_check(data: dict) -> bool:
    """A device check's JSON (``benchmarks/device_check.sh`` or ``device_study.sh``): rows and targets."""
    return isinstance(data.get("targets"), list) and isinstance(data.get("rows"), list)


def benchmark_results(root: Path | None = None) -> list[tuple[str, object, pd.DataFrame]]:
    """Every benchmark JSON kept under ``benchmarks/results/``, as (name, device, table) triples.

    A benchmark JSON has ``rows`` (``bench_pipeline.py``, ``bench_step.py``, the device checks);
    other JSON files there (``run_seconds.json``, the study runner's ``--plan`` timings; a preset
    comparison with its ``decision``, ``quick_preset_dev.json``, which the Methods page reads) are not
    benchmarks and are left out.
    """
    return [(name, data.get("device", {}), pd.DataFrame(data["rows"]))
            for name, data in _result_files(root) if data.get("rows") and "decision" not in data]  # fmt: skip


def _verdict(target: dict) -> str:
    met = target.get("met")
    return {True: "met", False: "not met"}.get(
        met, "not judged" if target.get("value") is not None else "not measured"
    )


def _device_table(data: dict) -> pd.DataFrame:
    """Per loss of the ``ours`` pipeline: ms/step, volumes/s, ratio to Dice, MFU, and the target it has."""
    targets = {t.get("unit"): t for t in data.get("targets", [])}
    vol_t, ratio_t = targets.get("vol/s", {}), targets.get("x", {})
    rows = []
    for r in data.get("rows", []):
        if r.get("pipeline", "ours") != "ours":
            continue
        if r.get("loss") == "dice" and vol_t:
            target = f">= {vol_t['limit']:g} vol/s"
        elif "hdt" in str(r.get("loss")) and r.get("loss") != "hdt" and ratio_t:
            target = f"<= {ratio_t['limit']:.2f} x Dice"
        else:
            target = ""
        rows.append({"loss": _display_loss(r.get("loss")), "ms/step": r.get("ms_per_step"),
                     "vol/s": r.get("vol_per_s"), "x dice": r.get("ratio_to_dice"),
                     "MFU": r.get("mfu"), "peak GiB": r.get("peak_mem_gib"), "target": target})  # fmt: skip
    return pd.DataFrame(rows)


def _display_loss(name: object) -> str:
    """The display name of a loss (:data:`hie_core.losses.LOSS_LABELS`), the raw name otherwise."""
    from hie_core.losses import LOSS_LABELS

    return LOSS_LABELS.get(str(name), str(name))


def _device_prose(name: str, data: dict) -> str:
    """One paragraph from a device check's JSON: device, date, commit, targets, tests, study."""
    device = data.get("device") or {}
    label = device.get("name", "an unnamed device") if isinstance(device, dict) else str(device)
    finished = ((data.get("check") or {}).get("finished") or "an unrecorded date")[:10]
    commit = data.get("git_commit") or "an unrecorded commit"
    parts = [f"`{name}`: measured on {label} on {finished}, commit `{commit}`."]
    for t in data.get("targets", []):
        value = "no value" if t.get("value") is None else f"{t['value']:.3g} {t.get('unit', '')}".strip()
        what = str(t.get("target", "target"))
        parts.append(f"{what[:1].upper()}{what[1:]}: {value}, target {t.get('direction', '')} "
                     f"{t.get('limit', 0):g} ({_verdict(t)}).")  # fmt: skip
    tests = data.get("tests") or {}
    if tests:
        counts = ", ".join(f"{tests.get(k, 0)} {k}" for k in ("passed", "failed", "skipped"))
        parts.append(f"CUDA tests: {counts}"
                     + (f" ({', '.join(tests['failures'])})" if tests.get("failures") else "") + ".")  # fmt: skip
    for study_name, study in (data.get("papermill_study") or {}).items():
        parts.append(f"Study `{study_name}` through papermill: {study.get('finished', 0)} of "
                     f"{len(study.get('runs', []))} runs finished, {len(study.get('results_files', []))} results files.")  # fmt: skip
    seconds = (data.get("seed_run") or {}).get("seconds_per_run")
    if seconds is not None:
        parts.append(f"One seed-protocol run to early stopping: {seconds:.0f} s.")
    return " ".join(parts)


def show_benchmarks(root: Path | None = None) -> None:
    """Display the GPU device checks (prose and a table against the targets), then other benchmarks.

    Without a device check's JSON under ``benchmarks/results/`` the page says so plainly: no
    number is typed into the page, every one comes from a committed JSON.
    """
    from IPython.display import display as show

    files = _result_files(root)
    devices = [(n, d) for n, d in files if _is_device_check(d)]
    if not devices:
        show(display.markdown(
            "No GPU benchmark of the current code is committed: `benchmarks/results/` holds no device "
            "check JSON. `benchmarks/device_study.sh` writes one in a single call on a GPU machine "
            "(`benchmarks/README.md`)."))  # fmt: skip
    for name, data in devices:
        show(display.markdown(_device_prose(name, data)))
        show(display.table(_device_table(data), precision=2, note=f"{name}; pipeline: ours", scroll=True))
    # the other benchmarks are benchmark_results' (a preset comparison with its decision is the Methods page's)
    others = [(n, d) for n, d in files if d.get("rows") and "decision" not in d and not _is_device_check(d)]
    for name, data in others:
        device = data.get("device", {})
        label = device.get("name", device) if isinstance(device, dict) else device
        show(
            display.table(
                pd.DataFrame(data["rows"]), precision=3, note=f"{name}; device: {label}", scroll=True
            )
        )
