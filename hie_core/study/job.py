"""One grid cell and how it runs: :class:`GridRun` (a method, a seed, a fold, and its run folder),
:func:`plan_grid`, and :class:`GridJob`, which runs its cells one after another by executing
``notebooks/train.ipynb`` with papermill in a subprocess, under the run folder's lock, and
stops that notebook and its kernel when the scheduler preempts it (see :mod:`hie_core.study.grid`
for the engines that call it). A failed run is one :class:`RunOutcome` with its log's last error line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from hie_core.run_folder import (
    LOCK_HOLDER_ENV,
    RunLockedError,
    read_failure,
    run_folder_name,
    run_lock,
)
from hie_core.study.options import notebook_values

__all__ = ["MAX_TIMEOUTS", "GridJob", "GridRun", "RunOutcome", "log_tail", "papermill_command", "plan_grid",
           "print_outcome", "remove_broken_notebook", "run_failure"]  # fmt: skip

#: Times a job may be requeued after a timeout (preemptions do not count).
MAX_TIMEOUTS = 3


@dataclass
class RunOutcome:
    """What became of one grid run or study step; ``notebook``/``log`` are where to look."""

    name: str
    ok: bool
    seconds: float
    notebook: Path
    log: Path | None
    message: str = ""
    job_log: Path | None = None


@dataclass(frozen=True)
class GridRun:
    """One cell of the grid: a loss, a seed, a fold of ``folds`` (or None), its run folder, and
    the values of the grid parameters (``settings``) that make its method.

    The folder is ``<study>/<method>/seed<k>``, or ``<study>/<method>/seed<k>-fold<f>`` in a
    cross-validation of ``folds`` folds (``run_folder_name``); ``method`` is its parent's name.
    """

    loss: str
    seed: int
    run_dir: Path
    fold: int | None = None
    folds: int = 0
    settings: tuple[tuple[str, Any], ...] = ()

    @property
    def method(self) -> str:
        """The method id (:func:`hie_core.methods.method_id`), the name of the run folder's parent."""
        return self.run_dir.parent.name

    @property
    def name(self) -> str:
        return f"{self.method}/{run_folder_name(self.seed, self.fold)}"

    @property
    def notebook_parameters(self) -> dict:
        """The parameters this cell sets, its loss, seed, folder and grid values (the study's shared ones come first)."""
        params = {
            **dict(self.settings),
            "loss": self.loss,
            "seed": self.seed,
            "output_dir": str(self.run_dir),
        }
        if self.fold is not None:
            params.update(folds=self.folds, fold=self.fold)
        return params


def plan_grid(study_dir: Path, losses: Sequence[str], seeds: int, seed_start: int = 0, folds: int = 0,
              combos: Sequence[Mapping[str, Any]] = ({},), base: Mapping[str, Any] | None = None,
              reduce: Callable[[str, dict], dict] | None = None) -> list[GridRun]:  # fmt: skip
    """The runs of a study: loss-major in the order given, then each grid combination, seed and fold.

    Args:
        study_dir: The study folder.
        losses: The losses; each runs with every combination.
        seeds, seed_start: ``seeds`` seeds from ``seed_start``.
        folds: K >= 2: each (method, seed) is K runs, one per held-out fold (0 or 1: none).
        combos: The grid's combinations, ``{parameter: value}`` each (``--grid``, ``--archs``);
            ``({},)``: no grid.
        base: The study's other parameters (``--set``), read for the method id (its ``arch``).
        reduce: ``reduce(loss, combo)``: the values of ``combo`` that make ``loss``'s method
            (:func:`hie_core.study.options.method_settings`); the method id names those only, and
            combinations that reduce alike are one method. None: every key of every combination.

    Returns:
        One :class:`GridRun` per method, seed and fold, in ``<study>/<method_id>/``.
    """
    from hie_core.methods import method_id

    fold_ids: list[int | None] = list(range(folds)) if folds >= 2 else [None]
    grid_keys = sorted({k for combo in combos for k in combo})
    cells = {}
    for loss in losses:
        for combo in combos:
            cell = dict(combo) if reduce is None else reduce(loss, dict(combo))
            keys = grid_keys if reduce is None else sorted(cell)
            cells.setdefault(method_id({**(base or {}), **cell, "loss": loss}, keys), (loss, cell))
    return [
        GridRun(
            loss,
            seed,
            study_dir / method / run_folder_name(seed, fold),
            fold,
            folds if fold is not None else 0,
            tuple(combo.items()),
        )  # fmt: skip
        for method, (loss, combo) in cells.items()
        for seed in range(seed_start, seed_start + seeds)
        for fold in fold_ids
    ]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the papermill child gets SIGTERM when its parent dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (the notebook's kernel); empty where /proc has no such file."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def _signal_notebook(process: subprocess.Popen | None) -> None:
    """Kill the notebook's kernel and ask papermill to end; no waiting, so safe in a signal handler.

    (``Popen.wait`` holds a lock that a handler interrupting it could wait on forever.)
    """
    if process is None or process.returncode is not None:
        return
    for pid, sig in [*((k, signal.SIGKILL) for k in _child_pids(process.pid)), (process.pid, signal.SIGTERM)]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stop(process: subprocess.Popen) -> None:
    """Stop papermill and its kernel and wait for papermill to end (never from a signal handler)."""
    _signal_notebook(process)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def papermill_command(notebook: Path, out: Path, params: dict, cwd: Path) -> list[str]:
    """``python -m papermill`` for one notebook; parameters as YAML, so lists and floats keep their type."""
    import yaml

    values = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    return [sys.executable, "-m", "papermill", str(notebook), str(out), "--cwd", str(cwd), "--no-progress-bar",
            "-y", yaml.safe_dump(values, default_flow_style=True)]  # fmt: skip


def remove_broken_notebook(path: Path) -> bool:
    """Delete an executed notebook that is empty or not a notebook's JSON (papermill stopped while
    writing it); returns whether it did. A readable notebook is kept (it shows how far the run got)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        text = ""
    try:
        content = json.loads(text)
    except ValueError:
        content = None
    if isinstance(content, dict) and "cells" in content:
        return False
    path.unlink(missing_ok=True)
    return True


#: IPython's preamble of an exception shown without its traceback; never part of a message.
_PREAMBLE = "An exception has occurred, use %tb"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


#: ``ConfigError: ...``, ``hie_core.errors.ConfigError: ...``: the line an error ends with.
_ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)(:|$)")


def log_tail(log: Path) -> str:
    """The error a notebook's log ended with, on one line.

    The last ``SomeError: message`` line of the log (papermill prints the failed cell's error
    last), else its last three lines; IPython's "An exception has occurred, use %tb" preamble and
    terminal colours are left out, and papermill's own ``PapermillExecutionError`` is skipped.
    """
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return f"{log}: no log"
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line and _PREAMBLE not in line and not set(line) <= {"-"}]
    errors = [line for line in lines if _ERROR_LINE.match(line) and "PapermillExecutionError" not in line]
    return errors[-1] if errors else " | ".join(lines[-3:])


def run_failure(run: GridRun, log: Path) -> str:
    """Why a run failed, one line: the failed status its folder records (a diverged run: epoch, step,
    value, what to try), else the error its notebook's log ended with (:func:`log_tail`)."""

    failed = read_failure(run.run_dir)
    return failed["message"] if failed is not None else log_tail(log)


class GridJob(submitit.helpers.Checkpointable):
    """Run grid cells one after another, each ``papermill notebooks/train.ipynb`` in a subprocess.

    Called directly (``--cluster none``) or submitted as a submitit job. On preemption or
    timeout submitit calls :meth:`checkpoint`: the running notebook and its kernel are
    stopped and the job is requeued with the runs it has not finished; the interrupted run
    resumes from its ``checkpoint_last.pt`` (written atomically after every epoch).

    Args:
        runs: the cells to run, in order.
        root: the project root (holds ``notebooks/train.ipynb``; papermill's working folder).
        params: notebook parameters shared by every cell (``loss``, ``seed``, ``output_dir``
            and, in cross-validation, ``folds`` and ``fold`` are set per cell).
        threads: CPU threads of each run (``OMP_NUM_THREADS``, which torch reads at start),
            or None to leave the environment as it is. Lanes sharing a CPU get a share each.
    """

    def __init__(self, runs: Sequence[GridRun], root: Path, params: dict, threads: int | None = None,
                 outcomes_dir: Path | None = None) -> None:  # fmt: skip
        self.runs = list(runs)
        self.root = Path(root)
        self.params = dict(params)
        self.threads = threads
        self.outcomes_dir = outcomes_dir  # each finished run's outcome is written here (submitted jobs)
        self.on_outcome: Callable[[RunOutcome], None] | None = None  # the console, in this process only
        self.done: list[RunOutcome] = []
        self._process: subprocess.Popen | None = None

    def __call__(self) -> list[RunOutcome]:
        for run in self.runs[len(self.done) :]:
            self.done.append(self._run(run))
            self._report(self.done[-1])
        return list(self.done)

    def _report(self, outcome: RunOutcome) -> None:
        """Tell the study of a finished run: its outcome file, and the console (or this job's log)."""
        if self.outcomes_dir is not None:
            from hie_core.study.progress import write_outcome

            with contextlib.suppress(
                OSError
            ):  # the console line is a convenience; the run's folder is the record
                write_outcome(self.outcomes_dir, outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        else:
            print_outcome(outcome)

    def _run(self, run: GridRun) -> RunOutcome:
        """Lock the run folder (:func:`hie_core.run_folder.run_lock`), then run its notebook.

        A folder another process holds is this run's failure, reported with that process's PID;
        its notebook and log are left as they are.
        """

        notebook, log = run.run_dir / "train.ipynb", run.run_dir / "papermill.log"
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(run_lock(run.run_dir))
                fh = held.enter_context(open(log, "w"))
            except RunLockedError as exc:
                outcome = RunOutcome(run.name, False, 0.0, notebook, None, str(exc))
            except OSError as exc:  # the run folder cannot be made: this run fails, the others go on
                outcome = RunOutcome(
                    run.name, False, 0.0, notebook, None, f"cannot write {run.run_dir}: {exc}"
                )
            else:
                return self._run_notebook(run, fh)
        return outcome

    def _run_notebook(self, run: GridRun, fh) -> RunOutcome:
        """Papermill for ``run`` (its folder locked by this process), output to the open log ``fh``."""

        notebook, log = run.run_dir / "train.ipynb", run.run_dir / "papermill.log"
        params = notebook_values({**self.params, **run.notebook_parameters})
        cmd = papermill_command(self.root / "notebooks" / "train.ipynb", notebook, params, self.root)
        print(f"[study] {run.name}: papermill -> {notebook}", flush=True)
        start = time.perf_counter()
        env = {**os.environ, LOCK_HOLDER_ENV: str(os.getpid())}  # the notebook runs under this lock
        if self.threads:
            env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        # its own session: a Ctrl-C reaches this process alone, which stops papermill and its kernel
        self._process = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=self.root, env=env,
                                         preexec_fn=_die_with_parent, start_new_session=True)  # fmt: skip
        try:
            code = self._process.wait()
        except BaseException:  # Ctrl-C, or submitit's requeue exit from checkpoint()
            _stop(self._process)
            remove_broken_notebook(notebook)
            raise
        finally:
            self._process = None
        fh.flush()
        return RunOutcome(run.name, code == 0, time.perf_counter() - start, notebook, log,
                          "" if code == 0 else run_failure(run, log))  # fmt: skip

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        """Preempted or out of time: stop the running notebook; requeue the unfinished runs.

        Called by submitit's signal handler; the exit it raises next ends the wait for papermill,
        which then waits for papermill to end before the process exits.
        """
        _signal_notebook(self._process)
        print(f"[study] requeued after {len(self.done)} of {len(self.runs)} run(s)", flush=True)
        return submitit.helpers.DelayedSubmission(self)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_process": None, "on_outcome": None}


def print_outcome(o: RunOutcome) -> None:
    status = "ok" if o.ok else f"FAILED - see {o.notebook} ({o.message})"
    print(f"[study] {o.name:<22} {o.seconds:7.1f} s  {status}", flush=True)
