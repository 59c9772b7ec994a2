"""The Python half of ``benchmarks/device_check.sh``: environment probe, mini study, report.

Three sub-commands, each run by the shell script inside its own time box:

- ``env --json F``: what the device has (torch, CUDA, GPU, CuPy, MONAI, TorchIO, SimpleITK,
  edt, the distance-transform back end of CUDA tensors).
- ``study --out DIR --json F``: the seed protocol (``make_config(preset="seed")``: the
  32x192x192 grid, widths 32-256, batch 4, the CUDA defaults) for each of the six losses on a
  synthetic BONBID-like set generated here, capped at ``--epochs`` epochs, through the public
  :func:`hie_core.training.experiment.run_experiment`. It records every epoch's seconds and
  loss, the evaluation time per case, and projects the full study (at most 100 epochs per
  loss, 48 reported cases). The JSON is rewritten after every loss, and a loss that would not
  finish before ``--deadline-s`` is not started: partial results survive a time box.
- ``report --work DIR --out-dir D [--copy-to D2]``: gathers the stages' results into one JSON
  named after the device (``nvidia-h200.json``) with the targets of issue 12 evaluated.
  Its ``device`` and ``rows`` keys are those of ``bench_pipeline.py``, which the book's
  Performance page reads.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

#: Targets on one H100/H200 (issue 12, item 4): the benchmark's printout, not a timed test.
TARGET_VOL_PER_S = 115.0  # training volumes/s with augmentation, seed grid, Dice
TARGET_HYBRID_OVER_DICE = 1.10  # a Hausdorff-hybrid step over a Dice step
TARGET_STUDY_MINUTES = 10.0  # the six-loss seed-protocol study, projected
FULL_EPOCHS, FULL_EVAL_CASES = 100, 48  # the seed protocol's cap; val 4 + test 44
HYBRIDS = ("dice_focal_hdt", "tversky_hdt")


def _write_json(path: Path, obj: dict) -> None:
    from hie_core.io import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, default=str, allow_nan=False) + "\n")


def _clean(value):
    """JSON-safe: NaN and inf become None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def device_slug(name: str) -> str:
    """A file name from a device name: ``"NVIDIA H200"`` -> ``"nvidia-h200"``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-device"


# -- env -------------------------------------------------------------------------------------


def env_info() -> dict:
    """Versions and the device, without failing on anything missing."""
    import importlib.metadata as md

    import torch

    from hie_core.distance import backend_name

    versions = {}
    for pkg in ("torch", "monai", "torchio", "SimpleITK", "nibabel", "edt", "numpy", "scipy", "triton"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    try:
        import cupy

        versions["cupy"] = cupy.__version__
    except ImportError:
        versions["cupy"] = None
    cuda = torch.cuda.is_available()
    info = {"python": sys.version.split()[0], "versions": versions, "torch_cuda": torch.version.cuda,
            "cuda_available": cuda, "cpu_count": os.cpu_count(),
            "distance_backend_cuda": backend_name("cuda") if cuda else None,
            "distance_backend_cpu": backend_name("cpu")}  # fmt: skip
    if cuda:
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_gib=props.total_memory / 2**30,
                    capability=f"{props.major}.{props.minor}", gpus=torch.cuda.device_count())  # fmt: skip
    return info


# -- study -----------------------------------------------------------------------------------


def _epoch_rows(history) -> list[dict]:
    """Per-epoch rows of a run's history (column names of the old or new history.csv)."""
    dice_col = next((c for c in ("selection_dice", "val_dice") if c in history.columns), None)
    return [{"epoch": int(r["epoch"]), "seconds": float(r["seconds"]), "train_loss": float(r["train_loss"]),
             "selection_dice": float(r[dice_col]) if dice_col else None}
            for _, r in history.iterrows()]  # fmt: skip


def _timed_evaluation(counter: dict):
    """Wrap ``hie_core.training.experiment.evaluate_model`` to time it (no-op if it is renamed)."""
    import hie_core.training.experiment as experiment

    original = getattr(experiment, "evaluate_model", None)
    if original is None:
        return

    def timed(*args, **kwargs):
        start = time.perf_counter()
        rows = original(*args, **kwargs)
        counter["eval_s"] += time.perf_counter() - start
        counter["eval_cases"] += len(rows)
        return rows

    experiment.evaluate_model = timed


def project_loss_seconds(run: dict) -> float | None:
    """Seconds of one loss's full seed-protocol run from a capped one: setup and compilation as
    measured, the first epoch as measured, ``FULL_EPOCHS - 1`` steady epochs (the median of
    epochs 2+), and the evaluation scaled to ``FULL_EVAL_CASES`` cases. An upper bound:
    early stopping ends most runs sooner."""
    epochs = run.get("epochs") or []
    if len(epochs) < 2 or not run.get("eval_cases"):
        return None
    steady = statistics.median(e["seconds"] for e in epochs[1:])
    overhead = run["wall_s"] - sum(e["seconds"] for e in epochs) - run["eval_s"]
    per_case = run["eval_s"] / run["eval_cases"]
    return max(overhead, 0.0) + epochs[0]["seconds"] + (FULL_EPOCHS - 1) * steady + FULL_EVAL_CASES * per_case


def project_study_minutes(runs: list[dict]) -> float | None:
    """The six losses' projected minutes; a loss not measured takes the mean of its kind."""
    from hie_core.losses import LOSS_NAMES

    done = {r["loss"]: s for r in runs if (s := project_loss_seconds(r)) is not None}
    if not done:
        return None
    total = 0.0
    for name in LOSS_NAMES:
        same_kind = [s for n, s in done.items() if ("hdt" in n) == ("hdt" in name)] or list(done.values())
        total += done.get(name, statistics.mean(same_kind))
    return total / 60


def _study_config(args: argparse.Namespace, loss: str, data: Path):
    from hie_core.training.config import make_config

    extra = {}
    if args.target_shape:
        extra["target_shape"] = tuple(args.target_shape)
    if args.widths:
        extra["widths"] = tuple(args.widths)
    if args.spacing_mm:
        extra["target_spacing_mm"] = tuple(args.spacing_mm)
    if args.patch_shape:
        extra["patch_shape"] = tuple(args.patch_shape)
    if args.steps_per_epoch:
        extra["steps_per_epoch"] = args.steps_per_epoch
    folder = loss if args.preset == "seed" else f"{args.preset}-{loss}"  # presets may share one data folder
    return make_config(preset=args.preset, device=args.device, loss=loss, data_dir=str(data), seed=0,
                       output_dir=str(args.out / folder), epochs=args.epochs, patience=args.epochs, **extra)  # fmt: skip


def run_study(args: argparse.Namespace) -> dict:
    """Generate the data, then one capped run per loss while the deadline allows; see the module doc."""
    from hie_core.synthetic import make_synthetic_dataset
    from hie_core.training.experiment import run_experiment

    start = time.perf_counter()
    deadline = start + args.deadline_s
    seed_protocol = args.preset == "seed" and not (
        args.target_shape or args.widths or args.max_size or args.patch_shape
    )
    report = {"preset": args.preset, "epochs_cap": args.epochs, "deadline_s": args.deadline_s, "runs": [],
              "protocol": "seed" if seed_protocol and args.counts[0] == 85 else "reduced (not comparable)",
              "projection": {"epochs": FULL_EPOCHS, "eval_cases": FULL_EVAL_CASES}}  # fmt: skip
    data = args.out / "data" / "release"
    if not data.exists():
        counts = dict(zip(("train", "val", "test"), args.counts, strict=True))
        make_synthetic_dataset(data, preset="full", counts=counts, seed=0, max_size=args.max_size)
    report["data"] = {"path": str(data), "counts": args.counts, "seconds": time.perf_counter() - start}
    counter = {"eval_s": 0.0, "eval_cases": 0}
    _timed_evaluation(counter)
    for loss in args.losses:
        longest = max((r["wall_s"] for r in report["runs"] if "wall_s" in r), default=0.0)
        if time.perf_counter() + 0.8 * longest > deadline:
            report["runs"].append({"loss": loss, "status": "not started: the time box would end first"})
            continue
        counter.update(eval_s=0.0, eval_cases=0)
        t0 = time.perf_counter()
        try:
            config = _study_config(args, loss, data)
            result = run_experiment(config)
            run = {"loss": loss, "status": "ok", "wall_s": time.perf_counter() - t0, **counter,
                   "epochs": _epoch_rows(result.history), "amp": config.amp, "compile": config.compile,
                   "grid": config.grid.describe(), "patch_shape": config.patch_shape and list(config.patch_shape),
                   "steps_per_epoch": config.steps_per_epoch, "batch_size": config.batch_size,
                   "test_dice_mean": float(result.metrics.loc[result.metrics["split"] == "test", "dice"].mean())}  # fmt: skip
            run["projected_full_run_s"] = project_loss_seconds(run)
        except Exception as exc:  # one failed loss must not hide the others
            run = {
                "loss": loss,
                "status": f"failed: {type(exc).__name__}: {exc}",
                "wall_s": time.perf_counter() - t0,
            }
        report["runs"].append(run)
        report["projection"]["study_minutes"] = project_study_minutes(report["runs"])
        report["seconds"] = time.perf_counter() - start
        _write_json(args.json, _clean(report))
        print(f"[study] {loss:<15} {run['status']} in {run['wall_s']:.1f} s", flush=True)
    report["seconds"] = time.perf_counter() - start
    _write_json(args.json, _clean(report))
    return report


# -- report ----------------------------------------------------------------------------------


def parse_pytest_log(text: str) -> dict:
    """Counts and failing test ids from ``pytest -v`` output (works on a log cut by a time box)."""
    results = dict(re.findall(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)", text, re.M))
    counts = {
        k.lower(): sum(v == k for v in results.values()) for k in ("PASSED", "FAILED", "SKIPPED", "ERROR")
    }
    summary = re.findall(r"^=+ (.*(?:passed|failed|error|skipped|deselected).*) in [\d.]+s", text, re.M)
    return {**counts, "failures": sorted(k for k, v in results.items() if v in ("FAILED", "ERROR")),
            "summary": summary[-1] if summary else None}  # fmt: skip


def _target(name: str, value, limit: float, unit: str, higher_is_better: bool, source: str) -> dict:
    met = None if value is None else (value >= limit if higher_is_better else value <= limit)
    return {"target": name, "value": value, "limit": limit, "unit": unit,
            "direction": ">=" if higher_is_better else "<=", "met": met, "source": source}  # fmt: skip


def _bench_on_seed_grid(bench: dict | None) -> bool:
    settings = (bench or {}).get("settings") or {}
    settings = settings.get("ours", settings) or {}  # merged runs keep each pipeline's settings
    from hie_core.config import preset_values

    seed = preset_values("seed", "cuda")
    return (list(settings.get("shape", [])) == list(seed["target_shape"])
            and list(settings.get("widths", [])) == list(seed["widths"])
            and settings.get("batch") == seed["batch_size"])  # fmt: skip


def evaluate_targets(bench: dict | None, study: dict | None) -> list[dict]:
    """The three targets of issue 12 item 4. ``met`` is None where a stage gave no number, or
    where it measured something else than the seed protocol (a rehearsal on small settings)."""
    rows = {r["loss"]: r for r in (bench or {}).get("rows", []) if r.get("pipeline") == "ours"}
    summary = (bench or {}).get("summary") or {}
    vol = rows.get("dice", {}).get("vol_per_s")
    ratios = [rows[n]["ratio_to_dice"] for n in HYBRIDS if n in rows]
    study_min = ((study or {}).get("projection") or {}).get("study_minutes")
    study_source, study_comparable = "device_check study (capped runs, projected to 100 epochs)", True
    if study_min is not None:
        study_comparable = study.get("protocol") == "seed"
    elif "ours" in summary:
        study_min, study_source = 60 * summary["ours"]["study_hours"], "bench_pipeline projection"
        study_comparable = _bench_on_seed_grid(bench)
    base_h = (summary.get("baseline") or {}).get("study_hours")
    targets = [
        _target("training vol/s with augmentation (seed grid, Dice)", vol, TARGET_VOL_PER_S, "vol/s", True,
                "bench_pipeline rows: ours, dice"),
        _target("Hausdorff-hybrid step / Dice step", max(ratios) if ratios else None, TARGET_HYBRID_OVER_DICE,
                "x", False, f"bench_pipeline rows: ours, max over {', '.join(HYBRIDS)}"),
        _target("six-loss seed-protocol study, projected", study_min, TARGET_STUDY_MINUTES, "min", False,
                study_source),
    ]  # fmt: skip
    targets[2]["monai_torchio_minutes"] = None if base_h is None else 60 * base_h
    for target, comparable in zip(
        targets, (_bench_on_seed_grid(bench),) * 2 + (study_comparable,), strict=True
    ):
        if not comparable and target["value"] is not None:
            target.update(
                met=None, source=target["source"] + " - not the seed protocol's settings: not judged"
            )
    return targets


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def merge_benchmarks(ours: dict | None, baseline: dict | None) -> dict | None:
    """One ``bench_pipeline.py`` report from its two runs (``--pipelines ours`` and ``baseline``),
    with the ``speedup`` block that a run of both pipelines computes."""
    parts = [b for b in (ours, baseline) if b]
    if not parts:
        return None
    merged = {**parts[0], "rows": [r for b in parts for r in b.get("rows", [])], "summary": {}}
    for b in parts:
        merged["summary"].update(
            {k: v for k, v in (b.get("summary") or {}).items() if k in ("ours", "baseline")}
        )
    if ours and baseline:
        base = {r["loss"]: r for r in baseline.get("rows", []) if r.get("pipeline") == "baseline"}
        speed = {f"train_{r['loss']}": r["vol_per_s"] / base[r["loss"]]["vol_per_s"] for r in ours.get("rows", [])
                 if r.get("pipeline") == "ours" and r["loss"] in base}  # fmt: skip
        summary = merged["summary"]
        if "ours" in summary and "baseline" in summary:
            speed["augment"] = summary["ours"]["augment_vol_per_s"] / summary["baseline"]["augment_vol_per_s"]
            speed["study"] = summary["baseline"]["study_hours"] / summary["ours"]["study_hours"]
        summary["speedup"] = speed
        merged["settings"] = {"ours": ours.get("settings"), "baseline": baseline.get("settings")}
    return merged


def build_report(work: Path) -> dict:
    """One JSON from the stage files in ``work`` (any of them may be missing)."""
    bench = merge_benchmarks(_load(work / "bench.json"), _load(work / "baseline.json"))
    study, env, native = _load(work / "study.json"), _load(work / "env.json"), _load(work / "native.json")
    stages = [json.loads(line) for line in (work / "stages.jsonl").read_text().splitlines() if line.strip()] \
        if (work / "stages.jsonl").exists() else []  # fmt: skip
    log = work / "tests.log"
    tests = parse_pytest_log(log.read_text(errors="replace")) if log.exists() else None
    device = dict((bench or {}).get("device") or {})
    device.setdefault(
        "name", (env or {}).get("name") or os.environ.get("HIE_DEVICE_NAME") or "unknown device"
    )
    report = {"device": device, "rows": (bench or {}).get("rows", []), "summary": (bench or {}).get("summary"),
              "targets": evaluate_targets(bench, study), "tests": tests, "study": study, "native": native, "env": env,
              "stages": stages, "settings": (bench or {}).get("settings"), "versions": (bench or {}).get("versions"),
              "git_commit": os.environ.get("HIE_GIT_COMMIT") or (bench or {}).get("git_commit"),
              "check": {"script": "benchmarks/device_check.sh", "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}  # fmt: skip
    return _clean(report)


def print_targets(report: dict) -> None:
    print(f"\ndevice check on {report['device'].get('name')}:")
    for s in report["stages"]:
        print(
            f"  stage {s['name']:<8} rc {s['rc']:>3}  {s['seconds']:7.1f} s{'  TIMED OUT' if s.get('timed_out') else ''}"
        )
    if report["tests"]:
        print(f"  tests: {report['tests']['summary'] or report['tests']}")
    for t in report["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.3g}"
        verdict = {
            True: "met",
            False: "NOT met",
            None: "not judged" if t["value"] is not None else "not measured",
        }[t["met"]]
        print(
            f"  {t['target']:<52} {value:>8} {t['unit']:<6} (target {t['direction']} {t['limit']:g}): {verdict}"
        )


def write_report(work: Path, out_dir: Path, copy_to: Path | None) -> Path:
    report = build_report(work)
    path = out_dir / f"{device_slug(report['device']['name'])}.json"
    _write_json(path, report)
    if copy_to is not None:
        _write_json(copy_to / path.name, report)
    print_targets(report)
    print(f"wrote {path}" + (f" and {copy_to / path.name}" if copy_to else ""))
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from hie_core.losses import LOSS_NAMES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("env", help="probe the environment")
    e.add_argument("--json", type=Path, required=True)
    s = sub.add_parser("study", help="the capped seed-protocol study of the six losses")
    s.add_argument("--out", type=Path, required=True, help="run folders and the synthetic data go here")
    s.add_argument("--json", type=Path, required=True)
    s.add_argument("--epochs", type=int, default=3, help="epochs per loss (the first includes compilation)")
    s.add_argument("--deadline-s", type=float, default=140.0, help="start no loss that would end after this")
    s.add_argument("--losses", nargs="+", default=list(LOSS_NAMES), choices=LOSS_NAMES)
    s.add_argument("--counts", type=int, nargs=3, default=(85, 4, 8), metavar=("TRAIN", "VAL", "TEST"),
                   help="synthetic cases per split: the full training split, fewer test cases (timed per case)")  # fmt: skip
    s.add_argument("--preset", default="seed")
    s.add_argument("--device", default="auto")
    s.add_argument("--max-size", type=int, default=None, help="cap the synthetic volumes (tests only)")
    s.add_argument("--target-shape", type=int, nargs=3, default=None, help="override the preset (tests only)")
    s.add_argument("--widths", type=int, nargs=4, default=None, help="override the preset (tests only)")
    s.add_argument("--spacing-mm", type=float, nargs=3, default=None, help="override the preset (tests only)")
    s.add_argument("--patch-shape", type=int, nargs=3, default=None, help="override the preset (tests only)")
    s.add_argument("--steps-per-epoch", type=int, default=None, help="override the preset (tests only)")
    r = sub.add_parser("report", help="gather the stages into one JSON named after the device")
    r.add_argument("--work", type=Path, required=True)
    r.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    r.add_argument("--copy-to", type=Path, default=None, help="also write it here (the device tool's $OUT)")
    args = p.parse_args(argv)
    if args.command == "study" and (args.epochs < 2 or min(args.counts[0], args.counts[2]) < 1):
        p.error("--epochs must be >= 2 (a steady epoch after the first) and the train/test counts >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "env":
        info = env_info()
        _write_json(args.json, _clean(info))
        print(json.dumps(info, indent=1))
    elif args.command == "study":
        args.out.mkdir(parents=True, exist_ok=True)
        report = run_study(args)
        return 0 if all(r["status"] == "ok" for r in report["runs"]) else 1
    else:
        write_report(args.work, args.out_dir, args.copy_to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
