"""The study in one command: a grid of method x seed, then the baseline, ceiling, results and book.

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

The design: ``--losses`` x ``--seeds`` runs, or with ``--folds K`` (K >= 2) K-fold
cross-validation over the training and validation cases (the pool): each loss and seed is K
runs ``runs/<study>/<loss>/seed<k>-fold<f>/``, each trained on the other K-1 folds and
scored on its held-out fold (split ``"cv"``) and on the test split; the fold partition is the
same for every loss and seed (``hie_core.training.experiment.cv_folds``). ``--design
powered`` chooses the folds and seeds that detect 0.02 Dice in the primary contrasts on
BONBID-HIE's sizes (``powered_design``; explicit ``--folds``/``--seeds`` win).
``--synthetic-test-cases N`` sizes the synthetic test split (its own cached copy).

Methods (:mod:`hie_core.methods`): ``--grid KEY=V1,V2`` (repeatable, any parameter of
``notebooks/train.ipynb``) and ``--archs unet3d,segresnet`` (the grid over ``arch``) run every
combination with every loss and seed, each its own method folder ``runs/<study>/<method>/``
(``tversky_hdt@segresnet``, ``tversky_hdt+hybrid_weight=0.3``); ``--external NAME=FOLDER``
(repeatable) scores a folder of outside predictions after the runs
(:func:`hie_core.study.external.add_external`) into ``runs/<study>/<NAME>/seed0/``, a method with one
seed in every table. ``--plan``
prints the run count, the projected hours on this device and the minimum detectable
difference of the design, then exits; it runs, generates and writes nothing.

The package in parts, each importable on its own: ``cli`` (the command line), ``plan`` (every
check before anything is written; ``--plan`` is its dry run), ``forecast`` (the powered design
and the ``--plan`` report), ``engine`` (the engine's choice and :func:`run_study`), ``finish``
(references, outside predictions, results, book), ``grid`` and ``job`` (the grid engine and one
cell's notebook), ``options``, ``checks`` and ``progress``; ``external``, ``masks`` and ``score``
(outside predictions and ``hie-score``). Every name below is importable from ``hie_core.study``; each is
imported from its part when first asked for, so ``hie-score`` (``hie_core.study.score``) loads only what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each name importable from ``hie_core.study`` lives (its part of the package).
_PARTS: dict[str, str] = {
    **dict.fromkeys(("EXIT_INTERRUPTED", "INTERRUPTED", "main"), "hie_core.study.cli"),
    **dict.fromkeys(("CPU_LANES_MAX", "make_engine", "redo_notes", "run_study"), "hie_core.study.engine"),
    "finish_study": "hie_core.study.finish",
    **dict.fromkeys(("BONBID_COUNTS", "POWERED_FOLDS", "POWERED_MIN_SEEDS", "RUN_SECONDS_JSON", "powered_design",
                     "print_plan"), "hie_core.study.forecast"),
    **dict.fromkeys(("Engine", "GridJob", "GridRun", "RunOutcome"), "hie_core.study.grid"),
    **dict.fromkeys(("GRID_PARAMETERS", "STUDY_FOLDERS", "grid_combinations", "parse_externals", "parse_grid"),
                    "hie_core.study.options"),
    **dict.fromkeys(("DEFAULT_SEEDS", "DESIGNS", "StudyPlan", "parse_overrides", "plan_study", "reported_splits",
                     "unique_losses"), "hie_core.study.plan"),
    "TARGET_DICE": "hie_core.report.analysis.power",
    "PRIMARY_CONTRASTS": "hie_core.report.analysis.seed_study",
}

__all__ = ["DEFAULT_SEEDS", "Engine", "StudyPlan", "plan_study", "run_study",
           "finish_study", "redo_notes", "main", "DESIGNS", "PRIMARY_CONTRASTS", "TARGET_DICE", "BONBID_COUNTS", "powered_design",
           "reported_splits", "print_plan", "unique_losses", "parse_grid", "grid_combinations", "parse_externals",
           "GRID_PARAMETERS", "STUDY_FOLDERS"]  # fmt: skip

# The constants under the package's name, with the documentation they are read by (their values
# come from their parts on first use).
#: Seeds per loss when ``--seeds`` is not given: the seed protocol's 3 on CUDA; on a CPU as
#: many as fit the main job's time budget (at least 2, for a between-seed spread).
DEFAULT_SEEDS: dict[str, int]
#: ``--design`` choices: ``default`` (folds 0, :data:`DEFAULT_SEEDS`) and ``powered`` (:func:`powered_design`).
DESIGNS: tuple[str, ...]
#: BONBID-HIE's case counts (Part I, Zenodo record 10602767), the sizes ``--design powered`` is chosen for.
BONBID_COUNTS: dict[str, int]


def __getattr__(name: str) -> Any:
    """A name of :data:`__all__` (or another part's documented name), imported from its part on first use."""
    part = _PARTS.get(name)
    if part is None:
        raise AttributeError(f"module 'hie_core.study' has no attribute {name!r}")
    value = getattr(importlib.import_module(part), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PARTS})
