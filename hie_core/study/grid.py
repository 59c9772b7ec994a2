"""The study's grid engine: one callable runs grid cells; submitit says where it runs.

A grid cell (:class:`GridRun`) is one method (a loss, with a network and a value of each
``--grid`` parameter; :mod:`hie_core.methods`) and one seed (and, in cross-validation, one
fold), run by executing ``notebooks/train.ipynb`` with papermill, in a subprocess, into
``<study>/<method>/seed<k>/`` (``seed<k>-fold<f>/`` with folds).
:class:`GridJob` runs a list of cells one after another. It is the only thing that runs
cells, whatever ``--cluster`` says (:func:`run_grid`):

- ``none`` with one job at a time: one GridJob holding the whole grid, called in this process;
- ``local``, or ``none`` with ``jobs > 1`` (concurrency needs processes): the grid is dealt
  round-robin into ``jobs`` lanes, each one GridJob submitted to submitit's
  ``LocalExecutor`` and pinned to one GPU (``CUDA_VISIBLE_DEVICES``) when there are GPUs;
- ``slurm``: one GridJob per cell, submitted as one job array to submitit's ``SlurmExecutor``.

A GridJob is a ``submitit.helpers.Checkpointable``: when the scheduler preempts it or its
time runs out, submitit calls :meth:`GridJob.checkpoint`, which stops the running notebook
and its kernel and requeues the job with the cells it has not finished; the interrupted
run then resumes from its ``checkpoint_last.pt`` (written atomically after every epoch).
Job logs and submitit's pickles live in the ``jobs_dir`` given (``<study>/jobs/``).

The console (:class:`hie_core.study.progress.StudyProgress`) shows each run as it finishes, with
the grid's progress and an estimate of the time left: the in-process engine reports after each
run; a submitted GridJob writes each run's outcome into ``<jobs_dir>/outcomes-<id>/`` and
:func:`run_grid` polls that folder while the jobs run. Local jobs start with SIGINT ignored, so a
terminal's Ctrl-C reaches this process alone (no submitit traceback); this process then ends
their process trees (``stop_local_jobs``) and the interrupted runs resume next time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import submitit

from hie_core.run_folder import (
    is_finished_run,
    read_failure,
)
from hie_core.study.job import (  # noqa: F401 (re-exported: the grid's cells and their job)
    MAX_TIMEOUTS,
    GridJob,
    GridRun,
    RunOutcome,
    _child_pids,
    log_tail,
    papermill_command,
    plan_grid,
    print_outcome,
    remove_broken_notebook,
    run_failure,
)

__all__ = ["RunOutcome", "GridRun", "GridJob", "Engine", "plan_grid", "deal_lanes", "run_grid", "gathered_outcomes",
           "papermill_command", "log_tail", "remove_broken_notebook", "print_outcome",
           "SLURM_DEFAULT_TIME_MIN"]  # fmt: skip

#: Wall-clock limit of one SLURM job when none is given (a timed-out job is requeued).
SLURM_DEFAULT_TIME_MIN = 120


#: Local jobs: no practical limit unless one is given.
LOCAL_TIME_MIN = 7 * 24 * 60


@dataclass(frozen=True)
class Engine:
    """Where the grid's jobs execute (see the module docstring) and with what resources."""

    cluster: str = "none"
    jobs: int = 1
    threads: int | None = None
    gpu_ids: tuple[int, ...] = ()
    time_min: int | None = None
    partition: str | None = None
    account: str | None = None
    gpus_per_job: int = 1
    cpus_per_job: int = 8
    mem_gb: int = 32
    wait: bool = True
    job_name: str = "hie-study"


def _executor(engine: Engine, jobs_dir: Path):
    if engine.cluster == "slurm":
        executor = submitit.SlurmExecutor(folder=jobs_dir, max_num_timeout=MAX_TIMEOUTS)
        options = dict(job_name=engine.job_name, time=engine.time_min or SLURM_DEFAULT_TIME_MIN,
                       gpus_per_node=engine.gpus_per_job or None, cpus_per_task=engine.cpus_per_job,
                       mem=f"{engine.mem_gb}GB", partition=engine.partition, account=engine.account)  # fmt: skip
        executor.update_parameters(**{k: v for k, v in options.items() if v is not None})
        return executor
    executor = submitit.LocalExecutor(folder=jobs_dir, max_num_timeout=MAX_TIMEOUTS)
    executor.update_parameters(timeout_min=engine.time_min or LOCAL_TIME_MIN)
    return executor


def deal_lanes(runs: list[GridRun], engine: Engine) -> list[tuple[list[GridRun], tuple[int, ...]]]:
    """The jobs to submit: (runs, GPU indices) each; round-robin lanes, or one job per run on SLURM."""
    if engine.cluster == "slurm":
        return [([run], ()) for run in runs]
    n = min(engine.jobs, len(runs))
    gpus = engine.gpu_ids
    return [(runs[i::n], (gpus[i % len(gpus)],) if gpus else ()) for i in range(n)]


def _submit(runs: list[GridRun], root: Path, params: dict, engine: Engine, jobs_dir: Path,
            outcomes_dir: Path | None = None):  # fmt: skip
    """Submit the grid; returns (jobs, the runs of each job).

    Local jobs are started with SIGINT ignored (inherited by submitit's controller, the task and
    its notebook), so a terminal's Ctrl-C reaches this process alone; it stops them itself.
    """
    executor = _executor(engine, jobs_dir)
    lanes = deal_lanes(runs, engine)
    if engine.cluster == "slurm":
        with executor.batch():  # one job array
            jobs = [
                executor.submit(GridJob(lane, root, params, engine.threads, outcomes_dir))
                for lane, _ in lanes
            ]
    else:
        jobs = []
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for lane, gpus in lanes:
                executor.update_parameters(gpus_per_node=len(gpus), visible_gpus=gpus)
                jobs.append(executor.submit(GridJob(lane, root, params, engine.threads, outcomes_dir)))
        finally:
            signal.signal(signal.SIGINT, previous)
    return jobs, [lane for lane, _ in lanes]


def _process_tree(pid: int) -> list[int]:
    """``pid``'s descendants, deepest last (from /proc)."""
    children = _child_pids(pid)
    return children + [p for c in children for p in _process_tree(c)]


def stop_local_jobs(jobs, lanes: list[list[GridRun]]) -> None:
    """End local jobs at once (Ctrl-C, a closed console): SIGKILL every process of each job's tree,
    deepest first (so nothing prints a traceback), then drop executed notebooks cut off mid-write.
    Each interrupted run resumes from its ``checkpoint_last.pt`` next time."""
    for job in jobs:
        process = getattr(job, "_process", None)
        if process is None or process.poll() is not None:
            continue
        for pid in reversed([process.pid, *_process_tree(process.pid)]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            process.wait(timeout=10)
    for lane in lanes:
        for run in lane:
            remove_broken_notebook(run.run_dir / "train.ipynb")


def _watch(jobs, outcomes_dir: Path, progress, poll_s: float) -> None:
    """Until every job has ended, report each run as its outcome file appears."""
    from hie_core.study.progress import read_outcomes

    while True:
        ended = all(job.done() for job in jobs)
        for outcome in read_outcomes(outcomes_dir, RunOutcome):
            progress.finished(outcome)
        if ended:
            return
        time.sleep(poll_s)


def _collect(jobs, lanes: list[list[GridRun]], progress=None, known: Mapping[str, RunOutcome] | None = None,
             ) -> list[RunOutcome]:  # fmt: skip
    """Wait for every job; a job that died reports each of its runs as failed, with its log,
    except the runs it had finished (``known``: the outcomes its jobs wrote as they went)."""
    by_name, known = {}, dict(known or {})
    for job, lane in zip(jobs, lanes, strict=True):
        try:
            outcomes = job.result()
        except Exception as exc:  # killed, cancelled, out of requeues: report it and go on
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            outcomes = [known.get(run.name) or RunOutcome(run.name, False, 0.0, run.run_dir / "train.ipynb",
                        run.run_dir / "papermill.log", f"job {job.job_id} failed: {first}")
                        for run in lane]  # fmt: skip
        for outcome in outcomes:
            by_name[outcome.name] = dataclasses.replace(outcome, job_log=Path(job.paths.stdout))
            if progress is not None:
                progress.finished(by_name[outcome.name])  # a run the console has not shown yet
            else:
                print_outcome(by_name[outcome.name])
    return list(by_name.values())


def run_grid(runs: list[GridRun], root: Path, params: dict, engine: Engine, jobs_dir: Path, progress=None):
    """Run every cell; returns one outcome per run in grid order (``None`` after ``wait=False``).

    ``progress``: the console (a :class:`hie_core.study.progress.StudyProgress`; default a new one
    over ``runs``), told of each run as it finishes.
    """
    from hie_core.study.progress import StudyProgress, read_outcomes

    if engine.cluster == "none" and engine.jobs == 1:
        progress = progress or StudyProgress(len(runs))
        job = GridJob(runs, root, params, engine.threads)
        job.on_outcome = progress.finished
        try:
            return job()
        finally:
            progress.close()
    outcomes_dir = jobs_dir / f"outcomes-{os.getpid()}-{time.time_ns()}" if engine.wait else None
    jobs, lanes = _submit(runs, root, params, engine, jobs_dir, outcomes_dir)
    where = "SLURM" if engine.cluster == "slurm" else "local"
    print(f"[study] {len(jobs)} {where} job(s) {', '.join(j.job_id for j in jobs)}; logs in {jobs_dir}",
          flush=True)  # fmt: skip
    if not engine.wait:
        return None
    progress = progress or StudyProgress(len(runs))
    try:
        _watch(jobs, outcomes_dir, progress, poll_s=10.0 if engine.cluster == "slurm" else 1.0)
        known = {o.name: o for o in read_outcomes(outcomes_dir, RunOutcome)}
        outcomes = _collect(jobs, lanes, progress, known)
    except BaseException:  # Ctrl-C, a closed console: local jobs end with this process
        if engine.cluster != "slurm":
            stop_local_jobs(jobs, lanes)
        raise
    finally:
        progress.close()
        shutil.rmtree(outcomes_dir, ignore_errors=True)
    order = {run.name: i for i, run in enumerate(runs)}
    return sorted(outcomes, key=lambda o: order[o.name])


def gathered_outcomes(runs: list[GridRun]) -> list[RunOutcome]:
    """Outcomes read from the run folders alone (``--gather``): finished = every results file
    (:func:`hie_core.run_folder.is_finished_run`; the weights may have been deleted)."""

    outcomes = []
    for run in runs:
        log = run.run_dir / "papermill.log"
        failed = read_failure(run.run_dir)
        ok = failed is None and is_finished_run(run.run_dir)
        why = failed["message"] if failed else f"not finished (see {log} and the study's jobs/ folder)"
        outcomes.append(RunOutcome(run.name, ok, 0.0, run.run_dir / "train.ipynb", log, "" if ok else why))
        print_outcome(outcomes[-1])
    return outcomes
