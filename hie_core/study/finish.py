"""After the runs: the references (threshold baseline, resampling ceiling), outside predictions, the result
tables and the book notebooks, each a step reported like a run (:func:`finish_study`).
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hie_core.study.grid import (
    RunOutcome,
    log_tail,
    papermill_command,
    print_outcome,
)


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
                 book: bool = True, margins: dict | None = None,
                 externals: Sequence[tuple[str, Path]] = ()) -> list[RunOutcome]:  # fmt: skip
    """Baseline, ceiling and outside predictions; then, when a run finished, the results files, book notebooks and book.

    ``externals``: ``(name, folder)`` of each ``--external``, scored into ``<study>/<name>/seed0/``
    by :func:`hie_core.study.external.add_external` (a failure is reported like a failed run).

    The book is made only from results written by this call: when the results step fails, the
    book step is skipped (and says so), so the previous book is never presented as this study's.
    ``margins``: equivalence margins for :func:`hie_core.report.analysis.results.write_results`. One
    process at a time finishes a study (a lock on ``<study>/results``): a second one started
    together says so and stops after its runs.
    """
    from hie_core.run_folder import RunLockedError, run_lock

    try:
        with run_lock(study_dir / "results"):
            return _finish_locked(root, study_dir, data, config, outcomes, book, margins, externals)
    except RunLockedError as exc:
        message = f"another study is finishing this one now ({exc}); it writes the results and the book"
        print(f"[study] {message}", flush=True)
        return [RunOutcome("results", False, 0.0, study_dir / "results", None, message)]


def _add_external(study_dir: Path, name: str, folder: Path) -> None:
    from hie_core.study.external import add_external  # imported here: only a study with --external needs it

    add_external(study_dir, name, folder)


def _finish_locked(root: Path, study_dir: Path, data: Path, config, outcomes: list[RunOutcome], book: bool,
                   margins: dict | None, externals: Sequence[tuple[str, Path]] = ()) -> list[RunOutcome]:  # fmt: skip
    from hie_core.training import experiment

    cv = config.folds >= 2  # the references report the runs' splits: the pool as "cv", and test
    steps = [
        _step(
            "baseline",
            study_dir / "baseline",
            lambda: experiment.run_baseline(data, study_dir / "baseline", cv=cv),
        ),
        _step(
            "ceiling",
            study_dir / "ceiling",
            lambda: experiment.run_ceiling(data, study_dir / "ceiling", config),
        ),
    ]
    steps += [_step(f"external {name}", study_dir / name, functools.partial(_add_external, study_dir, name, folder))
              for name, folder in externals]  # fmt: skip
    if not any(o.ok for o in outcomes):
        print("[study] no training run finished: no results and no book", flush=True)
        return steps
    from hie_core.report.analysis import results

    steps.append(_step("results", study_dir / "results", lambda: results.write_results(study_dir, margins)))
    if book and not steps[-1].ok:
        print("[study] the results step failed: no book notebooks and no book (the previous book, if any, is "
              "left as it was and is not this study's)", flush=True)  # fmt: skip
        steps.append(RunOutcome("book", False, 0.0, _book_index(root), None,
                                "skipped: the results step failed"))  # fmt: skip
    elif book:
        from hie_core.report.book.build import build_book
        from hie_core.report.book.contents import BOOK_NOTEBOOKS

        steps += [_book_notebook(root, study_dir, name) for name in BOOK_NOTEBOOKS]
        steps.append(_step("book", _book_index(root), lambda: build_book(root, study_dir)))
    return steps


def _book_index(root: Path) -> Path:
    """The built book's front page: under ``$HIE_BOOK_DIR`` when set, else the project's ``_build``."""
    from hie_core.report.book.build import book_dir

    out = book_dir()
    return (out / "html" if out else root / "_build" / "html") / "index.html"
