"""A study you can watch: one line per finished run as it finishes, and the progress of the grid.

:class:`StudyProgress` is told of each finished run (:meth:`StudyProgress.finished`), in whatever
order the engine learns of it, and prints

- the run's line: ``[study] dice/seed1   84.2 s  test Dice 0.412  ok`` (the test Dice is the mean
  over the test cases with a lesion in their reference label, as Table 1 reports it; a failed run
  shows ``FAILED`` and why);
- the grid's progress: runs done of the total, failed ones, time elapsed and an estimate of the
  time left (elapsed / runs done x runs left: the study's own throughput, so runs in parallel
  lanes count as they finish). On a terminal this is a tqdm bar under the run lines; otherwise
  (a log file, a pipe) one plain ``[study] progress: ...`` line after each run line. Every line is
  flushed at once.

The engines (:mod:`hie_core.study.grid`) call it: the in-process engine after each run, the
submitit engines as each run's outcome file appears (:func:`write_outcome`,
:func:`read_outcomes`), not when their jobs end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from hie_core.progress import format_seconds

__all__ = ["StudyProgress", "read_outcomes", "run_line", "test_dice", "write_outcome"]


def test_dice(run_dir: Path) -> float | None:
    """Mean Dice of a finished run over its test cases with a lesion in the reference (None if unknown)."""
    import pandas as pd

    try:
        metrics = pd.read_csv(Path(run_dir) / "metrics.csv", usecols=["split", "dice", "n_ref"])
    except (OSError, ValueError):
        return None
    rows = metrics[(metrics["split"] == "test") & (metrics["n_ref"] > 0)]["dice"].dropna()
    return float(rows.mean()) if len(rows) else None


def run_line(outcome, dice: float | None) -> str:
    """One finished run: name, seconds, test Dice, status (a failure with its one-line reason)."""
    shown = "test Dice  n/a " if dice is None or not math.isfinite(dice) else f"test Dice {dice:.3f}"
    status = "ok" if outcome.ok else f"FAILED: {outcome.message}"
    return f"[study] {outcome.name:<22} {outcome.seconds:7.1f} s  {shown}  {status}"


class StudyProgress:
    """The console of a running grid (see the module docstring).

    Args:
        total: runs in the grid.
        stream: where lines go (default ``sys.stdout``); a terminal gets a tqdm bar.
        clock: seconds since an arbitrary origin (tests pass a fake one).
        bar: force the bar on or off (default: whether ``stream`` is a terminal).
    """

    def __init__(self, total: int, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 bar: bool | None = None) -> None:  # fmt: skip
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stdout
        self.clock = clock
        self.start = clock()
        self.names: set[str] = set()
        use_bar = bar if bar is not None else _is_terminal(self.stream)
        self._bar = None
        if use_bar and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, file=self.stream, unit="run", desc="[study] runs", dynamic_ncols=True,
                             bar_format="{desc} {n}/{total} {bar} elapsed {elapsed}, left ~{remaining}")  # fmt: skip

    def _print(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def estimate_left(self) -> float | None:
        """Seconds left at the throughput so far (None before the first run finished)."""
        if not self.done:
            return None
        return (self.clock() - self.start) / self.done * (self.total - self.done)

    def progress_line(self) -> str:
        """``[study] progress: 3/12 runs done (1 failed); elapsed 4 min 12 s; about 12 min 36 s left``."""
        failed = f" ({self.failed} failed)" if self.failed else ""
        left = self.estimate_left()
        rest = "done" if self.done >= self.total else (
            "time left unknown until a run finishes" if left is None else f"about {format_seconds(left)} left")  # fmt: skip
        return (f"[study] progress: {self.done}/{self.total} runs done{failed}; elapsed "
                f"{format_seconds(self.clock() - self.start)}; {rest}")  # fmt: skip

    def finished(self, outcome) -> None:
        """Print ``outcome``'s line and the progress (each run once, whoever reports it)."""
        if outcome.name in self.names:
            return
        self.names.add(outcome.name)
        self.done += 1
        self.failed += not outcome.ok
        run_dir = Path(outcome.notebook).parent
        self._print(run_line(outcome, test_dice(run_dir) if outcome.ok else None))
        if self._bar is not None:
            self._bar.update(1)
        else:
            self._print(self.progress_line())

    def close(self) -> None:
        """End the bar (no-op without one)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def write_outcome(folder: Path, outcome) -> Path:
    """Record a finished run's outcome for the study's console (one small JSON per run, atomically)."""
    from hie_core.io import atomic_write_text

    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(outcome).items()}
    path = Path(folder) / (outcome.name.replace("/", "__") + ".json")
    atomic_write_text(path, json.dumps(record) + "\n")
    return path


def read_outcomes(folder: Path, make: Callable[..., object]) -> list:
    """The outcomes recorded in ``folder`` so far (``make(**record)`` each; unreadable files are skipped)."""
    out = []
    paths = (
        sorted(p for p in Path(folder).glob("*.json") if not p.name.startswith("."))
        if Path(folder).is_dir()
        else []
    )
    for path in paths:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being written: read next time
        for key in ("notebook", "log", "job_log"):
            if record.get(key) is not None:
                record[key] = Path(record[key])
        out.append(make(**record))
    return out
