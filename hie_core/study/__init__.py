"""The study in one command: a grid of loss x seed, then the baseline, ceiling, results and book.

``python -m hie_core.study`` (or ``hie-study``) runs ``notebooks/train.ipynb`` with papermill
once per grid cell (loss, seed) into ``runs/<study>/<loss>/seed<k>/`` (the executed notebook
and ``papermill.log`` beside the run's files), then scores the organisers' ``ZADC < -2``
baseline (``baseline/``) and the resampling ceiling (``ceiling/``), writes the result tables
(``results/``), executes the book's study notebooks (``book/``) and builds the book. A failed
run is reported with the paths of its executed notebook and log, the other runs still run,
the command exits 1; the results and the book are made when at least one run finished.

Where the runs execute is ``--cluster`` (``none``: in this process, one after another;
``local``: submitit's local executor, ``--jobs`` at a time, one GPU each; ``slurm``: one
SLURM job per run, as a job array); one engine runs them all, :mod:`hie_core.study.grid`.
A run stopped by its scheduler is requeued and resumes from its last epoch. Job logs and
submitit's pickles go to ``runs/<study>/jobs/``. Whatever ran the runs, the results are
gathered from the run folders by the same code; ``--gather`` does only that (after
``--cluster slurm --no-wait``). ``--no-book`` stops after the results files.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hie_core.errors import ConfigError, exit_on_user_error
from hie_core.losses import LOSS_NAMES
from hie_core.study.grid import (
    SLURM_DEFAULT_TIME_MIN,
    Engine,
    GridJob,
    GridRun,
    RunOutcome,
    gathered_outcomes,
    log_tail,
    papermill_command,
    plan_grid,
    print_outcome,
    run_grid,
)

__all__ = ["DEFAULT_SEEDS", "RunOutcome", "GridRun", "GridJob", "Engine", "StudyPlan", "plan_study", "run_study",
           "finish_study", "main"]  # fmt: skip

#: Seeds per loss when ``--seeds`` is not given: the seed protocol's 3 on CUDA; on a CPU as
#: many as fit the main job's time budget (at least 2, for a between-seed spread).
DEFAULT_SEEDS: dict[str, int] = {"cuda": 3, "cpu": 2}
#: At most this many runs at a time on a CPU by default (each with its share of the cores).
CPU_LANES_MAX = 4
#: The grid owns these notebook parameters (``--losses``, ``--seeds``, the study folder, ...).
GRID_PARAMETERS = ("loss", "seed", "output_dir", "data_dir", "preset", "device")


def _step(name: str, where: Path, action: Callable[[], object]) -> RunOutcome:
    """One study step after the grid; a failure is reported like a failed run, the study goes on."""
    start = time.perf_counter()
    try:
        action()
        ok, message = True, ""
    except Exception as exc:  # reported in the summary
        ok, message = False, (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    outcome = RunOutcome(name, ok, time.perf_counter() - start, where, None, message)
    print(f"[study] {name:<22} {outcome.seconds:7.1f} s  {'ok' if ok else 'FAILED: ' + message}", flush=True)
    return outcome


def _book_notebook(root: Path, study_dir: Path, name: str) -> RunOutcome:
    out, log = study_dir / "book" / f"{name}.ipynb", study_dir / "book" / f"{name}.log"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = papermill_command(root / "notebooks" / f"{name}.ipynb", out, {"study_dir": str(study_dir)}, root)
    start = time.perf_counter()
    with open(log, "w") as fh:
        code = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=root).returncode
    outcome = RunOutcome(
        name, code == 0, time.perf_counter() - start, out, log, "" if code == 0 else log_tail(log)
    )
    print_outcome(outcome)
    return outcome


def finish_study(root: Path, study_dir: Path, data: Path, config, outcomes: list[RunOutcome],
                 book: bool = True) -> list[RunOutcome]:  # fmt: skip
    """Baseline and ceiling; then, when a run finished, the results files, book notebooks and book."""
    from hie_core.training import experiment

    steps = [
        _step(
            "baseline", study_dir / "baseline", lambda: experiment.run_baseline(data, study_dir / "baseline")
        ),
        _step(
            "ceiling",
            study_dir / "ceiling",
            lambda: experiment.run_ceiling(data, study_dir / "ceiling", config),
        ),
    ]
    if not any(o.ok for o in outcomes):
        print("[study] no training run finished: no results and no book", flush=True)
        return steps
    from hie_core.report import results

    steps.append(_step("results", study_dir / "results", lambda: results.write_results(study_dir)))
    if book:
        from hie_core.report.book import BOOK_NOTEBOOKS, build_book

        steps += [_book_notebook(root, study_dir, name) for name in BOOK_NOTEBOOKS]
        steps.append(
            _step("book", root / "_build" / "html" / "index.html", lambda: build_book(root, study_dir))
        )
    return steps


@dataclass(frozen=True)
class StudyPlan:
    """A validated study: nothing is written until :func:`run_study` runs it."""

    root: Path
    study_dir: Path
    data: Path
    synthetic: bool
    config: object  # the study's TrainConfig (preset and overrides resolved): the ceiling's grid
    device: str  # where the runs train: "cpu", "cuda" or "cuda:N"
    runs: list[GridRun]
    params: dict


def notebook_parameters(notebook: Path) -> tuple[str, ...]:
    """The names assigned in a notebook's ``parameters`` cell."""
    for cell in json.loads(notebook.read_text())["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return tuple(t.id for node in tree.body if isinstance(node, ast.Assign)
                         for t in node.targets if isinstance(t, ast.Name))  # fmt: skip
    return ()


def parse_overrides(items: Sequence[str], allowed: Sequence[str]) -> dict:
    """``["epochs=1", "patch_shape=[8, 16, 16]"]`` -> values (Python literals, else strings)."""
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set epochs=1")
        if key in GRID_PARAMETERS:
            raise ConfigError(
                f"--set {key}: set by the study itself; use its own option (--losses, --seeds, ...)"
            )
        if key not in allowed:
            valid = ", ".join(k for k in allowed if k not in GRID_PARAMETERS)
            raise ConfigError(f"--set {key}: not a parameter of notebooks/train.ipynb; valid: {valid}")
        try:
            values[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            values[key] = text.strip()
    return values


def _check_writable(folder: Path) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{existing}: not a folder, so {folder} cannot be made; choose another --runs-dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{existing}: not writable, so {folder} cannot be made; choose another --runs-dir")


def _study_config(preset: str, device: str, data_dir: str, overrides: dict, remote_cuda: bool):
    """The study's TrainConfig; with ``remote_cuda`` the runs' CUDA is elsewhere (SLURM nodes)."""
    from hie_core.training.config import TrainConfig, make_config

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in overrides.items() if k in fields}
    if remote_cuda and not (device == "auto" or device == "cuda"):
        raise ConfigError(f"--device {device}: SLURM jobs with GPUs take --device auto or cuda")
    try:
        if remote_cuda:  # resolve "auto" as a GPU node will; nothing here needs CUDA itself
            return make_config(preset="seed" if preset == "auto" else preset, device="cpu", data_dir=data_dir,
                               **values)  # fmt: skip
        return make_config(preset=preset, device=device, data_dir=data_dir, **values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None


def plan_study(runs_dir: Path, study: str, losses: Sequence[str], seeds: int | None, seed_start: int = 0,
               data_dir: str = "", preset: str = "auto", device: str = "auto", overrides: dict | None = None,
               remote_cuda: bool = False) -> StudyPlan:  # fmt: skip
    """Check every choice and the data folder (``load_dataset``) before anything is written.

    Args:
        runs_dir, study: the study folder is ``runs_dir/study`` (``study=""``: the preset's name).
        losses, seeds, seed_start: the grid (``seeds=None``: :data:`DEFAULT_SEEDS` for the device).
        data_dir: a BONBID-HIE folder; ``""`` the synthetic dataset (generated here, into the cache).
        preset, device, overrides: the notebook's parameters for every run.
        remote_cuda: the runs execute on CUDA machines that this one may not be (SLURM with GPUs).

    Raises:
        ConfigError: a bad loss, seed count, parameter or runs folder.
        hie_core.data.DatasetError: the data folder is not usable.
    """
    from hie_core.data import load_dataset
    from hie_core.synthetic import is_synthetic_dir
    from hie_core.training.experiment import project_root, resolve_data_dir

    unknown = [s for s in losses if s not in LOSS_NAMES]
    if unknown or not losses:
        raise ConfigError(f"--losses: unknown loss(es) {unknown}; valid: {', '.join(LOSS_NAMES)}")
    if (seeds is not None and seeds < 1) or seed_start < 0:
        raise ConfigError(
            f"--seeds must be at least 1 and --seed-start at least 0, got {seeds} and {seed_start}"
        )
    overrides = dict(overrides or {})
    config = _study_config(preset, device, data_dir, overrides, remote_cuda)
    run_device = "cuda" if remote_cuda else config.device
    study_dir = (Path(runs_dir) / (study or config.preset)).expanduser().resolve()
    _check_writable(study_dir)
    data = resolve_data_dir(config)  # the synthetic set is generated once, before any run
    load_dataset(data)
    seeds = DEFAULT_SEEDS["cuda" if run_device.startswith("cuda") else "cpu"] if seeds is None else seeds
    params = {"data_dir": data_dir, "preset": config.preset, "device": device, **overrides}
    return StudyPlan(project_root(Path(__file__).resolve().parent), study_dir, data, is_synthetic_dir(data),
                     config, run_device, plan_grid(study_dir, losses, seeds, seed_start), params)  # fmt: skip


def run_study(plan: StudyPlan, engine: Engine = Engine(), book: bool = True, gather: bool = False):
    """Run the grid (or read it, ``gather``), then :func:`finish_study`.

    Returns:
        list[RunOutcome]: one per run, then one per step; ``None`` when the jobs were
        submitted without waiting (``engine.wait=False``).
    """
    print(f"[study] {len(plan.runs)} run(s): {len({r.loss for r in plan.runs})} loss(es) x "
          f"{len({r.seed for r in plan.runs})} seed(s); preset {plan.config.preset}, device {plan.device}; "
          f"data {plan.data}{' (SYNTHETIC)' if plan.synthetic else ''}; into {plan.study_dir}", flush=True)  # fmt: skip
    if gather:
        outcomes = gathered_outcomes(plan.runs)
    else:
        gpus = f", GPUs {list(engine.gpu_ids)}" if engine.gpu_ids else ""
        at_a_time = (
            "one job per run" if engine.cluster == "slurm" else f"{engine.jobs} run(s) at a time{gpus}"
        )
        print(f"[study] engine: --cluster {engine.cluster}, {at_a_time}", flush=True)
        outcomes = run_grid(plan.runs, plan.root, plan.params, engine, plan.study_dir / "jobs")
        if outcomes is None:
            return None
    return outcomes + finish_study(plan.root, plan.study_dir, plan.data, plan.config, outcomes, book=book)


def _visible_gpus() -> tuple[int, ...]:
    """Indices to pin jobs to: ``CUDA_VISIBLE_DEVICES`` entries when numeric, else 0..n-1."""
    import torch

    count = torch.cuda.device_count()
    listed = [s.strip() for s in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if s.strip()]
    if listed and all(s.isdigit() for s in listed):
        return tuple(int(s) for s in listed[:count])
    return tuple(range(count))


def _check_engine_options(args: argparse.Namespace) -> None:
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
    if args.cluster == "slurm" and missing and not args.gather:
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other user error of the command
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hie-study", description=__doc__.split("\n\n")[0])
    p.add_argument("--losses", default=",".join(LOSS_NAMES), help="comma-separated subset of the six losses")
    p.add_argument("--seeds", type=int, default=None, help=f"seeds per loss (default {DEFAULT_SEEDS})")
    p.add_argument("--seed-start", type=int, default=0, help="first seed: runs seed<k> for k from here")
    p.add_argument("--study", default="", help="study name: runs/<study>/ (default: the preset name)")
    p.add_argument("--runs-dir", default="runs", help="parent folder of the study folders")
    p.add_argument("--data-dir", default="", help="BONBID-HIE folder; empty = the synthetic dataset")
    p.add_argument("--preset", default="auto", help="seed, quick, or auto (seed with CUDA, else quick)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="another notebooks/train.ipynb parameter for every run, e.g. epochs=1")  # fmt: skip
    p.add_argument(
        "--no-book", action="store_true", help="stop after the results files: no book notebooks, no book"
    )
    p.add_argument(
        "--gather", action="store_true", help="run nothing: gather finished run folders into results"
    )
    g = p.add_argument_group("where the runs execute")
    g.add_argument("--cluster", choices=("none", "local", "slurm"), default="none",
                   help="none: this process; local: submitit local jobs; slurm: a SLURM job array")  # fmt: skip
    g.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="none/local: runs at a time (default: one per GPU; on a CPU one per core, at most 4)",
    )
    g.add_argument(
        "--time", type=int, default=None, help=f"minutes per job (slurm default {SLURM_DEFAULT_TIME_MIN})"
    )
    g.add_argument("--partition", default=None, help="slurm: partition")
    g.add_argument("--account", default=None, help="slurm: account")
    g.add_argument(
        "--gpus-per-job", type=int, default=None, help="slurm: GPUs per job (default 1; 0 with --device cpu)"
    )
    g.add_argument("--cpus-per-job", type=int, default=8, help="slurm: CPUs per job")
    g.add_argument("--mem-gb", type=int, default=32, help="slurm: memory per job, GB")
    g.add_argument("--no-wait", action="store_true", help="slurm: submit, print how to gather later, exit")
    return p


def _summary(outcomes: list[RunOutcome], seconds: float) -> int:
    failed = [o for o in outcomes if not o.ok]
    print(f"[study] done in {seconds:.1f} s: {len(outcomes) - len(failed)} ok, {len(failed)} failed")
    for o in failed:
        places = (("see", o.notebook), ("log", o.log), ("job log", o.job_log))
        where = ", ".join(f"{label}: {path}" for label, path in places if path)
        print(f"[study]   {o.name}: {o.message}  ({where})")
    return 1 if failed else 0


@exit_on_user_error("hie-study")
def main(argv: list[str] | None = None) -> int:
    """``hie-study``: exit 0 when every run and step finished, 1 when one failed, 2 on a user error."""
    from hie_core.training.experiment import project_root

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    _check_engine_options(args)
    train_notebook = project_root(Path(__file__).resolve().parent) / "notebooks" / "train.ipynb"
    overrides = parse_overrides(args.set, notebook_parameters(train_notebook))
    losses = [s.strip() for s in args.losses.split(",") if s.strip()]
    remote_cuda = args.cluster == "slurm" and _slurm_gpus(args) > 0
    plan = plan_study(Path(args.runs_dir), args.study, losses, args.seeds, args.seed_start, args.data_dir,
                      args.preset, args.device, overrides, remote_cuda)  # fmt: skip
    engine = Engine() if args.gather else make_engine(args, plan.device, plan.study_dir.name)
    start = time.perf_counter()
    outcomes = run_study(plan, engine, book=not args.no_book, gather=args.gather)
    if outcomes is None:
        again = [a for a in argv if a != "--no-wait"] + ["--gather"]
        print("[study] submitted without waiting. When every job has finished (squeue --me), gather with:\n"
              f"  {shlex.join([sys.executable, '-m', 'hie_core.study', *again])}")  # fmt: skip
        return 0
    return _summary(outcomes, time.perf_counter() - start)
