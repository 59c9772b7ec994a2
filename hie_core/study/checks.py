"""Everything a study can check before its first run, and the one study per folder at a time.

- :func:`check_runs`: each distinct run configuration of the grid (every loss with every grid
  combination, ``--set`` included) built as its notebook will build it, its training window
  checked against the device's memory, and its loss constructed and run once on a tiny batch
  (:func:`hie_core.training.failure.check_loss_contract`); so a bad value, a user loss whose
  constructor refuses the run's settings, or a loss that breaks its contract stops the study
  before the first run, the baseline and the ceiling, with one line naming the method.
- :func:`study_lock`: a study holds its folder's lock (``<study>/.lock``) while it runs, so a
  second study started beside it stops at once, naming the first one's PID, instead of
  training nothing and recomputing the baseline and ceiling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from hie_core.errors import ConfigError, UserError

__all__ = ["StudyBusyError", "check_runs", "study_lock"]


class StudyBusyError(UserError):
    """Another study is running in this study folder now."""


def check_runs(runs: Sequence, configure: Callable[[dict], object], memory: bool = True) -> int:
    """Build and check each distinct configuration of ``runs`` (see the module docstring).

    Args:
        runs: the grid (:class:`hie_core.study.grid.GridRun`, each with its ``loss`` and ``settings``).
        configure: ``configure(values) -> TrainConfig`` of the study with ``values`` set.
        memory: check the training window against this machine's memory (False where the runs
            execute on other machines, e.g. SLURM GPU nodes).

    Returns:
        The number of distinct configurations checked.

    Raises:
        ConfigError: the first configuration that fails, one line naming its method.
    """
    from hie_core.losses import loss_from_config
    from hie_core.training.experiment import check_memory
    from hie_core.training.failure import check_loss_contract

    seen: set[tuple] = set()
    for run in runs:
        key = (run.loss, tuple(sorted((k, repr(v)) for k, v in run.settings)))
        if key in seen:
            continue
        seen.add(key)
        try:
            config = configure({**dict(run.settings), "loss": run.loss})
            if memory:
                check_memory(config)
            check_loss_contract(loss_from_config(config), config.loss)
        except UserError as exc:
            raise ConfigError(f"method {run.method}: {exc}") from None
    return len(seen)


@contextlib.contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """Hold ``study_dir``'s lock while the block runs (:func:`hie_core.run_folder.run_lock`).

    Raises:
        StudyBusyError: another process holds it; the message names the folder and its PID.
    """
    from hie_core.run_folder import RunLockedError, run_lock

    held = contextlib.ExitStack()
    try:
        held.enter_context(run_lock(study_dir))
    except RunLockedError:
        holder = _holder(Path(study_dir))
        raise StudyBusyError(f"{study_dir}: another study (PID {holder}) is running in this folder now; wait for "
                             "it to end (it trains, scores and builds the book for this folder), or choose "
                             "another --study") from None  # fmt: skip
    with held:
        yield


def _holder(study_dir: Path) -> str:
    from hie_core.run_folder import LOCK_FILE

    try:
        return (study_dir / LOCK_FILE).read_text().strip() or "unknown"
    except OSError:
        return "unknown"
