"""How the study's runs are run: the engine (in this process, local submitit jobs, or SLURM) chosen from the
command line and the GPUs in sight, the notes on runs that are redone, and :func:`run_study`, which runs the grid
and then finishes the study (:mod:`hie_core.study.finish`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from hie_core.errors import ConfigError
from hie_core.report.viewers.display import plural
from hie_core.study.finish import finish_study
from hie_core.study.grid import (
    Engine,
    GridRun,
    gathered_outcomes,
    run_grid,
)
from hie_core.study.plan import StudyPlan

#: At most this many runs at a time on a CPU by default (each with its share of the cores).
CPU_LANES_MAX = 4


def redo_notes(runs: Sequence[GridRun], data: Path, action: str) -> list[str]:
    """Say which existing run folders no longer match their data or their own results, before the grid runs.

    A run whose recorded data fingerprint differs from ``data``'s now (a corrected label), or
    whose result files changed after it wrote them, is trained again by its notebook; this
    prints one ``[study]`` line per such run, so the study says why, not only the run's notebook.

    Returns:
        The lines printed.
    """
    from hie_core.data import discover_cases
    from hie_core.fingerprint import data_fingerprint, describe_change, edited_results

    lines, current = [], None
    for run in runs:
        try:
            info = json.loads((run.run_dir / "config.json").read_text())
            summary = (
                json.loads((run.run_dir / "summary.json").read_text())
                if (run.run_dir / "summary.json").is_file()
                else {}
            )
        except (OSError, ValueError):
            continue  # no run here yet, or one the notebook reports itself
        if current is None:
            current = data_fingerprint(data, discover_cases(data))
        why = describe_change(info.get("data_fingerprint") if isinstance(info, dict) else None, current)
        changed = edited_results(run.run_dir, summary) if not why and isinstance(summary, dict) else []
        if changed:
            why = f"{', '.join(changed)} changed since the run wrote it (edited or damaged)"
        if why:
            lines.append(f"[study] {run.name}: {why}; {action}")
            print(lines[-1], flush=True)
    return lines


def run_study(plan: StudyPlan, engine: Engine = Engine(), book: bool = True, gather: bool = False,
              margins: dict | None = None):  # fmt: skip
    """Run the grid (or read it, ``gather``), then :func:`finish_study`.

    Returns:
        list[RunOutcome]: one per run, then one per step; ``None`` when the jobs were
        submitted without waiting (``engine.wait=False``).
    """
    folds = f" x {plural(plan.config.folds, 'fold')}" if plan.config.folds else ""
    n_losses, n_seeds = len({r.loss for r in plan.runs}), len({r.seed for r in plan.runs})
    n_methods = len({r.method for r in plan.runs})
    grid = f" ({plural(n_methods, 'method')})" if n_methods != n_losses else ""
    print(f"[study] {plural(len(plan.runs), 'run')}: {plural(n_losses, 'loss', 'losses')}{grid} x {plural(n_seeds, 'seed')}"
          f"{folds}; preset {plan.config.preset}, device {plan.device}; "
          f"data {plan.data}{' (SYNTHETIC)' if plan.synthetic else ''}; into {plan.study_dir}", flush=True)  # fmt: skip
    if gather:
        redo_notes(plan.runs, plan.data, "run the study without --gather to train it again")
        outcomes = gathered_outcomes(plan.runs)
    else:
        gpus = f", GPUs {list(engine.gpu_ids)}" if engine.gpu_ids else ""
        at_a_time = (
            "one job per run"
            if engine.cluster == "slurm"
            else f"{plural(engine.jobs, 'run')} at a time{gpus}"
        )
        print(f"[study] engine: --cluster {engine.cluster}, {at_a_time}", flush=True)
        redo_notes(plan.runs, plan.data, "it is trained again")
        outcomes = run_grid(plan.runs, plan.root, plan.params, engine, plan.study_dir / "jobs")
        if outcomes is None:
            return None
    return outcomes + finish_study(plan.root, plan.study_dir, plan.data, plan.config, outcomes, book=book,
                                   margins=margins, externals=plan.externals)  # fmt: skip


def _visible_gpus() -> tuple[int, ...]:
    """Indices to pin jobs to: ``CUDA_VISIBLE_DEVICES`` entries when numeric, else 0..n-1."""
    import torch

    count = torch.cuda.device_count()
    listed = [s.strip() for s in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if s.strip()]
    if listed and all(s.isdigit() for s in listed):
        return tuple(int(s) for s in listed[:count])
    return tuple(range(count))


def _check_engine_options(args: argparse.Namespace) -> None:
    if args.plan and (args.gather or args.no_wait):
        raise ConfigError("--plan runs nothing; it excludes --gather and --no-wait")
    if args.gather and args.no_wait:
        raise ConfigError("--gather and --no-wait exclude each other")
    if args.no_wait and args.cluster != "slurm":
        raise ConfigError("--no-wait applies to --cluster slurm only")
    for name in ("jobs", "time", "cpus_per_job", "mem_gb"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.gpus_per_job is not None and args.gpus_per_job < 0:
        raise ConfigError(f"--gpus-per-job must be at least 0, got {args.gpus_per_job}")
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]
    if args.cluster == "slurm" and missing and not args.gather and not args.plan:
        raise ConfigError(f"--cluster slurm: {' and '.join(missing)} not found; run on a SLURM login node, "
                          "or use --cluster local")  # fmt: skip


def _slurm_gpus(args: argparse.Namespace) -> int:
    """GPUs per SLURM job: as asked, else 1 (none with ``--device cpu``)."""
    return args.gpus_per_job if args.gpus_per_job is not None else int(args.device != "cpu")


def make_engine(args: argparse.Namespace, run_device: str, study: str) -> Engine:
    """The engine the options ask for (``run_device``: where the runs train, resolved)."""
    gpus = _visible_gpus() if args.cluster != "slurm" and run_device.startswith("cuda") else ()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    # On a CPU, lanes of one thread each beat one lane of all threads for these small networks
    # (kernel start, evaluation and metrics are serial): measured 1.3x more volumes/s on 2 cores.
    jobs = args.jobs or (
        max(len(gpus), 1) if gpus or run_device.startswith("cuda") else min(cores, CPU_LANES_MAX)
    )
    threads = None if gpus or args.cluster == "slurm" else max(1, cores // jobs)
    if run_device.startswith("cuda:") and (args.cluster != "none" or jobs > 1):
        raise ConfigError(f"--device {run_device}: jobs are pinned to one GPU each; use --device cuda")
    return Engine(cluster=args.cluster, jobs=jobs, threads=threads, gpu_ids=gpus, time_min=args.time, partition=args.partition,
                  account=args.account, gpus_per_job=_slurm_gpus(args), cpus_per_job=args.cpus_per_job,
                  mem_gb=args.mem_gb, wait=not args.no_wait, job_name=f"hie-{study}")  # fmt: skip
