"""The Python half of ``benchmarks/device_study.sh``: the profile, the run summaries, the final JSON.

Three sub-commands, each run by the shell script inside its own time box:

- ``profile --json F``: ``torch.profiler`` over a few training steps of the fast pipeline
  (``hie_core.training.step`` on ``DeviceBatches`` with the batched augmentation, the seed grid,
  batch 4, the device's defaults: bf16 + ``channels_last_3d`` + ``torch.compile`` on CUDA) for
  Dice and Tversky+HDT, after untimed warm-up steps (compilation). Per loss: milliseconds per
  step (wall, synchronised) and the top operators and kernels by self device time (self CPU
  time on a CPU), so the JSON says where a step's time goes.
- ``runs --runs-dir D --json F``: what ``python -m hie_core.study`` left in a runs folder: per
  run (``<study>/<loss>/seed<k>``) whether its notebook finished, papermill's duration, epochs,
  best epoch, training seconds and test Dice; per study the results files it wrote.
- ``finish --work W --out-dir R [--copy-to D]``: ``R/<device>.json`` in ``device_check.py report``'s
  schema plus ``papermill_study``, ``seed_run`` (one seed-protocol run to early stopping, for the
  study runner's ``--plan``) and ``profile``; a copy in ``D`` (the tool's ``$OUT``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

PROFILED_LOSSES = ("dice", "tversky_hdt")
TOP_OPS = 25


def _write_json(path: Path, obj: dict) -> None:
    from hie_core.io import atomic_write_text

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from device_check import _clean

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, default=str, allow_nan=False) + "\n")


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# -- profile ---------------------------------------------------------------------------------


def _op_rows(profiler, on_device: bool, steps: int) -> list[dict]:
    """The top operators/kernels of a profile, in ms per step, by self device (or CPU) time."""
    events = profiler.key_averages()
    key = "self_device_time_total" if on_device else "self_cpu_time_total"
    ranked = sorted(events, key=lambda e: getattr(e, key, 0.0), reverse=True)[:TOP_OPS]
    return [{"name": e.key, "calls_per_step": e.count / steps,
             "self_ms_per_step": getattr(e, key, 0.0) / 1e3 / steps,
             "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "device_ms_per_step": getattr(e, "device_time_total", 0.0) / 1e3 / steps}
            for e in ranked]  # fmt: skip


def run_profile(args: argparse.Namespace) -> dict:
    """Warm up, time and profile ``args.steps`` steps per loss; see the module doc."""
    import torch
    from bench_pipeline import ours_batches, sync, synthetic_items
    from torch.profiler import ProfilerActivity, profile

    from hie_core.augment import AugmentConfig, BatchAugmenter
    from hie_core.config import preset_values
    from hie_core.losses import get_loss
    from hie_core.model import UNet3D
    from hie_core.training.batches import DeviceBatches
    from hie_core.training.step import FastOptions, make_train_step

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    cuda = device.type == "cuda"
    options = FastOptions.for_device(device)
    torch.manual_seed(0)
    seed = preset_values("seed")
    model = UNet3D(widths=tuple(args.widths), dropout=seed["dropout"], norm=seed["norm"]).to(device)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    items = synthetic_items(max(2 * args.batch, 8), tuple(args.shape), 0)
    source = DeviceBatches(items, None, BatchAugmenter(AugmentConfig()), device)
    batch_args = argparse.Namespace(batch=args.batch, seed=0)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    report = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "shape": list(args.shape),
              "widths": list(args.widths), "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
              "amp": options.amp, "channels_last": options.channels_last, "compile": options.compile,
              "sort_key": "self device time" if cuda else "self CPU time", "losses": {}}  # fmt: skip
    for loss in args.losses:
        model.load_state_dict(init)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
        step = make_train_step(model, get_loss(loss), optimizer, l1=seed["l1"], grad_clip=seed["grad_clip"], amp=options.amp,
                               channels_last=options.channels_last, compile=options.compile)  # fmt: skip
        batches = ours_batches(source, items, batch_args)
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            step(*next(batches))
        sync(device)
        warm_s = time.perf_counter() - t0
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(*next(batches))
            sync(device)
            wall = time.perf_counter() - t0
        report["losses"][loss] = {"warmup_s": warm_s, "ms_per_step_profiled": 1e3 * wall / args.steps,
                                  "top": _op_rows(prof, cuda, args.steps)}  # fmt: skip
        table = prof.key_averages().table(
            sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=12
        )
        print(f"== {loss}: {1e3 * wall / args.steps:.1f} ms/step under the profiler\n{table}", flush=True)
        _write_json(args.json, report)
    return report


# -- runs ------------------------------------------------------------------------------------


def summarize_runs(runs_dir: Path) -> dict:
    """Per study folder under ``runs_dir``: its run folders and the results files it wrote."""
    import nbformat
    import pandas as pd

    studies = {}
    for study in sorted(p for p in runs_dir.iterdir() if p.is_dir()) if runs_dir.is_dir() else []:
        runs = []
        for nb_path in sorted(study.glob("*/seed*/train.ipynb")):
            run = nb_path.parent
            row = {"loss": run.parent.name, "run": run.name}
            try:
                meta = nbformat.read(nb_path, as_version=4).metadata.get("papermill", {})
                row["papermill_s"] = meta.get("duration")
                row["status"] = "failed" if meta.get("exception") else "ok"
            except Exception as exc:  # an unreadable notebook is a result too
                row["status"] = f"unreadable notebook: {type(exc).__name__}"
            summary = _load(run / "summary.json") or {}
            row.update({k: summary.get(k) for k in ("epochs_run", "best_epoch", "train_seconds_this_call")})
            if (run / "history.csv").exists():
                history = pd.read_csv(run / "history.csv")
                row["median_epoch_s"] = float(history["seconds"].median()) if len(history) else None
            if (run / "metrics.csv").exists():
                metrics = pd.read_csv(run / "metrics.csv")
                test = metrics[metrics["split"] == "test"] if "split" in metrics else metrics
                row["test_dice_mean"] = float(test["dice"].mean()) if "dice" in test and len(test) else None
            config = _load(run / "config.json") or {}
            row["device_name"] = config.get("device_name")
            runs.append(row)
        results = sorted(str(p.relative_to(study)) for p in (study / "results").rglob("*") if p.is_file()) \
            if (study / "results").is_dir() else []  # fmt: skip
        studies[study.name] = {"runs": runs, "results_files": results,
                               "finished": sum(r.get("status") == "ok" for r in runs)}  # fmt: skip
    return studies


# -- finish ----------------------------------------------------------------------------------


def finish(args: argparse.Namespace) -> dict:
    """The device JSON of ``device_check.py report`` plus the study, the seed run and the profile."""
    from device_check import build_report, device_slug, print_targets

    work = args.work
    report = build_report(work)
    report["papermill_study"] = _load(work / "study_runs.json")
    seed = _load(work / "seed_run.json") or {}
    runs = [r for s in seed.values() for r in s.get("runs", [])]
    done = [r for r in runs if r.get("status") == "ok" and r.get("papermill_s")]
    report["seed_run"] = {
        "runs": runs,
        "seconds_per_run": done[0]["papermill_s"] if done else None,
        "what": "one seed-protocol run (seed preset, default epochs and patience, so to early stopping) "
        "through notebooks/train.ipynb: papermill's duration of the notebook",
    }
    report["profile"] = _load(work / "profile.json")
    report["check"] = {**(report.get("check") or {}), "script": "benchmarks/device_study.sh"}
    path = args.out_dir / f"{device_slug(report['device']['name'])}.json"
    _write_json(path, report)
    if args.copy_to is not None:
        _write_json(args.copy_to / path.name, report)
    print_targets(report)
    for name, s in (report["papermill_study"] or {}).items():
        print(f"  study {name}: {s['finished']} of {len(s['runs'])} runs finished, "
              f"{len(s['results_files'])} results files")  # fmt: skip
    print(f"  seed run to early stopping: {report['seed_run']['seconds_per_run']} s")
    print(f"wrote {path}" + (f" and {args.copy_to / path.name}" if args.copy_to else ""))
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from _cli import model_parser

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("profile", parents=[model_parser("")], add_help=False, help="torch.profiler of steps")
    pr.add_argument("--json", type=Path, required=True)
    pr.add_argument("--steps", type=int, default=5)
    pr.add_argument("--warmup", type=int, default=3)
    pr.add_argument("--losses", nargs="+", default=list(PROFILED_LOSSES))
    r = sub.add_parser("runs", help="summarise a runs folder of python -m hie_core.study")
    r.add_argument("--runs-dir", type=Path, required=True)
    r.add_argument("--json", type=Path, required=True)
    f = sub.add_parser("finish", help="add the study, seed run and profile to the device JSON")
    f.add_argument("--work", type=Path, required=True)
    f.add_argument("--out-dir", type=Path, required=True, help="where <device>.json goes")
    f.add_argument("--copy-to", type=Path, default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    args = parse_args(argv)
    if args.command == "profile":
        run_profile(args)
    elif args.command == "runs":
        studies = summarize_runs(args.runs_dir)
        _write_json(args.json, studies)
        for name, s in studies.items():
            print(
                f"{name}: {s['finished']} of {len(s['runs'])} runs finished, {len(s['results_files'])} results files"
            )
    else:
        finish(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
